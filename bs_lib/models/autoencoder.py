r"""The autoencoder family: squeeze the radiograph through a bottleneck, decode soft tissue.

An autoencoder is an encoder :math:`E` that shrinks the image to a small code
and a decoder :math:`D` that expands the code back to an image. Trained on
pairs, :math:`\hat s = D(E(x))` learns to *translate* a radiograph into its
soft-tissue image. The bottleneck is both the idea and the limit: it forces the
network to summarise the chest (ribs are a regular, easily summarised
pattern), and it blurs the fine detail that has to squeeze through it. The
U-Net of :mod:`bs_lib.models.cnn` lets detail bypass the bottleneck through
skip connections; compare the two in notebook 03.

Three members, all image-to-image (radiograph in, soft tissue out), all
trained by :class:`bs_lib.models.supervised.SupervisedObjective`:

``gusarev_ae`` — a plain convolutional autoencoder (Gusarev et al. 2017)
    Strided convolutions down, transposed convolutions up, no skips. Built on
    MONAI's ``AutoEncoder``. Gusarev et al. trained on 35 dual-energy pairs; a
    public re-implementation uses the MS-SSIM hybrid loss (here
    ``loss: ms_ssim_l1``). The layer sizes of the original are not certain
    (re-implementations disagree), so width and depth are parameters.

``vae`` — a variational autoencoder (Kingma & Welling 2014)
    The encoder outputs a Gaussian :math:`q(z\mid x) = \mathcal N(\mu, \sigma^2)`
    per latent pixel; training decodes a sample
    :math:`z = \mu + \sigma\odot\varepsilon` (the reparameterisation trick) and
    adds the KL divergence to the prior :math:`\mathcal N(0, I)`,

    .. math:: \mathrm{KL} = \tfrac12\textstyle\sum\big(\mu^2 + \sigma^2 - \log\sigma^2 - 1\big),

    summed over the latent and averaged over the batch, with a small weight
    (:math:`10^{-6}`, as in latent-diffusion autoencoders) so that it
    regularises rather than dominates. Inference decodes the mean :math:`\mu`.
    Built on MONAI's ``AutoencoderKL`` (a convolutional VAE with a spatial latent).

``vq_vae`` — a vector-quantised autoencoder (van den Oord et al. 2017)
    Each latent vector :math:`z_e` is replaced by its nearest codebook entry
    :math:`e_k`; gradients pass straight through the rounding and a commitment
    term :math:`\beta\lVert z_e - \mathrm{sg}(e_k)\rVert^2` (β = 0.25) keeps the
    encoder near its codes, while the codebook follows the encoder by an
    exponential moving average. Built on MONAI's ``VQVAE``, the same network as
    stage 1 of BS-LDM (:mod:`bs_lib.models.vqgan`), here asked to translate
    rather than reconstruct.

VAE and VQ-VAE are the generative-autoencoder baselines of the BS-LDM / GL-LCM
comparison tables (``shared/facts`` §9.2).
"""

from __future__ import annotations

import torch
from torch import nn

from bs_lib.models.supervised import TrainingOutputs, check_positive, register_supervised

KL_WEIGHT = 1e-6
QUANTISATION_WEIGHT = 1.0


# --------------------------------------------------------------------------- Gusarev-style autoencoder


def build_gusarev_ae(width: int = 16, depth: int = 3, kernel_size: int = 5, norm: str = "batch") -> nn.Module:
    """A convolutional autoencoder: ``depth`` strided convolutions (channels width·2ᵏ), mirrored by transposed ones.

    MONAI ``AutoEncoder``: each level is a ``kernel_size`` convolution with
    stride 2, normalisation and PReLU; the decoder mirrors it; the last layer
    is a plain convolution (no activation, the objective clips at inference).
    """
    from monai.networks.nets import AutoEncoder

    check_positive("width", width)
    check_positive("depth", depth)
    channels = tuple(width * 2**level for level in range(depth))
    network = AutoEncoder(spatial_dims=2, in_channels=1, out_channels=1, channels=channels,
                          strides=(2,) * depth, kernel_size=kernel_size, up_kernel_size=kernel_size, norm=norm)
    network.size_multiple = 2**depth
    return network


# --------------------------------------------------------------------------- VAE


class VariationalAutoencoder(nn.Module):
    """MONAI ``AutoencoderKL`` as an image-to-image VAE: a sampled latent while training, the mean at inference."""

    def __init__(self, width: int = 16, levels: int = 3, latent_channels: int = 4, res_blocks: int = 1,
                 kl_weight: float = KL_WEIGHT) -> None:
        super().__init__()
        from monai.networks.nets import AutoencoderKL

        check_positive("width", width)
        check_positive("levels", levels)
        channels = tuple(width * min(2**level, 4) for level in range(levels))
        self.vae = AutoencoderKL(
            spatial_dims=2, in_channels=1, out_channels=1, channels=channels, num_res_blocks=res_blocks,
            attention_levels=(False,) * levels, latent_channels=latent_channels,
            norm_num_groups=_groups(width), with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False,
        )
        self.size_multiple = 2 ** (levels - 1)
        self.penalty_weights = {"kl": kl_weight}

    def training_outputs(self, x: torch.Tensor) -> TrainingOutputs:
        mean, std = self.vae.encode(x)
        z = self.vae.sampling(mean, std)
        return TrainingOutputs([self.vae.decode(z)], {"kl": kl_divergence(mean, std)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, _ = self.vae.encode(x)
        return self.vae.decode(mean)


def _groups(width: int) -> int:
    """GroupNorm groups: the largest of 8, 4, 2, 1 that divides the width."""
    return next(groups for groups in (8, 4, 2, 1) if width % groups == 0)


def kl_divergence(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\mathcal N(\mu,\sigma^2)\,\Vert\,\mathcal N(0,1))`, summed over latent, batch mean."""
    variance = std.float().square()
    per_element = 0.5 * (mean.float().square() + variance - torch.log(variance.clamp(min=1e-12)) - 1)
    return per_element.flatten(1).sum(dim=1).mean()


def build_vae(width: int = 16, levels: int = 3, latent_channels: int = 4, res_blocks: int = 1,
              kl_weight: float = KL_WEIGHT) -> VariationalAutoencoder:
    """The VAE baseline; the image is halved ``levels − 1`` times."""
    return VariationalAutoencoder(width, levels, latent_channels, res_blocks, kl_weight)


# --------------------------------------------------------------------------- VQ-VAE


class VectorQuantisedAutoencoder(nn.Module):
    """MONAI ``VQVAE`` as an image-to-image network; the codebook/commitment loss is its penalty.

    In training mode every forward pass also moves the codebook (its moving
    average), so call ``.eval()`` before predicting.
    """

    def __init__(self, width: int = 16, levels: int = 2, res_layers: int = 1, num_embeddings: int = 256,
                 embedding_dim: int = 8, quantisation_weight: float = QUANTISATION_WEIGHT) -> None:
        super().__init__()
        from monai.networks.nets import VQVAE

        check_positive("width", width)
        check_positive("levels", levels)
        channels = tuple(width * 2**level for level in range(levels))
        self.vqvae = VQVAE(
            spatial_dims=2, in_channels=1, out_channels=1, channels=channels, num_res_layers=res_layers,
            num_res_channels=channels, downsample_parameters=((2, 4, 1, 1),) * levels,
            upsample_parameters=((2, 4, 1, 1, 0),) * levels, num_embeddings=num_embeddings,
            embedding_dim=embedding_dim,
        )
        self.size_multiple = 2**levels
        self.penalty_weights = {"quantisation": quantisation_weight}

    def training_outputs(self, x: torch.Tensor) -> TrainingOutputs:
        reconstruction, quantisation = self.vqvae(x)
        return TrainingOutputs([reconstruction], {"quantisation": quantisation})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vqvae(x)[0]


def build_vq_vae(width: int = 16, levels: int = 2, res_layers: int = 1, num_embeddings: int = 256,
                 embedding_dim: int = 8,
                 quantisation_weight: float = QUANTISATION_WEIGHT) -> VectorQuantisedAutoencoder:
    """The VQ-VAE baseline; the image is halved ``levels`` times before quantisation."""
    return VectorQuantisedAutoencoder(width, levels, res_layers, num_embeddings, embedding_dim, quantisation_weight)


register_supervised("gusarev_ae", build_gusarev_ae, family="autoencoder", label="Gusarev AE")
register_supervised("vae", build_vae, family="autoencoder", label="VAE")
register_supervised("vq_vae", build_vq_vae, family="autoencoder", label="VQ-VAE")
