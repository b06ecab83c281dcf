r"""The GAN family: a conditional GAN (pix2pix) and the multi-scale idea of MCA-Net.

A network trained with L1 alone learns the *average* soft-tissue image that
fits a radiograph. Where several answers are plausible (the exact texture
behind a rib), the average is a blur. A conditional GAN adds a critic: a
discriminator :math:`D` sees the radiograph :math:`x` beside a soft-tissue
image and scores whether the pair looks real. The generator :math:`G` is
trained to fool it, which pushes its output toward the *sharp* images of the
training set rather than their blurry mean.

pix2pix (Isola et al., 2017)
----------------------------
.. math::
    \mathcal L_G = \mathcal L_1\big(G(x), s\big) + \lambda_{adv}\,\ell_G\big(D(x, G(x))\big),
    \qquad
    \mathcal L_D = \ell_D\big(D(x, s),\ D(x, \mathrm{sg}[G(x)])\big)

with :math:`\ell_G, \ell_D` a least-squares or cross-entropy pair from
:mod:`bs_lib.losses` and :math:`\mathrm{sg}` "stop gradient" (the
discriminator's loss is computed on *detached* fakes). pix2pix weighs L1 by
100 against an adversarial weight of 1 on images in [−1, 1]; here L1 has
weight 1 and the adversarial term :math:`\lambda_{adv} = 0.01`, the same
balance. The generator is a U-Net (MONAI ``UNet``: strided convolutions down,
transposed convolutions up, skip connections by concatenation). pix2pix uses
4×4 kernels, MONAI's same-padding needs odd ones, so these are 3×3; and
BatchNorm, as pix2pix, rather than MONAI's default InstanceNorm, which would
erase each image's brightness and contrast. The discriminator is a PatchGAN
(MONAI ``PatchDiscriminator``): one score per overlapping patch, so it judges
texture and leaves the global layout to L1.

Residual output (a deliberate change). By default the generator predicts the
*correction* :math:`G(x) = x + r(x)`, the negative of the bone image, and its
last layer starts at zero: an untrained generator is exactly the identity
baseline, and training only has to learn what to remove. pix2pix itself
predicts the image directly (``residual: false``).

MCA-Net (Zhou et al., 2018): several scales at once
---------------------------------------------------
MCA-Net generates virtual dual-energy images with a *multi-scale* conditional
adversarial network, so that the result is right at the coarse scale and sharp
in fine detail. This module implements that idea in two parts:

* a coarse-to-fine generator (:class:`MultiScaleGenerator`) whose decoder
  emits an estimate at every scale :math:`k` (1/4, 1/2, full size). Each finer
  estimate refines the upsampled coarser one,
  :math:`\hat s_k = \mathrm{pool}_k(x) + \Delta_k`,
  :math:`\Delta_k = \mathrm{up}(\Delta_{k+1}) + h_k(f_k)`, so the coarse
  levels carry the broad soft-tissue density and the fine levels the detail;
* one PatchGAN per scale, each seeing the radiograph and the estimate
  average-pooled to that scale. The same patch size covers a larger part of
  the chest at a coarser scale, so together they judge both global
  consistency and fine texture.

.. math::
    \mathcal L_G = \sum_k w_k\,\mathcal L_1(\hat s_k, s_k)
                 + \lambda_{adv}\,\tfrac1K\sum_k \ell_G\big(D_k(x_k, \hat s_k)\big),
    \qquad
    \mathcal L_D = \tfrac1K\sum_k \ell_D\big(D_k(x_k, s_k), D_k(x_k, \mathrm{sg}[\hat s_k])\big)

with :math:`w_k = 2^{-k}` (the full scale counts most). MONAI has no U-Net
with per-scale outputs, so the generator is written here from MONAI
``Convolution`` blocks; the layer plan of the original network is not
reproduced, only its idea.

Both methods are one :class:`ConditionalGAN` objective (pix2pix is the case
of one scale and one discriminator). Its parameter groups are ``generator``
then ``discriminator``: the training engine updates them in that order.
"""

from __future__ import annotations

import inspect
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from bs_lib import losses
from bs_lib.engine.config import TrainConfig
from bs_lib.engine.objective import Objective, register_method

ADVERSARIAL_LOSSES = {
    "lsgan": (losses.lsgan_generator, losses.lsgan_discriminator),
    "bce": (losses.bce_generator, losses.bce_discriminator),
}
LEAKY_RELU = ("LEAKYRELU", {"negative_slope": 0.2})


# --------------------------------------------------------------------------- networks


def zero_last_layer(network: nn.Module) -> nn.Module:
    """Set the weights and bias of a network's last convolution to zero (a residual branch that starts silent)."""
    convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    if not convolutions:
        raise ValueError(f"{type(network).__name__} has no convolution to zero.")
    with torch.no_grad():
        convolutions[-1].weight.zero_()
        if convolutions[-1].bias is not None:
            convolutions[-1].bias.zero_()
    return network


class ResidualGenerator(nn.Module):
    r"""Wraps an image-to-image network :math:`r` as :math:`x \mapsto x + r(x)` (or just :math:`r(x)`)."""

    def __init__(self, network: nn.Module, residual: bool = True):
        super().__init__()
        self.network = zero_last_layer(network) if residual else network
        self.residual = residual

    def forward(self, cxr: torch.Tensor) -> torch.Tensor:
        correction = self.network(cxr)
        return cxr + correction if self.residual else correction


def build_unet_generator(width: int = 16, depth: int = 4, residual: bool = True) -> ResidualGenerator:
    """The pix2pix U-Net on MONAI ``UNet``: ``depth`` levels, widths ``width · 2^k`` (capped at 8·width).

    ``depth`` − 1 strided convolutions halve the image; the image side must be
    divisible by :math:`2^{depth-1}`.
    """
    from monai.networks.nets import UNet

    if depth < 2:
        raise ValueError(f"The U-Net generator needs depth >= 2 (one downsampling), got {depth}.")
    channels = tuple(width * min(2**level, 8) for level in range(depth))
    network = UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=channels, strides=(2,) * (depth - 1),
                   num_res_units=0, act=LEAKY_RELU, norm="BATCH")
    return ResidualGenerator(network, residual)


def _block(in_channels: int, out_channels: int, stride: int = 1, transposed: bool = False) -> nn.Module:
    """3×3 convolution, BatchNorm, LeakyReLU (MONAI ``Convolution``)."""
    from monai.networks.blocks import Convolution

    return Convolution(spatial_dims=2, in_channels=in_channels, out_channels=out_channels, strides=stride,
                       kernel_size=3, act=LEAKY_RELU, norm="BATCH", is_transposed=transposed)


class MultiScaleGenerator(nn.Module):
    r"""A U-Net whose decoder emits a soft-tissue estimate at each of ``scales`` resolutions.

    ``forward`` returns ``[ŝ_0, ŝ_1, …]``, full size first, each half the size
    of the one before. Estimate :math:`k` is the radiograph average-pooled to
    that size plus a correction :math:`\Delta_k = \mathrm{up}(\Delta_{k+1}) +
    h_k(f_k)`, where :math:`h_k` is a 1×1 convolution on the decoder's
    features at that size. The heads start at zero: the untrained generator
    returns the radiograph at every scale.
    """

    def __init__(self, width: int = 16, levels: int = 3, scales: int = 3):
        super().__init__()
        if levels < 1 or not 1 <= scales <= levels + 1:
            raise ValueError(f"MultiScaleGenerator needs levels >= 1 and 1 <= scales <= levels + 1, "
                             f"got levels={levels}, scales={scales}.")
        widths = [width * min(2**level, 8) for level in range(levels + 1)]
        self.levels, self.scales = levels, scales
        self.stem = nn.Sequential(_block(1, widths[0]), _block(widths[0], widths[0]))
        self.down = nn.ModuleList(
            nn.Sequential(_block(widths[k], widths[k + 1], stride=2), _block(widths[k + 1], widths[k + 1]))
            for k in range(levels))
        self.up = nn.ModuleList(_block(widths[k + 1], widths[k], stride=2, transposed=True) for k in range(levels))
        self.merge = nn.ModuleList(_block(2 * widths[k], widths[k]) for k in range(levels))
        self.heads = nn.ModuleList(nn.Conv2d(widths[k], 1, kernel_size=1) for k in range(scales))
        for head in self.heads:
            zero_last_layer(head)

    def forward(self, cxr: torch.Tensor) -> list[torch.Tensor]:
        factor = 2**self.levels
        if cxr.shape[-1] % factor or cxr.shape[-2] % factor:
            raise ValueError(f"MultiScaleGenerator with {self.levels} levels needs image sides divisible by "
                             f"{factor}, got {tuple(cxr.shape[-2:])}.")
        skips = [self.stem(cxr)]
        for down in self.down:
            skips.append(down(skips[-1]))
        features, decoded = skips[-1], {}
        for k in reversed(range(self.levels)):  # from the coarsest skip to full size
            features = self.merge[k](torch.cat([self.up[k](features), skips[k]], dim=1))
            decoded[k] = features
        estimates, correction = [], None
        for k in reversed(range(self.scales)):  # coarse to fine
            detail = self.heads[k](decoded[k] if k in decoded else skips[k])
            correction = detail if correction is None else detail + F.interpolate(
                correction, scale_factor=2, mode="bilinear", align_corners=False)
            estimates.append(downsample(cxr, k) + correction)
        return estimates[::-1]


def build_patch_discriminator(width: int = 16, layers: int = 2) -> nn.Module:
    """MONAI ``PatchDiscriminator`` on the pair (radiograph, soft tissue): two input channels."""
    from monai.networks.nets import PatchDiscriminator

    discriminator = PatchDiscriminator(spatial_dims=2, channels=width, in_channels=2, out_channels=1,
                                       num_layers_d=layers)
    discriminator.min_side = 3 * 2**layers  # smaller inputs leave no patch for the last 4×4 convolution
    return discriminator


def smallest_side(method: str, method_args: dict) -> int:
    """The smallest image side ``method`` (``pix2pix``, ``mca_net``) trains on with ``method_args``.

    The coarsest discriminator sees the image pooled :math:`2^{scales-1}` times
    and needs :math:`3\\cdot2^{layers}` pixels (see :func:`build_patch_discriminator`).
    """
    layers = method_args.get("discriminator_layers", _gan_options()["discriminator_layers"])
    scales = method_args.get("scales", 3) if method == "mca_net" else 1
    return 3 * 2**layers * 2 ** (scales - 1)


def downsample(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Average-pool by :math:`2^{scale}` (scale 0: the image itself)."""
    return F.avg_pool2d(image, 2**scale) if scale else image


# --------------------------------------------------------------------------- the objective


class ConditionalGAN(Objective):
    """Generator + one conditional PatchGAN per scale, trained with pixel + adversarial losses.

    ``generator(cxr)`` returns one estimate or a list (full size first);
    ``discriminators[k]`` judges scale ``k``. ``adversarial_start`` delays the
    adversarial term (and the discriminator's updates) by that many steps, so
    the generator first learns the pixel task; ``loss`` names the pixel loss
    of the full scale (``l1``, ``mse``, ``ms_ssim_l1``), coarser scales use L1.
    """

    def __init__(self, generator: nn.Module, discriminators: list[nn.Module], adversarial: str = "lsgan",
                 adversarial_weight: float = 0.01, adversarial_start: int = 0, loss: str = "l1",
                 scale_weights: list[float] | None = None):
        super().__init__()
        if adversarial not in ADVERSARIAL_LOSSES:
            raise ValueError(f"Unknown adversarial loss {adversarial!r}: choose one of "
                             f"{', '.join(ADVERSARIAL_LOSSES)}.")
        if adversarial_weight < 0:
            raise ValueError(f"adversarial_weight must be 0 or more, got {adversarial_weight}.")
        self.generator = generator
        self.discriminators = nn.ModuleList(discriminators)
        self.scales = len(discriminators)
        self.scale_weights = list(scale_weights or [0.5**k for k in range(self.scales)])
        if len(self.scale_weights) != self.scales:
            raise ValueError(f"scale_weights has {len(self.scale_weights)} entries for {self.scales} scales.")
        self.generator_loss, self.discriminator_loss = ADVERSARIAL_LOSSES[adversarial]
        self.pixel_loss = losses.get_reconstruction_loss(loss)
        self.adversarial_weight, self.adversarial_start = adversarial_weight, adversarial_start

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"generator": list(self.generator.parameters()),
                "discriminator": list(self.discriminators.parameters())}

    def generate(self, cxr: torch.Tensor) -> list[torch.Tensor]:
        """The generator's estimates, full size first (unclipped: the losses see the raw output)."""
        estimates = self.generator(cxr)
        estimates = list(estimates) if isinstance(estimates, list | tuple) else [estimates]
        if len(estimates) != self.scales:
            raise ValueError(f"The generator returned {len(estimates)} scale(s) for {self.scales} discriminator(s).")
        return estimates

    def losses(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        cxr, soft = batch["cxr"], batch["soft"]
        fakes = self.generate(cxr)
        pixel = sum(weight * (self.pixel_loss if k == 0 else losses.l1)(fake, downsample(soft, k))
                    for k, (weight, fake) in enumerate(zip(self.scale_weights, fakes, strict=True)))
        generator = pixel
        logs = {"log/pixel": pixel.detach(), "log/l1": losses.l1(fakes[0], soft).detach()}
        discriminator = None
        if step >= self.adversarial_start and self.adversarial_weight > 0:
            self._check_sizes(soft)
            adversarial = real_term = 0.0
            for k, (fake, critic) in enumerate(zip(fakes, self.discriminators, strict=True)):
                condition, target = downsample(cxr, k), downsample(soft, k)
                adversarial = adversarial + self.generator_loss(critic(torch.cat([condition, fake], 1)))
                real_term = real_term + self.discriminator_loss(critic(torch.cat([condition, target], 1)),
                                                                critic(torch.cat([condition, fake.detach()], 1)))
            adversarial, discriminator = adversarial / self.scales, real_term / self.scales
            generator = generator + self.adversarial_weight * adversarial
            logs["log/adversarial"] = adversarial.detach()
        out = {"generator": generator}
        if discriminator is not None:
            out["discriminator"] = discriminator
        return out | logs

    def _check_sizes(self, image: torch.Tensor) -> None:
        for k, critic in enumerate(self.discriminators):
            side, needed = min(image.shape[-2:]) // 2**k, getattr(critic, "min_side", 1)
            if side < needed:
                raise ValueError(f"The discriminator of scale {k} sees {side}-pixel images but needs at least "
                                 f"{needed}: use larger images, fewer scales or fewer discriminator_layers.")

    @torch.no_grad()
    def predict(self, cxr: torch.Tensor) -> torch.Tensor:
        return self.generate(cxr)[0].clamp(0, 1)


# --------------------------------------------------------------------------- registered methods


def _arguments(method: str, given: dict, *functions) -> list[dict]:
    """Split ``method_args`` between builder functions by their keyword names; unknown keys are an error."""
    names = [set(inspect.signature(f).parameters) for f in functions]
    unknown = set(given) - set().union(*names)
    if unknown:
        valid = ", ".join(sorted(set().union(*names)))
        raise ValueError(f"{method}: unknown method_args {sorted(unknown)}; valid keys are {valid}.")
    return [{k: v for k, v in given.items() if k in keys} for keys in names]


def _gan_options(adversarial: str = "lsgan", adversarial_weight: float = 0.01, adversarial_start: int = 0,
                 loss: str = "l1", scale_weights: list[float] | None = None,
                 discriminator_width: int = 16, discriminator_layers: int = 2) -> dict:
    return dict(locals())


def _discriminators(count: int, options: dict) -> list[nn.Module]:
    width, layers = options.pop("discriminator_width"), options.pop("discriminator_layers")
    return [build_patch_discriminator(width, layers) for _ in range(count)]


@register_method("pix2pix", family="GAN", label="pix2pix", smallest_side=partial(smallest_side, "pix2pix"))
def build_pix2pix(config: TrainConfig) -> ConditionalGAN:
    """``method_args``: ``width``, ``depth``, ``residual`` (generator); ``discriminator_width``,
    ``discriminator_layers``; ``adversarial`` (lsgan | bce), ``adversarial_weight``, ``adversarial_start``, ``loss``."""
    generator_args, options = _arguments("pix2pix", config.method_args, build_unet_generator, _gan_options)
    options = _gan_options(**options)
    return ConditionalGAN(build_unet_generator(**generator_args), _discriminators(1, options), **options)


@register_method("mca_net", family="GAN", label="MCA-Net", smallest_side=partial(smallest_side, "mca_net"))
def build_mca_net(config: TrainConfig) -> ConditionalGAN:
    """``method_args``: ``width``, ``levels``, ``scales`` (generator); ``scale_weights``; and pix2pix's GAN keys."""
    generator_args, options = _arguments("mca_net", config.method_args, MultiScaleGenerator, _gan_options)
    generator = MultiScaleGenerator(**generator_args)
    options = _gan_options(**options)
    return ConditionalGAN(generator, _discriminators(generator.scales, options), **options)
