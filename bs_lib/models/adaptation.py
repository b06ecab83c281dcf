r"""The domain-adaptation family: learn on paired synthetic data, work on unpaired real radiographs.

Dual-energy pairs are rare; synthetic pairs (the course phantom, radiographs
rendered from CT) are free. A network trained only on synthetic pairs meets a
*domain shift* on real radiographs: other textures, noise, contrast and
anatomy, and its quality drops. Real radiographs *without* targets are
plentiful, though. Domain adaptation uses them to close the gap.

Domain-adversarial training (Ganin & Lempitsky, 2015)
-----------------------------------------------------
The suppression network's encoder produces features :math:`f = E(x)`. A
*domain classifier* :math:`C` tries to tell from :math:`f` whether :math:`x`
came from the source (synthetic, label 0) or the target domain (real, label
1). The encoder is trained to make that impossible, so that what the decoder
learned from synthetic pairs applies to real images too:

.. math::
    \min_{E, D}\ \mathcal L_{task}\big(D(E(x_s)), s\big)
    \;-\; \lambda\,\mathcal L_{dom}\big(C(E(\cdot))\big),
    \qquad
    \min_C\ \mathcal L_{dom}\big(C(E(\cdot))\big),

with :math:`\mathcal L_{dom}` the binary cross-entropy of the domain labels
over source *and* target images. The *gradient reversal layer* turns this
min-max into one minimisation: it is the identity in the forward pass and
multiplies the gradient by :math:`-\lambda` in the backward pass,

.. math:: R_\lambda(f) = f, \qquad \frac{\partial R_\lambda}{\partial f} = -\lambda I,

so minimising :math:`\mathcal L_{task} + w\,\mathcal L_{dom}(C(R_\lambda(f)))`
trains :math:`C` to classify and :math:`E` to confuse it, in one backward
pass and one optimiser. :math:`\lambda` ramps up as in the paper,
:math:`\lambda_p = \frac{2}{1+e^{-10p}} - 1` for training progress
:math:`p \in [0,1]`, so the classifier learns something before the encoder
starts to fight it.

Here :math:`E` is the encoder of a U-Net (:func:`bs_lib.models.cnn.build_unet`)
and :math:`f` its bottleneck (``down_4``). The skip connections bypass the
bottleneck, so alignment there is partial: a known limit of feature-level
adaptation for dense prediction (image-level translation, CycleGAN-style, is
the alternative family). BatchNorm statistics are computed over source and
target images together, which adds a second, simpler adaptation (AdaBN).

Image-level adaptation: restyle the source (``restyle`` in the data arguments)
-------------------------------------------------------------------------------
The other family aligns *images* instead of features (Bousmalis et al., 2017;
CyCADA, Hoffman et al., 2018 learn the translation with a GAN). Here the
translation is measured rather than learned, from the unlabelled target
radiographs alone (:class:`TargetStyle`):

* a **grey-level curve** :math:`T`: quantile matching maps the source
  radiographs' intensity distribution onto the target's,
  :math:`T = F_t^{-1}\circ F_s` (a monotone curve, the shape of a detector's
  or a workstation's look-up table);
* the **noise** the target has and the source lacks: the robust standard
  deviation of a high-pass residual, :math:`\sigma_t`, against the source's
  after :math:`T`; the difference of variances is added as white noise.

A source pair :math:`(x, s)` becomes :math:`(T(x) + n,\ T(s))`: the same
anatomy, labels still exact, seen the target's way. Training on both looks
teaches the network the target's grey levels and noise without a single
target label, and keeps the source's.

Where the target images come from (``target`` in the data arguments)
--------------------------------------------------------------------
* ``real``: the radiographs of the real sample pairs
  (:func:`bs_lib.config.real_pairs_dir`), used *without* their targets for
  training; their targets only measure the gap. The pairs are few, so
  training and measuring use the same radiographs (transductive adaptation):
  a demonstration, not a benchmark.
* ``shifted-phantom``: a stand-in when no real radiographs are present: other
  phantom chests seen through a different "detector" (:class:`DetectorShift`:
  another contrast curve, more blur, quantum noise). Clearly labelled as
  synthetic everywhere it is reported.
* ``auto``: ``real`` when present, else ``shifted-phantom``.
* a folder: the user's own radiographs, unlabelled
  (:class:`bs_lib.datasets.RadiographFolder`): adapt to the images you will
  suppress. Nothing on them can be measured, since they have no targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bs_lib.engine.config import TrainConfig
from bs_lib.engine.objective import register_method
from bs_lib.models.cnn import build_unet
from bs_lib.models.gan import zero_last_layer
from bs_lib.models.supervised import SupervisedObjective, check_radiographs

TARGET_DOMAINS = ("auto", "real", "shifted-phantom")


# --------------------------------------------------------------------------- gradient reversal


class GradientReversal(torch.autograd.Function):
    r"""Identity forward, gradient times :math:`-\lambda` backward."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.strength * grad, None


def reverse_gradient(features: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    r""":math:`R_\lambda(f)`: pass ``features`` on unchanged, flip (and scale) their gradient."""
    return GradientReversal.apply(features, float(strength))


def reversal_strength(progress: float, gamma: float = 10.0) -> float:
    r"""Ganin's ramp :math:`\lambda_p = 2/(1 + e^{-\gamma p}) - 1`: 0 at the start, → 1 at the end."""
    progress = min(max(progress, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class DomainClassifier(nn.Module):
    """Features (N, C, h, w) → one logit per image: two convolutions, global average, linear."""

    def __init__(self, in_channels: int, width: int = 32):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(1)


# --------------------------------------------------------------------------- the objective


class DomainAdversarial(SupervisedObjective):
    r"""A residual U-Net trained on source pairs, its bottleneck aligned across domains.

    ``batch["cxr"]``/``batch["soft"]`` are source pairs, ``batch["target_cxr"]``
    unpaired target radiographs. ``domain_weight`` = 0 trains the same network
    on the source alone (the "before adaptation" baseline). One parameter group
    ``model`` holds the U-Net and the domain classifier: the gradient reversal
    makes the two opponents share one minimisation.
    """

    def __init__(self, width: int = 8, loss: str = "l1", domain_weight: float = 0.1, total_steps: int = 1000,
                 feature_layer: str = "down_4", classifier_width: int = 32, ramp_gamma: float = 10.0):
        network = zero_last_layer(build_unet(width))  # the bone estimate starts at zero: the identity baseline
        super().__init__(network, loss=loss, residual=True)
        if domain_weight < 0:
            raise ValueError(f"domain_weight must be 0 or more, got {domain_weight}.")
        layers = dict(network.named_children())
        if feature_layer not in layers:
            raise ValueError(f"feature_layer {feature_layer!r} is not a layer of the U-Net; choose one of "
                             f"{', '.join(layers)}.")
        self.domain_weight, self.total_steps, self.ramp_gamma = domain_weight, max(1, total_steps), ramp_gamma
        self.feature_layer = feature_layer
        self._captured: list[torch.Tensor] = []
        layers[feature_layer].register_forward_hook(lambda module, inputs, output: self._captured.append(output))
        channels = self._feature_channels()
        self.classifier = DomainClassifier(channels, classifier_width)

    def _feature_channels(self) -> int:
        with torch.no_grad():
            was_training = self.network.training
            self.network.eval()
            _, features = self.suppress_with_features(torch.zeros(1, 1, self.size_multiple, self.size_multiple))
            self.network.train(was_training)
        return features.shape[1]

    def suppress_with_features(self, cxr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft-tissue estimate (unclipped) and the encoder features the classifier sees."""
        self._captured.clear()
        estimate = self.soft_tissue(self.network(cxr), cxr)
        features = self._captured.pop()
        self._captured.clear()
        return estimate, features

    def losses(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        source, soft = batch["cxr"], batch["soft"]
        check_radiographs(source, self.size_multiple, "DomainAdversarial")
        if self.domain_weight == 0:
            estimate, _ = self.suppress_with_features(source)
            task = self.reconstruction_loss(estimate, soft)
            return {"model": task, "log/task": task.detach()}
        if "target_cxr" not in batch:
            raise KeyError("DomainAdversarial needs unpaired target radiographs in batch['target_cxr']; train with "
                           "data 'bs_lib.models.adaptation:adaptation_dataset', or set domain_weight: 0.")
        target = batch["target_cxr"]
        estimate, features = self.suppress_with_features(torch.cat([source, target]))
        task = self.reconstruction_loss(estimate[: len(source)], soft)
        strength = reversal_strength(step / self.total_steps, self.ramp_gamma)
        logits = self.classifier(reverse_gradient(features, strength))
        labels = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).to(logits)
        domain = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).float().mean()
        return {"model": task + self.domain_weight * domain, "log/task": task.detach(),
                "log/domain": domain.detach(), "log/domain_accuracy": accuracy.detach(),
                "log/reversal": torch.tensor(strength)}


@register_method("domain_adaptation", family="domain adaptation", label="DANN U-Net")
def build_domain_adaptation(config: TrainConfig) -> DomainAdversarial:
    """``method_args``: ``width``, ``loss``, ``domain_weight`` (0: source only), ``feature_layer``,
    ``classifier_width``, ``ramp_gamma``. The ramp of λ spans ``config.steps``."""
    args = dict(config.method_args)
    allowed = {"width", "loss", "domain_weight", "feature_layer", "classifier_width", "ramp_gamma"}
    unknown = set(args) - allowed
    if unknown:
        raise ValueError(f"domain_adaptation: unknown method_args {sorted(unknown)}; valid keys are "
                         f"{', '.join(sorted(allowed))}.")
    return DomainAdversarial(total_steps=config.steps, **args)


# --------------------------------------------------------------------------- the two domains


@dataclass(frozen=True)
class DetectorShift:
    r"""A second, differently rendered phantom domain: the same kind of chest through another detector.

    Radiograph: :math:`x' = \mathrm{blur}_\sigma(x)^{\gamma} + n`, with
    :math:`n \sim \mathcal N(0, \text{noise}^2)` seeded per image; target:
    :math:`s' = \mathrm{blur}_\sigma(s)^{\gamma}` (the ideal, noise-free image
    of that detector). ``sigma`` is in pixels of a 64² image and scales with the size.
    """

    gamma: float = 0.75
    sigma: float = 0.8
    noise: float = 0.03

    def _render(self, image: torch.Tensor) -> torch.Tensor:
        sigma = self.sigma * image.shape[-1] / 64
        if sigma > 0:
            radius = max(1, math.ceil(3 * sigma))
            offsets = torch.arange(-radius, radius + 1, dtype=image.dtype)
            kernel = torch.exp(-offsets.square() / (2 * sigma**2))
            kernel = kernel / kernel.sum()
            padded = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")
            image = F.conv2d(F.conv2d(padded, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))[0]
        return image.clamp(0, 1) ** self.gamma

    def radiograph(self, cxr: torch.Tensor, seed: int) -> torch.Tensor:
        noise = torch.randn(cxr.shape, generator=torch.Generator().manual_seed(seed)) * self.noise
        return (self._render(cxr) + noise).clamp(0, 1)

    def target(self, soft: torch.Tensor) -> torch.Tensor:
        return self._render(soft)


class ShiftedPhantom(torch.utils.data.Dataset):
    """Phantom pairs seen through a :class:`DetectorShift` (other chests: another seed)."""

    domain = "shifted phantom (synthetic stand-in for real radiographs)"

    def __init__(self, split: str, size: int, num_images: int | None, seed: int, shift: DetectorShift):
        from bs_lib.datasets import get_dataset

        self.pairs = get_dataset("phantom", split=split, size=size, num_images=num_images, seed=seed + 1000)
        self.shift = shift

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.pairs[index])
        sample["cxr"] = self.shift.radiograph(sample["cxr"], seed=index)
        sample["soft"] = self.shift.target(sample["soft"])
        sample.pop("bone", None)
        return sample


class RealRadiographs(torch.utils.data.Dataset):
    """The real sample pairs, resized once and kept in memory (there are six)."""

    domain = "real radiographs (SZCH sample pairs)"

    def __init__(self, size: int):
        from bs_lib.datasets import get_dataset

        pairs = get_dataset("real-pairs", size=size)
        self.samples = [{key: pairs[i][key] for key in ("cxr", "soft", "id")} for i in range(len(pairs))]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return dict(self.samples[index])


def resolve_target(target: str) -> str:
    """``auto`` → ``real`` when the real sample pairs are on this machine, else ``shifted-phantom``.

    A dataset that is not on this machine gives way to ``shifted-phantom``, saying
    so once with how to get it (:func:`bs_lib.datasets.usable_dataset`), so a GPU
    profile whose config adapts to a real dataset runs before any download.
    """
    from pathlib import Path

    from bs_lib.datasets import DATASETS, local_copy, usable_dataset

    if target not in TARGET_DOMAINS and target not in DATASETS:
        if Path(target).expanduser().is_dir():
            return target
        raise ValueError(f"Unknown target domain {target!r}: choose one of {', '.join(TARGET_DOMAINS)}, a "
                         f"dataset name ({', '.join(DATASETS)}) or an existing folder of radiographs.")
    if target == "auto":
        return "real" if local_copy("real-pairs") is not None else "shifted-phantom"
    if target in DATASETS and target != "phantom" and usable_dataset(target) == "phantom":
        return "shifted-phantom"
    return target


def target_domain_pairs(target: str = "auto", split: str = "test", size: int = 64, num_images: int | None = None,
                        seed: int = 0, shift: dict | None = None) -> torch.utils.data.Dataset:
    """Images of the target domain: labelled pairs to measure the gap (real pairs: all six, whatever the split).

    A dataset name (``szch-x-rays``, ``jsrt``, ...) uses that dataset's split;
    datasets without targets (``jsrt``) and folders of radiographs (every
    image, whatever the split) can be adapted to but not measured on.
    """
    resolved = resolve_target(target)
    if resolved == "real":
        return RealRadiographs(size)
    if resolved == "shifted-phantom":
        return ShiftedPhantom(split, size, num_images, seed, DetectorShift(**(shift or {})))
    from bs_lib.datasets import DATASETS, RadiographFolder, get_dataset

    if resolved not in DATASETS:
        return RadiographFolder(resolved, size=size)

    return get_dataset(resolved, split=split, size=size, num_images=num_images, seed=seed)


class WithTargetRadiographs(torch.utils.data.Dataset):
    """Source pairs, each with an unpaired target radiograph ``target_cxr`` (target index = source index mod n)."""

    def __init__(self, source, target):
        if len(target) == 0:
            raise ValueError("The target domain has no images to adapt to.")
        self.source, self.target = source, target
        self.domain = getattr(target, "domain", "target")

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.source[index])
        sample["target_cxr"] = self.target[index % len(self.target)]["cxr"]
        return sample


def adaptation_dataset(split: str = "train", size: int = 64, source: str = "phantom", target: str = "auto",
                       num_images: int | None = None, seed: int = 0, shift: dict | None = None,
                       restyle: bool = False):
    """Training data for :class:`DomainAdversarial` (name it as ``data: bs_lib.models.adaptation:adaptation_dataset``).

    Every split yields *source* pairs (what the benchmark measures) with an
    unpaired target radiograph attached; the target domain's own pairs come
    from :func:`target_domain_pairs`. ``restyle=True`` adds a copy of every
    training pair in the target's style (:class:`TargetStyle`, measured on the
    target's radiographs only); validation and test splits stay as they are.
    """
    from bs_lib.datasets import get_dataset

    pairs = get_dataset(source, split=split, size=size, num_images=num_images, seed=seed)
    target_images = target_domain_pairs(target, split, size, num_images, seed, shift)
    if restyle and split == "train":
        style = TargetStyle.measure(radiographs(pairs), radiographs(target_images))
        pairs = torch.utils.data.ConcatDataset([pairs, Restyled(pairs, style, seed)])
    return WithTargetRadiographs(pairs, target_images)


# --------------------------------------------------------------------------- image-level adaptation


def radiographs(dataset, limit: int = 64) -> torch.Tensor:
    """The first ``limit`` radiographs of a dataset, stacked (N, 1, H, W); targets are never read."""
    return torch.stack([dataset[i]["cxr"] for i in range(min(limit, len(dataset)))])


def noise_level(images: torch.Tensor) -> float:
    r"""Robust standard deviation of white noise in (N, 1, H, W) images.

    The 4-neighbour Laplacian, scaled by :math:`1/\sqrt{20}`, keeps white
    noise's standard deviation and removes smooth anatomy; the median absolute
    deviation (× 1.4826) ignores the edges that remain.
    """
    kernel = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]]) / math.sqrt(20.0)
    residual = F.conv2d(images.float(), kernel.view(1, 1, 3, 3))
    return float(1.4826 * (residual - residual.median()).abs().median())


def interpolate(values: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``fp(xp)`` evaluated at ``values`` (``xp`` increasing), constant beyond its ends."""
    index = torch.searchsorted(xp, values.clamp(xp[0], xp[-1]).contiguous()).clamp(1, len(xp) - 1)
    left, right = xp[index - 1], xp[index]
    weight = ((values - left) / (right - left).clamp_min(1e-12)).clamp(0, 1)
    return fp[index - 1] + weight * (fp[index] - fp[index - 1])


@dataclass(frozen=True)
class TargetStyle:
    r"""How a target domain's radiographs look, measured against the source's: grey-level curve and noise.

    ``source_levels``/``target_levels`` are matching quantiles of the two
    intensity distributions (the curve :math:`T`), ``extra_noise`` the white
    noise the target has beyond the restyled source.
    """

    source_levels: torch.Tensor
    target_levels: torch.Tensor
    extra_noise: float

    @classmethod
    def measure(cls, source: torch.Tensor, target: torch.Tensor, levels: int = 129) -> TargetStyle:
        """Measure the style from unlabelled radiographs of both domains, (N, 1, H, W) each."""
        quantiles = torch.linspace(0, 1, levels)
        source_levels = torch.quantile(source.flatten().float(), quantiles)
        target_levels = torch.quantile(target.flatten().float(), quantiles)
        source_levels = torch.cummax(source_levels + 1e-6 * quantiles, 0).values  # strictly increasing
        curved = interpolate(source, source_levels, target_levels)
        extra = max(noise_level(target) ** 2 - noise_level(curved) ** 2, 0.0) ** 0.5
        return cls(source_levels, target_levels, extra)

    def grey_levels(self, image: torch.Tensor) -> torch.Tensor:
        r""":math:`T(\text{image})`: the target's grey-level curve applied to a source image."""
        return interpolate(image, self.source_levels, self.target_levels)

    def pair(self, cxr: torch.Tensor, soft: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        r"""A source pair in the target's style: :math:`(T(x) + n,\ T(s))`, the noise seeded."""
        noise = torch.randn(cxr.shape, generator=torch.Generator().manual_seed(seed)) * self.extra_noise
        return (self.grey_levels(cxr) + noise).clamp(0, 1), self.grey_levels(soft)


class Restyled(torch.utils.data.Dataset):
    """Source pairs seen in a :class:`TargetStyle` (the bone image is dropped: the curve changes it non-linearly)."""

    def __init__(self, pairs, style: TargetStyle, seed: int = 0):
        self.pairs, self.style, self.seed = pairs, style, seed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.pairs[index])
        sample["cxr"], sample["soft"] = self.style.pair(sample["cxr"], sample["soft"], self.seed * 100_003 + index)
        sample.pop("bone", None)
        return sample


# --------------------------------------------------------------------------- measuring the gap


@torch.no_grad()
def domain_scores(predict, dataset, batch_size: int = 8, device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean metrics of ``predict`` (and of the identity baseline) over a labelled dataset.

    Uses :func:`bs_lib.metrics.evaluate` per image; returns ``{metric: mean}``
    for the method and ``{"identity/<metric>": mean}`` for doing nothing.
    """
    from bs_lib import metrics

    totals: dict[str, float] = {}
    count = 0
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        cxr = torch.stack([s["cxr"] for s in samples]).to(device)
        prediction = predict(cxr).float().cpu()
        for sample, estimate in zip(samples, prediction, strict=True):
            for prefix, image in (("", estimate), ("identity/", sample["cxr"])):
                for name, value in metrics.evaluate(image, sample["soft"], sample["cxr"]).items():
                    totals[prefix + name] = totals.get(prefix + name, 0.0) + float(value)
            count += 1
    return {name: total / count for name, total in totals.items()}
