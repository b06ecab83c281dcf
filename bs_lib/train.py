r"""One training loop for every method of the course, on Hugging Face ``accelerate``.

Autoencoders, U-Nets, GANs, distillation, domain adaptation and both stages of
BS-LDM look different on paper, but their training loops are the same loop:
draw a batch, compute some losses, turn each loss into a gradient for *its own*
networks, take an optimiser step, now and then validate and save. This module
is that loop, written once. A method only says *what* to optimise, by
subclassing :class:`Objective`; the :class:`Trainer` does the rest.

The interface a method implements
---------------------------------
.. code-block:: python

    class Objective(torch.nn.Module):
        def parameter_groups(self) -> dict[str, list[Parameter]]   # default {"model": trainable params}
        def losses(self, batch: dict, step: int) -> dict[str, Tensor]
        def predict(self, cxr: Tensor) -> Tensor                  # (N,1,H,W) in [0,1] -> soft tissue in [0,1]
        def validate(self, batches) -> dict[str, float]            # optional; default: L1/MSE of predict
        def prepare_dataset(self, dataset, device)                 # optional; default: the dataset itself

An :class:`Objective` owns every network of a method (a frozen teacher or a
frozen autoencoder too: wrap it in :meth:`Objective.freeze`). ``losses`` returns
one scalar per parameter group, under the group's name; extra entries named
``"log/<name>"`` are only logged. A group may be left out at a step, e.g. a
discriminator that joins after N steps. Register a method with
``@register_method("unet")`` on a function ``TrainConfig -> Objective``.

One optimiser step, and why the groups never disturb each other
---------------------------------------------------------------
With ``grad_accum`` = :math:`K` micro-batches :math:`b_1 … b_K`, the gradient
of group :math:`g` (parameters :math:`\theta_g`) is

.. math:: \nabla_{\theta_g} \frac{1}{K}\sum_{k=1}^{K} L_g(b_k),

and nothing else. A GAN's generator loss :math:`L_G = \ell(D(G(x)))` also
reaches the discriminator's parameters; in a hand-written loop those stray
gradients must be zeroed right before the discriminator's own backward pass.
Here every backward pass is restricted to the group's own parameters
(``loss.backward(inputs=θ_g)``), which has the same effect as "zero each
group's grads right before its backward" and keeps working under gradient
accumulation, where zeroing would also erase the earlier micro-batches.

Groups are updated in the order of the dict that ``losses`` returns (GAN
convention: generator first, then the discriminator, whose loss was computed
on *detached* fakes). All losses of a step come from one forward pass with the
pre-update weights, so each group's update uses gradients at the same point,
as in the textbook alternating GAN update. Two rules follow for ``losses``:
the losses of different groups must not share graph nodes except through
``detach()`` (each graph is freed after its backward), and which groups appear
may depend on ``step`` but not on the data (all processes must agree).

After the gradients: (multi-process) average them across processes, unscale
(fp16), clip to ``max_grad_norm``, ``optimizer.step()``, zero with
``set_to_none``; then every group's LR scheduler steps, and the EMA follows.

Exponential moving average
--------------------------
With ``ema_decay`` = β, shadow weights follow :math:`\bar\theta \leftarrow
\beta\,\bar\theta + (1-\beta)\,\theta` after every step (BS-LDM: β = 0.995).
``trainer.ema_scope()`` swaps them in temporarily (validation uses them when
``val_use_ema``), ``trainer.predict(cxr, use_ema=True)`` predicts with them, and
:func:`load_weights` (``use_ema=True``) loads them for inference.

Learning-rate schedules
-----------------------
One AdamW optimiser per group (``lr``/``betas``/``weight_decay``, overridable per
group in ``groups``; ``weight_decay=0`` is Adam), one scheduler per optimiser,
all functions of the global step :math:`s` times an optional linear warm-up
:math:`\min(1, (s+1)/W)`:

* ``constant``: 1;
* ``cosine``: :math:`r + (1-r)\,\tfrac12\,(1+\cos(\pi p))`, :math:`p` the
  progress after warm-up, :math:`r` = ``min_lr_ratio`` (default 0);
* ``step``: :math:`\gamma^{\lfloor s/\text{step\_size}\rfloor}`;
* ``multistep``: :math:`\gamma^{\#\{m \in \text{milestones}:\, m \le s\}}`
  (BS-LDM's decay by 0.1 at fixed milestones).

Every scheduler steps at every global step, also while its group is skipped.

Checkpoints and exact resume
----------------------------
``<output_dir>/<name>/checkpoints/step-000100/`` holds ``model.safetensors``
(the whole Objective state), ``ema.safetensors``, ``optimizers.pt`` and
``schedulers.pt`` (state dicts only, read back with ``weights_only=True``) and
``state.json``: the step, the config, the data position, the history, the
random states of Python, NumPy and torch of every process, and library
versions. A checkpoint is written to a hidden temporary folder and renamed
into place, so a killed run never leaves half a checkpoint. Resuming restores
all of it, and the data order is a pure function of (seed, epoch), so a run
that is killed and resumed ends with exactly the weights of an uninterrupted
run on the same machine (CPU; GPU kernels may be non-deterministic).
Validation runs inside a saved-and-restored random state, so it never changes
the training trajectory. Randomness *inside* DataLoader worker processes is
not part of a checkpoint: datasets that augment should seed from the index.

Devices, precision and several processes
----------------------------------------
``accelerate`` chooses the device and, under ``accelerate launch
--multi_gpu --num_processes 2`` (or ``torchrun --nproc_per_node 2``), starts
the process group: NCCL on GPUs, gloo on a machine without CUDA, where the
flag's name misleads but it is what starts several processes (``--cpu
--num_processes 2`` starts only one unless MPI is configured).
``batch_size`` is per process. Each process reads its own share of every
epoch's permutation, and gradients are averaged with an explicit all-reduce
before each optimiser step, rather than through a DDP wrapper: an Objective is
called through ``losses``, not ``forward``, and holds several networks with
separate optimisers, which DDP wrappers handle badly. Logging, progress bars
and checkpoint writing happen on the main process only; float buffers (e.g.
BatchNorm statistics) are averaged across processes before validation and
checkpoints. Mixed precision is ``torch.autocast`` with bf16 (no scaling
needed) or fp16 (one gradient scaler per group); ``auto`` (the colab and full
configs) picks bf16 on GPUs with bf16 hardware (compute capability 8.0+), fp16
on older ones such as Colab's T4, whose convolutions have no bf16 kernels, and
float32 on CPUs (see :func:`resolve_precision`).

``accelerate`` keeps one ``AcceleratorState`` per process and refuses a second
``Accelerator`` with another precision. A notebook that trains first in fp32,
then in bf16 would have to restart its kernel; :func:`make_accelerator` resets
that shared state instead (the process group is kept), so each Trainer gets
the precision its config asks for.

Runs are described by :class:`TrainConfig` (a dataclass with a YAML round trip)
that notebooks, papermill and the command line share::

    python -m bs_lib train run.yaml --set steps=200 --set lr=2e-4
    accelerate launch --multi_gpu --num_processes 2 -m bs_lib train run.yaml --resume
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import difflib
import importlib
import json
import math
import os
import platform
import random
import re
import shutil
import time
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bs_lib import config as course_config

# =========================================================================== the interface


class Objective(nn.Module):
    """Owns every network of a method and says how to compute its losses.

    Subclasses implement :meth:`losses` and :meth:`predict`; they override
    :meth:`parameter_groups` when several networks are trained by separate
    optimisers (a GAN: ``{"generator": ..., "discriminator": ...}``).
    """

    def freeze(self, module: nn.Module) -> nn.Module:
        """Mark a network as frozen: no gradients, always in eval mode (a teacher, a fixed autoencoder).

        Use it as ``self.teacher = self.freeze(teacher)``; :meth:`train` keeps
        the module in eval mode, so its BatchNorm statistics and dropout never move.
        """
        module.requires_grad_(False)
        module.eval()
        module.frozen_by_objective = True
        return module

    def train(self, mode: bool = True) -> Objective:
        super().train(mode)
        for module in self.modules():
            if module is not self and getattr(module, "frozen_by_objective", False):
                module.eval()  # (a frozen module may itself be an Objective: never recurse into self)
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimiser; default: one group ``"model"`` with every trainable parameter."""
        return {"model": [p for p in self.parameters() if p.requires_grad]}

    def losses(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        """One scalar loss per parameter group (same keys), plus ``"log/<name>"`` entries to log only."""
        raise NotImplementedError(f"{type(self).__name__} must implement losses(batch, step).")

    def predict(self, cxr: torch.Tensor) -> torch.Tensor:
        """Inference: (N, 1, H, W) radiograph in [0, 1] -> soft-tissue estimate in [0, 1]."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict(cxr) for validation and inference.")

    def prepare_dataset(self, dataset, device: torch.device):
        """The dataset the loop will read, made once before training (default: ``dataset`` unchanged).

        A method with a frozen front end overrides it to run that network once
        per sample instead of once per step (BS-LDM's latents).
        """
        return dataset

    @torch.no_grad()
    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Mean absolute and squared error of ``predict(cxr)`` against ``soft`` over all validation pixels.

        Override for methods whose quality is measured differently (a diffusion
        model's ε-MSE, say). Called in eval mode without gradients.
        """
        abs_error = squared_error = pixels = 0.0
        for batch in batches:
            error = self.predict(batch["cxr"]).float() - batch["soft"].float()
            abs_error += error.abs().sum().item()
            squared_error += error.square().sum().item()
            pixels += error.numel()
        if pixels == 0:
            raise ValueError("validate() received no batches: the validation dataset is empty.")
        return {"l1": abs_error / pixels, "mse": squared_error / pixels}


# =========================================================================== method registry

METHODS: dict[str, Callable[[TrainConfig], Objective]] = {}


def register_method(name: str) -> Callable:
    """Decorator: ``@register_method("unet")`` on a function ``TrainConfig -> Objective``."""

    def decorate(build: Callable[[TrainConfig], Objective]) -> Callable[[TrainConfig], Objective]:
        if name in METHODS and METHODS[name] is not build:
            warnings.warn(f"Method {name!r} is registered twice; the later definition wins.", stacklevel=2)
        METHODS[name] = build
        return build

    return decorate


def _import_callable(spec: str, what: str) -> Callable:
    """``"package.module:function"`` -> the function (a method or dataset outside the registries)."""
    module_name, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"Cannot import {what} {spec!r} ({error}). Use 'package.module:function'.") from error


def build_objective(config: TrainConfig) -> Objective:
    """The Objective named by ``config.method``: a registry key, or ``"module:function"``."""
    if ":" in config.method:
        build = _import_callable(config.method, "method")
    else:
        try:  # bs_lib.models registers the course's methods on import
            importlib.import_module("bs_lib.models")
        except ModuleNotFoundError as error:
            if error.name != "bs_lib.models":
                raise
        if config.method not in METHODS:
            known = ", ".join(sorted(METHODS)) or "none registered"
            raise ConfigError(
                f"Unknown method {config.method!r} (known: {known}). Register it with "
                f"@register_method({config.method!r}) or give 'package.module:function'."
            )
        build = METHODS[config.method]
    objective = build(config)
    if not isinstance(objective, Objective):
        raise TypeError(f"Method {config.method!r} returned {type(objective).__name__}, not a bs_lib.train.Objective.")
    return objective


def build_datasets(config: TrainConfig) -> tuple[Any, Any]:
    """The training and (when ``val_every`` > 0) validation datasets of a config.

    ``config.data`` is a name for ``bs_lib.datasets.get_dataset`` or a
    ``"module:function"`` called as ``function(split=..., size=..., **data_args)``.
    """
    if ":" in config.data:
        factory = _import_callable(config.data, "dataset")
    else:
        try:
            from bs_lib.datasets import get_dataset
        except ImportError as error:
            raise ImportError(f"bs_lib.datasets could not be imported ({error}); it provides the dataset "
                              f"{config.data!r}. Reinstall bs_lib or name a 'module:function' in 'data'.") from error

        def factory(**kwargs):
            return get_dataset(config.data, **kwargs)

    train = factory(split="train", size=config.image_size, **config.data_args)
    val = factory(split="val", size=config.image_size, **config.data_args) if config.val_every > 0 else None
    return train, val


# =========================================================================== the run description

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


def resolve_precision(requested: str, cpu: bool = False) -> str:
    """The precision a run trains in: ``requested``, with ``"auto"`` decided by the hardware.

    ``"auto"`` is :func:`bs_lib.config.detect_precision` of the device the run
    will use. An explicit ``"bf16"`` on a CUDA GPU without bf16 hardware is
    refused: such GPUs only emulate bf16, slowly, and cuDNN has no bf16
    convolutions for them.
    """
    device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
    if requested == "auto":
        return course_config.detect_precision(device)
    if requested == "bf16" and device.type == "cuda" and not course_config.native_bf16(device):
        name = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        raise ConfigError(f"mixed_precision: bf16 needs a GPU with bf16 hardware (compute capability 8.0 or "
                          f"newer: A100, L4, RTX 30xx, H100, ...); this {name} has {major}.{minor}. Set "
                          f"mixed_precision: auto (fp16 with loss scaling here) or fp16.")
    return requested


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
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Training config {path} does not exist.")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from error
        if not isinstance(values, dict):
            raise ConfigError(f"{path} must hold a mapping of config keys, got {type(values).__name__}.")
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


# =========================================================================== learning-rate schedules


def lr_multiplier(step: int, config: TrainConfig) -> float:
    """The factor applied to every group's base LR after ``step`` optimiser steps (see the module docstring)."""
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    args = config.scheduler_args
    if config.scheduler == "cosine":
        progress = min(1.0, max(0, step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
        floor = args.get("min_lr_ratio", 0.0)
        decay = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    elif config.scheduler == "step":
        decay = args.get("gamma", 0.1) ** (step // args["step_size"])
    elif config.scheduler == "multistep":
        decay = args.get("gamma", 0.1) ** sum(step >= milestone for milestone in args["milestones"])
    else:
        decay = 1.0
    return warmup * decay


def make_optimizer(params: list[nn.Parameter], config: TrainConfig, group: str) -> torch.optim.Optimizer:
    """AdamW with the config's settings, overridden by ``config.groups[group]``."""
    settings = {"lr": config.lr, "betas": config.betas, "weight_decay": config.weight_decay}
    settings.update(config.groups.get(group, {}))
    settings["betas"] = tuple(settings["betas"])
    return torch.optim.AdamW(params, **settings)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(step, config))


# =========================================================================== EMA


class EMA:
    r"""Exponential moving average: :math:`\bar\theta \leftarrow \beta\bar\theta + (1-\beta)\theta`.

    ``module_names`` are attributes of the objective (``["generator"]``);
    ``None`` follows every trainable parameter. Shadows are kept in float32.
    """

    def __init__(self, objective: nn.Module, decay: float, module_names: list[str] | None = None) -> None:
        self.decay = decay
        self.names, self.params = [], []
        for name, param in _ema_parameters(objective, module_names):
            self.names.append(name)
            self.params.append(param)
        self.shadow = [param.detach().float().clone() for param in self.params]

    @torch.no_grad()
    def update(self) -> None:
        current = [param.detach().float() for param in self.params]
        torch._foreach_lerp_(self.shadow, current, 1.0 - self.decay)  # shadow += (1-β)(θ - shadow), fused

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange live and shadow weights (its own inverse)."""
        for param, shadow in zip(self.params, self.shadow, strict=True):
            live = param.detach().clone()
            param.copy_(shadow)
            shadow.copy_(live)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Inside the block the objective holds the EMA weights."""
        self.swap()
        try:
            yield
        finally:
            self.swap()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.shadow, strict=True))

    @torch.no_grad()
    def load_state_dict(self, tensors: Mapping[str, torch.Tensor], source: Path | str = "EMA state") -> None:
        if set(tensors) != set(self.names):
            raise CheckpointError(
                f"{source}: the EMA tensors do not match the objective's EMA parameters "
                f"({_key_difference(set(self.names), set(tensors))}). The checkpoint was written with other "
                f"ema_modules or another model; use matching ema_modules or start a new run."
            )
        for name, shadow in zip(self.names, self.shadow, strict=True):
            if tensors[name].shape != shadow.shape:
                raise CheckpointError(f"{source}: EMA tensor {name} has shape {tuple(tensors[name].shape)}, the "
                                      f"model expects {tuple(shadow.shape)}; the model changed since this checkpoint.")
            shadow.copy_(tensors[name])


def _ema_parameters(objective: nn.Module, module_names: list[str] | None) -> list[tuple[str, nn.Parameter]]:
    if module_names is None:
        chosen = [(name, p) for name, p in objective.named_parameters() if p.requires_grad]
    else:
        chosen = []
        children = dict(objective.named_children())
        for module_name in module_names:
            if module_name not in children:
                raise ConfigError(f"ema_modules: the objective has no sub-network {module_name!r}; "
                                  f"it has {', '.join(children) or 'none'}.")
            found = [(f"{module_name}.{n}", p) for n, p in children[module_name].named_parameters() if p.requires_grad]
            if not found:
                raise ConfigError(f"ema_modules: {module_name!r} has no trainable parameters (is it frozen?).")
            chosen += found
    if not chosen:
        raise ConfigError("ema_decay is set but the objective has no trainable parameters to average.")
    return chosen


# =========================================================================== data


class EpochBatchSampler(torch.utils.data.Sampler):
    """Endless batches of indices: epoch after epoch, each a fresh seeded permutation.

    The order is a pure function of ``(seed, epoch)``, so a run can restart at
    any batch (``start_batch`` counts batches this process already consumed).
    With several processes, each epoch's permutation is padded (or, with
    ``drop_last``, cut) to a multiple of the process count and dealt out
    round-robin, so every process sees the same number of batches.
    """

    def __init__(self, num_samples: int, batch_size: int, *, seed: int, drop_last: bool,
                 rank: int = 0, world_size: int = 1, start_batch: int = 0) -> None:
        self.num_samples, self.batch_size, self.seed, self.drop_last = num_samples, batch_size, seed, drop_last
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"The training dataset has {num_samples} samples: too few for one batch of {batch_size} per "
                f"process on {world_size} process(es) with drop_last=True. Use a smaller batch_size or drop_last=False."
            )

    @property
    def samples_per_process(self) -> int:
        if self.drop_last:
            return self.num_samples // self.world_size
        return math.ceil(self.num_samples / self.world_size)

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_last:
            return self.samples_per_process // self.batch_size
        return math.ceil(self.samples_per_process / self.batch_size)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        total = self.samples_per_process * self.world_size
        order = np.resize(order, total)  # repeats the start to pad, or cuts
        mine = order[self.rank :: self.world_size].tolist()
        return [mine[i : i + self.batch_size] for i in range(0, self.batches_per_epoch * self.batch_size,
                                                             self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        epoch, skip = divmod(self.start_batch, self.batches_per_epoch)
        while True:
            yield from self.epoch_batches(epoch)[skip:]
            epoch, skip = epoch + 1, 0

    def __len__(self) -> int:  # endless; DataLoader only asks for it to report progress
        return 2**62


def collate_tensors(samples: list[dict]) -> dict:
    """Stack the tensor (and number) fields of sample dicts; drop the rest (``id``, ``patient``, ``meta`` strings).

    Nested dicts such as ``masks`` are collated recursively; a key missing from
    some samples is dropped.
    """
    if not samples or not all(isinstance(sample, Mapping) for sample in samples):
        kind = type(samples[0]).__name__ if samples else "nothing"
        raise TypeError(f"Training samples must be dicts like {{'cxr': tensor, 'soft': tensor}}, got {kind}.")
    batch = {}
    for key in samples[0]:
        values = [sample.get(key) for sample in samples]
        if all(isinstance(v, torch.Tensor) for v in values):
            batch[key] = torch.stack(values)
        elif all(isinstance(v, bool | int | float) for v in values):
            batch[key] = torch.tensor(values)
        elif all(isinstance(v, Mapping) for v in values):
            nested = collate_tensors(values)
            if nested:
                batch[key] = nested
    return batch


def move_to(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Send a (nested) batch to ``device`` without waiting for the copy."""
    if isinstance(batch, Mapping):
        return {key: move_to(value, device, channels_last) for key, value in batch.items()}
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
    return batch


# =========================================================================== checkpoints


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model; the message names the file."""


CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)$")
REQUIRED_FILES = ("model.safetensors", "optimizers.pt", "schedulers.pt", "state.json")


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders of interrupted writes are ignored)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), path) for path in folder.iterdir()
             if (m := CHECKPOINT_PATTERN.match(path.name)) and (path / "state.json").is_file()]
    return [path for _, path in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from a checkpoint folder, a run folder (its latest) or a ``model.safetensors`` file."""
    path = Path(path)
    if path.is_file() and path.name == "model.safetensors":
        path = path.parent
    if path.is_dir() and not (path / "model.safetensors").exists():
        latest = latest_checkpoint(path)
        if latest is not None:
            return latest
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(f"{path / 'model.safetensors'} does not exist: {path} is not a checkpoint folder "
                              f"(expected <run>/checkpoints/step-NNNNNN/) nor a run folder with checkpoints.")
    return path


def read_state(folder: Path) -> dict:
    state_file = folder / "state.json"
    try:
        return json.loads(state_file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{state_file} is missing: the checkpoint is incomplete. Delete {folder} and "
                              f"resume from an earlier checkpoint.") from None
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{state_file} is corrupt ({error}). Delete {folder} and resume from an earlier "
                              f"checkpoint.") from None


def load_model_file(objective: nn.Module, file: Path) -> None:
    """Load ``model.safetensors`` into ``objective`` with an error that says what does not fit."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model

    try:
        with safe_open(str(file), framework="pt") as handle:
            stored = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{file} cannot be read ({error}): the file is corrupt or truncated. Delete its "
                              f"folder and resume from an earlier checkpoint, or train again.") from None
    expected = {key: tuple(value.shape) for key, value in objective.state_dict().items()}
    wrong_shapes = [f"{key} {stored[key]} in the file vs {expected[key]} in the model"
                    for key in stored.keys() & expected.keys() if stored[key] != expected[key]]
    unexpected = stored.keys() - expected.keys()
    if wrong_shapes or unexpected:
        detail = "; ".join(wrong_shapes[:3]) or _key_difference(set(expected), set(stored))
        raise CheckpointError(f"{file} does not fit {type(objective).__name__}: {detail}. It was written for a "
                              f"different model or method_args; build the objective with the checkpoint's config "
                              f"(state.json) or start a new run in another folder.")
    try:
        device = next(iter(objective.state_dict().values()), torch.empty(0)).device
        load_model(objective, str(file), strict=True, device=str(device))
    except RuntimeError as error:  # missing keys (shared tensors are handled by load_model)
        raise CheckpointError(f"{file} does not fit {type(objective).__name__}: {error}. Build the objective "
                              f"with the checkpoint's config (state.json) or start a new run.") from None


def finished_run(config: TrainConfig) -> Path | None:
    """The checkpoint of a run that already trained *this exact config* to its last step, else None.

    Notebooks use it to reuse an earlier notebook's model instead of training
    it again; a run with another config (or unfinished) does not count.
    """
    latest = latest_checkpoint(config.run_dir)
    if latest is None or not (latest / "state.json").is_file():
        return None
    state = read_state(latest)
    same_config = state.get("config") == json.loads(json.dumps(config.to_dict()))
    return latest if same_config and state.get("step") == config.steps else None


def discard_stale_run(config: TrainConfig) -> bool:
    """Delete the run folder when its checkpoints were written for *another* config; True if deleted.

    A run of the same config is kept (finished: reused; unfinished: resumed),
    so notebooks can always call ``fit(resume=True)`` without mixing models.
    """
    latest = latest_checkpoint(config.run_dir)
    if latest is None or not (latest / "state.json").is_file():
        return False
    if read_state(latest).get("config") == json.loads(json.dumps(config.to_dict())):
        return False
    shutil.rmtree(config.run_dir)
    return True


def train_or_reuse(config: TrainConfig, train_dataset, val_dataset=None) -> Path:
    """The checkpoint of ``config``: reused when :func:`finished_run` finds it, trained (or resumed) otherwise."""
    found = finished_run(config)
    if found is not None:
        return found
    discard_stale_run(config)
    result = Trainer(build_objective(config), config, train_dataset, val_dataset).fit(resume=True)
    return result.checkpoint


def fit_or_reuse(objective: nn.Module, config: TrainConfig, train_dataset, val_dataset=None) -> TrainResult:
    """Train ``objective`` under ``config``: a finished run of this exact config is reused, an interrupted one
    resumed from its last checkpoint, a run of another config under the same name replaced.

    What a notebook calls, so that a session that disconnects (or a later
    notebook asking for the same run) loses nothing that was checkpointed.
    """
    discard_stale_run(config)
    return Trainer(objective, config, train_dataset, val_dataset).fit(resume=True)


def load_weights(path: str | Path, objective: nn.Module, use_ema: bool = False) -> dict:
    """Load trained weights for inference; returns the checkpoint's ``state.json``.

    ``path`` is a checkpoint folder, a run folder (its latest checkpoint) or a
    ``model.safetensors`` file. ``use_ema=True`` overlays the EMA weights.
    """
    folder = resolve_checkpoint(path)
    load_model_file(objective, folder / "model.safetensors")
    if use_ema:
        from safetensors.torch import load_file

        ema_file = folder / "ema.safetensors"
        if not ema_file.is_file():
            raise CheckpointError(f"{ema_file} does not exist: this run was trained without EMA (ema_decay null). "
                                  f"Load with use_ema=False.")
        named = dict(objective.named_parameters())
        with torch.no_grad():
            for name, tensor in load_file(str(ema_file)).items():
                if name not in named or named[name].shape != tensor.shape:
                    raise CheckpointError(f"{ema_file}: EMA tensor {name} does not fit {type(objective).__name__}.")
                named[name].copy_(tensor)
    return read_state(folder) if (folder / "state.json").is_file() else {}


def _key_difference(expected: set[str], found: set[str]) -> str:
    missing, extra = sorted(expected - found), sorted(found - expected)
    parts = []
    if missing:
        parts.append(f"missing {missing[:3]}{' …' if len(missing) > 3 else ''}")
    if extra:
        parts.append(f"unexpected {extra[:3]}{' …' if len(extra) > 3 else ''}")
    return ", ".join(parts) or "same keys"


def _torch_load(file: Path) -> dict:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: the checkpoint is incomplete. Delete {file.parent} and resume "
                              f"from an earlier checkpoint.")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{file} cannot be read ({type(error).__name__}: {error}). The file is corrupt or "
                              f"not a state dict; delete {file.parent} and resume from an earlier "
                              f"checkpoint.") from None


# ------------------------------------------------------------------ random states as JSON


def capture_rng_state() -> dict:
    """The states of Python's, NumPy's and torch's global generators, as JSON-friendly values."""
    version, words, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()  # noqa: NPY002 -- the global generator itself
    state = {
        "python": [version, _encode(torch.tensor(words, dtype=torch.int64)), gauss],
        "numpy": [name, _encode(torch.from_numpy(keys.astype(np.int64))), int(position), int(has_gauss),
                  float(cached)],
        "torch": _encode(torch.get_rng_state()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_encode(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(_decode(words, torch.int64).tolist()), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    keys = _decode(keys, torch.int64).numpy().astype(np.uint32)
    np.random.set_state((name, keys, position, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(_decode(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_decode(s) for s in state["cuda"]])


def _encode(tensor: torch.Tensor) -> str:
    """A CPU tensor's bytes as base64 text."""
    return base64.b64encode(tensor.contiguous().numpy().tobytes()).decode("ascii")


def _decode(text: str, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=dtype)


@contextlib.contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block (validation) without moving any global random generator."""
    saved = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(saved)


def library_versions() -> dict[str, str]:
    import accelerate
    import safetensors

    import bs_lib

    return {"bs_lib": bs_lib.__version__, "torch": torch.__version__, "accelerate": accelerate.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__, "python": platform.python_version()}


# =========================================================================== several processes


def make_accelerator(mixed_precision: str = "no", cpu: bool = False):
    """An ``accelerate.Accelerator``, also when an earlier one in this process chose another precision.

    ``accelerate`` shares one ``AcceleratorState`` per process and raises on a
    second Accelerator with a different ``mixed_precision``. We reset that
    shared state (keeping the process group, so ``accelerate launch`` runs are
    unaffected): a notebook can train in fp32 and then in bf16 without a restart.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = cpu or (launched_processes > 1 and not torch.cuda.is_available())  # accelerate's cue for gloo on CPUs
    shared = AcceleratorState._shared_state
    if shared and (shared.get("_mixed_precision") != mixed_precision
                   or (cpu and getattr(shared.get("device"), "type", "cpu") != "cpu")):
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


@torch.no_grad()
def average_gradients(params: list[nn.Parameter], bucket_elements: int = 2**25) -> None:
    """Replace each gradient by its mean over all processes (one all-reduce per bucket of flattened grads)."""
    world_size = torch.distributed.get_world_size()
    grads = []
    for param in params:
        if param.grad is None:  # every process must send the same tensors
            param.grad = torch.zeros_like(param)
        grads.append(param.grad)
    start = 0
    while start < len(grads):
        stop, size = start, 0
        while stop < len(grads) and (size == 0 or size + grads[stop].numel() <= bucket_elements):
            size += grads[stop].numel()
            stop += 1
        bucket = torch.cat([g.reshape(-1) for g in grads[start:stop]])
        torch.distributed.all_reduce(bucket)
        bucket /= world_size
        offset = 0
        for grad in grads[start:stop]:
            grad.copy_(bucket[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()
        start = stop


@torch.no_grad()
def broadcast_state(module: nn.Module) -> None:
    """Copy every parameter and buffer of the main process to the others."""
    for tensor in module.state_dict().values():
        torch.distributed.broadcast(tensor, src=0)


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Average float buffers (BatchNorm statistics) over processes, so all hold the same model."""
    world_size = torch.distributed.get_world_size()
    for buffer in module.buffers():
        if buffer.is_floating_point():
            torch.distributed.all_reduce(buffer)
            buffer /= world_size


# =========================================================================== the trainer


class Callback:
    """Hooks into :meth:`Trainer.fit`; override the ones you need. Called on the main process only."""

    def on_step_end(self, trainer: Trainer, step: int, logs: dict[str, float] | None) -> None:
        """After every step; ``logs`` holds the averaged losses on logging steps, else None."""

    def on_validate(self, trainer: Trainer, step: int) -> dict[str, float] | None:
        """At validation time (EMA weights in place when ``val_use_ema``): extra metrics to record."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """After a checkpoint was written."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` reports."""

    final_step: int
    history: list[dict[str, float]]  # {"step": s, "loss/<group>": ..., "lr/<group>": ...} and {"step", "val/..."}
    wall_time_s: float  # this call of fit()
    images_per_s: float  # training samples per second over all processes, this call
    checkpoint: Path | None
    run_dir: Path


class Trainer:
    """Trains an :class:`Objective` as its :class:`TrainConfig` says.

    >>> trainer = Trainer(objective, config, train_dataset, val_dataset)   # doctest: +SKIP
    >>> result = trainer.fit(resume=True)    # picks up the latest checkpoint of the run, if any
    >>> soft = trainer.predict(cxr, use_ema=True)
    """

    def __init__(self, objective: Objective, config: TrainConfig | Mapping, train_dataset, val_dataset=None,
                 callbacks: Iterable[Callback] = ()) -> None:
        self.config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        self.precision = resolve_precision(self.config.mixed_precision, self.config.cpu)
        self.accelerator = make_accelerator(self.precision, self.config.cpu)
        self.device = self.accelerator.device
        self.objective = objective.to(self.device)
        if self.config.channels_last:
            self.objective.to(memory_format=torch.channels_last)
        if _distributed():
            broadcast_state(self.objective)
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self._datasets_prepared = False  # Objective.prepare_dataset runs once, at the first fit()
        self.callbacks = list(callbacks)
        self.groups = self._checked_groups(objective.parameter_groups())
        self.optimizers = {name: make_optimizer(params, self.config, name) for name, params in self.groups.items()}
        self.schedulers = {name: make_scheduler(opt, self.config) for name, opt in self.optimizers.items()}
        self.scalers = {name: torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
                        for name in self.groups}
        self.ema = EMA(self.objective, self.config.ema_decay, self.config.ema_modules) \
            if self.config.ema_decay else None
        if self.config.compile:
            for module in self.objective.children():
                module.compile()
        self.step = 0
        self.history: list[dict[str, float]] = []
        self._rng_states: list[dict] | None = None  # set by resume(), applied when fit() starts

    # ------------------------------------------------------------------ properties

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def _checked_groups(self, groups: dict[str, list[nn.Parameter]]) -> dict[str, list[nn.Parameter]]:
        if not groups:
            raise ValueError(f"{type(self.objective).__name__}.parameter_groups() is empty: nothing to train.")
        seen: dict[int, str] = {}
        for name, params in groups.items():
            if name.startswith("log/") or not params:
                raise ValueError(f"Parameter group {name!r} is empty or uses the reserved prefix 'log/'.")
            for param in params:
                if not param.requires_grad:
                    raise ValueError(f"Parameter group {name!r} contains a frozen parameter (requires_grad=False).")
                if id(param) in seen:
                    raise ValueError(f"A parameter is in both groups {seen[id(param)]!r} and {name!r}; "
                                     f"each parameter must belong to exactly one group.")
                seen[id(param)] = name
        unknown = set(self.config.groups) - set(groups)
        if unknown:
            raise ConfigError(f"config.groups names {sorted(unknown)}, but the objective's parameter groups are "
                              f"{sorted(groups)}.")
        return groups

    # ------------------------------------------------------------------ inference

    @contextlib.contextmanager
    def ema_scope(self) -> Iterator[None]:
        """Use the EMA weights inside the block (no-op without EMA)."""
        if self.ema is None:
            yield
            return
        with self.ema.scope():
            yield

    @torch.no_grad()
    def predict(self, cxr: torch.Tensor, use_ema: bool = True) -> torch.Tensor:
        """``objective.predict`` in eval mode, with EMA weights when available and ``use_ema``."""
        was_training = self.objective.training
        self.objective.eval()
        try:
            with self.ema_scope() if use_ema else contextlib.nullcontext(), self._autocast():
                return self.objective.predict(cxr.to(self.device)).float()
        finally:
            self.objective.train(was_training)

    def _autocast(self):
        precision = self.precision
        if precision == "no":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

    # ------------------------------------------------------------------ the loop

    def fit(self, resume: bool | str | Path = False) -> TrainResult:
        """Train until ``config.steps``. ``resume=True`` continues from the run's latest checkpoint when one
        exists (else starts fresh); ``resume=PATH`` continues from that checkpoint."""
        if resume is True:
            latest = latest_checkpoint(self.run_dir)
            if latest is not None:
                self.resume(latest)
        elif resume:
            self.resume(resume)
        if self._rng_states is not None:
            restore_rng_state(self._rng_states[self.accelerator.process_index])
            self._rng_states = None
        elif self.step == 0:
            course_config.seed_everything(self.config.seed + self.accelerator.process_index)
        if self.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.config.to_yaml(self.run_dir / "config.yaml")

        start_step, started = self.step, time.perf_counter()
        self._prepare_datasets()
        batches = self._batches()
        running: dict[str, torch.Tensor] = {}
        bar = course_config.progress(total=self.config.steps, initial=self.step, desc=self.config.name,
                                     disable=course_config.is_quiet() or not self.is_main_process)
        self.objective.train()
        checkpoint = None
        while self.step < self.config.steps:
            for name, value in self._train_step(batches).items():
                running[name] = running[name] + value if name in running else value
            self.step += 1
            bar.update(1)
            logs = None
            if self.step % self.config.log_every == 0 or self.step == self.config.steps:
                logs = self._log(running, steps=(self.step - 1) % self.config.log_every + 1)
                running = {}
                bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in logs.items() if k.startswith("loss/")})
            if self.config.val_every and self.step % self.config.val_every == 0:
                self.validate()
            if self.is_main_process:
                for callback in self.callbacks:
                    callback.on_step_end(self, self.step, logs)
            every = self.config.checkpoint_every
            if (every and self.step % every == 0) or self.step == self.config.steps:
                checkpoint = self.save_checkpoint()
        bar.close()
        wall = time.perf_counter() - started
        samples = (self.step - start_step) * self.config.batch_size * self.config.grad_accum \
            * self.accelerator.num_processes
        return TrainResult(final_step=self.step, history=list(self.history), wall_time_s=wall,
                           images_per_s=samples / wall if wall > 0 else 0.0,
                           checkpoint=checkpoint or latest_checkpoint(self.run_dir), run_dir=self.run_dir)

    def _train_step(self, batches: Iterator[dict]) -> dict[str, torch.Tensor]:
        """One optimiser step over ``grad_accum`` micro-batches; returns detached loss tensors (no host sync)."""
        accum = self.config.grad_accum
        logged: dict[str, torch.Tensor] = {}
        stepped: list[str] = []  # groups with a loss this step, in the order losses() returned them
        for _ in range(accum):
            batch = next(batches)
            with self._autocast():
                losses = self.objective.losses(batch, self.step)
            for name, loss in losses.items():
                if not name.startswith("log/"):
                    self._backward(name, loss / accum)
                    if name not in stepped:
                        stepped.append(name)
                key = name if name.startswith("log/") else f"loss/{name}"
                value = loss.detach().float() / accum
                logged[key] = logged[key] + value if key in logged else value
        for name in stepped:
            logged.update(self._update_group(name))
        for name, scheduler in self.schedulers.items():
            if name in stepped:
                scheduler.step()
            else:  # a skipped group's schedule still follows the global step
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
                    scheduler.step()
        if self.ema is not None:
            self.ema.update()
        return logged

    def _backward(self, group: str, loss: torch.Tensor) -> None:
        """Accumulate the gradient of ``loss`` into ``group``'s parameters, and theirs only."""
        if group not in self.groups:
            raise KeyError(f"{type(self.objective).__name__}.losses returned {group!r}, which is neither a parameter "
                           f"group ({', '.join(self.groups)}) nor a 'log/<name>' entry.")
        if loss.ndim != 0:
            raise ValueError(f"The loss of group {group!r} has shape {tuple(loss.shape)}; losses must be scalars.")
        self.scalers[group].scale(loss.float()).backward(inputs=self.groups[group])

    def _update_group(self, name: str) -> dict[str, torch.Tensor]:
        params, optimizer, scaler = self.groups[name], self.optimizers[name], self.scalers[name]
        if _distributed():
            average_gradients(params)
        logs = {}
        if self.config.max_grad_norm is not None:
            scaler.unscale_(optimizer)
            logs[f"grad_norm/{name}"] = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm).detach()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return logs

    def _batches(self) -> Iterator[dict]:
        """Endless device batches, starting where the run left off (``step × grad_accum`` batches consumed)."""
        sampler = EpochBatchSampler(
            len(self.train_dataset), self.config.batch_size, seed=self.config.seed, drop_last=self.config.drop_last,
            rank=self.accelerator.process_index, world_size=self.accelerator.num_processes,
            start_batch=self.step * self.config.grad_accum,
        )
        loader = torch.utils.data.DataLoader(
            self.train_dataset, batch_sampler=sampler, collate_fn=collate_tensors,
            num_workers=self.config.num_workers, pin_memory=self.device.type == "cuda",
            persistent_workers=self.config.num_workers > 0,
            generator=torch.Generator().manual_seed(self.config.seed),  # keeps the global generator untouched
        )
        for batch in loader:
            yield move_to(batch, self.device, self.config.channels_last)

    def _log(self, running: dict[str, torch.Tensor], steps: int) -> dict[str, float]:
        """Average the running sums over ``steps`` (and processes) with one host sync; append to the history."""
        names = sorted(running)
        values = torch.stack([running[name].float() for name in names]) / steps if names else torch.zeros(0)
        if _distributed():
            torch.distributed.all_reduce(values)
            values /= self.accelerator.num_processes
        logs = dict(zip(names, values.tolist(), strict=True))
        bad = [name for name, value in logs.items() if not math.isfinite(value)]
        if bad:
            raise FloatingPointError(f"Step {self.step}: {', '.join(bad)} is not finite. Lower the learning rate, "
                                     f"set max_grad_norm, or check the data for NaNs.")
        for name, scheduler in self.schedulers.items():
            logs[f"lr/{name}"] = scheduler.get_last_lr()[0]
        self.history.append({"step": self.step, **logs})
        return logs

    # ------------------------------------------------------------------ validation

    def validate(self) -> dict[str, float]:
        """Validate on the main process, without touching the training's random state; returns the metrics."""
        metrics: dict[str, float] = {}
        if _distributed():
            average_buffers(self.objective)
        if self.is_main_process and (self.val_dataset is not None or self.callbacks):
            self.objective.eval()
            use_ema = self.config.val_use_ema and self.ema is not None
            with preserved_rng_state(), torch.no_grad(), self.ema_scope() if use_ema else contextlib.nullcontext():
                if self.val_dataset is not None:
                    with self._autocast():
                        metrics.update(self.objective.validate(self._val_batches()))
                for callback in self.callbacks:
                    metrics.update(callback.on_validate(self, self.step) or {})
            self.objective.train()
            self.history.append({"step": self.step, **{f"val/{k}": float(v) for k, v in metrics.items()}})
        self.accelerator.wait_for_everyone()
        return metrics

    def _prepare_datasets(self) -> None:
        """Let the objective turn the datasets into what its loop reads (once per Trainer)."""
        if self._datasets_prepared:
            return
        self.train_dataset = self.objective.prepare_dataset(self.train_dataset, self.device)
        if self.val_dataset is not None:
            self.val_dataset = self.objective.prepare_dataset(self.val_dataset, self.device)
        self._datasets_prepared = True

    def _val_batches(self) -> Iterator[dict]:
        loader = torch.utils.data.DataLoader(self.val_dataset, batch_size=self.config.batch_size, shuffle=False,
                                             collate_fn=collate_tensors, num_workers=self.config.num_workers,
                                             pin_memory=self.device.type == "cuda")
        for batch in loader:
            yield move_to(batch, self.device, self.config.channels_last)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-NNNNNN/`` atomically (main process); every process must call it."""
        from accelerate.utils import gather_object
        from safetensors.torch import save_file, save_model

        rng_states = gather_object([capture_rng_state()]) if _distributed() else [capture_rng_state()]
        if _distributed():
            average_buffers(self.objective)
        final = self.checkpoint_dir / checkpoint_name(self.step)
        if self.is_main_process:
            temporary = self.checkpoint_dir / f".tmp-{checkpoint_name(self.step)}"
            shutil.rmtree(temporary, ignore_errors=True)
            temporary.mkdir(parents=True)
            save_model(self.objective, str(temporary / "model.safetensors"), metadata={"step": str(self.step)},
                       force_contiguous=True)
            if self.ema is not None:
                save_file({k: v.contiguous() for k, v in self.ema.state_dict().items()},
                          str(temporary / "ema.safetensors"))
            torch.save({name: opt.state_dict() for name, opt in self.optimizers.items()}, temporary / "optimizers.pt")
            torch.save({name: s.state_dict() for name, s in self.schedulers.items()}, temporary / "schedulers.pt")
            state = {
                "step": self.step,
                "data_position": {"batches_consumed_per_process": self.step * self.config.grad_accum},
                "num_processes": self.accelerator.num_processes,
                "grad_scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
                "rng": rng_states,
                "history": self.history,
                "config": self.config.to_dict(),
                "objective": type(self.objective).__qualname__,
                "versions": library_versions(),
            }
            (temporary / "state.json").write_text(json.dumps(state, indent=1))
            if final.exists():
                shutil.rmtree(final)
            os.replace(temporary, final)
            self._prune_checkpoints()
            for callback in self.callbacks:
                callback.on_checkpoint(self, final)
        self.accelerator.wait_for_everyone()
        return final

    def _prune_checkpoints(self) -> None:
        keep = self.config.keep_checkpoints
        if keep:
            for old in list_checkpoints(self.run_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)

    def resume(self, path: str | Path | None = None) -> Trainer:
        """Restore weights, optimisers, schedulers, EMA, scalers, step, history and random states.

        ``path``: a checkpoint folder, or a run folder (its latest checkpoint);
        default: this run's folder. The random states are applied when
        :meth:`fit` starts.
        """
        folder = resolve_checkpoint(path if path is not None else self.run_dir)
        for required in REQUIRED_FILES:
            if not (folder / required).is_file():
                raise CheckpointError(f"{folder / required} is missing: the checkpoint is incomplete. Delete "
                                      f"{folder} and resume from an earlier checkpoint.")
        state = read_state(folder)
        self._warn_config_changes(state.get("config", {}), folder)
        load_model_file(self.objective, folder / "model.safetensors")
        self._load_group_states(folder / "optimizers.pt", self.optimizers)
        self._load_group_states(folder / "schedulers.pt", self.schedulers)
        if self.ema is not None:
            from safetensors.torch import load_file

            ema_file = folder / "ema.safetensors"
            if not ema_file.is_file():
                raise CheckpointError(f"{ema_file} is missing: the checkpoint was trained without EMA but "
                                      f"ema_decay is now {self.config.ema_decay}. Set ema_decay: null to resume.")
            self.ema.load_state_dict(load_file(str(ema_file), device=str(self.device)), ema_file)
        for name, scaler_state in state.get("grad_scalers", {}).items():
            if name in self.scalers and scaler_state:
                self.scalers[name].load_state_dict(scaler_state)
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        rng = state.get("rng", [])
        if len(rng) == self.accelerator.num_processes:
            self._rng_states = rng
        else:
            warnings.warn(f"{folder} was written by {len(rng)} process(es), this run has "
                          f"{self.accelerator.num_processes}: random states are re-seeded, so the run continues "
                          f"correctly but not bit-identically.", stacklevel=2)
            self._rng_states = None
            course_config.seed_everything(self.config.seed + 7919 * self.step + self.accelerator.process_index)
        return self

    def _load_group_states(self, file: Path, targets: dict[str, Any]) -> None:
        states = _torch_load(file)
        if not isinstance(states, dict) or set(states) != set(targets):
            found = sorted(states) if isinstance(states, dict) else type(states).__name__
            raise CheckpointError(f"{file} holds states for groups {found}, the objective has {sorted(targets)}. "
                                  f"The checkpoint belongs to another method; start a new run in another folder.")
        for name, target in targets.items():
            try:
                target.load_state_dict(states[name])
            except (ValueError, KeyError, RuntimeError) as error:
                raise CheckpointError(f"{file}: the state of group {name!r} does not fit ({error}). The model "
                                      f"changed since this checkpoint; start a new run in another folder.") from None

    def _warn_config_changes(self, saved: dict, folder: Path) -> None:
        harmless = {"steps", "val_every", "checkpoint_every", "keep_checkpoints", "log_every", "num_workers",
                    "output_dir", "compile"}
        current = self.config.to_dict()
        changed = sorted(k for k in current if k not in harmless and k in saved and saved[k] != current[k])
        if changed and self.is_main_process:
            warnings.warn(f"Resuming from {folder} with a changed config ({', '.join(changed)}): the run will not "
                          f"match an uninterrupted one.", stacklevel=3)


# =========================================================================== command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a method with a config in bs_lib/configs (e.g. bs_ldm), or a YAML file: "
                                       "a flat run description or base + profile sections")
    parser.add_argument("--profile", default=None, help="the profile section to use (default: $BS_PROFILE, "
                                                        "else smoke on a CPU and colab on a GPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set steps=200 --set method_args.depth=3")
    parser.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    from bs_lib.configs import resolve_run_config

    profile = course_config.get_profile(args.profile or course_config.default_profile()).name
    config = resolve_run_config(args.config, profile, args.overrides)
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    if not config.method:
        raise ConfigError(f"{args.config}: 'method' is empty; name a registered method or 'module:function'.")
    course_config.seed_everything(config.seed)  # identical initial weights in every process
    objective = build_objective(config)
    train_dataset, val_dataset = build_datasets(config)
    trainer = Trainer(objective, config, train_dataset, val_dataset)
    result = trainer.fit(resume=args.resume)
    if trainer.is_main_process:
        last = result.history[-1] if result.history else {}
        summary = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k != "step")
        print(f"{config.name}: step {result.final_step}/{config.steps} in {result.wall_time_s:.1f} s "
              f"({result.images_per_s:.1f} images/s); {summary}\ncheckpoint: {result.checkpoint}")
    return 0
