r"""The noise estimator of BS-LDM: an ε-prediction UNet in the guided-diffusion style.

BS-LDM uses OpenAI's guided-diffusion ``UNetModel``. This is a compact
reimplementation of the same architecture, so that the paper's configuration
has exactly the paper's 382,978,184 parameters (with 8 output channels; 4 are
enough, see ``out_channels``). MONAI's ``DiffusionModelUNet`` is close but
injects the time embedding additively; guided-diffusion uses FiLM
("scale-shift norm"), which is what is reproduced here.

Building blocks
---------------
* **Time embedding** :math:`t \mapsto [\cos(t\,\omega_k), \sin(t\,\omega_k)]`,
  :math:`\omega_k = 10000^{-k/(d/2)}`, then an MLP to :math:`4d`.
* **Residual block** with FiLM: :math:`h = \mathrm{GN}(h)\,(1 + \gamma(t)) + \beta(t)`
  after the first convolution; the last convolution is zero-initialised, so
  every block starts as the identity.
* **Self-attention** at the coarse levels (16², 8², 4² for a 128² latent).
* Down- and up-sampling inside residual blocks (BigGAN style: average pooling
  down, nearest-neighbour up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Two 3×3 convolutions with a FiLM time conditioning, optionally resampling by 2."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None, *,
                 up: bool = False, down: bool = False, groups: int = 32, dropout: float = 0.0):
        super().__init__()
        out_channels = out_channels or channels
        self.norm_in = nn.GroupNorm(groups, channels)
        self.conv_in = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.resample = "up" if up else "down" if down else None
        self.emb = nn.Linear(emb_channels, 2 * out_channels)  # γ and β
        self.norm_out = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv_out = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm_in(x))
        h = self.conv_in(self._resample(h))
        x = self._resample(x)
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm_out(h) * (1 + scale) + shift
        h = self.conv_out(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all positions, with a residual connection.

    The q, k, v projections are stored head by head (guided-diffusion's
    "legacy" order) and computed with ``scaled_dot_product_attention``, which
    uses flash/memory-efficient kernels on GPUs.
    """

    def __init__(self, channels: int, num_heads: int, groups: int = 32):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{channels} channels cannot be split into {num_heads} heads")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, -1))  # (b, 3c, L)
        q, k, v = qkv.reshape(b, self.num_heads, 3 * c // self.num_heads, -1).transpose(2, 3).chunk(3, dim=-1)
        h = F.scaled_dot_product_attention(q, k, v)  # (b, heads, L, c/heads)
        h = h.transpose(2, 3).reshape(b, c, -1)
        return x + self.proj(h).reshape(b, c, height, width)


class _Level(nn.ModuleList):
    """A residual block, then attention when the level has it."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


@dataclass(frozen=True)
class UNetConfig:
    """Size of the noise estimator. ``attention_levels`` index ``channel_mult`` (0 = full resolution)."""

    in_channels: int = 8
    out_channels: int = 4
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_res_blocks: int = 8
    attention_levels: tuple[int, ...] = (3, 4, 5)
    num_heads: int = 8
    groups: int = 32
    dropout: float = 0.0


class EpsilonUNet(nn.Module):
    """ε_θ(x_t, t): a UNet that predicts the noise in ``x_t`` at timestep ``t``."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        widths = [c.base_channels * m for m in c.channel_mult]
        self.stem = nn.Conv2d(c.in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips, channels = [widths[0]], widths[0]
        for level, width in enumerate(widths):
            for _ in range(c.num_res_blocks):
                self.down.append(self._level(channels, width, level, emb_dim))
                channels = width
                skips.append(channels)
            if level < len(widths) - 1:
                self.down.append(_Level([ResBlock(channels, emb_dim, down=True, groups=c.groups)]))
                skips.append(channels)
        self.middle = _Level([ResBlock(channels, emb_dim, groups=c.groups, dropout=c.dropout),
                              AttentionBlock(channels, c.num_heads, c.groups),
                              ResBlock(channels, emb_dim, groups=c.groups, dropout=c.dropout)])
        self.up = nn.ModuleList()
        for level in reversed(range(len(widths))):
            for block in range(c.num_res_blocks + 1):
                layers = self._level(channels + skips.pop(), widths[level], level, emb_dim)
                channels = widths[level]
                if level > 0 and block == c.num_res_blocks:
                    layers.append(ResBlock(channels, emb_dim, up=True, groups=c.groups))
                self.up.append(layers)
        self.head = nn.Sequential(nn.GroupNorm(c.groups, channels), nn.SiLU(),
                                  _zero(nn.Conv2d(channels, c.out_channels, 3, padding=1)))

    def _level(self, channels: int, width: int, level: int, emb_dim: int) -> _Level:
        c = self.config
        layers = [ResBlock(channels, emb_dim, width, groups=c.groups, dropout=c.dropout)]
        if level in c.attention_levels:
            layers.append(AttentionBlock(width, c.num_heads, c.groups))
        return _Level(layers)

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.config.channel_mult) - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.downsampling_factor or x.shape[-2] % self.downsampling_factor:
            raise ValueError(f"input side {tuple(x.shape[-2:])} must be a multiple of {self.downsampling_factor}")
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels).to(x.dtype))
        h = self.stem(x)
        skips = [h]
        for level in self.down:
            h = level(h, emb)
            skips.append(h)
        h = self.middle(h, emb)
        for level in self.up:
            h = level(torch.cat([h, skips.pop()], dim=1), emb)
        return self.head(h)
