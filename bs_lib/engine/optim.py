r"""What a step does to the weights besides the gradient: AdamW per group, the LR schedule, the EMA.

One AdamW optimiser per parameter group (``lr``/``betas``/``weight_decay``,
overridable per group in ``groups``; ``weight_decay=0`` is Adam), one
scheduler per optimiser, all functions of the global step :math:`s` times an
optional linear warm-up :math:`\min(1, (s+1)/W)`:

* ``constant``: 1;
* ``cosine``: :math:`r + (1-r)\,\tfrac12\,(1+\cos(\pi p))`, :math:`p` the
  progress after warm-up, :math:`r` = ``min_lr_ratio`` (default 0);
* ``step``: :math:`\gamma^{\lfloor s/\text{step\_size}\rfloor}`;
* ``multistep``: :math:`\gamma^{\#\{m \in \text{milestones}:\, m \le s\}}`
  (BS-LDM's decay by 0.1 at fixed milestones).

With ``ema_decay`` = β, shadow weights follow :math:`\bar\theta \leftarrow
\beta\,\bar\theta + (1-\beta)\,\theta` after every step (BS-LDM: β = 0.995).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from bs_lib.engine.checkpoint import CheckpointError, key_difference
from bs_lib.engine.config import ConfigError, TrainConfig

# =========================================================================== optimisers and schedules


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
                f"({key_difference(set(self.names), set(tensors))}). The checkpoint was written with other "
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
