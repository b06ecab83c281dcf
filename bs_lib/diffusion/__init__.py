r"""Denoising diffusion, the way BS-LDM uses it in its latent space.

The package follows the paper's order, one idea per module:

``schedule``     the forward process :math:`q(x_t \mid x_0)`, its cosine schedule over
                 :math:`T = 1000` training timesteps, and offset noise for training
``thresholds``   clamping the clean estimate :math:`\hat x_0` on the way down (BS-LDM's TAT)
``base``         what a sampler is (:class:`Sampler`: ``timesteps()``, ``step()``, ``reset()``),
                 their registry :data:`SAMPLERS`, and where a shorter chain's steps lie
``ddpm``         the ancestral sampler, BS-LDM's official 1 000 steps
``ddim``         the deterministic sampler that skips steps
``dpm_solver``   DPM-Solver++(2M), DDIM's path to second order
``sampling``     :func:`sample`, the loop every sampler shares

Sampling
--------
Every sampler walks a decreasing list of timesteps :math:`t \to t'`: it first
estimates :math:`\hat x_0`, then optionally *thresholds* it (clamps it to a
plausible range: see :class:`TemporalAdaptiveThreshold`), then steps. The
samplers differ only in that step:

* DDPM (ancestral) samples the posterior :math:`q(x_{t'}\mid x_t, \hat x_0)`;
* DDIM moves deterministically (η = 0) along the same marginals, so it can
  skip steps: 50 DDIM steps instead of 1000 DDPM steps;
* DPM-Solver++(2M) solves the same deterministic path as DDIM, but to second
  order: DDIM assumes :math:`\hat x_0` constant over a step, DPM-Solver++
  extrapolates it linearly from the previous step's estimate, so it needs
  fewer steps for the same accuracy.

Adding a sampler is one new module here with one :class:`Sampler` subclass
that names itself (``class Heun(Sampler, name="heun")``), and its test:
importing this package imports every module in its folder, so the sampler is
registered, and :func:`sample`, :class:`bs_lib.models.ldm.DiffusionSettings`
and ``python -m bs_lib sample --sampler`` know it.
"""

import importlib
import pkgutil

from bs_lib.diffusion.base import SAMPLERS, SPACINGS, Denoiser, Sampler, make_sampler, sampling_timesteps
from bs_lib.diffusion.ddim import DDIM, ddim_step
from bs_lib.diffusion.ddpm import DDPM, ddpm_step
from bs_lib.diffusion.dpm_solver import DPMSolver, dpm_solver_step, half_log_snr
from bs_lib.diffusion.sampling import SamplingResult, sample
from bs_lib.diffusion.schedule import NoiseSchedule, offset_noise
from bs_lib.diffusion.thresholds import (
    THRESHOLDS,
    DynamicThreshold,
    NoThreshold,
    StaticThreshold,
    TemporalAdaptiveThreshold,
    Threshold,
    make_threshold,
)

MODULES = tuple(module.name for module in pkgutil.iter_modules(__path__))

for _name in MODULES:  # every sampler module registers its sampler as it is imported
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["DDIM", "DDPM", "SAMPLERS", "SPACINGS", "THRESHOLDS", "DPMSolver", "Denoiser", "DynamicThreshold",
           "NoThreshold", "NoiseSchedule", "Sampler", "SamplingResult", "StaticThreshold",
           "TemporalAdaptiveThreshold", "Threshold", "ddim_step", "ddpm_step", "dpm_solver_step", "half_log_snr",
           "make_sampler", "make_threshold", "offset_noise", "sample", "sampling_timesteps"]
