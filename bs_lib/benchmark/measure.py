r"""Measuring a method: its predictions, their metrics per image, and paired intervals of differences.

* **one metric code**: :func:`bs_lib.metrics.evaluate` on every test image,
  over the whole image and, where the image has its own lung mask, inside it
  (``lung/<metric>``); then mean ± standard deviation over images (population
  std, :math:`\sqrt{\tfrac1n\sum (m_i - \bar m)^2}`);
* **the cost beside the quality**: parameters used by one prediction,
  inference time per image (warm, without gradients, synchronised on a GPU);
* **differences with their uncertainty**: :func:`paired_difference`, the mean
  per-image difference between two methods and its paired bootstrap interval.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bs_lib import metrics
from bs_lib.benchmark.methods import Method, TrainingBudget
from bs_lib.config import progress

LUNG_PREFIX = "lung/"  # bs_lib.metrics names the lung-region variants lung/<metric>


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ParameterTally(torch.overrides.TorchFunctionMode):
    """Counts the parameters a computation touches: every ``nn.Parameter`` passed to a torch function.

    A GAN's discriminator, a distillation teacher or BS-LDM's training-only
    parts are never touched by ``predict``, so they are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[int, nn.Parameter] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in (*args, *kwargs.values()):
            for item in value if isinstance(value, list | tuple) else (value,):
                if isinstance(item, nn.Parameter):
                    self.seen[id(item)] = item
        return func(*args, **kwargs)

    @property
    def count(self) -> int:
        return sum(p.numel() for p in self.seen.values())


def batched(samples: list[dict], batch_size: int) -> list[dict]:
    """Stacked batches: ``cxr``, ``soft`` (N,1,H,W) and ``masks`` {name: (N,1,H,W)} (those every image has)."""
    batches = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        shared = set.intersection(*(set(s.get("masks", {})) for s in chunk))
        masks = {key: torch.stack([torch.as_tensor(s["masks"][key]) for s in chunk]) for key in sorted(shared)}
        batches.append({"cxr": torch.stack([s["cxr"] for s in chunk]),
                        "soft": torch.stack([s["soft"] for s in chunk]), "masks": masks})
    return batches


@torch.no_grad()
def predict_all(method: Method, samples: list[dict], batch_size: int, seed: int) -> tuple[torch.Tensor, float, int]:
    """Predictions for every test image, seconds per image, and parameters used.

    One warm-up batch first (allocations, lazy initialisation), then the timed
    pass over all images; on a GPU the clock waits for the device. Sampling
    methods get a generator seeded with ``seed``, so predictions repeat.
    """
    device = method.device
    batches = [{k: (v.to(device) if k != "masks" else {m: t.to(device) for m, t in v.items()})
                for k, v in batch.items()} for batch in batched(samples, batch_size)]

    def generator() -> torch.Generator:
        return torch.Generator(device=device).manual_seed(seed)

    tally = ParameterTally()
    with tally:
        method.predict(batches[0]["cxr"], batches[0]["masks"], generator())
    synchronize(device)
    shared = generator()
    started = time.perf_counter()
    predictions = [method.predict(batch["cxr"], batch["masks"], shared) for batch in batches]
    synchronize(device)
    seconds = (time.perf_counter() - started) / len(samples)
    return torch.cat([p.float().cpu() for p in predictions]).clamp(0, 1), seconds, tally.count


def image_metrics(prediction: torch.Tensor, sample: dict) -> dict[str, float]:
    """Every metric of :func:`bs_lib.metrics.evaluate`: whole image, and lung region only with the image's own mask."""
    lungs = sample.get("masks", {}).get("lungs")
    scores = metrics.evaluate(prediction, sample["soft"], sample["cxr"], mask=lungs)
    return {key: float(value) for key, value in scores.items() if value is not None}


@dataclass
class MethodResult:
    """One method's predictions and per-image metrics on the benchmark's test images, with its cost."""

    name: str
    label: str
    family: str
    parameters: int
    seconds_per_image: float
    budget: TrainingBudget
    per_image: list[dict]  # one dict per test image: id, then metrics
    predictions: torch.Tensor  # (N,1,H,W), on the CPU

    def metric_keys(self) -> list[str]:
        """Every metric measured on at least one image, in the order of first appearance."""
        return list(dict.fromkeys(k for row in self.per_image for k in row if k != "id"))

    def values(self, metric: str, images: Sequence[int] | None = None) -> np.ndarray:
        """``metric`` of every test image (or of ``images``, by index), in test-split order; NaN where unmeasured."""
        rows = self.per_image if images is None else [self.per_image[i] for i in images]
        return np.array([row.get(metric, np.nan) for row in rows], dtype=float)

    def summary(self, images: Sequence[int] | None = None) -> dict[str, tuple[float, float]]:
        """metric -> (mean, population std) over the test images that have it (or over ``images``)."""
        summary = {}
        for key in self.metric_keys():
            values = self.values(key, images)
            values = values[~np.isnan(values)]
            if values.size:
                summary[key] = (float(values.mean()), float(values.std()))
        return summary


def evaluate_method(method: Method, samples: list[dict], *, batch_size: int = 8, seed: int = 0) -> MethodResult:
    """Predict every test image with ``method`` and measure each prediction."""
    predictions, seconds, parameters = predict_all(method, samples, batch_size, seed)
    rows: list[dict[str, Any]] = []
    for prediction, sample in progress(list(zip(predictions, samples, strict=True)), desc=method.name, leave=False):
        rows.append({"id": str(sample["id"]), **image_metrics(prediction, sample)})
    return MethodResult(method.name, method.label, method.family, parameters, seconds, method.budget, rows,
                        predictions)


def paired_difference(method: Sequence[float], reference: Sequence[float], *, confidence: float = 0.95,
                      resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    r"""Mean per-image difference (method − reference) and its paired bootstrap confidence interval.

    With :math:`d_i = m_i - r_i` on the same :math:`n` test images, the estimate is
    :math:`\bar d`; the images are drawn with replacement ``resamples`` times, and
    the interval is the :math:`(1 \mp c)/2` quantiles of the resampled means
    (percentile bootstrap). Pairing removes the spread between images (an easy
    patient is easy for every method), which dominates a leaderboard's std, so
    small but consistent differences become visible. An interval that contains
    0 means no detectable difference on these images. Returns ``(mean, low, high)``.
    """
    m, r = np.asarray(method, dtype=float), np.asarray(reference, dtype=float)
    if m.shape != r.shape or m.ndim != 1 or m.size == 0:
        raise ValueError(f"paired_difference needs two equally long, non-empty lists of per-image values; "
                         f"got shapes {m.shape} and {r.shape}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}.")
    differences = m - r
    draws = np.random.default_rng(seed).integers(0, differences.size, size=(resamples, differences.size))
    means = differences[draws].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(differences.mean()), float(low), float(high)
