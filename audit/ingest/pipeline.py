"""Large answers files: decode and check the lines in a worker process while this one stores them.

On SQLite the ingest is CPU-bound and its two halves are about even: decoding, checking, hashing and
formatting a line (Python, ~10 µs) and inserting its row (the driver, ~12-16 µs). A thread cannot
overlap them (SQLite takes the GIL back per row), a second process can. The worker
(``python -m audit.ingest.pipeline``) reads the file, builds each valid line's row with the same
:class:`~audit.ingest.answer_rows.AnswerBuilder` as the single-process path, explains each invalid line,
and streams one :class:`Chunk` per ``chunk_lines`` lines through a pipe; the pipe's small buffer keeps
it at most about one chunk ahead. The ingesting process registers new model versions, inserts,
resolves repeated ids and commits: everything that touches the database stays in one transaction.

The worker never writes to the database, so whatever happens to it, the ingest's savepoint is rolled
back and nothing is stored: a worker that dies or fails raises :class:`IngestWorkerFailed`; an
interrupted ingest (Ctrl-C, any exception) kills the worker before the error goes on.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from audit.errors import AuditloopError

# Files at least this large (~55k answer lines of ~900 bytes) go through the worker, on a machine with
# more than one CPU for this process; smaller ones are done before the worker would have started.
PIPELINE_MIN_BYTES = 50 * 1024 * 1024
# ... and only while a CPU is free for it: the 1-minute load average (which counts this process) at
# least this far below the CPU count. On a busy machine the two processes only take turns on the same
# CPUs, and the pipeline's extra work (pickling each row and reading it back, ~3.5 µs) costs more than
# the overlap saves: on 2 CPUs at load 3.6-3.8, 300k lines (265 MB) took 6.9-8.4 s through the worker
# (the ingesting process 4.0-5.1 s CPU, the worker 3.1-3.8) against 6.6-7.2 s (5.9-6.7 s CPU) without.
MIN_SPARE_CPUS = 0.5
_PIPE_BYTES = 1 << 20  # the pipe's buffer, where Linux lets a process raise it (F_SETPIPE_SZ)
_F_SETPIPE_SZ = 1031
_STDERR_SHOWN = 2000
WORKER_ARGS = ("-m", "audit.ingest.pipeline")  # after sys.executable: how the worker is started


class IngestWorkerFailed(AuditloopError):
    """The worker process decoding the file stopped or failed; nothing was stored."""


@dataclass(frozen=True)
class WorkerConfig:
    path: str
    chunk_lines: int
    max_line_bytes: int
    departments: dict[str, int]
    documents: set[str]
    models: dict[str, int]
    dialect: str
    stored_ingested_at: Any


@dataclass
class Chunk:
    """What the worker made of ``lines`` consecutive non-blank lines, in line order within each list."""

    lines: int
    bytes_read: int  # of the file, for the progress bar: blank lines included
    rows: list[tuple[Any, ...]]  # valid lines in storage form; a new model version as a negative stand-in id
    sources: list[tuple[int, int]]  # each row's (line number, byte offset of the line)
    rejects: list[tuple[int, list[tuple[str, str]], bytes | None]]  # (line number, problems, raw line)
    new_models: list[tuple[int, str]]  # (stand-in id, name) of model versions first seen in this chunk


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def spare_cpus() -> float:
    """CPUs minus the 1-minute load average (an idle machine running only this ingest: about CPUs - 1)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available here: assume nothing else runs
        load = 1.0
    return available_cpus() - load


def use_pipeline(path: Path) -> bool:
    """Whether ``path`` is large enough, and the machine has a CPU free, for the worker to pay."""
    return path.stat().st_size >= PIPELINE_MIN_BYTES and available_cpus() > 1 and spare_cpus() >= MIN_SPARE_CPUS


# -- the ingesting process --------------------------------------------------------------------------


@contextlib.contextmanager
def start_worker(config: WorkerConfig) -> Iterator[Iterator[Chunk]]:
    """Start the worker on ``config``; yield an iterator over its chunks. On leaving, the worker is
    gone: waited for after its last chunk, killed if the caller stops early (an error, Ctrl-C)."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryFile() as stderr:
        worker = subprocess.Popen(  # noqa: S603 - our own interpreter running our own module
            [sys.executable, *WORKER_ARGS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            bufsize=_PIPE_BYTES,
            start_new_session=True,  # Ctrl-C reaches the ingesting process only, which then kills the worker
        )
        try:
            assert worker.stdin is not None and worker.stdout is not None  # noqa: S101 - PIPE above
            with contextlib.suppress(OSError):
                import fcntl  # noqa: PLC0415 - POSIX only

                fcntl.fcntl(worker.stdout.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
            try:
                pickle.dump(config, worker.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                worker.stdin.close()
            except OSError:  # it died before reading its orders: say why below
                pass
            yield _receive(worker, worker.stdout, stderr)
        finally:
            if worker.poll() is None:
                worker.kill()
            worker.wait()


def _receive(worker: subprocess.Popen[bytes], stream: IO[bytes], stderr: IO[bytes]) -> Iterator[Chunk]:
    while True:
        try:
            message = pickle.load(stream)  # noqa: S301 - our own worker, through a pipe only we hold
        except (EOFError, pickle.UnpicklingError, OSError) as exc:
            raise _failed(worker, stderr, f"it stopped without finishing ({type(exc).__name__})") from None
        kind = message[0]
        if kind == "chunk":
            yield message[1]
        elif kind == "error":
            raise _failed(worker, stderr, message[1])
        else:  # "end"
            if worker.wait() != 0:
                raise _failed(worker, stderr, "it finished with an error")
            return


def _failed(worker: subprocess.Popen[bytes], stderr: IO[bytes], why: str) -> IngestWorkerFailed:
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=5)
    stderr.seek(0)
    output = stderr.read().decode("utf-8", "backslashreplace").strip()
    status = worker.returncode
    text = f"the worker process decoding the file failed: {why}"
    if status is not None and status != 0:
        text += f" (exit status {status})"
    if output:
        text += f"\n{output[-_STDERR_SHOWN:]}"
    return IngestWorkerFailed(f"{text}\nnothing was stored")


# -- the worker process -----------------------------------------------------------------------------


def produce(config: WorkerConfig, out: IO[bytes]) -> None:
    """Send every chunk of ``config.path`` to ``out``, then ``("end",)``."""
    from audit.ingest import lines  # noqa: PLC0415 - the worker imports only what it uses
    from audit.ingest.answer_rows import AnswerBuilder  # noqa: PLC0415

    lines.MAX_LINE_BYTES = config.max_line_bytes  # the parent's, also in explain()'s message
    stand_ins = itertools.count(-1, -1)
    new_models: list[tuple[int, str]] = []

    def register(name: str) -> int:
        stand_in = next(stand_ins)
        new_models.append((stand_in, name))
        models[name] = stand_in  # the same stand-in for the file's later lines
        return stand_in

    models = dict(config.models)
    builder = AnswerBuilder(
        departments=config.departments,
        documents=config.documents,
        models=models,
        dialect=config.dialect,
        stored_ingested_at=config.stored_ingested_at,
        register=register,
    )
    build = builder.build
    explain = builder.explain
    dump = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    for numbered, bytes_read in lines.read_chunks_at(
        Path(config.path), chunk_lines=config.chunk_lines, max_line_bytes=config.max_line_bytes
    ):
        rows = []
        sources = []
        rejects = []
        for number, raw, offset in numbered:
            row = build(raw) if raw is not None else None
            if row is None:
                rejects.append((number, explain(raw), raw))
                continue
            rows.append(row)
            sources.append((number, offset))
        chunk = Chunk(len(numbered), bytes_read, rows, sources, rejects, list(new_models))
        new_models.clear()
        dump.dump(("chunk", chunk))
        dump.clear_memo()
        out.flush()
    dump.dump(("end",))
    out.flush()


def worker_main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the ingesting process decides when this one stops
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 20)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the stream of chunks
    gc.disable()  # millions of short-lived acyclic objects (as in the service)
    try:
        config = pickle.load(sys.stdin.buffer)  # noqa: S301 - from the process that started this one
        produce(config, out)
    except BrokenPipeError:
        return 1  # the ingesting process stopped reading: nobody to tell
    except BaseException as exc:  # noqa: BLE001 - any failure is reported, as one line, to the parent
        with contextlib.suppress(OSError):
            pickle.dump(("error", f"{type(exc).__name__}: {exc}"), out)
            out.flush()
        return 1
    return 0


if __name__ == "__main__":
    # run the imported module's copy, so that what it pickles is audit.ingest.pipeline's, not __main__'s
    from audit.ingest.pipeline import worker_main as main  # noqa: PLC0415

    sys.exit(main())
