"""The recipe configuration: commented YAML loaded into validated dataclasses, with ``key=value`` overrides.

``load_config(path, overrides)`` reads ``training/configs/lora.yaml`` (or another file), applies
command-line overrides such as ``train.max_steps=20 lora.r=8`` and validates every value; a bad value
raises ValidationError naming where it came from (``lora.yaml:14: lora.r: must be >= 1 (got 0)``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from audit.errors import ValidationError

DEFAULT_CONFIG_PATH = Path(__file__).parent / "configs" / "lora.yaml"

Device = Literal["auto", "cpu", "cuda"]
MixedPrecision = Literal["auto", "no", "bf16", "fp16"]
Scheduler = Literal["constant", "linear", "cosine"]
GateMetric = Literal["fact_accuracy", "citation_accuracy", "retrieval_at_1", "rougeL", "f1"]
ModelDtype = Literal["auto", "float32", "bfloat16", "float16"]
Quantization = Literal["none", "nf4"]


@dataclass
class DatasetConfig:
    version: int | None = None
    retrieval_k: int = 3
    max_seq_len: int = 512
    max_prompt_tokens: int = 384
    copy_drills: int = 0
    rerank_candidates: int = 10
    rerank_regularization: float = 10.0


@dataclass
class LoraAdapterConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # ["auto"]: the architecture's attention projections (training.models.targets)
    target_modules: list[str] = field(default_factory=lambda: ["auto"])


@dataclass
class ModelLoadConfig:
    dtype: ModelDtype = "auto"
    quantization: Quantization = "none"


@dataclass
class TrainConfig:
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum_steps: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    lr_scheduler: Scheduler = "cosine"
    max_grad_norm: float = 1.0
    log_every: int = 10
    mixed_precision: MixedPrecision = "auto"
    gradient_checkpointing: bool = False
    threads: int | None = 2


@dataclass
class EvaluationConfig:
    max_new_tokens: int = 48
    batch_size: int = 16
    max_items: int | None = None
    bootstrap_resamples: int = 2000
    confidence: float = 0.95


@dataclass
class GateConfig:
    metric: GateMetric = "fact_accuracy"
    delta: float = 0.05
    department_delta: float = 0.15
    gap_delta: float = 0.15
    secondary_metric: GateMetric = "rougeL"
    secondary_delta: float = 0.05
    wrong_value_delta: float = 0.05
    ungrounded_share: float = 0.05
    require_approval: bool = False


@dataclass
class TrackingConfig:
    experiment: str = "auditloop-lora"
    registered_model_name: str = "auditloop-assistant"
    tracking_uri: str | None = None


@dataclass
class RecipeConfig:
    seed: int = 7
    device: Device = "auto"
    base_model: str | None = None
    output_dir: str | None = None
    run_name: str | None = None
    model: ModelLoadConfig = field(default_factory=ModelLoadConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    lora: LoraAdapterConfig = field(default_factory=LoraAdapterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self, where: Mapping[str, str] | None = None) -> None:
        """Check ranges across fields; ``where`` maps dotted keys to "file:line" for the message."""
        _validate_ranges(self, where or {})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Dotted keys → values (what MLflow logs as params)."""
        return dict(_flatten(self.to_dict()))


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


# --------------------------------------------------------------------------- coercion


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp``, or raise TypeError. YAML 1.1 reads ``2e-4`` as a string, so numbers
    written that way are accepted for float fields."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except TypeError:
                continue
        raise TypeError
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise TypeError
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if isinstance(value, str):  # "q_proj,v_proj" from a command-line override
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise TypeError
        return [_coerce(v, item_type) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError as exc:
                raise TypeError from exc
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise TypeError
    raise TypeError


def _build(cls: type, data: Mapping[str, Any], prefix: str, where: Mapping[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            dotted = prefix + str(key)
            raise ValidationError(f"{_loc(where, dotted)}{dotted}: unknown setting (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        dotted = prefix + f.name
        value = data[f.name]
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ValidationError(f"{_loc(where, dotted)}{dotted}: expected a section of settings")
            kwargs[f.name] = _build(typing.cast(type, tp), value, dotted + ".", where)
            continue
        try:
            kwargs[f.name] = _coerce(value, tp)
        except TypeError:
            raise ValidationError(f"{_loc(where, dotted)}{dotted}: expected {_type_name(tp)} (got {value!r})") from None
    return cls(**kwargs)


def _loc(where: Mapping[str, str], dotted: str) -> str:
    location = where.get(dotted)
    if location is None:
        # a key inside a section that came from elsewhere: name the section's location if known
        parts = dotted.split(".")
        for n in range(len(parts) - 1, 0, -1):
            location = where.get(".".join(parts[:n]))
            if location:
                break
    return f"{location}: " if location else ""


def _validate_ranges(cfg: RecipeConfig, where: Mapping[str, str]) -> None:
    checks: list[tuple[str, Any, bool, str]] = [
        ("seed", cfg.seed, cfg.seed >= 0, "must be >= 0"),
        (
            "dataset.version",
            cfg.dataset.version,
            cfg.dataset.version is None or cfg.dataset.version >= 1,
            "must be >= 1",
        ),
        ("dataset.retrieval_k", cfg.dataset.retrieval_k, cfg.dataset.retrieval_k >= 0, "must be >= 0"),
        ("dataset.max_seq_len", cfg.dataset.max_seq_len, cfg.dataset.max_seq_len >= 16, "must be >= 16"),
        (
            "dataset.max_prompt_tokens",
            cfg.dataset.max_prompt_tokens,
            8 <= cfg.dataset.max_prompt_tokens < cfg.dataset.max_seq_len,
            "must be >= 8 and below dataset.max_seq_len",
        ),
        (
            "dataset.copy_drills",
            cfg.dataset.copy_drills,
            0 <= cfg.dataset.copy_drills <= 10,
            "must be between 0 and 10",
        ),
        (
            "dataset.rerank_candidates",
            cfg.dataset.rerank_candidates,
            cfg.dataset.rerank_candidates == 0 or cfg.dataset.rerank_candidates >= max(cfg.dataset.retrieval_k, 2),
            "must be 0 (no reranker) or at least 2 and at least dataset.retrieval_k",
        ),
        (
            "dataset.rerank_regularization",
            cfg.dataset.rerank_regularization,
            cfg.dataset.rerank_regularization > 0,
            "must be > 0",
        ),
        ("lora.r", cfg.lora.r, cfg.lora.r >= 1, "must be >= 1"),
        ("lora.alpha", cfg.lora.alpha, cfg.lora.alpha >= 1, "must be >= 1"),
        ("lora.dropout", cfg.lora.dropout, 0.0 <= cfg.lora.dropout < 1.0, "must be in [0, 1)"),
        ("lora.target_modules", cfg.lora.target_modules, len(cfg.lora.target_modules) > 0, "must name a module"),
        (
            "lora.target_modules",
            cfg.lora.target_modules,
            "auto" not in cfg.lora.target_modules or cfg.lora.target_modules == ["auto"],
            "auto stands alone (the architecture's attention projections) or is left out",
        ),
        ("train.epochs", cfg.train.epochs, cfg.train.epochs >= 1, "must be >= 1"),
        (
            "train.max_steps",
            cfg.train.max_steps,
            cfg.train.max_steps is None or cfg.train.max_steps >= 1,
            "must be >= 1",
        ),
        ("train.batch_size", cfg.train.batch_size, cfg.train.batch_size >= 1, "must be >= 1"),
        ("train.grad_accum_steps", cfg.train.grad_accum_steps, cfg.train.grad_accum_steps >= 1, "must be >= 1"),
        ("train.lr", cfg.train.lr, 0.0 < cfg.train.lr < 1.0, "must be in (0, 1)"),
        ("train.weight_decay", cfg.train.weight_decay, cfg.train.weight_decay >= 0.0, "must be >= 0"),
        ("train.warmup_ratio", cfg.train.warmup_ratio, 0.0 <= cfg.train.warmup_ratio < 1.0, "must be in [0, 1)"),
        ("train.max_grad_norm", cfg.train.max_grad_norm, cfg.train.max_grad_norm > 0.0, "must be > 0"),
        ("train.log_every", cfg.train.log_every, cfg.train.log_every >= 1, "must be >= 1"),
        ("train.threads", cfg.train.threads, cfg.train.threads is None or cfg.train.threads >= 1, "must be >= 1"),
        (
            "evaluation.max_new_tokens",
            cfg.evaluation.max_new_tokens,
            cfg.evaluation.max_new_tokens >= 1,
            "must be >= 1",
        ),
        ("evaluation.batch_size", cfg.evaluation.batch_size, cfg.evaluation.batch_size >= 1, "must be >= 1"),
        (
            "evaluation.max_items",
            cfg.evaluation.max_items,
            cfg.evaluation.max_items is None or cfg.evaluation.max_items >= 2,
            "must be >= 2",
        ),
        (
            "evaluation.bootstrap_resamples",
            cfg.evaluation.bootstrap_resamples,
            cfg.evaluation.bootstrap_resamples >= 100,
            "must be >= 100",
        ),
        (
            "evaluation.confidence",
            cfg.evaluation.confidence,
            0.5 <= cfg.evaluation.confidence < 1.0,
            "must be in [0.5, 1)",
        ),
        ("gate.delta", cfg.gate.delta, 0.0 <= cfg.gate.delta < 1.0, "must be in [0, 1)"),
        *(
            (f"gate.{name}", value, 0.0 <= value < 1.0, "must be in [0, 1)")
            for name, value in (
                ("department_delta", cfg.gate.department_delta),
                ("gap_delta", cfg.gate.gap_delta),
                ("secondary_delta", cfg.gate.secondary_delta),
                ("wrong_value_delta", cfg.gate.wrong_value_delta),
                ("ungrounded_share", cfg.gate.ungrounded_share),
            )
        ),
        ("tracking.experiment", cfg.tracking.experiment, bool(cfg.tracking.experiment.strip()), "must not be empty"),
        (
            "tracking.registered_model_name",
            cfg.tracking.registered_model_name,
            bool(cfg.tracking.registered_model_name.strip()),
            "must not be empty",
        ),
    ]
    for dotted, value, ok, problem in checks:
        if not ok:
            raise ValidationError(f"{_loc(where, dotted)}{dotted}: {problem} (got {value!r})")


# --------------------------------------------------------------------------- YAML with line numbers


def _key_lines(node: yaml.Node, path: str, prefix: str = "") -> dict[str, str]:
    """Dotted key → "file:line" for every key of a composed YAML mapping."""
    lines: dict[str, str] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            lines[dotted] = f"{path}:{key_node.start_mark.line + 1}"
            lines.update(_key_lines(value_node, path, dotted + "."))
    return lines


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read the config file ({exc.strerror})") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise ValidationError(f"{path}:{line}: not valid YAML: {exc.problem}") from exc
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ValidationError(f"{path}:1: expected a mapping of settings at the top level")
    return data, _key_lines(node, str(path)) if node is not None else {}


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    target = data
    for part in parts[:-1]:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValidationError(f"override {dotted}: {part} is not a section")
        target = child
    target[parts[-1]] = value


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["train.lr=1e-3", "lora.r=8"]`` → ``{"train.lr": 0.001, "lora.r": 8}`` (values read as YAML)."""
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValidationError(f"override {item!r}: expected key=value, e.g. train.max_steps=50")
        try:
            parsed[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            parsed[key] = raw
    return parsed


def merge(base: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``updates`` applied; update keys may be dotted (``train.lr``) or nested dicts."""
    merged = yaml.safe_load(yaml.safe_dump(base)) if base else {}
    for key, value in updates.items():
        if isinstance(value, Mapping) and "." not in key:
            existing = merged.get(key)
            merged[key] = merge(existing if isinstance(existing, dict) else {}, value)
        else:
            _set_dotted(merged, key, value)
    return merged


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    *,
    override_source: str = "override",
) -> RecipeConfig:
    """The validated recipe configuration from ``path`` (default: the packaged lora.yaml) plus overrides.

    ``overrides`` is either ``key=value`` strings (command line) or a mapping (a job's stored config).
    """
    config_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    data, where = _read_yaml(config_path)
    updates = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    merged = merge(data, updates)
    where = dict(where)
    for key in _flatten_keys(updates):
        where[key] = override_source
    cfg = _build(RecipeConfig, merged, "", where)
    cfg.validate(where)
    return typing.cast(RecipeConfig, cfg)


def _flatten_keys(updates: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in updates.items():
        dotted = prefix + key
        if isinstance(value, Mapping) and "." not in key:
            keys += _flatten_keys(value, dotted + ".")
        else:
            keys.append(dotted)
    return keys
