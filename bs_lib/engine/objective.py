"""What a method is to the engine: an :class:`Objective`, registered by name with its family and label.

A method says *what* to optimise and nothing about *how*: it subclasses
:class:`Objective` (its networks, its losses, its prediction) and registers a
builder ``TrainConfig -> Objective`` under a name::

    @register_method("unet", family="CNN", label="U-Net")
    def build_unet(config: TrainConfig) -> Objective: ...

The registry is filled by whoever imports the modules that register: ``import
bs_lib.models`` registers every method of the course. :func:`build_objective`
then builds a method by the name in its config; the engine itself never
imports a model.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from bs_lib.engine.config import ConfigError, TrainConfig, import_callable

Builder = Callable[[TrainConfig], "Objective"]

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


def accepts_generator(predict: Callable) -> bool:
    """True when ``predict`` takes a random generator: a sampler (BS-LDM) rather than a function."""
    try:
        return "generator" in inspect.signature(predict).parameters
    except (TypeError, ValueError):
        return False


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that receive gradients)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# =========================================================================== the registry


@dataclass(frozen=True)
class MethodInfo:
    """What a method registered about itself.

    ``family`` and ``label`` are how the course names it (``"GAN"``,
    ``"MCA-Net"``). The optional hooks let the engine ask a method what only
    the method knows:

    * ``smallest_side(method_args)``: the smallest image side it trains on
      (a GAN's coarsest discriminator needs a patch to judge);
    * ``needs(config)``: configs of the runs it reads that must be trained first
      (a distillation student's teacher), see :func:`bs_lib.engine.trainer.train_needed_runs`;
    * ``rebuild_without``: ``method_args`` that point at another run's weights
      which a checkpoint of this method already holds (BS-LDM's autoencoder):
      :func:`bs_lib.engine.checkpoint.load_trained` leaves them out.
    """

    name: str
    family: str
    label: str
    build: Builder
    smallest_side: Callable[[dict], int] | None = None
    needs: Callable[[TrainConfig], list[TrainConfig]] | None = None
    rebuild_without: tuple[str, ...] = ()


METHODS: dict[str, Builder] = {}  # name -> builder
_INFO: dict[str, MethodInfo] = {}


def register_method(name: str, *, family: str, label: str, smallest_side: Callable[[dict], int] | None = None,
                    needs: Callable[[TrainConfig], list[TrainConfig]] | None = None,
                    rebuild_without: tuple[str, ...] = ()) -> Callable[[Builder], Builder]:
    """Decorator: ``@register_method("unet", family="CNN", label="U-Net")`` on a function ``TrainConfig -> Objective``.

    The keyword hooks are described in :class:`MethodInfo`.
    """

    def decorate(build: Builder) -> Builder:
        if name in METHODS and METHODS[name] is not build:
            warnings.warn(f"Method {name!r} is registered twice; the later definition wins.", stacklevel=2)
        METHODS[name] = build
        _INFO[name] = MethodInfo(name, family, label, build, smallest_side, needs, tuple(rebuild_without))
        return build

    return decorate


def method_info(name: str) -> MethodInfo | None:
    """What ``name`` registered about itself; None for a name no imported module registered."""
    return _INFO.get(name)


def registered_methods() -> list[str]:
    """The names of every registered method, sorted."""
    return sorted(METHODS)


def build_objective(config: TrainConfig) -> Objective:
    """The Objective named by ``config.method``: a registered name, or ``"package.module:function"``."""
    if ":" in config.method:
        build = import_callable(config.method, "method")
    elif config.method in METHODS:
        build = METHODS[config.method]
    else:
        known = ", ".join(registered_methods()) or "none registered"
        raise ConfigError(
            f"Unknown method {config.method!r} (known: {known}). A method is known once the module that "
            f"registers it is imported (`import bs_lib.models` registers the course's); register your own with "
            f"@register_method({config.method!r}, family=..., label=...) or give 'package.module:function'."
        )
    objective = build(config)
    if not isinstance(objective, Objective):
        raise TypeError(f"Method {config.method!r} returned {type(objective).__name__}, not a bs_lib.engine.Objective.")
    return objective
