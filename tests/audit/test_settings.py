"""Settings: defaults, environment over TOML, and one clear message per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.errors import ConfigurationError
from audit.settings import load_settings


def test_defaults_put_everything_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings({})
    assert s.data_dir == Path(".auditloop")
    assert s.database_url == f"sqlite:///{(tmp_path / '.auditloop' / 'auditloop.db').resolve()}"
    assert s.mlflow_tracking_uri == (tmp_path / ".auditloop" / "mlruns").resolve().as_uri()
    assert s.base_model == "builtin:tiny"
    assert s.is_sqlite and not s.demo_mode


def test_environment_overrides_toml_file(tmp_path: Path) -> None:
    cfg = tmp_path / "auditloop.toml"
    cfg.write_text('[auditloop]\ndata_dir = "/srv/audit"\ndatabase_url = "sqlite:////srv/a.db"\n')
    s = load_settings({"AUDITLOOP_CONFIG": str(cfg), "AUDITLOOP_DATABASE_URL": "postgresql://u@h/db"})
    assert s.data_dir == Path("/srv/audit")
    assert s.database_url == "postgresql+psycopg://u@h/db"  # normalised to the psycopg 3 driver


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUDITLOOP_DATABASE_URL": "not a url"}, "AUDITLOOP_DATABASE_URL='not a url': not a database URL"),
        ({"AUDITLOOP_DATABASE_URL": "mysql://u@h/db"}, "backend 'mysql' is not supported"),
        ({"AUDITLOOP_BASE_MODEL": "/nonexistent/model"}, "AUDITLOOP_BASE_MODEL='/nonexistent/model'"),
        ({"AUDITLOOP_BASE_MODEL": "builtin:huge"}, "the only built-in model is 'builtin:tiny'"),
        ({"AUDITLOOP_DEMO_MODE": "maybe"}, "AUDITLOOP_DEMO_MODE='maybe': expected true or false"),
        ({"AUDITLOOP_CONFIG": "/nonexistent.toml"}, "no such file"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)


def test_invalid_toml_is_reported_with_its_path(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("data_dir = [unclosed")
    with pytest.raises(ConfigurationError, match="bad.toml: not valid TOML"):
        load_settings({"AUDITLOOP_CONFIG": str(cfg)})


def test_local_model_directory_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert load_settings({"AUDITLOOP_BASE_MODEL": str(tmp_path)}).base_model == str(tmp_path)
