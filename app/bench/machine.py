"""Describe the machine a bench ran on: cores, memory, CPU, database versions, how busy it was."""

from __future__ import annotations

import os
import platform
import sqlite3
from typing import Any

from sqlalchemy import text

from audit.db import make_engine


def describe(postgres_url: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "load_average": load_average(),
    }
    if postgres_url:
        engine = make_engine(postgres_url)
        try:
            with engine.connect() as conn:
                info["postgres"] = conn.execute(text("SHOW server_version")).scalar()
        finally:
            engine.dispose()
    return info


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: a busy machine makes every latency figure worse."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None
