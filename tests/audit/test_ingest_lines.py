"""The ingest decoder's verdict on a line (``decode_object``), the same with every msgspec the range allows.

The cases run here with the installed msgspec, and once more in a bare interpreter (no site-packages:
the standard library, the lowest or the highest msgspec ``pyproject.toml`` allows, and this checkout)
for each end of the range, so that a msgspec release that words or types its errors differently
shows up as a failing test, not as a user's rejected file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from audit.ingest.lines import MAX_LINE_BYTES, decode_object

REPO = Path(__file__).resolve().parents[2]

Verdict = tuple[dict[str, Any] | None, list[tuple[str, str]]]


def refused(problem: str) -> Verdict:
    return None, [("json", problem)]


# (scenario, the line's bytes, what decode_object says)
DECODE_CASES: list[tuple[str, bytes, Verdict]] = [
    ("an object", b'{"external_id": "a-1", "score": 4}\n', ({"external_id": "a-1", "score": 4}, [])),
    ("invalid UTF-8 inside a string", b'{"external_id": "x-\xff"}\n', refused("not valid UTF-8 (byte 20 of the line)")),
    ("invalid UTF-8 between values", b'{"a": 1, \xff}', refused("not valid UTF-8 (byte 10 of the line)")),
    ("a multi-byte character cut short", b'{"a": "\xc3"}', refused("not valid UTF-8 (byte 8 of the line)")),
    ("a surrogate encoded as UTF-8", b'{"a": "\xed\xa0\x80"}', refused("not valid UTF-8 (byte 8 of the line)")),
    # msgspec refuses it; json takes it, and check_fields then names the field that holds it
    ("a lone surrogate escape", b'{"question": "\\ud800"}', ({"question": "\ud800"}, [])),
    ("a surrogate pair escape", b'{"a": "\\ud800\\udc00"}', ({"a": "\U00010000"}, [])),
    (
        "an object cut short",
        b'{"external_id": "bad-6",',
        refused("malformed JSON: Expecting property name enclosed in double quotes at column 25"),
    ),
    ("a trailing comma", b'{"a": [1,]}', refused("malformed JSON: Expecting value at column 10")),
    ("text after the object", b'{"a": "ok"} x', refused("malformed JSON: Extra data at column 13")),
    ("NaN", b'{"a": NaN}', refused("malformed JSON: NaN is not a JSON number")),
    ("a number out of range", b'{"a": 1e999}', refused("malformed JSON: number 1e999 is out of range")),
    # json reads the byte-order mark; msgspec's own message is the one shown
    ("a byte-order mark", b'\xef\xbb\xbf{"a": 1}', refused("malformed JSON: invalid character (byte 0)")),
    ("a string", b'"just a string"', refused("expected a JSON object, got a string")),
    ("an array", b"[1, 2]", refused("expected a JSON object, got an array")),
    ("null", b"null", refused("expected a JSON object, got null")),
]


@pytest.mark.parametrize(("scenario", "raw", "verdict"), DECODE_CASES, ids=[case[0] for case in DECODE_CASES])
def test_decode_object(scenario: str, raw: bytes, verdict: Verdict) -> None:
    assert decode_object(raw) == verdict


def test_a_line_too_long_to_hold_is_refused_without_decoding() -> None:
    assert decode_object(None) == refused(f"line is longer than {MAX_LINE_BYTES:,} bytes")


# -- the ends of msgspec's range ---------------------------------------------------------------------

# Run in the bare interpreter: decode each line (hex on stdin), print msgspec's version and location and
# the verdicts as JSON.
_DECODE_IN_CHILD = """
import json, sys
import msgspec
from audit.ingest.lines import decode_object
lines = [bytes.fromhex(h) for h in json.load(sys.stdin)]
print(json.dumps({"version": msgspec.__version__, "file": msgspec.__file__,
                  "verdicts": [decode_object(raw) for raw in lines]}))
"""


def msgspec_range() -> Requirement:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [requirement] = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "msgspec"]
    return requirement


def lowest_msgspec() -> Version:
    [lowest] = [Version(s.version) for s in msgspec_range().specifier if s.operator == ">="]
    return lowest


# what pip is asked for at each end: the lower bound exactly, and the newest release the range allows
MSGSPEC_ENDS = [
    pytest.param("lowest", f"msgspec=={lowest_msgspec()}", id="lowest"),
    pytest.param("highest", f"msgspec{msgspec_range().specifier}", id="highest"),
]


@pytest.mark.slow  # downloads msgspec twice (about 0.3 MB each; pip's cache keeps them)
@pytest.mark.parametrize(("end", "wanted"), MSGSPEC_ENDS)
def test_every_decode_case_with_each_end_of_the_msgspec_range(end: str, wanted: str, tmp_path: Path) -> None:
    target = tmp_path / "msgspec"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:", "--target"]
    install = subprocess.run([*pip, str(target), wanted], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, f"pip could not install {wanted} (it needs the package index):\n{install.stderr}"
    child = subprocess.run(
        [sys.executable, "-S", "-c", _DECODE_IN_CHILD],  # -S: no site-packages, so no other msgspec
        input=json.dumps([raw.hex() for _, raw, _ in DECODE_CASES]),
        env={"PYTHONPATH": f"{target}:{REPO}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    version = Version(result["version"])
    assert Path(result["file"]).is_relative_to(target), f"the child imported {result['file']}"
    assert version in msgspec_range().specifier
    if end == "lowest":
        assert version == lowest_msgspec()
    wrong = {
        scenario: {"got": got, "expected": expected}
        for (scenario, _, verdict), got in zip(DECODE_CASES, result["verdicts"], strict=True)
        if got != (expected := json.loads(json.dumps(verdict)))
    }
    assert not wrong, f"msgspec {version} ({end} the range allows): {wrong}"
