"""A/B of the rating page between source trees, in real Chromium, on the page's clock.

The bench's browser figure compares the app with a minimal form app; a change to the rating page is
judged better by serving the page *before and after* at once, over one bench database, their runs
taking turns with the floor's (A, B, floor; then B, floor, A; ...), so that a change of load on a
shared machine weighs on every variant alike. Each tree is a checkout (e.g. ``git worktree add
--detach /tmp/before HEAD~1``) whose ``app/streamlit_app.py`` is served with that tree first on the
import path::

    python -m app.bench.browser_ab --runs 12 --ops 12 /tmp/before .

Prints each run's median and, per tree, the median over runs of the p50 and p95 submit → next item
times, with their ratio to the floor's. Needs Chromium and Playwright, as the bench's browser
scenario does; builds a 10k-answer SQLite bench database (``--scale``) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

FLOOR = "floor"


def turns(names: Sequence[str], run: int) -> list[str]:
    """The order of run ``run``: the names rotated by one each run, so each goes first as often."""
    shift = run % len(names)
    return [*names[shift:], *names[:shift]]


@contextlib.contextmanager
def _server(tree: Path, script: Path, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """``streamlit run`` from ``tree`` (its directory first on the import path) on a free port."""
    from app.bench.scenarios.browser import STARTUP_TIMEOUT_S, free_port

    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=tree, env={**os.environ, **env, "PYTHONPATH": str(tree)}, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {process.returncode}; see {log_path}")
                with (
                    contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response,
                ):
                    if response.status == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start within {STARTUP_TIMEOUT_S} s; see {log_path}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def compare(ctx: Any, trees: Sequence[Path], *, runs: int, ops: int) -> dict[str, dict[str, Any]]:
    """Serve every tree's app and the floor over ``ctx``'s database; their runs take turns."""
    from playwright.sync_api import sync_playwright

    from app.bench.harness import percentile
    from app.bench.scenarios import browser

    password = f"bench-{uuid.uuid4().hex}"
    auditors, pending = browser._prepare_users(ctx, password)
    sessions = runs * len(trees)
    need = -(-sessions // len(auditors)) * (ops + browser.WARMUP)
    if min(pending.get(a, 0) for a in auditors) < need:
        raise RuntimeError(f"{runs} runs of {ops} submits need {need} pending items per auditor; they have {pending}")
    work = Path(tempfile.mkdtemp(prefix="auditloop-browser-ab-"))
    env = {"AUDITLOOP_DATABASE_URL": ctx.db.url, "AUDITLOOP_DATA_DIR": str(work), "AUDITLOOP_DEMO_MODE": "false"}
    times: dict[str, list[list[float]]] = {}
    with sync_playwright() as playwright, contextlib.ExitStack() as servers:
        chromium = playwright.chromium.launch(
            executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS, headless=True
        )
        urls = {
            str(tree): servers.enter_context(_server(tree, tree / "app" / "streamlit_app.py", env, work / f"{i}.log"))
            for i, tree in enumerate(trees)
        }
        urls[FLOOR] = servers.enter_context(_server(trees[0], trees[0] / "app/bench/floor_app.py", env, work / "f.log"))
        sessions = 0
        for run in range(runs):
            for name in turns(list(urls), run):
                page = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                if name == FLOOR:
                    page.goto(urls[name])
                    browser._wait_idle(page)
                else:
                    browser._log_in(page, urls[name], auditors[sessions % len(auditors)], password)
                    sessions += 1
                times.setdefault(name, []).append(browser._round_trips(page, ops))
                page.context.close()
            ctx.progress(
                f"run {run + 1}/{runs}: "
                + ", ".join(f"{Path(n).name or n} {statistics.median(times[n][-1]):.1f} ms" for n in urls)
            )
        chromium.close()
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    summary: dict[str, dict[str, Any]] = {}
    for name, per_run in times.items():
        summary[name] = {f"p{q}": statistics.median(percentile(r, q) for r in per_run) for q in (50, 95)}
        summary[name]["runs_p50"] = [percentile(r, 50) for r in per_run]
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench.browser_ab", description=__doc__.split("\n\n")[1])
    parser.add_argument("trees", nargs="+", type=Path, help="source trees to serve the rating page from")
    parser.add_argument("--runs", type=int, default=12, help="runs per tree (default 12)")
    parser.add_argument("--ops", type=int, default=12, help="timed submits per run (default 12)")
    parser.add_argument("--scale", type=int, default=10_000, help="answers in the bench database (default 10000)")
    args = parser.parse_args(argv)
    trees = [t.resolve() for t in args.trees]
    missing = [str(t) for t in trees if not (t / "app" / "streamlit_app.py").is_file()]
    if missing:
        parser.error(f"not a source tree (no app/streamlit_app.py): {', '.join(missing)}")
    if args.runs < 1 or args.ops < 1:
        parser.error("--runs and --ops must be >= 1")

    from app.bench import run as bench_run
    from app.bench.context import BenchOptions
    from app.bench.scenarios import browser, per_item

    # more auditors kept out of the per-item scenario: every tree's runs need their own pending items
    per_item.BROWSER_RESERVED_AUDITORS = browser.BROWSER_RESERVED_AUDITORS = 15
    result: dict[str, dict[str, Any]] = {}

    def measure(ctx: Any) -> list[Any]:
        result.update(compare(ctx, trees, runs=args.runs, ops=args.ops))
        return []

    browser.measure = measure
    options = BenchOptions(
        scales=[args.scale],
        backends=["sqlite"],
        runs=1,
        skip=frozenset({"ingest", "reports", "fixes", "training"}),
        browser_ops=args.ops,
    )
    bench_run.run_bench(options, progress=lambda m: print(m, file=sys.stderr, flush=True))
    if not result:
        print("no browser figures (see the messages above)", file=sys.stderr)
        return 1
    floor = result[FLOOR]
    for name, figures in result.items():
        ratio = (
            "" if name == FLOOR else f" ({figures['p50'] / floor['p50']:.2f}× / {figures['p95'] / floor['p95']:.2f}×)"
        )
        print(f"{name}: submit → next p50 {figures['p50']:.1f} ms, p95 {figures['p95']:.1f} ms{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
