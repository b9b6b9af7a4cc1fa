"""The bench's results as files: ``latest.json`` (everything) and ``latest.md`` (the tables people read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DB_TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "-": "Scale-free (training and generation)"}


def write(document: dict[str, Any], *, json_path: Path, markdown_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    markdown_path.write_text(markdown(document), encoding="utf-8")


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "rows/s" or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _load(machine: dict[str, Any]) -> str:
    start, end = machine.get("load_average_at_start"), machine.get("load_average")
    if not start or not end:
        return ""
    text = (
        f" Load average (1/5/15 min): {'/'.join(f'{x:g}' for x in start)} at the start, "
        f"{'/'.join(f'{x:g}' for x in end)} at the end."
    )
    if max(start[0], end[0]) > (machine.get("cpu_cores") or 1):
        text += (
            " Above the core count: other work shared the CPUs, so latencies are inflated (the ratios to"
            " floors measured in the same run much less so)."
        )
    return text


def _ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def _met(value: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "—"}[value]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(document: dict[str, Any]) -> str:
    machine = document["machine"]
    options = document["options"]
    lines = [
        "# auditloop bench",
        "",
        f"Run {document['generated_at']} in {document['seconds']:,.0f} s — scales {', '.join(options['scales'])}, "
        f"databases {', '.join(options['databases']) or 'none'}, {options['runs']} runs per figure "
        f"(median, with min–max), {options['concurrency']} concurrent auditors.",
        "",
        f"Machine: {machine.get('cpu_cores')} cores ({machine.get('cpu')}), {machine.get('memory_gib')} GiB memory, "
        f"Python {machine.get('python')}, SQLite {machine.get('sqlite')}"
        + (f", PostgreSQL {machine['postgres']}" if machine.get("postgres") else "")
        + f"; {machine.get('platform')}."
        + _load(machine),
        "",
        *([f"Command: `{document['command']}`", ""] if document.get("command") else []),
        "Ratio = figure ÷ floor, both measured in the same run (for rows/s higher is better; for times, how many "
        "times the floor's time).",
    ]
    figures = document["figures"]
    for db in ("sqlite", "postgres", "-"):
        rows = [f for f in figures if f["db"] == db]
        if not rows:
            continue
        lines += [
            "",
            f"## {DB_TITLES.get(db, db)}",
            "",
            "| figure | scale | median | min – max | unit | runs | floor | ratio | target | met | notes |",
            "|---|---|---:|---:|---|---:|---:|---:|---|---|---|",
        ]
        for f in rows:
            floor = f"{_number(f['floor'], f['unit'])} ({_cell(f['floor_name'])})" if f["floor"] is not None else "—"
            ratio = _ratio(f["ratio"])
            lines.append(
                f"| {_cell(f['name'])} | {f['scale']} | {_number(f['median'], f['unit'])} | "
                f"{_number(f['minimum'], f['unit'])} – {_number(f['maximum'], f['unit'])} | {f['unit']} | {f['runs']} | "
                f"{floor} | {ratio} | {_cell(f['target']) or '—'} | {_met(f['met'])} | {_cell(f['notes'])} |"
            )
    growth = document.get("growth") or []
    if growth:
        lines += [
            "",
            "## Growth from the smallest to the largest scale (per-item operations)",
            "",
            "| figure | db | smallest | largest | growth | target | met |",
            "|---|---|---:|---:|---:|---|---|",
        ]
        for g in growth:
            lines.append(
                f"| {_cell(g['name'])} | {g['db']} | {_number(g['smallest'])} {g['unit']} ({g['smallest_scale']}) | "
                f"{_number(g['largest'])} {g['unit']} ({g['largest_scale']}) | {g['growth']:.2f}× | "
                f"{g['target'] or '—'} | {_met(g['met'])} |"
            )
    judged = [f["met"] for f in figures if f["met"] is not None] + [g["met"] for g in growth if g["met"] is not None]
    lines += ["", f"Targets met: {sum(judged)} of {len(judged)}."]
    if document.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {_cell(note)}" for note in document["notes"]]
    return "\n".join(lines) + "\n"
