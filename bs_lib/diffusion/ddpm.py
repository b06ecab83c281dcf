r"""DDPM: the ancestral sampler of Ho et al. (2020), BS-LDM's official 1 000 steps.

Given :math:`x_t` and the clean estimate :math:`\hat x_0`, the forward process
has a Gaussian posterior, and DDPM draws the next sample from it:

.. math:: q(x_{t'}\mid x_t, \hat x_0) = \mathcal N(\tilde\mu, \tilde\beta I),\qquad
          \beta = 1-\bar\alpha_t/\bar\alpha_{t'},\qquad
          \tilde\beta = \frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}\,\beta,

.. math:: \tilde\mu = \frac{\sqrt{\bar\alpha_{t'}}\,\beta}{1-\bar\alpha_t}\,\hat x_0
          + \frac{\sqrt{1-\beta}\,(1-\bar\alpha_{t'})}{1-\bar\alpha_t}\,x_t .

With :math:`t' = t-1` this is the original sampler; with a shorter chain
:math:`\beta` spans the skipped steps. The last step (:math:`t' = -1`) adds no
noise: it returns :math:`\tilde\mu`.
"""

from __future__ import annotations

import math

import torch

from bs_lib.diffusion.base import Sampler
from bs_lib.diffusion.schedule import NoiseSchedule


class DDPM(Sampler, name="ddpm"):
    """Ancestral sampling through the posterior :math:`q(x_{t'} \\mid x_t, \\hat x_0)`; it draws noise every step."""

    def step(self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        a_t, a_prev = self.schedule.alpha_bar_at(t), self.schedule.alpha_bar_at(t_prev)
        beta = 1 - a_t / a_prev
        mean = (math.sqrt(a_prev) * beta / (1 - a_t)) * x0 + (math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t)) * x_t
        if t_prev < 0:
            return mean
        variance = (1 - a_prev) / (1 - a_t) * beta
        return mean + math.sqrt(variance) * self.noise_like(x_t)


def ddpm_step(x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, schedule: NoiseSchedule,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """:meth:`DDPM.step` as a plain function: one ancestral step :math:`x_t \\to x_{t'}`."""
    return DDPM(schedule, generator=generator).step(x_t, x0, t, t_prev)
