"""Which versions moved between two pinned lists (requirements/lock.txt, or `pip freeze` output).

Usage: python3 requirements/moved.py BEFORE AFTER   (`make lock` and `make test-latest` call it)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of every ``name==version`` line (hash and comment lines skipped)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        if match := _PIN.match(line):
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def main(before_path: str, after_path: str) -> None:
    before, after = pins(Path(before_path)), pins(Path(after_path))
    moved = [
        f"  {name} {before.get(name, '(new)')} -> {after.get(name, '(gone)')}"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]
    print(f"{len(moved)} of {len(after)} versions moved" + (":" if moved else ""))
    for line in moved:
        print(line)


if __name__ == "__main__":
    main(*sys.argv[1:])
