r"""DDIM: the deterministic sampler of Song et al. (2021), which can skip steps.

DDIM keeps DDPM's marginals :math:`q(x_t \mid x_0)` but not its Markov chain,
and so can jump from :math:`t` to any :math:`t' < t`. It rebuilds
:math:`x_{t'}` from the clean estimate and the noise that goes with it:

.. math:: x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}-\sigma^2}\,\hat\varepsilon + \sigma z,

.. math:: \sigma = \eta\,\sqrt{\frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}
          \Big(1-\frac{\bar\alpha_t}{\bar\alpha_{t'}}\Big)} .

:math:`\eta = 0` (BS-LDM's choice) is deterministic: the same :math:`x_T` always
gives the same sample, and 50 steps stand in for 1 000. :math:`\eta = 1` adds
DDPM-sized noise. :math:`\hat\varepsilon` is re-derived from the *thresholded*
:math:`\hat x_0` (as guided-diffusion does), so the two stay consistent.
"""

from __future__ import annotations

import math

import torch

from bs_lib.diffusion.base import Sampler
from bs_lib.diffusion.schedule import NoiseSchedule


class DDIM(Sampler, name="ddim"):
    """Deterministic for ``eta = 0``; ``eta = 1`` adds DDPM-sized noise."""

    def step(self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, *,
             eps: torch.Tensor | None = None) -> torch.Tensor:
        if eps is None:  # the noise that goes with the (thresholded) x̂₀
            eps = self.schedule.predict_eps(x_t, x0, torch.full((x_t.shape[0],), t, device=x_t.device,
                                                                 dtype=torch.long))
        a_t, a_prev = self.schedule.alpha_bar_at(t), self.schedule.alpha_bar_at(t_prev)
        sigma = self.eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x_prev = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x_prev = x_prev + sigma * self.noise_like(x_t)
        return x_prev


def ddim_step(x_t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, schedule: NoiseSchedule,
              eta: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """:meth:`DDIM.step` as a plain function, with :math:`\\hat\\varepsilon` given."""
    return DDIM(schedule, eta=eta, generator=generator).step(x_t, x0, t, t_prev, eps=eps)
