"""Settings from the environment (and an optional TOML file), validated once at start-up.

Precedence: environment variable > TOML file (``AUDITLOOP_CONFIG`` or ``./auditloop.toml``) >
default. A bad value raises :class:`ConfigurationError` naming the variable and what it expects.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from audit.errors import ConfigurationError

ENV_PREFIX = "AUDITLOOP_"
BUILTIN_TINY = "builtin:tiny"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    mlflow_tracking_uri: str
    base_model: str
    demo_mode: bool
    secret_key_file: Path | None
    # single sign-on (Streamlit's st.login, configured in .streamlit/secrets.toml [auth]): the ID-token
    # claim whose value is the auditloop username
    oidc_username_claim: str = "preferred_username"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "demo-credentials.txt"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc
    section = data.get("auditloop", data)
    if not isinstance(section, dict):
        raise ConfigurationError(f"{path}: [auditloop] must be a table")
    return {str(k).lower(): v for k, v in section.items()}


def _truthy(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigurationError(f"{name}={raw!r}: expected true or false")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ConfigurationError with the culprit named."""
    env = dict(os.environ if environ is None else environ)
    config_path = env.get("AUDITLOOP_CONFIG")
    file_values: dict[str, Any] = {}
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigurationError(f"AUDITLOOP_CONFIG={config_path!r}: no such file")
        file_values = _read_toml(path)
    elif Path("auditloop.toml").is_file():
        file_values = _read_toml(Path("auditloop.toml"))

    def get(key: str) -> str | None:
        value = env.get(ENV_PREFIX + key.upper())
        if value is None and key in file_values:
            value = str(file_values[key])
        return value

    data_dir = Path(get("data_dir") or "./.auditloop").expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigurationError(f"AUDITLOOP_DATA_DIR={str(data_dir)!r}: exists and is not a directory")

    database_url = get("database_url") or f"sqlite:///{(data_dir / 'auditloop.db').resolve()}"
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"AUDITLOOP_DATABASE_URL={database_url!r}: not a database URL "
            "(expected sqlite:///path.db or postgresql+psycopg://user@host/db)"
        ) from exc
    backend = url.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise ConfigurationError(
            f"AUDITLOOP_DATABASE_URL: backend {backend!r} is not supported (use sqlite or postgresql)"
        )
    if backend == "postgresql" and url.drivername != "postgresql+psycopg":
        # psycopg 3 is the one driver we install; normalise plain postgresql:// URLs to it.
        database_url = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)

    mlflow_uri = get("mlflow_tracking_uri") or (data_dir / "mlruns").resolve().as_uri()

    base_model = get("base_model") or BUILTIN_TINY
    if base_model != BUILTIN_TINY and not base_model.startswith("builtin:"):
        model_dir = Path(base_model).expanduser()
        if not (model_dir / "config.json").is_file():
            raise ConfigurationError(
                f"AUDITLOOP_BASE_MODEL={base_model!r}: expected {BUILTIN_TINY!r} or a local Hugging Face "
                "model directory containing config.json"
            )
    elif base_model != BUILTIN_TINY:
        raise ConfigurationError(f"AUDITLOOP_BASE_MODEL={base_model!r}: the only built-in model is {BUILTIN_TINY!r}")

    demo_raw = get("demo_mode")
    demo_mode = _truthy("AUDITLOOP_DEMO_MODE", demo_raw) if demo_raw is not None else False

    secret_file_raw = get("secret_key_file")
    secret_key_file = Path(secret_file_raw) if secret_file_raw else None
    if secret_key_file is not None and not secret_key_file.is_file():
        raise ConfigurationError(f"AUDITLOOP_SECRET_KEY_FILE={secret_file_raw!r}: no such file")

    claim = (get("oidc_username_claim") or "preferred_username").strip()
    if not claim.replace("_", "").replace("-", "").replace(".", "").isalnum() or len(claim) > 64:
        raise ConfigurationError(
            f"AUDITLOOP_OIDC_USERNAME_CLAIM={claim!r}: expected an ID-token claim name such as "
            "preferred_username or email"
        )

    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        mlflow_tracking_uri=mlflow_uri,
        base_model=base_model,
        demo_mode=demo_mode,
        secret_key_file=secret_key_file,
        oidc_username_claim=claim,
    )
