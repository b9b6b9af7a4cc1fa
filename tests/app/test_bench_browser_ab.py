"""`python -m app.bench.browser_ab`: the rating page served from several trees, runs taking turns."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from app.bench import browser_ab
from app.bench.scenarios import browser

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_runs_take_turns_so_each_tree_goes_first_as_often() -> None:
    names = ["/a", "/b", browser_ab.FLOOR]
    orders = [browser_ab.turns(names, run) for run in range(6)]
    assert orders[:3] == [["/a", "/b", "floor"], ["/b", "floor", "/a"], ["floor", "/a", "/b"]]
    assert orders[3:] == orders[:3]
    assert all(sorted(order) == sorted(names) for order in orders)


def test_a_directory_that_is_no_source_tree_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        browser_ab.main([str(tmp_path)])
    assert "not a source tree (no app/streamlit_app.py)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        browser_ab.main(["--runs", "0", str(REPO_ROOT)])
    assert "--runs and --ops must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_one_run_in_real_chromium_times_the_page_and_the_floor(capsys: pytest.CaptureFixture[str]) -> None:
    why = browser.unavailable()
    if why is not None:
        if os.environ.get("AUDITLOOP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"AUDITLOOP_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    assert browser_ab.main(["--runs", "1", "--ops", "1", "--scale", "2000", str(REPO_ROOT)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    figures = dict(
        re.fullmatch(r"(.+): submit → next p50 ([\d.]+) ms, p95 [\d.]+ ms.*", line).groups() for line in lines
    )  # type: ignore[union-attr]
    assert set(figures) == {str(REPO_ROOT), "floor"}
    assert all(float(ms) > 0 for ms in figures.values())
    assert re.search(r"\(\d+\.\d\d× / \d+\.\d\d×\)", lines[0])  # the tree's ratio to the floor
