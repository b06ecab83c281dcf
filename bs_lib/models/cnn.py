r"""The CNN family: convolutional networks that keep (or restore) full resolution.

Ribs are thin, sharp structures, and a soft-tissue image must keep every
vessel and nodule they cross. The networks here differ in how they let fine
detail reach the output.

``resnet_bs`` — ResNet-BS (Rajaraman et al. 2021)
    No downsampling at all: a first convolution, a stack of residual blocks
    that all work at full resolution, a last convolution. Each block learns a
    correction :math:`h \leftarrow h + \gamma\,F(h)` with
    :math:`F` = conv–ReLU–conv (no BatchNorm) and a residual scaling γ that keeps
    a deep stack stable early in training; a long skip adds the first
    features to the last (as in the EDSR super-resolution network, which the
    design follows). The receptive field grows only by two pixels per
    convolution: :math:`1 + 2(2B + 3)` pixels for :math:`B` blocks, so depth
    buys context. MONAI has no such network (its ``HighResNet`` dilates and
    normalises), so it is written here. Depth 16 and width 64 are the
    course's full-scale choice where our sources on the paper are silent.

``unet`` — U-Net (Ronneberger et al. 2015)
    An encoder that halves the image four times (context) and a decoder that
    doubles it back, with a skip connection at every level that concatenates
    the encoder's full-detail features to the decoder's: the bottleneck
    carries *what*, the skips carry *where*. MONAI's ``BasicUNet``.

``unet_plus_plus`` — UNet++ with deep supervision (Zhou et al. 2018)
    The skips become nested, dense paths: node :math:`x^{i,j}` (depth
    :math:`i`, :math:`j` convolutions along the skip) sees all earlier nodes of
    its row and the upsampled node below,
    :math:`x^{i,j} = H\big([x^{i,0},…,x^{i,j-1}, \mathrm{Up}(x^{i+1,j-1})]\big)`.
    The top row :math:`x^{0,1}…x^{0,4}` holds four full-size outputs, from a
    shallow U-Net to the full one. *Deep supervision* trains all four, each
    with the reconstruction loss (weights :math:`1/4`); at inference the
    final one is used, or a shallower one for speed (pruning). MONAI's
    ``BasicUNetPlusPlus``.

:func:`build_unet` (and the other builders) take a ``width`` so the
distillation family can build a large teacher and a small student of the
same design.
"""

from __future__ import annotations

import torch
from torch import nn

from bs_lib.models.supervised import TrainingOutputs, check_positive, register_supervised

UNET_DOWNSAMPLINGS = 4  # BasicUNet and BasicUNetPlusPlus halve the image four times


# --------------------------------------------------------------------------- ResNet-BS


class ResidualBlock(nn.Module):
    r""":math:`h + \gamma\,\mathrm{conv}(\mathrm{ReLU}(\mathrm{conv}(h)))`, 3×3 convolutions, same resolution."""

    def __init__(self, width: int, scaling: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1))
        self.scaling = scaling

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.scaling * self.body(h)


class ResNetBS(nn.Module):
    """Full-resolution residual network: head conv, ``num_blocks`` residual blocks + long skip, tail conv."""

    def __init__(self, width: int = 64, num_blocks: int = 16, scaling: float = 0.1) -> None:
        super().__init__()
        check_positive("width", width)
        check_positive("num_blocks", num_blocks)
        self.head = nn.Conv2d(1, width, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(width, scaling) for _ in range(num_blocks)),
                                    nn.Conv2d(width, width, 3, padding=1))
        self.tail = nn.Conv2d(width, 1, 3, padding=1)
        self.size_multiple = 1

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the input square one output pixel sees (3×3 convolutions, stride 1)."""
        convolutions = 2 * (len(self.blocks) - 1) + 3
        return 1 + 2 * convolutions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)
        return self.tail(features + self.blocks(features))


def build_resnet_bs(width: int = 64, num_blocks: int = 16, scaling: float = 0.1) -> ResNetBS:
    """ResNet-BS; parameters ≈ (2·num_blocks + 1)·9·width² (1.2 M at the defaults)."""
    return ResNetBS(width, num_blocks, scaling)


# --------------------------------------------------------------------------- U-Net and UNet++


def _unet_features(width: int) -> tuple[int, int, int, int, int, int]:
    """Channels per level, MONAI ``BasicUNet`` layout: (w, w, 2w, 4w, 8w) down, w for the last decoder level."""
    check_positive("width", width)
    return (width, width, 2 * width, 4 * width, 8 * width, width)


def build_unet(width: int = 32, norm: str = "batch") -> nn.Module:
    """MONAI ``BasicUNet`` (2-D, 1 → 1 channel) with features (w, w, 2w, 4w, 8w, w).

    BatchNorm rather than MONAI's default InstanceNorm: instance normalisation
    erases each image's brightness and contrast, which an intensity-regression
    network must keep.
    """
    from monai.networks.nets import BasicUNet

    network = BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=_unet_features(width), norm=norm)
    network.size_multiple = 2**UNET_DOWNSAMPLINGS
    return network


class UNetPlusPlus(nn.Module):
    """MONAI ``BasicUNetPlusPlus`` with its four heads exposed for deep supervision.

    ``forward`` returns the final head (:math:`x^{0,4}`); ``heads`` returns
    all of them, shallowest first; ``training_outputs`` gives the objective all
    heads when ``deep_supervision`` is on, else only the final one.
    """

    def __init__(self, width: int = 32, deep_supervision: bool = True, norm: str = "batch") -> None:
        super().__init__()
        from monai.networks.nets import BasicUNetPlusPlus

        self.deep_supervision = bool(deep_supervision)
        self.unet = BasicUNetPlusPlus(spatial_dims=2, in_channels=1, out_channels=1,
                                      features=_unet_features(width), deep_supervision=True, norm=norm)
        self.size_multiple = 2**UNET_DOWNSAMPLINGS

    def heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of :math:`x^{0,1}, x^{0,2}, x^{0,3}, x^{0,4}` (shallow to deep), each (N, 1, H, W)."""
        return list(self.unet(x))

    def training_outputs(self, x: torch.Tensor) -> TrainingOutputs:
        heads = self.heads(x)
        return TrainingOutputs(heads if self.deep_supervision else heads[-1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(x)[-1]


def build_unet_plus_plus(width: int = 32, deep_supervision: bool = True, norm: str = "batch") -> UNetPlusPlus:
    """UNet++ (MONAI ``BasicUNetPlusPlus``) with features (w, w, 2w, 4w, 8w, w)."""
    return UNetPlusPlus(width, deep_supervision, norm)


register_supervised("resnet_bs", build_resnet_bs, family="CNN", label="ResNet-BS")
register_supervised("unet", build_unet, family="CNN", label="U-Net")
register_supervised("unet_plus_plus", build_unet_plus_plus, family="CNN", label="UNet++")
