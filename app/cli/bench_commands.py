"""``auditloop bench``: measure auditloop at scale on SQLite and PostgreSQL, beside raw-driver floors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from app.bench.choices import DEFAULT_POSTGRES_URL, SCENARIOS, parse_scale
from app.cli.context import user_errors

POSTGRES_URL_ENV = "AUDITLOOP_BENCH_POSTGRES_URL"
DEFAULT_JSON = Path("bench-results/latest.json")
# The bench itself is imported inside the command, so `--help` loads none of it (see app/cli/main.py).


def _scales(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        return [parse_scale(part) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _skip(ctx: click.Context, param: click.Parameter, value: str | None) -> frozenset[str]:
    names = frozenset(part.strip() for part in (value or "").split(",") if part.strip())
    unknown = sorted(names - set(SCENARIOS))
    if unknown:
        raise click.BadParameter(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return names


@click.command("bench")
@click.option(
    "--scale",
    "scales",
    default="10k,1M",
    show_default=True,
    callback=_scales,
    help="Answers per database, comma-separated (2000, 10k, 100k, 1M ...).",
)
@click.option("--db", "database", type=click.Choice(["sqlite", "postgres", "both"]), default="both", show_default=True)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_JSON,
    show_default=True,
    help="Where the JSON results go; the Markdown table goes beside it (same name, .md).",
)
@click.option(
    "--runs", type=click.IntRange(1, 50), default=3, show_default=True, help="Runs per figure (median, min, max)."
)
@click.option(
    "--postgres-url",
    default=lambda: os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL,
    show_default=f"${POSTGRES_URL_ENV} or {DEFAULT_POSTGRES_URL}",
    help="A PostgreSQL server URL with the right to create databases; the bench creates and drops its own.",
)
@click.option("--skip", callback=_skip, help=f"Scenarios to leave out, comma-separated: {', '.join(SCENARIOS)}.")
@click.option(
    "--concurrency", type=click.IntRange(2, 40), default=10, show_default=True, help="Auditors submitting at once."
)
@user_errors
def bench(
    scales: list[int],
    database: str,
    json_path: Path,
    runs: int,
    postgres_url: str,
    skip: frozenset[str],
    concurrency: int,
) -> None:
    """Measure ingest, sampling, per-item latency (alone and concurrent), reports, fixes and export at
    each scale, the browser round trip at the largest scale on SQLite, and training efficiency once.

    Progress goes to stderr; the table is printed at the end and written with the JSON.
    """
    from app.bench.context import BenchOptions, stderr_progress
    from app.bench.report import markdown, write
    from app.bench.run import run_bench

    if not scales:
        raise click.BadParameter("give at least one scale", param_hint="--scale")
    options = BenchOptions(
        scales=scales,
        backends=["sqlite", "postgres"] if database == "both" else [database],
        runs=runs,
        postgres_url=postgres_url if database in ("postgres", "both") else None,
        skip=skip,
        concurrency=concurrency,
    )
    document = run_bench(options, stderr_progress())
    document["command"] = "auditloop " + " ".join(sys.argv[1:])
    markdown_path = json_path.with_suffix(".md")
    write(document, json_path=json_path, markdown_path=markdown_path)
    click.echo(markdown(document))
    click.echo(f"written: {json_path}, {markdown_path}", err=True)


COMMANDS = [bench]
