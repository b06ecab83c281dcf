"""The run description: :class:`TrainConfig`, its YAML round trip and its checks.

A training run is one :class:`TrainConfig`, a dataclass whose fields are
checked the moment it is made: a misspelt key (``lerning_rate``) or a bad value
(``ema_decay: 1.5``) fails before any network is built, with a message that
names the key and, for a typo, the closest valid ones. The course's recipes
(:mod:`bs_lib.engine.recipes`), the notebooks and ``python -m bs_lib train``
all end in this one class.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRECISIONS = ("no", "fp16", "bf16", "auto")
SCHEDULER_ARGS: dict[str, dict[str, bool]] = {  # scheduler -> {argument: required}
    "constant": {},
    "cosine": {"min_lr_ratio": False},
    "step": {"step_size": True, "gamma": False},
    "multistep": {"milestones": True, "gamma": False},
}
GROUP_OVERRIDES = ("lr", "betas", "weight_decay")


class ConfigError(ValueError):
    """A training config has an unknown key or a bad value; the message names it."""


@dataclass
class TrainConfig:
    """Everything that describes a training run; YAML in, YAML out.

    ``steps`` counts optimiser steps; each uses ``grad_accum`` micro-batches of
    ``batch_size`` samples per process. ``val_every``/``checkpoint_every``/
    ``log_every`` count steps (0 = never; a checkpoint is always written at the
    end). ``keep_checkpoints`` = 0 keeps all.
    """

    name: str = "run"
    method: str = ""
    method_args: dict = field(default_factory=dict)
    data: str = "phantom"
    data_args: dict = field(default_factory=dict)
    image_size: int = 64
    batch_size: int = 8
    steps: int = 1000
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    groups: dict = field(default_factory=dict)  # per-group overrides: {"discriminator": {"lr": 5e-4}}
    scheduler: str = "constant"
    scheduler_args: dict = field(default_factory=dict)
    warmup_steps: int = 0
    grad_accum: int = 1
    mixed_precision: str = "no"
    max_grad_norm: float | None = None
    ema_decay: float | None = None
    ema_modules: list[str] | None = None
    val_every: int = 0
    val_use_ema: bool = True
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    output_dir: str = "runs"
    num_workers: int = 0
    drop_last: bool = False
    compile: bool = False
    channels_last: bool = False
    cpu: bool = False

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for item in dataclasses.fields(self):
            setattr(self, item.name, _coerce(item.name, getattr(self, item.name), hints[item.name]))
        self._check_values()

    def _check_values(self) -> None:
        positive = ("image_size", "batch_size", "steps", "grad_accum", "log_every")
        non_negative = ("warmup_steps", "val_every", "checkpoint_every", "keep_checkpoints", "num_workers", "seed")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1, got {getattr(self, key)}.")
        for key in non_negative:
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be 0 or more, got {getattr(self, key)}.")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}.")
        if self.mixed_precision not in PRECISIONS:
            raise ConfigError(f"mixed_precision must be one of {PRECISIONS}, got {self.mixed_precision!r}.")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm must be positive or null, got {self.max_grad_norm}.")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must lie in (0, 1) or be null, got {self.ema_decay} (BS-LDM uses 0.995).")
        _check_betas("betas", self.betas)
        _check_scheduler(self.scheduler, self.scheduler_args)
        for group, overrides in self.groups.items():
            if not isinstance(overrides, dict) or set(overrides) - set(GROUP_OVERRIDES):
                raise ConfigError(f"groups.{group} must be a mapping with keys among {GROUP_OVERRIDES}, "
                                  f"got {overrides!r}.")
            if "betas" in overrides:
                _check_betas(f"groups.{group}.betas", overrides["betas"])

    # ------------------------------------------------------------------ YAML

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys raise :class:`ConfigError` with the closest valid names."""
        known = [item.name for item in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else f" Valid keys: {', '.join(known)}."
                raise ConfigError(f"Unknown training config key {key!r}.{hint}")
        return cls(**dict(values))

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Iterable[str] = ()) -> TrainConfig:
        """Read a YAML file, then apply ``key=value`` overrides (``method_args.depth=3`` reaches inside dicts)."""
        values = read_yaml_mapping(path)
        for override in overrides:
            apply_override(values, override)
        try:
            return cls.from_dict(values)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["betas"] = list(self.betas)
        return values

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The config as YAML text; also written to ``path`` when given."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @property
    def run_dir(self) -> Path:
        """``<output_dir>/<name>``: where checkpoints and the config copy go."""
        return Path(self.output_dir) / self.name


def read_yaml_mapping(path: str | Path) -> dict:
    """The mapping of config keys in a YAML file (empty for an empty file); any other content is an error."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Training config {path} does not exist.")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(values).__name__}.")
    return values


def apply_override(values: dict, override: str) -> None:
    """Apply one ``key=value`` (value parsed as YAML: ``lr=2e-4``, ``betas=[0.5,0.999]``) in place."""
    import yaml

    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"Override {override!r} must look like key=value, e.g. steps=100.")
    value = yaml.safe_load(text) if text.strip() else None
    *parents, leaf = key.strip().split(".")
    target = values
    for parent in parents:
        target = target.setdefault(parent, {})
        if not isinstance(target, dict):
            raise ConfigError(f"Override {override!r}: {parent!r} is not a mapping.")
    target[leaf] = value


def import_callable(spec: str, what: str) -> Callable:
    """``"package.module:function"`` -> the function: a method or dataset that no registry knows."""
    module_name, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"Cannot import {what} {spec!r} ({error}). Use 'package.module:function'.") from error


# --------------------------------------------------------------------------- checks


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a field's type; accept the forms YAML produces (``'1e-4'``, lists for tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [arg for arg in args if arg is not type(None)]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    expected = origin or hint
    if expected is float and isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is int and isinstance(value, float | str) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            if float(value).is_integer():
                value = int(float(value))
    if expected is tuple and isinstance(value, list):
        value = tuple(value)
    ok = isinstance(value, expected) and not (expected in (int, float) and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{name} must be {_type_name(hint)}, got {value!r} ({type(value).__name__}).")
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint)) if typing.get_origin(hint) is None else str(hint)


def _check_betas(name: str, betas: Any) -> None:
    if len(betas) != 2 or not all(isinstance(b, int | float) and 0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"{name} must be two numbers in [0, 1), e.g. [0.9, 0.999]; got {betas!r}.")


def _check_scheduler(scheduler: str, args: dict) -> None:
    if scheduler not in SCHEDULER_ARGS:
        raise ConfigError(f"scheduler must be one of {tuple(SCHEDULER_ARGS)}, got {scheduler!r}.")
    allowed = SCHEDULER_ARGS[scheduler]
    unknown = set(args) - set(allowed)
    missing = {key for key, required in allowed.items() if required} - set(args)
    if unknown or missing:
        raise ConfigError(f"scheduler {scheduler!r} takes scheduler_args {sorted(allowed) or 'none'}; "
                          f"unknown {sorted(unknown)}, missing {sorted(missing)}.")
    if scheduler == "step" and not (isinstance(args["step_size"], int) and args["step_size"] >= 1):
        raise ConfigError(f"scheduler_args.step_size must be a positive integer, got {args['step_size']!r}.")
    if scheduler == "multistep" and not all(isinstance(m, int) and m >= 0 for m in args["milestones"]):
        raise ConfigError(f"scheduler_args.milestones must be a list of step numbers, got {args['milestones']!r}.")
