r"""Stage 1 of BS-LDM: the ML-VQGAN, a vector-quantised autoencoder trained with a discriminator.

One autoencoder serves both image kinds: it is trained on radiographs *and*
soft-tissue images, so that stage 2 can work in a single latent space.

Architecture (MONAI ``VQVAE`` and ``PatchDiscriminator``)
---------------------------------------------------------
The encoder halves the image three times (f = 8: 1×1024² → 4×128²), each level
a strided convolution and two residual units; the decoder mirrors it. Each
latent vector :math:`z_e` is replaced by its nearest codebook entry
:math:`e_k` (256 entries of dimension 4, updated by an exponential moving
average), gradients pass straight through, and a commitment term
:math:`0.25\,\lVert z_e - \mathrm{sg}(e_k)\rVert^2` keeps the encoder near its codes.

The multi-level hybrid loss
---------------------------
.. math::
    \mathcal L_G = \lVert\hat x - x\rVert_1 + \mathcal L_{quant}
                 + \lambda_{per}\,\mathcal L_{per}(\hat x, x)
                 + 0.01\cdot\mathrm{mean}\big((D(\hat x) - 1)^2\big)

.. math::
    \mathcal L_D = 0.01\cdot\tfrac12\Big[\mathrm{mean}\big(D(\hat x)^2\big)
                 + \mathrm{mean}\big((D(x) - 1)^2\big)\Big]

pixel level (L1), feature level (perceptual) and patch level (a least-squares
PatchGAN). BS-LDM's perceptual term is LPIPS with a VGG16 backbone
(:math:`\lambda_{per} = 10^{-3}`), whose weights must be downloaded. Where
they are not available locally, this module uses a documented substitute:
an L1 loss on the band-pass levels of a Laplacian pyramid
(:func:`laplacian_pyramid_loss`, :math:`\lambda_{per} = 0.1`), which, like the
early VGG layers LPIPS leans on, compares edges and textures at several scales
rather than intensities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bs_lib.engine.config import TrainConfig
from bs_lib.engine.objective import Objective, register_method

ADVERSARIAL_WEIGHT = 0.01
LPIPS_WEIGHT = 1e-3
SUBSTITUTE_PERCEPTUAL_WEIGHT = 0.1


@dataclass(frozen=True)
class VQGANConfig:
    """Sizes of the autoencoder and its discriminator."""

    channels: tuple[int, ...] = (128, 256, 512)
    num_res_layers: int = 2
    num_res_channels: int = 512
    num_embeddings: int = 256
    embedding_dim: int = 4
    discriminator_channels: int = 64
    discriminator_layers: int = 3

    @property
    def downsampling_factor(self) -> int:
        return 2 ** len(self.channels)


#: The paper's configuration (``full``) and teaching sizes; ``full`` has 38,326,533 parameters.
VQGAN_PRESETS = {
    "smoke": VQGANConfig(channels=(16, 32), num_res_layers=1, num_res_channels=32, discriminator_channels=16,
                         discriminator_layers=2),
    "colab": VQGANConfig(channels=(64, 128, 256), num_res_layers=2, num_res_channels=256,
                         discriminator_channels=32),
    "full": VQGANConfig(),
}


def build_vqvae(config: VQGANConfig) -> nn.Module:
    """MONAI ``VQVAE`` with BS-LDM's settings (EMA codebook, decay 0.5, commitment 0.25)."""
    from monai.networks.nets import VQVAE

    levels = len(config.channels)
    return VQVAE(
        spatial_dims=2, in_channels=1, out_channels=1, channels=config.channels,
        num_res_layers=config.num_res_layers, num_res_channels=config.num_res_channels,
        downsample_parameters=((2, 4, 1, 1),) * levels, upsample_parameters=((2, 4, 1, 1, 0),) * levels,
        num_embeddings=config.num_embeddings, embedding_dim=config.embedding_dim,
    )


def build_discriminator(config: VQGANConfig) -> nn.Module:
    """MONAI ``PatchDiscriminator``: one real/fake score per overlapping patch."""
    from monai.networks.nets import PatchDiscriminator

    return PatchDiscriminator(spatial_dims=2, channels=config.discriminator_channels, in_channels=1,
                              out_channels=1, num_layers_d=config.discriminator_layers)


def to_model_range(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [−1, 1], the range the autoencoder is trained in."""
    return image * 2 - 1


def to_image_range(x: torch.Tensor) -> torch.Tensor:
    """[−1, 1] → [0, 1], clipped (decoded images can overshoot)."""
    return ((x + 1) / 2).clamp(0, 1)


# --------------------------------------------------------------------------- perceptual terms


def laplacian_pyramid_loss(prediction: torch.Tensor, target: torch.Tensor, levels: int = 4) -> torch.Tensor:
    r"""Mean L1 distance between the band-pass levels of two Laplacian pyramids.

    Level :math:`k` holds :math:`G_k - \mathrm{up}(G_{k+1})`, the detail between
    two Gaussian scales (:math:`G_0` the image, :math:`G_{k+1}` a blurred,
    halved :math:`G_k`). The low-pass residual is left out: plain L1 already
    compares intensities.
    """
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=prediction.device, dtype=prediction.dtype)
    kernel = (kernel[:, None] * kernel[None, :] / 256).expand(prediction.shape[1], 1, 5, 5)

    def blur_down(x):
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, stride=2, groups=x.shape[1])

    loss = prediction.new_zeros(())
    a, b = prediction, target
    for _ in range(levels):
        if min(a.shape[-2:]) < 8:
            break
        a_low, b_low = blur_down(a), blur_down(b)
        a_band = a - F.interpolate(a_low, size=a.shape[-2:], mode="bilinear", align_corners=False)
        b_band = b - F.interpolate(b_low, size=b.shape[-2:], mode="bilinear", align_corners=False)
        loss = loss + (a_band - b_band).abs().mean()
        a, b = a_low, b_low
    return loss


def lpips_weights_available() -> bool:
    """True when the ``lpips`` package and the VGG16 backbone weights are on this machine."""
    try:
        import lpips  # noqa: F401
        import torchvision  # noqa: F401
    except Exception:
        return False
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return any(hub.glob("vgg16-*.pth"))


class PerceptualLoss(nn.Module):
    """LPIPS-VGG when its weights are local, else the Laplacian-pyramid substitute (and says which)."""

    def __init__(self, prefer_lpips: bool = True):
        super().__init__()
        self.network = None
        if prefer_lpips and lpips_weights_available():
            from monai.losses import PerceptualLoss as MonaiPerceptual

            self.network = MonaiPerceptual(spatial_dims=2, network_type="vgg")
        self.kind = "lpips-vgg" if self.network is not None else "laplacian-pyramid"
        self.weight = LPIPS_WEIGHT if self.network is not None else SUBSTITUTE_PERCEPTUAL_WEIGHT

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.network is not None:
            return self.network(prediction.float(), target.float())
        return laplacian_pyramid_loss(prediction, target)


# --------------------------------------------------------------------------- the training objective


class MLVQGAN(Objective):
    """Autoencoder + discriminator + the multi-level hybrid loss, as a training objective.

    Parameter groups are updated in order: ``autoencoder`` (Adam, lr 1e-4 in
    BS-LDM) then ``discriminator`` (lr 5e-4) on detached reconstructions.
    ``adversarial_start`` delays the discriminator (BS-LDM: 0, on from the start).
    """

    def __init__(self, config: VQGANConfig = VQGAN_PRESETS["smoke"], adversarial_start: int = 0,
                 prefer_lpips: bool = True):
        super().__init__()
        self.config = config
        self.autoencoder = build_vqvae(config)
        self.discriminator = build_discriminator(config)
        self.perceptual = PerceptualLoss(prefer_lpips)
        self.adversarial_start = adversarial_start

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"autoencoder": [p for p in self.autoencoder.parameters() if p.requires_grad],
                "discriminator": list(self.discriminator.parameters())}

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x)[-1]

    def losses(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        x = to_model_range(torch.cat([batch["cxr"], batch["soft"]]))  # radiographs and soft tissue together
        reconstruction, quantisation = self.autoencoder(x)
        l1 = (reconstruction - x).abs().mean()
        perceptual = self.perceptual(reconstruction, x)
        generator = l1 + quantisation + self.perceptual.weight * perceptual
        out = {"log/l1": l1.detach(), "log/quantisation": quantisation.detach(), "log/perceptual": perceptual.detach()}
        if step >= self.adversarial_start:
            adversarial = ((self._score(reconstruction) - 1) ** 2).mean()
            generator = generator + ADVERSARIAL_WEIGHT * adversarial
            fake, real = self._score(reconstruction.detach()), self._score(x)
            discriminator = ADVERSARIAL_WEIGHT * 0.5 * ((fake**2).mean() + ((real - 1) ** 2).mean())
            out |= {"discriminator": discriminator, "log/adversarial": adversarial.detach()}
        return {"autoencoder": generator, **out}

    @torch.no_grad()
    def validate(self, batches) -> dict[str, float]:
        """Reconstruction quality of both image kinds: L1 and PSNR in [0, 1]."""
        abs_error = squared_error = pixels = 0.0
        for batch in batches:
            images = torch.cat([batch["cxr"], batch["soft"]])
            error = self.predict(images).float() - images.float()
            abs_error += error.abs().sum().item()
            squared_error += error.square().sum().item()
            pixels += error.numel()
        mse = squared_error / pixels
        return {"l1": abs_error / pixels, "psnr": float(10 * torch.log10(torch.tensor(1 / max(mse, 1e-12))))}

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """[0, 1] image (N,1,H,W) → quantised latent (N,4,H/f,W/f), what stage 2 diffuses."""
        return self.autoencoder.encode_stage_2_inputs(to_model_range(image))

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent → [0, 1] image, *without* re-quantising (as BS-LDM decodes sampled latents)."""
        return to_image_range(self.autoencoder.decode(latent))

    @torch.no_grad()
    def predict(self, cxr: torch.Tensor) -> torch.Tensor:
        """The reconstruction of the input: stage 1 compresses, it does not suppress bone."""
        return self.decode(self.encode(cxr))

    @torch.no_grad()
    def codebook_usage(self, images: torch.Tensor) -> tuple[torch.Tensor, float]:
        r"""How often each codebook entry is chosen for ``images``, and the perplexity :math:`e^{H}`.

        :math:`H = -\sum_k p_k \log p_k` over the code frequencies :math:`p_k`; a
        perplexity of :math:`K` means all :math:`K` entries are used equally, 1
        means the codebook collapsed to a single entry.
        """
        indices = self.autoencoder.index_quantize(to_model_range(images))
        counts = torch.bincount(indices.flatten().cpu(), minlength=self.config.num_embeddings)
        p = counts[counts > 0].double() / counts.sum()
        return counts, float(torch.exp(-(p * p.log()).sum()))


@register_method("ml_vqgan", family="autoencoder stage", label="ML-VQGAN")
def build_ml_vqgan(config: TrainConfig) -> MLVQGAN:
    """``method_args``: ``preset`` (smoke | colab | full), ``adversarial_start``, ``prefer_lpips``."""
    args = dict(config.method_args)
    preset = args.pop("preset", "smoke")
    if preset not in VQGAN_PRESETS:
        raise ValueError(f"Unknown ML-VQGAN preset {preset!r}: choose one of {', '.join(VQGAN_PRESETS)}.")
    return MLVQGAN(VQGAN_PRESETS[preset], **args)
