r"""Thresholds: clamping the predicted clean sample :math:`\hat x_0` on the way down.

Every sampler first estimates :math:`\hat x_0` from the network's
:math:`\hat\varepsilon`, and may then *threshold* it, clamp it to a plausible
range, before it steps. Early in sampling :math:`x_t` is almost pure noise and
:math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}`
multiplies the network's error by :math:`1/\sqrt{\bar\alpha_t}` (about
:math:`2\cdot10^4` at :math:`t = 999` with the cosine schedule); a clamp keeps
that error from being carried down the chain. BS-LDM's own is
:class:`TemporalAdaptiveThreshold`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class Threshold:
    """Clamp the predicted clean sample :math:`\\hat x_0` at reverse step ``index`` of ``sampling_steps``."""

    def __call__(self, x0: torch.Tensor, index: int, sampling_steps: int) -> torch.Tensor:
        return x0


class NoThreshold(Threshold):
    """Leave :math:`\\hat x_0` as predicted."""


@dataclass(frozen=True)
class StaticThreshold(Threshold):
    """:math:`\\hat x_0 \\leftarrow \\mathrm{clamp}(\\hat x_0, -s, s)` with a fixed ``s``."""

    limit: float = 1.0

    def __call__(self, x0: torch.Tensor, index: int, sampling_steps: int) -> torch.Tensor:
        return x0.clamp(-self.limit, self.limit)


@dataclass(frozen=True)
class TemporalAdaptiveThreshold(Threshold):
    r"""BS-LDM's temporal adaptive thresholding (called "dynamic clipping strategy" in its first version).

    At reverse step :math:`j` (:math:`j = 0` at pure noise),
    :math:`\hat x_0 \leftarrow \mathrm{clamp}(\hat x_0, -s_j, s_j)` with
    :math:`s_j = \omega + b\,j`; BS-LDM uses :math:`\omega = 1.4`, :math:`b = 0.003`
    over 1000 steps, so the clamp opens from 1.4 to 4.4: tight while the
    sample is mostly noise, loose once its content is settled.

    With fewer sampling steps :math:`n`, ``b`` is rescaled by :math:`(T-1)/(n-1)`
    so that the clamp ends at the same value after the same journey.
    """

    omega: float = 1.4
    rate: float = 0.003
    reference_steps: int = 1000

    def limit(self, index: int, sampling_steps: int) -> float:
        scale = (self.reference_steps - 1) / max(sampling_steps - 1, 1)
        return self.omega + self.rate * index * scale

    def __call__(self, x0: torch.Tensor, index: int, sampling_steps: int) -> torch.Tensor:
        s = self.limit(index, sampling_steps)
        return x0.clamp(-s, s)


@dataclass(frozen=True)
class DynamicThreshold(Threshold):
    r"""Imagen's dynamic (percentile) thresholding, the competing baseline in BS-LDM's ablation.

    :math:`s = \max(\mathrm{quantile}_p(|\hat x_0|),\ 1)` per sample, then
    :math:`\hat x_0 \leftarrow \mathrm{clamp}(\hat x_0, -s, s)/s`. It assumes data
    scaled to :math:`[-1, 1]`; in an unscaled latent space the division shrinks
    the latent, which is the washed-out, narrow histogram the ablation shows.
    """

    percentile: float = 0.995

    def __call__(self, x0: torch.Tensor, index: int, sampling_steps: int) -> torch.Tensor:
        flat = x0.flatten(1).abs().float()
        s = torch.quantile(flat, self.percentile, dim=1).clamp(min=1.0).to(x0.dtype)
        s = s.view(-1, *([1] * (x0.ndim - 1)))
        return x0.clamp(-s, s) / s


THRESHOLDS = {"none": NoThreshold, "static": StaticThreshold, "tat": TemporalAdaptiveThreshold,
              "dynamic": DynamicThreshold}


def make_threshold(kind: str | None, **options) -> Threshold:
    """``"none"``, ``"static"``, ``"tat"`` (temporal adaptive) or ``"dynamic"`` (percentile)."""
    key = "none" if kind is None else kind.lower()
    if key not in THRESHOLDS:
        raise ValueError(f"Unknown threshold {kind!r}: choose one of {', '.join(THRESHOLDS)}.")
    return THRESHOLDS[key](**options)
