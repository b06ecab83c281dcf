r"""Denoising diffusion, the way BS-LDM uses it in its latent space.

The forward process
-------------------
A clean sample :math:`x_0` is destroyed in :math:`T` small Gaussian steps,
:math:`q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I)`.
With :math:`\alpha_t = 1-\beta_t` and :math:`\bar\alpha_t = \prod_{s\le t}\alpha_s`
any step has a closed form, so training never simulates the chain:

.. math:: x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\qquad \varepsilon\sim\mathcal N(0, I).

BS-LDM uses the cosine schedule of Nichol & Dhariwal with :math:`T = 1000`:
:math:`\bar\alpha(\tau) = \cos^2\big(\tfrac{\tau+0.008}{1.008}\tfrac{\pi}{2}\big)`,
:math:`\beta_i = \min\big(1 - \bar\alpha(\tfrac{i+1}{T})/\bar\alpha(\tfrac{i}{T}),\ 0.999\big)`.

The objective
-------------
A network :math:`\varepsilon_\theta(x_t, t)` learns to name the noise that was
added: :math:`\mathcal L = \lVert \varepsilon_\theta(x_t, t) - \varepsilon\rVert^2`
(ε-prediction). Knowing ε is knowing the clean sample, because the closed form
inverts: :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}`.

Offset noise (training only)
----------------------------
Plain Gaussian noise has almost no energy at the lowest frequency, so a model
trained on it barely learns to change an image's overall brightness.
Offset noise adds one random constant per sample and channel:
:math:`\varepsilon_{off} = \varepsilon + \lambda\,\varepsilon_b`,
:math:`\varepsilon_b\sim\mathcal N(0,1)^{B\times C\times1\times1}`, :math:`\lambda = 0.1` in BS-LDM.

Sampling
--------
Both samplers walk a decreasing list of timesteps :math:`t \to t'` and first
estimate :math:`\hat x_0`, then optionally *threshold* it (clamp it to a
plausible range: see :class:`TemporalAdaptiveThreshold`), then step:

* DDPM (ancestral) samples the posterior
  :math:`q(x_{t'}\mid x_t, \hat x_0) = \mathcal N(\tilde\mu, \tilde\beta I)` with
  :math:`\beta = 1-\bar\alpha_t/\bar\alpha_{t'}`,
  :math:`\tilde\beta = \frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}\beta` and

  .. math:: \tilde\mu = \frac{\sqrt{\bar\alpha_{t'}}\,\beta}{1-\bar\alpha_t}\,\hat x_0
            + \frac{\sqrt{1-\beta}\,(1-\bar\alpha_{t'})}{1-\bar\alpha_t}\,x_t .
* DDIM moves deterministically (η = 0) along the same marginals:
  :math:`x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}-\sigma^2}\,\hat\varepsilon + \sigma z`,
  so it can skip steps: 50 DDIM steps instead of 1000 DDPM steps.

* DPM-Solver++(2M) (Lu et al., 2022) solves the same deterministic path as
  DDIM, but to second order: DDIM assumes :math:`\hat x_0` constant over a
  step, DPM-Solver++ extrapolates it linearly from the previous step's
  estimate, so it needs fewer steps for the same accuracy (see
  :func:`dpm_solver_step`).

After thresholding, :math:`\hat\varepsilon` is recomputed from the clamped
:math:`\hat x_0` (as guided-diffusion does), so the two stay consistent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> predicted ε


class NoiseSchedule:
    """The variances β₁..β_T and everything derived from them (kept in float64 on the CPU)."""

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64, device="cpu")
        if betas.ndim != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a 1-D tensor with values in (0, 1)")
        self.betas = betas
        self.alpha_bar = torch.cumprod(1.0 - self.betas, dim=0)
        self._alpha_bar_on: dict[torch.device, torch.Tensor] = {}

    def _alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """:math:`\bar\alpha_t` per sample, shaped to broadcast over ``like`` (a copy per device, made once)."""
        if like.device not in self._alpha_bar_on:
            self._alpha_bar_on[like.device] = self.alpha_bar.to(like.device)
        return self._alpha_bar_on[like.device][t].to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @classmethod
    def cosine(cls, num_steps: int = 1000, offset: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
        """Nichol & Dhariwal's cosine schedule (diffusers' ``squaredcos_cap_v2``)."""

        def alpha_bar(tau: float) -> float:
            return math.cos((tau + offset) / (1 + offset) * math.pi / 2) ** 2

        betas = [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta)
                 for i in range(num_steps)]
        return cls(torch.tensor(betas, dtype=torch.float64, device="cpu"))

    @classmethod
    def linear(cls, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        """The original DDPM schedule, for comparison."""
        return cls(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64, device="cpu"))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r""":math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon`."""
        a = self._alpha_bar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}`."""
        a = self._alpha_bar(t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def predict_eps(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat\varepsilon = (x_t - \sqrt{\bar\alpha_t}\,\hat x_0)/\sqrt{1-\bar\alpha_t}`."""
        a = self._alpha_bar(t, x_t)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def alpha_bar_at(self, t: int) -> float:
        """:math:`\\bar\\alpha_t`, with :math:`\\bar\\alpha_{-1} = 1` (the clean end of the chain)."""
        return 1.0 if t < 0 else float(self.alpha_bar[t])

    def sample_timesteps(self, batch_size: int, device=None, generator: torch.Generator | None = None):
        """Uniform training timesteps, one per sample of the *actual* batch (any final batch size works)."""
        return torch.randint(0, self.num_steps, (batch_size,), device=device, generator=generator)


def offset_noise(shape, strength: float = 0.1, *, generator=None, device=None, dtype=None) -> torch.Tensor:
    r"""Gaussian noise plus a per-sample, per-channel constant: :math:`\varepsilon + \lambda\,\varepsilon_b`.

    ``strength = 0`` gives plain Gaussian noise. Not renormalised: the variance
    is :math:`1+\lambda^2`, as in BS-LDM.
    """
    noise = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if strength:
        batch, channels = shape[0], shape[1]
        bias = torch.randn((batch, channels) + (1,) * (len(shape) - 2), generator=generator, device=device,
                           dtype=dtype)
        noise = noise + strength * bias
    return noise


# --------------------------------------------------------------------------- thresholds


class Threshold:
    """Clamp the predicted clean sample :math:`\\hat x_0` at reverse step ``index`` of ``num_steps``."""

    def __call__(self, x0: torch.Tensor, index: int, num_steps: int) -> torch.Tensor:
        return x0


class NoThreshold(Threshold):
    """Leave :math:`\\hat x_0` as predicted."""


@dataclass(frozen=True)
class StaticThreshold(Threshold):
    """:math:`\\hat x_0 \\leftarrow \\mathrm{clamp}(\\hat x_0, -s, s)` with a fixed ``s``."""

    limit: float = 1.0

    def __call__(self, x0, index, num_steps):
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

    def limit(self, index: int, num_steps: int) -> float:
        scale = (self.reference_steps - 1) / max(num_steps - 1, 1)
        return self.omega + self.rate * index * scale

    def __call__(self, x0, index, num_steps):
        s = self.limit(index, num_steps)
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

    def __call__(self, x0, index, num_steps):
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


# --------------------------------------------------------------------------- sampling


SPACINGS = ("leading", "trailing")


def sampling_timesteps(num_train_steps: int, num_steps: int | None, spacing: str = "leading") -> list[int]:
    r"""``num_steps`` decreasing timesteps of a shorter chain, placed by ``spacing``.

    ``None`` (or ``T``) gives every step from :math:`T-1`, the full DDPM chain,
    whatever the spacing. A shorter chain of :math:`n` steps takes one every
    :math:`T/n`:

    * ``"leading"`` (the default here) ends at 0 and starts at :math:`T - T/n`. With the cosine
      schedule :math:`\bar\alpha_{T-1} \approx 2.5\cdot10^{-9}`, where
      :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}`
      multiplies the network's error by about :math:`2\cdot10^4`; starting lower
      avoids that, at the price of treating pure noise as if it held a little
      signal (:math:`\sqrt{\bar\alpha} = 0.076` at :math:`t = 950`, the start of 20 steps).
    * ``"trailing"`` starts at :math:`T-1`, where pure noise belongs, and ends
      at :math:`T/n - 1` (Lin et al., 2024, "Common diffusion noise schedules and
      sample steps are flawed"). With a perfect denoiser it samples the data's
      mean at any step count, where 5 leading steps miss it
      (``tests/test_diffusion.py``). With a trained one its first :math:`\hat x_0`
      carries the :math:`2\cdot10^4`-fold error, so it needs a threshold on
      :math:`\hat x_0`, as the full 1 000-step chain does. BS-LDM has one (TAT)
      and scores better on trailing timesteps at every step count
      (``benchmarks/results/bs_ldm_samplers_smoke_128.md``), so
      :class:`bs_lib.models.ldm.DiffusionSettings` default to them; without a
      threshold, keep the leading default.
    """
    if spacing not in SPACINGS:
        raise ValueError(f"Unknown timestep spacing {spacing!r}: choose one of {', '.join(SPACINGS)}.")
    if num_steps is None or num_steps >= num_train_steps:
        return list(range(num_train_steps - 1, -1, -1))
    if num_steps < 1:
        raise ValueError("num_steps must be at least 1")
    if spacing == "trailing":
        return [round(num_train_steps - index * num_train_steps / num_steps) - 1 for index in range(num_steps)]
    stride = num_train_steps // num_steps
    return [index * stride for index in range(num_steps)][::-1]


def ddpm_step(x_t, x0, t: int, t_prev: int, schedule: NoiseSchedule, generator=None) -> torch.Tensor:
    """One ancestral step :math:`x_t \\to x_{t'}` through the posterior :math:`q(x_{t'} \\mid x_t, \\hat x_0)`."""
    a_t, a_prev = schedule.alpha_bar_at(t), schedule.alpha_bar_at(t_prev)
    beta = 1 - a_t / a_prev
    mean = (math.sqrt(a_prev) * beta / (1 - a_t)) * x0 + (math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t)) * x_t
    if t_prev < 0:
        return mean
    variance = (1 - a_prev) / (1 - a_t) * beta
    noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
    return mean + math.sqrt(variance) * noise


def ddim_step(x_t, x0, eps, t: int, t_prev: int, schedule: NoiseSchedule, eta: float = 0.0,
              generator=None) -> torch.Tensor:
    """One DDIM step; ``eta = 0`` is deterministic, ``eta = 1`` adds DDPM-sized noise."""
    a_t, a_prev = schedule.alpha_bar_at(t), schedule.alpha_bar_at(t_prev)
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    x_prev = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
    if sigma > 0:
        x_prev = x_prev + sigma * torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
    return x_prev


def half_log_snr(schedule: NoiseSchedule, t: int) -> float:
    r""":math:`\lambda_t = \log(\sqrt{\bar\alpha_t}/\sqrt{1-\bar\alpha_t})`, the time variable of DPM-Solver."""
    a = schedule.alpha_bar_at(t)
    return 0.5 * math.log(a / (1 - a))


def dpm_solver_step(x_t, x0, t: int, t_prev: int, schedule: NoiseSchedule,
                    previous: tuple[torch.Tensor, float] | None = None) -> tuple[torch.Tensor, float]:
    r"""One DPM-Solver++(2M) step :math:`x_t \to x_{t'}`; returns :math:`x_{t'}` and the step length :math:`h`.

    In the half log-SNR :math:`\lambda`, with :math:`\alpha = \sqrt{\bar\alpha}`,
    :math:`\sigma = \sqrt{1-\bar\alpha}` and :math:`h = \lambda_{t'} - \lambda_t`, the
    deterministic path solves exactly to

    .. math:: x_{t'} = \frac{\sigma_{t'}}{\sigma_t}\,x_t - \alpha_{t'}\,(e^{-h} - 1)\,D

    when the clean estimate :math:`D` is constant over the step (that is DDIM).
    The second-order correction extrapolates it from the previous step's
    :math:`\hat x_0^{\,prev}` (step length :math:`h_{prev}`, ratio :math:`r = h_{prev}/h`):
    :math:`D = (1 + \tfrac{1}{2r})\,\hat x_0 - \tfrac{1}{2r}\,\hat x_0^{\,prev}`.
    The first step has no previous estimate and stays first order, and so does
    the step into :math:`t' = 0`: its jump in :math:`\lambda` (1.8 → 5.0 from
    :math:`t = 100` with the cosine schedule) dwarfs the step before, and
    extrapolating that far multiplies the error (diffusers' "lower order
    final"). The end (:math:`t' = -1`, where :math:`\sigma = 0`) returns
    :math:`\hat x_0` itself.
    """
    if t_prev < 0:
        return x0, math.inf
    a_t, a_prev = schedule.alpha_bar_at(t), schedule.alpha_bar_at(t_prev)
    h = half_log_snr(schedule, t_prev) - half_log_snr(schedule, t)
    clean = x0
    if previous is not None and t_prev > 0:
        x0_before, h_before = previous
        r = h_before / h
        clean = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_before
    x_prev = math.sqrt((1 - a_prev) / (1 - a_t)) * x_t - math.sqrt(a_prev) * math.expm1(-h) * clean
    return x_prev, h


SAMPLERS = ("ddpm", "ddim", "dpm++2m")


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
    method: str = "ddim",
    num_steps: int | None = 50,
    spacing: str = "leading",
    eta: float = 0.0,
    threshold: Threshold | None = None,
    generator: torch.Generator | None = None,
    device=None,
    dtype=torch.float32,
    snapshots: int = 0,
    show_progress: bool = True,
) -> SamplingResult:
    """Draw samples by walking from :math:`x_T \\sim \\mathcal N(0, I)` to :math:`x_0`.

    ``method="ddpm"`` with ``num_steps=None`` is the full 1000-step ancestral
    sampler of BS-LDM; ``method="ddim"`` and ``method="dpm++2m"``
    (DPM-Solver++, second order) take any number of steps.
    ``spacing`` places a shorter chain's steps (:func:`sampling_timesteps`).
    ``snapshots`` keeps that many predicted :math:`\\hat x_0` along the way for
    figures of the sampling trajectory. Same ``generator`` seed, same sample.
    """
    from bs_lib.config import progress

    if method not in SAMPLERS:
        raise ValueError(f"Unknown sampler {method!r}: choose one of {', '.join(SAMPLERS)}.")
    threshold = threshold or NoThreshold()
    timesteps = sampling_timesteps(schedule.num_steps, num_steps, spacing)
    keep = set(torch.linspace(0, len(timesteps) - 1, snapshots).round().long().tolist()) if snapshots else set()
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    trajectory = []
    previous = None  # DPM-Solver++: the last step's x̂₀ and step length
    quiet = {} if show_progress else {"disable": True}
    for index in progress(range(len(timesteps)), desc=f"{method} sampling", leave=False, **quiet):
        t = timesteps[index]
        t_prev = timesteps[index + 1] if index + 1 < len(timesteps) else -1
        t_batch = torch.full((shape[0],), t, device=x.device, dtype=torch.long)
        eps = denoiser(x, t_batch).to(dtype)
        x0 = threshold(schedule.predict_x0(x, eps, t_batch), index, len(timesteps))
        if index in keep:
            trajectory.append((t, x0.clone()))
        if method == "ddpm":
            x = ddpm_step(x, x0, t, t_prev, schedule, generator)
        elif method == "dpm++2m":
            x, h = dpm_solver_step(x, x0, t, t_prev, schedule, previous)
            previous = (x0, h)
        else:
            eps = schedule.predict_eps(x, x0, t_batch)
            x = ddim_step(x, x0, eps, t, t_prev, schedule, eta, generator)
    return SamplingResult(x, trajectory)
