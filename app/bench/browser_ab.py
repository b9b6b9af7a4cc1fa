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
import statistics
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FLOOR = "floor"


def turns(names: Sequence[str], run: int) -> list[str]:
    """The order of run ``run``: the names rotated by one each run, so each goes first as often."""
    shift = run % len(names)
    return [*names[shift:], *names[:shift]]


def compare(ctx: Any, trees: Sequence[Path], *, runs: int, ops: int) -> dict[str, dict[str, Any]]:
    """Serve every tree's app and the floor over ``ctx``'s database; their runs take turns."""
    from playwright.sync_api import sync_playwright

    from app.bench.harness import percentile
    from app.bench.scenarios import browser

    password = f"bench-{uuid.uuid4().hex}"
    auditors, pending = browser._prepare_users(ctx, password)
    need = -(-runs * len(trees) // len(auditors)) * (ops + browser.WARMUP)  # logins per auditor × items each
    if min(pending.get(a, 0) for a in auditors) < need:
        raise RuntimeError(f"{runs} runs of {ops} submits need {need} pending items per auditor; they have {pending}")
    work = Path(tempfile.mkdtemp(prefix="auditloop-browser-ab-"))
    env = {"AUDITLOOP_DATABASE_URL": ctx.db.url, "AUDITLOOP_DATA_DIR": str(work), "AUDITLOOP_DEMO_MODE": "false"}
    times: dict[str, list[list[float]]] = {}
    with sync_playwright() as playwright, contextlib.ExitStack() as servers:
        chromium = playwright.chromium.launch(
            executable_path=str(browser.CHROMIUM), args=browser.CHROMIUM_ARGS, headless=True
        )

        def serve(tree: Path, script: str, log: str) -> str:
            tree_env = {**env, "PYTHONPATH": str(tree)}  # the tree's packages, not this checkout's
            return servers.enter_context(browser.streamlit_server(tree / script, tree_env, work / log, cwd=tree))

        urls = {str(tree): serve(tree, "app/streamlit_app.py", f"{i}.log") for i, tree in enumerate(trees)}
        urls[FLOOR] = serve(trees[0], "app/bench/floor_app.py", "floor.log")
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
