"""``auditloop demo``: the demo company. ``demo seed`` fills an empty database with it.

Other modules add subcommands to the same group (``from app.cli.demo_commands import demo``).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import click

from app.cli.context import AppContext, emit, pass_app, table, user_errors
from audit.demo.corpus import DEFAULT_SEED  # the demo's plain-data modules import nothing heavy
from audit.demo.traffic import DEFAULT_DAYS, MAX_DAYS

if TYPE_CHECKING:
    from audit.demo.seed import SeedReport

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


@click.group("demo")
def demo() -> None:
    """The demo company: a seeded knowledge base, assistant traffic and audit history."""


@demo.command("seed")
@click.option("--seed", "seed", type=int, default=DEFAULT_SEED, show_default=True, help="Content seed.")
@click.option(
    "--days",
    type=click.IntRange(1, MAX_DAYS),
    default=DEFAULT_DAYS,
    show_default=True,
    help="Days of past answers and ratings.",
)
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The day the history ends before, YYYY-MM-DD (default: today, UTC).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (includes the passwords).")
@pass_app
@user_errors
def seed(app: AppContext, seed: int, days: int, today: dt.datetime | None, as_json: bool) -> None:
    """Fill an EMPTY database with the demo company and print the accounts' passwords once.

    Same --seed and --today give the same content; passwords are random. They are also written,
    readable by you only, to the data directory's demo-credentials.txt.
    """
    from audit.demo.seed import seed_demo, write_credentials

    started = time.perf_counter()

    def progress(stage: str) -> None:
        click.echo(f"[{time.perf_counter() - started:5.1f}s] {stage}", err=True)

    day = today.date() if today is not None else dt.datetime.now(dt.UTC).date()
    with app.unit_of_work() as session:
        report = seed_demo(session, actor=None, today=day, seed=seed, days=days, progress=progress)
        progress("committing")
    credentials_file = write_credentials(app.settings.credentials_file, report.credentials, seed=seed)
    progress("done")

    data: dict[str, Any] = {
        **report.as_dict(),
        "seconds": round(time.perf_counter() - started, 2),
        "credentials_file": str(credentials_file),
        "credentials": [
            {"username": c.username, "role": c.role, "departments": c.departments, "password": c.password}
            for c in report.credentials
        ],
    }
    emit(data, as_json=as_json, human=lambda d: _summary(report, d))


def _summary(report: SeedReport, data: dict[str, Any]) -> str:
    counts = report.counts
    lines = [
        f"Seeded the demo company (seed {report.seed}, {report.days} days before {report.today}) "
        f"in {data['seconds']:.1f} s.",
        "",
        table([{"table": name, "rows": n} for name, n in counts.items()], ["table", "rows"]),
        "",
        table(
            [{"department": name, **row} for name, row in report.by_department.items()],
            ["department", "documents", "examples", "gold", "answers", "answers_correct_share", "mean_rated_accuracy"],
        ),
        "",
        "Accounts (shown once; also in the credentials file):",
        table(
            [{**c, "departments": ",".join(c["departments"])} for c in data["credentials"]],
            ["username", "role", "departments", "password"],
        ),
        "",
        f"Credentials file (mode 0600): {data['credentials_file']}",
    ]
    return "\n".join(lines)


COMMANDS = [demo]
