"""Which methods the benchmark knows, what each is called, and a method ready to predict.

A method of the benchmark is one of three kinds:

* ``identity``: the prediction :math:`\\hat s = x`, the baseline every table keeps;
* a manual method of :mod:`bs_lib.models.manual` (no training);
* a learned method: one registered with the engine (``@register_method``) that
  has a recipe in ``bs_lib/configs/``. Its family and label come from the
  engine's registry (:func:`bs_lib.engine.method_info`), where the method
  declared them; this module keeps no second table of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

import bs_lib.models  # noqa: F401  (registers every method: their families and labels)
from bs_lib.engine import available_methods, method_info
from bs_lib.models import manual

IDENTITY = "identity"
NOT_SUPPRESSORS = ("ml_vqgan",)  # stage 1 of BS-LDM: an autoencoder, not a bone suppressor
NEEDS_BONE_MASKS = ("mask_guided_subtraction",)  # given the phantom's bone masks: real images have none

#: Labels of the methods the engine does not train (the learned ones register theirs).
UNREGISTERED_LABELS = {
    IDENTITY: "identity (x̂ = radiograph)",
    "mask_guided_subtraction": "mask-guided subtraction (bone masks given)",
    "rib_band_filter": "rib-band filter",
}

Predict = Callable[[torch.Tensor, dict, "torch.Generator | None"], torch.Tensor]


@dataclass
class TrainingBudget:
    """What a method cost to train: optimiser steps × samples per step, and the wall time."""

    steps: int = 0
    batch_size: int = 0
    images_seen: int = 0
    wall_time_s: float | None = None
    note: str = ""

    def describe(self) -> str:
        if self.steps == 0:
            return "none (no training)"
        text = f"{self.steps} × {self.batch_size} = {self.images_seen:,} images"
        return f"{text}; {self.note}" if self.note else text


@dataclass
class Method:
    """A method ready to predict: ``predict(cxr, masks, generator)`` maps (N,1,H,W) radiographs to soft tissue."""

    name: str
    label: str
    family: str
    predict: Predict
    budget: TrainingBudget = field(default_factory=TrainingBudget)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def label_of(name: str) -> str:
    """How the course names a method: its registered label (``"U-Net"``), else the benchmark's own."""
    info = method_info(name)
    if info is not None:
        return info.label
    return UNREGISTERED_LABELS.get(name, name.replace("_", " "))


def family_of(name: str) -> str:
    """A method's family: registered (``"GAN"``), else ``baseline`` (identity) or ``manual``."""
    info = method_info(name)
    if info is not None:
        return info.family
    return "baseline" if name == IDENTITY else "manual" if name in manual_methods() else "learned"


def learned_methods() -> list[str]:
    """Methods with a training config, ``ml_vqgan`` (an autoencoder) left out."""
    return [name for name in available_methods() if name not in NOT_SUPPRESSORS]


def manual_methods() -> dict[str, Callable]:
    """The conventional methods of :mod:`bs_lib.models.manual`: name -> function."""
    return dict(manual.MANUAL_METHODS)


def all_methods() -> list[str]:
    """Every method the benchmark knows: the identity, the manual methods, then the learned ones by name."""
    return [IDENTITY, *manual_methods(), *learned_methods()]


def check_method_names(names: Sequence[str]) -> list[str]:
    """The names, checked; an unknown one is a :class:`ValueError` that lists the valid names."""
    known = all_methods()
    unknown = [name for name in names if name not in known]
    if unknown:
        hint = ""
        if any(name in NOT_SUPPRESSORS for name in unknown):
            hint = " ml_vqgan is BS-LDM's autoencoder, not a bone suppressor: benchmark bs_ldm instead."
        raise ValueError(f"Unknown benchmark method(s) {unknown}: choose from {', '.join(known)}.{hint}")
    if len(set(names)) != len(names):
        raise ValueError(f"Benchmark methods must not repeat, got {list(names)}.")
    return list(names)


def identity_method() -> Method:
    """The do-nothing baseline: the radiograph is its own soft-tissue estimate."""
    return Method(IDENTITY, label_of(IDENTITY), family_of(IDENTITY), lambda cxr, masks, generator: cxr.clone())


def manual_method(name: str) -> Method:
    """A conventional method, run one image at a time through :func:`bs_lib.models.manual.predict`."""

    def predict(cxr: torch.Tensor, masks: dict, generator: torch.Generator | None) -> torch.Tensor:
        estimates = []
        for index, image in enumerate(cxr.cpu()):
            own_masks = {key: value[index].cpu() for key, value in masks.items()}
            estimates.append(torch.as_tensor(manual.predict(name, image, own_masks), dtype=torch.float32))
        return torch.stack(estimates).reshape(cxr.shape).to(cxr.device)

    return Method(name, label_of(name), family_of(name), predict)
