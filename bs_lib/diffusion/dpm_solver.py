r"""DPM-Solver++(2M) (Lu et al., 2022): DDIM's deterministic path, solved to second order.

In the half log-SNR :math:`\lambda_t = \log(\alpha_t/\sigma_t)`, with
:math:`\alpha = \sqrt{\bar\alpha}`, :math:`\sigma = \sqrt{1-\bar\alpha}` and
:math:`h = \lambda_{t'} - \lambda_t`, the deterministic path solves exactly to

.. math:: x_{t'} = \frac{\sigma_{t'}}{\sigma_t}\,x_t - \alpha_{t'}\,(e^{-h} - 1)\,D

when the clean estimate :math:`D` is constant over the step: that is DDIM.
DPM-Solver++ extrapolates it linearly instead, from the previous step's
:math:`\hat x_0^{\,prev}` (step length :math:`h_{prev}`, ratio :math:`r = h_{prev}/h`):
:math:`D = (1 + \tfrac{1}{2r})\,\hat x_0 - \tfrac{1}{2r}\,\hat x_0^{\,prev}`, so it
needs fewer steps for the same accuracy.

The first step has no previous estimate and stays first order, and so does
the step into :math:`t' = 0`: its jump in :math:`\lambda` (1.8 → 5.0 from
:math:`t = 100` with the cosine schedule) dwarfs the step before, and
extrapolating that far multiplies the error (diffusers' "lower order
final"). The end (:math:`t' = -1`, where :math:`\sigma = 0`) returns
:math:`\hat x_0` itself.
"""

from __future__ import annotations

import math

import torch

from bs_lib.diffusion.base import Sampler
from bs_lib.diffusion.schedule import NoiseSchedule


def half_log_snr(schedule: NoiseSchedule, t: int) -> float:
    r""":math:`\lambda_t = \log(\sqrt{\bar\alpha_t}/\sqrt{1-\bar\alpha_t})`, the time variable of DPM-Solver."""
    a = schedule.alpha_bar_at(t)
    return 0.5 * math.log(a / (1 - a))


class DPMSolver(Sampler, name="dpm++2m"):
    """Second-order multistep: it remembers the last step's :math:`\\hat x_0` and step length."""

    previous: tuple[torch.Tensor, float] | None = None  # the state, forgotten before each sample

    def reset(self) -> None:
        self.previous = None

    def step(self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        if t_prev < 0:
            self.previous = (x0, math.inf)
            return x0
        a_t, a_prev = self.schedule.alpha_bar_at(t), self.schedule.alpha_bar_at(t_prev)
        h = half_log_snr(self.schedule, t_prev) - half_log_snr(self.schedule, t)
        clean = x0
        if self.previous is not None and t_prev > 0:
            x0_before, h_before = self.previous
            r = h_before / h
            clean = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_before
        self.previous = (x0, h)
        return math.sqrt((1 - a_prev) / (1 - a_t)) * x_t - math.sqrt(a_prev) * math.expm1(-h) * clean


def dpm_solver_step(x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, schedule: NoiseSchedule,
                    previous: tuple[torch.Tensor, float] | None = None) -> tuple[torch.Tensor, float]:
    """:meth:`DPMSolver.step` as a plain function: returns :math:`x_{t'}` and the step length :math:`h`."""
    solver = DPMSolver(schedule)
    solver.previous = previous
    x_prev = solver.step(x_t, x0, t, t_prev)
    return x_prev, solver.previous[1]
