r"""The sampling loop, the same for every sampler: predict, estimate, threshold, step.

From :math:`x_T \sim \mathcal N(0, I)`, at each timestep :math:`t` of the
sampler's chain (next :math:`t'`, and :math:`-1` after the last):

1. the network predicts the noise, :math:`\hat\varepsilon = \varepsilon_\theta(x_t, t)`;
2. the closed form gives the clean estimate,
   :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}`;
3. a threshold clamps it (:mod:`bs_lib.diffusion.thresholds`);
4. the sampler steps, :math:`x_t \to x_{t'}` (:meth:`bs_lib.diffusion.base.Sampler.step`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bs_lib.diffusion.base import Denoiser, Sampler, make_sampler
from bs_lib.diffusion.schedule import NoiseSchedule
from bs_lib.diffusion.thresholds import NoThreshold, Threshold


@dataclass
class SamplingResult:
    sample: torch.Tensor
    trajectory: list[tuple[int, torch.Tensor]]  # (timestep, predicted x̂₀) snapshots, noisy to clean


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    *,
    sampler: str | Sampler = "ddim",
    sampling_steps: int | None = 50,
    spacing: str = "leading",
    eta: float = 0.0,
    threshold: Threshold | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    snapshots: int = 0,
    show_progress: bool = True,
) -> SamplingResult:
    """Draw samples by walking from :math:`x_T \\sim \\mathcal N(0, I)` to :math:`x_0`.

    ``sampler`` is a registered name (:data:`bs_lib.diffusion.SAMPLERS`:
    ``"ddpm"`` with ``sampling_steps=None`` is the full 1000-step ancestral
    sampler of BS-LDM; ``"ddim"`` and ``"dpm++2m"`` take any number of steps),
    built with ``sampling_steps``, ``spacing`` (:func:`sampling_timesteps`),
    ``eta`` and ``generator``; or a :class:`Sampler` already built, which
    brings its own. ``snapshots`` keeps that many predicted :math:`\\hat x_0`
    along the way for figures of the sampling trajectory. Same ``generator``
    seed, same sample.
    """
    from bs_lib.config import progress

    if isinstance(sampler, str):
        sampler = make_sampler(sampler, schedule, sampling_steps, spacing, eta=eta, generator=generator)
    threshold = threshold or NoThreshold()
    timesteps = sampler.timesteps()
    keep = set(torch.linspace(0, len(timesteps) - 1, snapshots).round().long().tolist()) if snapshots else set()
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    trajectory = []
    sampler.reset()
    quiet = {} if show_progress else {"disable": True}
    for index in progress(range(len(timesteps)), desc=f"{sampler.name} sampling", leave=False, **quiet):
        t = timesteps[index]
        t_prev = timesteps[index + 1] if index + 1 < len(timesteps) else -1
        t_batch = torch.full((shape[0],), t, device=x.device, dtype=torch.long)
        eps = denoiser(x, t_batch).to(dtype)
        x0 = threshold(schedule.predict_x0(x, eps, t_batch), index, len(timesteps))
        if index in keep:
            trajectory.append((t, x0.clone()))
        x = sampler.step(x, x0, t, t_prev)
    return SamplingResult(x, trajectory)
