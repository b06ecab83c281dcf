r"""Domain randomisation: train on phantoms seen through many imaging chains, so a real one is just another.

A network trained on the phantom learns the phantom's look as much as its
anatomy: one grey-level curve, one sharpness, one noise level, one field of
view. A real radiograph differs in all of them (``bs_lib.realism`` measures
how much), and the network, never having seen a difference of that kind,
answers with artefacts. Domain randomisation (Tobin et al., 2017) draws the
imaging chain anew for every training pair, so that what stays constant
across the draws — the bones — is the only thing worth learning.

One draw is a chain of seven parts, each optional (:class:`Randomisation`).
Two change the anatomy before it is imaged:

``bone_contrast``
    the bone layer :math:`b = c - s` scaled by a gain
    :math:`c \mapsto s + g\,(c - s)` (bone density, tube voltage: the
    phantom's ribs are fainter than real ones, ``bs_lib.realism``'s
    "bone mean");
``texture``
    a random band-pass field (lung parenchyma, vessels) added to both images
    inside the body: it is soft tissue, so it must stay in the target
    ("lung texture" in ``bs_lib.realism``; a network that has seen it learns
    to leave such detail alone).

Five image it:

``geometry``
    zoom, rotation and shift (patient size and position, field of view);
``sharpness``
    a Gaussian blur of σ pixels (the detector's and the display's MTF);
``processing``
    unsharp masking, :math:`x \mapsto x + k\,(x - G_r * x)` (the edge
    enhancement of every clinical workstation);
``grey curve``
    a window and a gamma, :math:`x \mapsto \mathrm{clip}\big((x - l)/(h - l)\big)^{\gamma}`
    (the look-up table);
``noise``
    white noise of standard deviation σₙ on the radiograph only (the target
    is the noise-free soft tissue).

The radiograph and its soft-tissue target go through the *same* chain, as
the two images of a dual-energy pair do on a real system. The bone layer of
the new pair is therefore the old one seen through that chain, and a network
learns to take out bone *in whatever look it is given*, leaving the rest
alone. Bone images and masks are dropped where the chain changes intensities
non-linearly (the masks follow the geometry).

Three chains have names (:data:`CHAINS`): ``default`` (``randomise: true``);
``faint-bone``, every part with the bone gain drawn from 0.2–1.0 instead of
0.7–1.4: radiographs that show little bone, as at high tube voltage or after
strong grey-level processing; and ``wide-bone``, 0.2–1.4, the two ranges
together. On the phantom a network trained through any of them removes the
bone an image shows, from 1.4 times the phantom's down to a fifth. On the real
development pairs none does: each removes part of the bone and at least as
much that does not line up with it (often ribs of another profile and extent
than the real ones), and most of that stays when the bone weakens
(``benchmarks/domain_randomisation.py --tracking``). So where a radiograph
shows little bone, that is most of what a model removes (the
weak-bone stress test of ``benchmarks/domain_randomisation.py`` and
``benchmarks/do_no_harm.py``). Fainter training bone shrinks both parts:
``faint-bone`` trades part of the gain on strongly boned images for doing
little harm on faint ones, and ``wide-bone`` does no better than it on either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

PARTS = ("bone_contrast", "texture", "geometry", "sharpness", "processing", "grey_curve", "noise")


@dataclass(frozen=True)
class Randomisation:
    """Ranges of one imaging chain; a part switched off (``False``) is the identity.

    ``bone_gain``: the bone layer's gain; ``texture_amplitude``, ``texture_scale_px``: the
    parenchymal field's standard deviation and grain (σ of its band, in pixels of a 256² image);
    ``zoom``, ``rotation_deg``, ``shift``: geometry (shift as a fraction of the side);
    ``blur_px``: σ of the blur, in pixels of a 256² image (scaled with the size);
    ``unsharp_gain``, ``unsharp_radius_px``: edge enhancement (radius scaled like ``blur_px``);
    ``window_low``, ``window_high``, ``gamma``: the grey curve;
    ``noise_sigma``: σ of the white noise.
    """

    bone_contrast: bool = True
    texture: bool = True
    geometry: bool = True
    sharpness: bool = True
    processing: bool = True
    grey_curve: bool = True
    noise: bool = True
    bone_gain: tuple[float, float] = (0.7, 1.4)
    texture_amplitude: tuple[float, float] = (0.0, 0.04)
    texture_scale_px: tuple[float, float] = (1.0, 3.0)
    zoom: tuple[float, float] = (0.9, 1.25)
    rotation_deg: float = 6.0
    shift: float = 0.06
    blur_px: tuple[float, float] = (0.0, 1.5)
    unsharp_gain: tuple[float, float] = (0.0, 1.5)
    unsharp_radius_px: tuple[float, float] = (4.0, 24.0)
    window_low: tuple[float, float] = (-0.15, 0.15)
    window_high: tuple[float, float] = (0.8, 1.15)
    gamma: tuple[float, float] = (0.6, 1.6)
    noise_sigma: tuple[float, float] = (0.0, 0.015)

    def without(self, *parts: str) -> Randomisation:
        """The same chain with ``parts`` switched off (for an ablation)."""
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"Unknown part(s) {sorted(unknown)}: choose among {', '.join(PARTS)}.")
        return replace(self, **{part: False for part in parts})

    @classmethod
    def from_dict(cls, values: dict | None) -> Randomisation:
        """From a config's ``data_args.randomise`` mapping (lists become tuples); unknown keys are an error."""
        values = dict(values or {})
        known = {item.name for item in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"randomise: unknown key(s) {sorted(unknown)}; valid keys are {', '.join(sorted(known))}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


#: Chains a config's ``data_args.randomise`` (and ``benchmark --randomise``) can name instead of giving ranges.
CHAINS = {"default": Randomisation(), "faint-bone": Randomisation(bone_gain=(0.2, 1.0)),
          "wide-bone": Randomisation(bone_gain=(0.2, 1.4))}


def chain_named(name: str) -> Randomisation:
    """The chain of :data:`CHAINS` called ``name``; another name is a :class:`ValueError` that lists them."""
    if name not in CHAINS:
        raise ValueError(f"randomise: unknown chain {name!r}; named chains are {', '.join(CHAINS)} "
                         f"(or give true, false or a mapping of ranges).")
    return CHAINS[name]


def chain_words(randomise: bool | str) -> str:
    """How a run's ``randomise`` setting reads in a report: ``"random imaging chains (`faint-bone`, ...)"``, or ""."""
    if not randomise:
        return ""
    named = f" (`{randomise}`, `bs_lib.augment.CHAINS`)" if isinstance(randomise, str) else ""
    return f"random imaging chains{named}"


def _uniform(generator: torch.Generator, bounds) -> float:
    low, high = bounds
    return low + (high - low) * float(torch.rand((), generator=generator))


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) images, reflecting at the borders."""
    if sigma < 0.3:
        return images
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-offsets.square() / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(images.device)
    radius = min(radius, images.shape[-1] - 1, images.shape[-2] - 1)
    kernel = kernel[len(kernel) // 2 - radius: len(kernel) // 2 + radius + 1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    return F.conv2d(F.conv2d(padded, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))


def _geometry(images: torch.Tensor, chain: Randomisation, generator: torch.Generator) -> torch.Tensor:
    """One zoom, rotation and shift for all (N, C, H, W) images, bilinear, the border repeated."""
    zoom = _uniform(generator, chain.zoom)
    angle = math.radians(_uniform(generator, (-chain.rotation_deg, chain.rotation_deg)))
    dx, dy = (_uniform(generator, (-chain.shift, chain.shift)) * 2 for _ in range(2))
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    theta = torch.tensor([[cos, -sin, dx], [sin, cos, dy]], dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta.expand(len(images), 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def apply_bone_gain(cxr, soft, gain: float):
    r"""The radiograph with its bone layer scaled: :math:`s + g\,(c - s)` (tensors or arrays; ``gain`` 1: unchanged)."""
    return soft + gain * (cxr - soft)


def weaken_bone(pairs, gain: float) -> list[dict]:
    """Each pair (``cxr``, ``soft``, ...) with its bone layer scaled by ``gain`` in (0, 1] (1: unchanged).

    A stress test for radiographs that show less bone than the pairs at hand
    (another scanner, tube voltage or grey-level processing): a linear mix of
    grey levels, not physics.
    """
    if not 0 < gain <= 1:
        raise ValueError(f"--bone-gain must lie in (0, 1] (a weaker bone layer), got {gain}.")
    return [{**pair, "cxr": apply_bone_gain(pair["cxr"], pair["soft"], gain)} for pair in pairs]


def anatomy(cxr: torch.Tensor, soft: torch.Tensor, chain: Randomisation,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The pair with its bone layer rescaled and parenchymal texture added to both images (inside the body)."""
    if chain.bone_contrast:
        cxr = apply_bone_gain(cxr, soft, _uniform(generator, chain.bone_gain))
    if chain.texture:
        scale = cxr.shape[-1] / 256
        grain = _uniform(generator, chain.texture_scale_px) * scale
        white = torch.randn(soft.shape, generator=generator, dtype=soft.dtype)
        band = _gaussian_blur(white[None], grain)[0] - _gaussian_blur(white[None], 4 * grain)[0]
        field = _uniform(generator, chain.texture_amplitude) * band / band.std().clamp_min(1e-8)
        body = (soft > 0.05).to(soft.dtype)
        cxr, soft = cxr + field * body, soft + field * body
    return cxr.clamp(0, 1), soft.clamp(0, 1)


def imaging_chain(images: torch.Tensor, chain: Randomisation, generator: torch.Generator) -> torch.Tensor:
    """One draw of the chain applied alike to every image of (N, 1, H, W) (the radiograph and its target).

    Noise is left out here: it belongs to the radiograph alone (:func:`randomise`).
    """
    scale = images.shape[-1] / 256
    if chain.geometry:
        images = _geometry(images, chain, generator)
    if chain.sharpness:
        images = _gaussian_blur(images, _uniform(generator, chain.blur_px) * scale)
    if chain.processing:
        gain, radius = _uniform(generator, chain.unsharp_gain), _uniform(generator, chain.unsharp_radius_px)
        images = images + gain * (images - _gaussian_blur(images, radius * scale))
    if chain.grey_curve:
        low, high = _uniform(generator, chain.window_low), _uniform(generator, chain.window_high)
        gamma = math.exp(_uniform(generator, tuple(math.log(g) for g in chain.gamma)))
        images = ((images - low) / (high - low)).clamp(0, 1) ** gamma
    return images.clamp(0, 1)


def randomise(sample: dict, chain: Randomisation, generator: torch.Generator) -> dict:
    """A training pair seen through one random draw of ``chain``; ``sample`` is left unchanged."""
    cxr, soft = anatomy(sample["cxr"], sample["soft"], chain, generator)
    cxr, soft = imaging_chain(torch.stack([cxr, soft]), chain, generator)  # (2, 1, H, W): one chain for both
    if chain.noise:
        sigma = _uniform(generator, chain.noise_sigma)
        cxr = (cxr + sigma * torch.randn(cxr.shape, generator=generator)).clamp(0, 1)
    out = {key: value for key, value in sample.items() if key not in ("bone", "masks")}
    out["cxr"], out["soft"] = cxr, soft
    return out


class Randomised(torch.utils.data.Dataset):
    """A paired dataset whose every sample is seen through a fresh draw of a :class:`Randomisation`.

    The draws come from a generator seeded with ``seed`` (and, in a data-loader
    worker, with the worker's number, so that workers do not repeat each
    other's draws). A run is therefore reproducible from its start; a resumed
    run draws fresh chains, alike in distribution but not bit for bit.
    """

    def __init__(self, pairs, chain: Randomisation, seed: int = 0):
        self.pairs, self.chain, self.seed = pairs, chain, seed
        self._generator, self._worker = None, None

    def __len__(self) -> int:
        return len(self.pairs)

    def _draws(self) -> torch.Generator:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else -1
        if self._generator is None or worker != self._worker:
            self._generator = torch.Generator().manual_seed(self.seed * 1_000_003 + worker + 1)
            self._worker = worker
        return self._generator

    def __getitem__(self, index: int) -> dict:
        return randomise(self.pairs[index], self.chain, self._draws())


def randomised(pairs, settings: bool | str | dict | Randomisation | None, seed: int = 0):
    """``pairs`` seen through the chain a config's ``data_args.randomise`` describes; unchanged when it is off.

    ``settings``: ``True`` (every part, default ranges), a name of
    :data:`CHAINS` (``faint-bone``), a mapping of :class:`Randomisation`
    fields (e.g. ``{noise: false, gamma: [0.8, 1.25]}``), or ``False`` /
    ``None`` (no randomisation).
    """
    if settings is None or settings is False:
        return pairs
    if settings is True:
        chain = Randomisation()
    elif isinstance(settings, str):
        chain = chain_named(settings)
    elif isinstance(settings, Randomisation):
        chain = settings
    elif isinstance(settings, dict):
        chain = Randomisation.from_dict(settings)
    else:
        raise ValueError(f"randomise: expected true, false, a chain's name or a mapping of ranges, got {settings!r}.")
    return Randomised(pairs, chain, seed=seed)
