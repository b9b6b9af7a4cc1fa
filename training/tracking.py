"""Experiment tracking and the model registry behind two small Protocols; MLflow is imported lazily.

``MlflowTracker`` logs a run (params, per-step metrics, the dataset version as an input, the adapter
as artifacts and a registered model version); ``MlflowRegistry`` moves the "champion" alias. A local
``file:`` tracking URI (the settings default) is served by an SQLite store in that folder, because
MLflow 3 refuses the plain file store.
"""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from audit.errors import AuditloopError

CHAMPION_ALIAS = "champion"


class TrackingUnavailable(AuditloopError):
    """The MLflow tracking server or store cannot be used (the job is retried later)."""


class Tracker(Protocol):
    """What a recipe logs to. ``run_id`` is set between ``start_run`` and ``end_run``."""

    run_id: str | None

    def start_run(self, run_name: str, tags: Mapping[str, str]) -> str: ...
    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_dataset(
        self, rows: list[dict[str, Any]], *, name: str, digest: str, tags: Mapping[str, str], context: str
    ) -> None: ...
    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None: ...
    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None: ...
    def register_model(self, artifact_path: str, registered_model_name: str) -> str: ...
    def end_run(self, status: str = "FINISHED") -> None: ...


class ModelRegistry(Protocol):
    """Where the serving alias lives. ``run_id=None`` = a model with no registered version (a
    production model imported from outside): the alias is removed instead."""

    def set_champion(self, run_id: str | None) -> None: ...
    def champion_run_id(self) -> str | None: ...


def resolve_tracking_uri(uri: str) -> tuple[str, str | None]:
    """(tracking URI MLflow should use, artifact root for new experiments or None for the default).

    ``file:///x/mlruns`` or a bare path becomes ``sqlite:///x/mlruns/mlflow.db`` with artifacts in
    ``/x/mlruns/artifacts``; database and server URIs pass through unchanged.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        folder = Path(unquote(parsed.path) if parsed.scheme == "file" else uri).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()
    return uri, None


def _check_server(uri: str) -> None:
    """Fail fast, with a clear message, when an HTTP tracking server does not answer (MLflow's own
    client would retry with back-off for minutes)."""
    if urlparse(uri).scheme not in ("http", "https"):
        return
    try:
        with urllib.request.urlopen(
            uri.rstrip("/") + "/health", timeout=5
        ) as response:  # an http(s) URL: checked above
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailable(f"MLflow tracking server {uri} is not reachable: {reason}") from exc


def _client(uri: str) -> Any:
    _check_server(uri)
    try:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    except Exception as exc:  # any store error means the same to the caller
        raise TrackingUnavailable(f"MLflow tracking store {uri} cannot be opened: {exc}") from exc


@contextlib.contextmanager
def _unavailable_as(action: str, uri: str) -> Iterator[None]:
    try:
        yield
    except AuditloopError:
        raise
    except Exception as exc:  # MLflow raises many types for one problem: the store failed
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingUnavailable(f"MLflow ({uri}) failed to {action}: {first_line}") from exc


class MlflowTracker:
    """A :class:`Tracker` writing to MLflow through ``MlflowClient`` (no global active run, so
    several threads or recipes in one process do not interfere)."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri, self._artifact_root = resolve_tracking_uri(tracking_uri)
        self.experiment = experiment
        self.run_id: str | None = None
        self._client = _client(self.tracking_uri)
        with _unavailable_as("open the experiment", self.tracking_uri):
            self.experiment_id = self._experiment_id()

    def _experiment_id(self) -> str:
        existing = self._client.get_experiment_by_name(self.experiment)
        if existing is not None:
            return str(existing.experiment_id)
        try:
            return str(self._client.create_experiment(self.experiment, artifact_location=self._artifact_root))
        except Exception:  # another process created it between the two calls
            existing = self._client.get_experiment_by_name(self.experiment)
            if existing is None:
                raise
            return str(existing.experiment_id)

    def _run(self) -> str:
        if self.run_id is None:
            raise RuntimeError("start_run() first")
        return self.run_id

    def start_run(self, run_name: str, tags: Mapping[str, str]) -> str:
        with _unavailable_as("start a run", self.tracking_uri):
            run = self._client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags))
        self.run_id = str(run.info.run_id)
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        with _unavailable_as("log params", self.tracking_uri):
            for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
                self._client.log_batch(self._run(), params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, step or 0) for k, v in metrics.items()]
        with _unavailable_as("log metrics", self.tracking_uri):
            self._client.log_batch(self._run(), metrics=items)

    def log_dataset(
        self, rows: list[dict[str, Any]], *, name: str, digest: str, tags: Mapping[str, str], context: str
    ) -> None:
        """Log the training data as a run input: a pandas dataset whose digest is the dataset
        version's content hash (shortened to MLflow's 36-character column), its source naming the
        auditloop dataset version."""
        import pandas as pd
        from mlflow.data.code_dataset_source import CodeDatasetSource
        from mlflow.data.pandas_dataset import from_pandas
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings(), _unavailable_as("log the dataset input", self.tracking_uri):
            # MLflow hints that integer columns cannot hold missing values: ours (weight) never do
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            dataset = from_pandas(
                pd.DataFrame(rows), source=CodeDatasetSource(tags=dict(tags)), name=name, digest=digest[:36]
            )
            self._client.log_inputs(
                self._run(),
                [DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])],
            )

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        with _unavailable_as("upload artifacts", self.tracking_uri):
            self._client.log_artifacts(self._run(), str(local_dir), artifact_path)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        with _unavailable_as("upload an artifact", self.tracking_uri):
            self._client.log_dict(self._run(), dict(data), artifact_file)

    def register_model(self, artifact_path: str, registered_model_name: str) -> str:
        """Register the run's ``artifact_path`` as a new version of ``registered_model_name``."""
        run_id = self._run()
        with _unavailable_as("register the model", self.tracking_uri):
            _ensure_registered_model(self._client, registered_model_name)
            run = self._client.get_run(run_id)
            version = self._client.create_model_version(
                registered_model_name, source=f"{run.info.artifact_uri}/{artifact_path}", run_id=run_id
            )
        return str(version.version)

    def end_run(self, status: str = "FINISHED") -> None:
        if self.run_id is None:
            return
        with _unavailable_as("close the run", self.tracking_uri):
            self._client.set_terminated(self.run_id, status=status)
        self.run_id = None


def _ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name)
        except MlflowException:  # created concurrently
            client.get_registered_model(name)


class MlflowRegistry:
    """A :class:`ModelRegistry` on an MLflow registered model: the "champion" alias points at the
    model version registered from the champion's training run."""

    def __init__(self, tracking_uri: str, registered_model_name: str) -> None:
        self.tracking_uri, _ = resolve_tracking_uri(tracking_uri)
        self.name = registered_model_name
        self._client = _client(self.tracking_uri)

    def _version_for_run(self, run_id: str) -> str:
        safe_run_id = run_id.replace("'", "")
        versions = self._client.search_model_versions(f"name='{self.name}' and run_id='{safe_run_id}'")
        if not versions:
            raise TrackingUnavailable(
                f"MLflow registered model {self.name!r} has no version from run {run_id}: "
                "the run did not finish registering its adapter"
            )
        return str(max(int(v.version) for v in versions))

    def set_champion(self, run_id: str | None) -> None:
        from mlflow.exceptions import MlflowException

        with _unavailable_as("move the champion alias", self.tracking_uri):
            if run_id is None:
                with contextlib.suppress(MlflowException):  # no alias (or no model) yet: nothing to remove
                    self._client.delete_registered_model_alias(self.name, CHAMPION_ALIAS)
                return
            version = self._version_for_run(run_id)
            self._client.set_registered_model_alias(self.name, CHAMPION_ALIAS, version)

    def champion_run_id(self) -> str | None:
        from mlflow.exceptions import MlflowException

        with _unavailable_as("read the champion alias", self.tracking_uri):
            try:
                version = self._client.get_model_version_by_alias(self.name, CHAMPION_ALIAS)
            except MlflowException:
                return None
        return str(version.run_id) if version.run_id else None


def default_registry(tracking_uri: str, registered_model_name: str | None = None) -> MlflowRegistry:
    """The registry the gate and ``auditloop model promote|rollback`` use: the recipe config's
    registered model (``tracking.registered_model_name``) in the configured tracking store."""
    if registered_model_name is None:
        from training.config import load_config

        registered_model_name = load_config().tracking.registered_model_name
    return MlflowRegistry(tracking_uri, registered_model_name)
