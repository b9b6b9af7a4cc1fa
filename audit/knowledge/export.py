"""Export a dataset version as chat-format SFT records: JSONL, or a Hugging Face ``datasets.Dataset``
saved to disk. The output appears whole or not at all: it is written beside the target under a
temporary name and renamed into place only once complete."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
from sqlalchemy.orm import Session

from audit.choices import EXPORT_FORMATS as FORMATS
from audit.errors import AuditloopError, ValidationError
from audit.knowledge import datasets

ExportFormat = Literal["jsonl", "hf"]
Progress = Callable[[int, int], None]  # (records written, total)
PROGRESS_EVERY = 5_000
# compact JSON, UTF-8 unescaped, one record per line (msgspec: ~10x json.dumps on 100k records)
_LINES = msgspec.json.Encoder()


@dataclass(frozen=True)
class ExportSummary:
    version: int
    format: str
    path: str
    examples: int
    bytes: int
    sha256: str | None  # of the JSONL file (None for a saved Dataset directory)
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_version(
    session: Session,
    *,
    number: int,
    out: Path,
    fmt: ExportFormat = "jsonl",
    progress: Progress | None = None,
) -> ExportSummary:
    """Write dataset version ``number`` to ``out``; on any failure nothing is left at ``out``
    (an earlier file there stays as it was)."""
    out = check_target(out, fmt)
    started = time.perf_counter()
    version = datasets.version_by_number(session, number)
    examples = datasets.examples_for_version(session, version.id)
    try:
        if fmt == "jsonl":
            size, digest = _write_jsonl(examples, out, progress)
        else:
            size, digest = _write_hf([datasets.sft_record(r) for r in examples], out, progress), None
    except OSError as exc:
        raise AuditloopError(f"{out}: could not write the export ({exc.strerror or exc}); nothing was written") from exc
    return ExportSummary(
        version=number,
        format=fmt,
        path=str(out),
        examples=len(examples),
        bytes=size,
        sha256=digest,
        seconds=round(time.perf_counter() - started, 3),
    )


def check_target(out: Path, fmt: str) -> Path:
    """Refuse a target the export cannot be written to, before any work is done."""
    if fmt not in FORMATS:
        raise ValidationError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    if not out.parent.is_dir():
        raise ValidationError(f"{out}: the directory {out.parent} does not exist")
    if fmt == "jsonl" and out.is_dir():
        raise ValidationError(f"{out}: is a directory; give a file name for JSONL")
    return out


def _write_jsonl(examples: list[datasets.ExampleRecord], out: Path, progress: Progress | None) -> tuple[int, str]:
    total = len(examples)
    digest = hashlib.sha256()
    fd, temp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh:
            for start in range(0, total, PROGRESS_EVERY):
                # SFT records a chunk at a time: 100k nested dicts at once would double the memory
                records = [datasets.sft_record(r) for r in examples[start : start + PROGRESS_EVERY]]
                chunk = _LINES.encode_lines(records)
                fh.write(chunk)
                digest.update(chunk)
                if progress is not None:
                    progress(min(start + PROGRESS_EVERY, total), total)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp_name, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _sync_directory(out.parent)
    if progress is not None and total == 0:
        progress(0, 0)
    return out.stat().st_size, digest.hexdigest()


def _write_hf(records: list[dict[str, Any]], out: Path, progress: Progress | None) -> int:
    # Hugging Face `datasets` is heavy and only this path needs it
    import datasets as hf_datasets

    temp_dir = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    aside: Path | None = None
    try:
        dataset = hf_datasets.Dataset.from_list(records) if records else _empty_hf_dataset(hf_datasets)
        dataset.save_to_disk(str(temp_dir))
        if progress is not None:
            progress(len(records), len(records))
        if out.exists():
            # a directory cannot be renamed over a non-empty one: move the old one aside first
            aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            os.replace(out, aside / "previous")
        os.replace(temp_dir, out)
    except BaseException:
        if aside is not None and (aside / "previous").exists() and not out.exists():
            os.replace(aside / "previous", out)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    _sync_directory(out.parent)
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def _empty_hf_dataset(hf_datasets: Any) -> Any:
    features = hf_datasets.Features(
        {
            "messages": [{"role": hf_datasets.Value("string"), "content": hf_datasets.Value("string")}],
            "department": hf_datasets.Value("string"),
            "sources": [hf_datasets.Value("string")],
            "weight": hf_datasets.Value("int64"),
        }
    )
    return hf_datasets.Dataset.from_list([], features=features)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
