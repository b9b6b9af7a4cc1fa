"""What ``auditloop bench`` offers on its command line: the scenarios, the scale syntax and the default
PostgreSQL server. Imports nothing heavy, so ``auditloop bench --help`` loads no database code;
:mod:`app.bench.run` imports them from here."""

from __future__ import annotations

import re

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# in the order they run on each scale's database (ingest uses databases of its own)
SCALE_SCENARIOS = ("ingest", "sampling", "reports", "fixes", "per-item")
ONCE_SCENARIOS = ("browser", "training")
SCENARIOS = SCALE_SCENARIOS + ONCE_SCENARIOS
_SCALE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


def parse_scale(text: str) -> int:
    """``10k`` → 10000, ``1M`` → 1000000, ``2500`` → 2500."""
    match = _SCALE.match(text.strip())
    if not match:
        raise ValueError(f"scale {text!r}: expected a number of answers like 2000, 10k or 1M")
    number, unit = float(match.group(1)), match.group(2).lower()
    value = int(number * {"": 1, "k": 1_000, "m": 1_000_000}[unit])
    if value < 1_000:
        raise ValueError(f"scale {text!r}: at least 1000 answers (the samples and auditors need them)")
    return value


def scale_label(answers: int) -> str:
    for size, unit in ((1_000_000, "M"), (1_000, "k")):
        if answers >= size:
            value = answers / size
            return f"{value:g}{unit}"
    return str(answers)
