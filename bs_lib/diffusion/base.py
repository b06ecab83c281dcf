r"""What a sampler is: the timesteps it visits and one step between two of them.

Every sampler of this package walks a decreasing list of timesteps
:math:`t \to t'` (its :meth:`Sampler.timesteps`), and at each one the loop
(:func:`bs_lib.diffusion.sample`) does the same three things: ask the network
for :math:`\hat\varepsilon`, turn it into the clean estimate
:math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}`,
and threshold that (:mod:`bs_lib.diffusion.thresholds`). What differs from one
sampler to the next is only how it moves from :math:`x_t` to :math:`x_{t'}`
given :math:`\hat x_0`: its :meth:`Sampler.step`. A sampler that needs memory
across steps (DPM-Solver++ keeps the previous :math:`\hat x_0`) holds it on
itself and forgets it in :meth:`Sampler.reset`, which the loop calls before
every sample.

A sampler is a subclass that names itself, ``class DDIM(Sampler, name="ddim")``,
in its own module of this package; defining it registers it in
:data:`SAMPLERS`, and the package imports every module in its folder, so the
loop, :class:`bs_lib.models.ldm.DiffusionSettings` and the command line's
``--sampler`` know it without a list to edit.

Where a shorter chain's steps lie
---------------------------------
A chain of ``sampling_steps`` :math:`n < T` steps visits one timestep every
:math:`T/n`; ``spacing`` says which ones (:func:`sampling_timesteps`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch

from bs_lib.diffusion.schedule import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> predicted ε

SPACINGS = ("leading", "trailing")


def sampling_timesteps(train_timesteps: int, sampling_steps: int | None, spacing: str = "leading") -> list[int]:
    r"""``sampling_steps`` decreasing timesteps of a shorter chain, placed by ``spacing``.

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
    if sampling_steps is None or sampling_steps >= train_timesteps:
        return list(range(train_timesteps - 1, -1, -1))
    if sampling_steps < 1:
        raise ValueError("sampling_steps must be at least 1")
    if spacing == "trailing":
        return [round(train_timesteps - index * train_timesteps / sampling_steps) - 1
                for index in range(sampling_steps)]
    every = train_timesteps // sampling_steps
    return [index * every for index in range(sampling_steps)][::-1]


#: Every sampler by name, filled as each sampler module of this package is imported.
SAMPLERS: dict[str, type[Sampler]] = {}


class Sampler(ABC):
    r"""One way down the chain: the timesteps it visits and the step :math:`x_t \to x_{t'}` given :math:`\hat x_0`.

    ``sampling_steps`` (``None``: all :math:`T`) and ``spacing`` place the
    timesteps; ``eta`` is the share of fresh noise per step for a sampler that
    has that choice (DDIM's :math:`\eta`; the others ignore it); ``generator``
    draws any noise a step adds, so the same seed gives the same sample.
    """

    name: ClassVar[str]

    def __init_subclass__(cls, name: str | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            if name in SAMPLERS:
                raise ValueError(f"two samplers are named {name!r}: {SAMPLERS[name].__qualname__} and "
                                 f"{cls.__qualname__}")
            cls.name = name
            SAMPLERS[name] = cls

    def __init__(self, schedule: NoiseSchedule, sampling_steps: int | None = 50, spacing: str = "leading", *,
                 eta: float = 0.0, generator: torch.Generator | None = None) -> None:
        self.schedule = schedule
        self.sampling_steps = sampling_steps
        self.spacing = spacing
        self.eta = eta
        self.generator = generator

    def timesteps(self) -> list[int]:
        """The decreasing timesteps this sampler visits; after the last one it steps to :math:`t' = -1`, clean."""
        return sampling_timesteps(self.schedule.train_timesteps, self.sampling_steps, self.spacing)

    def reset(self) -> None:
        """Forget whatever the previous sample left behind (nothing, unless the sampler keeps state)."""
        return None

    @abstractmethod
    def step(self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        r""":math:`x_{t'}` from :math:`x_t` and the (thresholded) clean estimate :math:`\hat x_0`."""

    def noise_like(self, x: torch.Tensor) -> torch.Tensor:
        """Fresh :math:`z \\sim \\mathcal N(0, I)` shaped like ``x``, from the sampler's generator."""
        return torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)


def make_sampler(name: str, schedule: NoiseSchedule, sampling_steps: int | None = 50, spacing: str = "leading", *,
                 eta: float = 0.0, generator: torch.Generator | None = None) -> Sampler:
    """The sampler registered as ``name``, ready to walk ``schedule``."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}.")
    return SAMPLERS[name](schedule, sampling_steps, spacing, eta=eta, generator=generator)
