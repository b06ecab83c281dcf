r"""The forward process, its noise schedule, and the noise BS-LDM trains with.

The forward process
-------------------
A clean sample :math:`x_0` is destroyed in :math:`T` small Gaussian steps,
:math:`q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I)`.
With :math:`\alpha_t = 1-\beta_t` and :math:`\bar\alpha_t = \prod_{s\le t}\alpha_s`
any step has a closed form, so training never simulates the chain:

.. math:: x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\qquad \varepsilon\sim\mathcal N(0, I).

BS-LDM uses the cosine schedule of Nichol & Dhariwal with :math:`T = 1000`
*training timesteps* (``train_timesteps``; a sampler visits ``sampling_steps``
of them, see :mod:`bs_lib.diffusion.base`):
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
"""

from __future__ import annotations

import math

import torch


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
    def train_timesteps(self) -> int:
        """:math:`T`, the length of the forward chain the network was trained on (not a sampler's step count)."""
        return len(self.betas)

    @classmethod
    def cosine(cls, train_timesteps: int = 1000, offset: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
        """Nichol & Dhariwal's cosine schedule (diffusers' ``squaredcos_cap_v2``)."""

        def alpha_bar(tau: float) -> float:
            return math.cos((tau + offset) / (1 + offset) * math.pi / 2) ** 2

        betas = [min(1 - alpha_bar((i + 1) / train_timesteps) / alpha_bar(i / train_timesteps), max_beta)
                 for i in range(train_timesteps)]
        return cls(torch.tensor(betas, dtype=torch.float64, device="cpu"))

    @classmethod
    def linear(cls, train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        """The original DDPM schedule, for comparison."""
        return cls(torch.linspace(beta_start, beta_end, train_timesteps, dtype=torch.float64, device="cpu"))

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
        return torch.randint(0, self.train_timesteps, (batch_size,), device=device, generator=generator)


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
