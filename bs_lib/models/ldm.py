r"""Stage 2 of BS-LDM: conditional latent diffusion, and the whole bone suppressor.

With a frozen stage-1 autoencoder :math:`\mathcal E, \mathcal D`, a radiograph
:math:`c` and its soft-tissue image :math:`s` become latents
:math:`z_c = \mathcal E(c)`, :math:`z_s = \mathcal E(s)` (4 channels, 1/8 of the
side). The noise estimator sees the noisy soft-tissue latent and the
radiograph latent side by side — conditioning by **channel concatenation**:

.. math:: \hat\varepsilon = \varepsilon_\theta\big([\,x_t \,\Vert\, z_c\,],\ t\big),\qquad
          x_t = \sqrt{\bar\alpha_t}\,z_s + \sqrt{1-\bar\alpha_t}\,\varepsilon_{off},\qquad
          \mathcal L = \lVert\hat\varepsilon - \varepsilon_{off}\rVert^2

Sampling starts from :math:`x_T\sim\mathcal N(0, I)`, walks back with a
sampler (DDPM, DDIM or DPM-Solver++) while thresholding :math:`\hat x_0`
(temporal adaptive thresholding in BS-LDM), and decodes :math:`\mathcal D(x_0)`
into the soft-tissue image.

The output: decoded, or the radiograph minus a bone layer
-----------------------------------------------------------
:math:`\mathcal D(x_0)` differs from the radiograph in two ways: the bone the
diffusion removed, and everything the autoencoder cannot reconstruct (on a
real radiograph, for an autoencoder trained on the phantom, a great deal).
Decoding the radiograph's own latent measures the second alone, so

.. math:: \hat s = c - \big(\mathcal D(z_c) - \mathcal D(x_0)\big)

keeps every detail of :math:`c` and removes only the difference of two
decodings: the bone layer, as the residual CNNs of the course predict it
(``residual=True``, one more decoder pass). The published model outputs
:math:`\mathcal D(x_0)` (``residual=False``, the default).

One sample, or the mean of several
----------------------------------
Each starting noise :math:`x_T` gives another plausible soft-tissue image: the
sampler draws from :math:`p(s \mid c)`, texture included. The error a PSNR or
BSR counts is smallest for the *mean* of that distribution, so

.. math:: \hat s = \frac1K \sum_{k=1}^{K} \mathcal D\big(x_0^{(k)}\big)

(``samples=K``, one batch of :math:`K` chains per radiograph) trades the
sample's detail for a lower expected squared error, at :math:`K` times the
sampling cost. The published model draws one (``samples=1``, the default).

The condition, in training and sampling
---------------------------------------
The official code noises all 8 channels at once, so during training the
network sees :math:`\sqrt{\bar\alpha_t}\,z_c` (almost zero at large t) while at
sampling it sees the clean :math:`z_c`: a mismatch, most likely unintended.
This module feeds the clean condition in both (``condition="clean"``, the
default, as SR3 and Palette do); ``condition="official"`` reproduces the
original behaviour for comparison. Sampling always uses the clean condition,
as the official sampler does.

Other deliberate deviations from the official code (each a switch):
4 output channels instead of 8 (the other 4 are never trained), timesteps
drawn for the real batch size (any final batch works), and EMA weights for
sampling (the official code computes but never saves them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from bs_lib import diffusion
from bs_lib.engine.checkpoint import load_weights
from bs_lib.engine.config import TrainConfig
from bs_lib.engine.objective import Objective, register_method
from bs_lib.models.unet import EpsilonUNet, UNetConfig
from bs_lib.models.vqgan import MLVQGAN, VQGAN_PRESETS

LATENT_CHANNELS = 4

#: Noise-estimator sizes per profile; ``full`` is BS-LDM's (382,978,184 parameters with 8 outputs).
UNET_PRESETS = {
    "smoke": UNetConfig(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, attention_levels=(2,),
                        num_heads=4, groups=8),
    "colab": UNetConfig(base_channels=64, channel_mult=(1, 2, 2, 4), num_res_blocks=2, attention_levels=(2, 3),
                        num_heads=4),
    "full": UNetConfig(),
}


@dataclass
class DiffusionSettings:
    r"""The switches of BS-LDM's stage 2, each one an ablation in notebook 08.

    ``train_timesteps`` is :math:`T`, the length of the forward chain;
    ``offset_noise`` is λ (0 turns it off); ``condition`` is ``"clean"`` or
    ``"official"``; ``threshold`` is ``"tat"``, ``"static"``, ``"dynamic"`` or
    ``"none"``, with its options in ``threshold_options``. ``sampler`` (a name
    in :data:`bs_lib.diffusion.SAMPLERS`), ``sampling_steps`` and ``spacing``
    (``"leading"`` or ``"trailing"``, see
    :func:`bs_lib.diffusion.sampling_timesteps`) choose the sampling chain;
    trailing, the default, starts from pure noise and leans on the threshold.
    ``residual`` subtracts the bone layer :math:`\mathcal D(z_c) - \mathcal D(x_0)`
    from the radiograph instead of returning :math:`\mathcal D(x_0)` (see the module docstring).
    ``samples`` averages the decodings of that many chains per radiograph.
    """

    train_timesteps: int = 1000
    offset_noise: float = 0.1
    condition: str = "clean"
    sampler: str = "ddim"
    sampling_steps: int | None = 50
    spacing: str = "trailing"
    eta: float = 0.0
    threshold: str = "tat"
    threshold_options: dict = field(default_factory=lambda: {"omega": 1.4, "rate": 0.003})
    residual: bool = False
    samples: int = 1

    def __post_init__(self):
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")
        if self.condition not in ("clean", "official"):
            raise ValueError(f"condition must be 'clean' or 'official', not {self.condition!r}")
        if self.offset_noise < 0:
            raise ValueError("offset_noise (λ) must be non-negative")
        if self.sampler not in diffusion.SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(diffusion.SAMPLERS)}, not {self.sampler!r}")
        if self.spacing not in diffusion.SPACINGS:
            raise ValueError(f"spacing must be one of {', '.join(diffusion.SPACINGS)}, not {self.spacing!r}")
        diffusion.make_threshold(self.threshold, **self.threshold_options)  # fail early on a bad name


class ConditionalLDM(Objective):
    """The noise estimator and its schedule, trained beside a frozen ML-VQGAN.

    One parameter group, ``unet`` (AdamW 2e-4 with step decay in BS-LDM).
    """

    def __init__(self, autoencoder: MLVQGAN, unet_config: UNetConfig = UNET_PRESETS["smoke"],
                 settings: DiffusionSettings | None = None, cache_latents: bool = False):
        super().__init__()
        self.settings = settings or DiffusionSettings()
        self.cache_latents = cache_latents
        if unet_config.in_channels != 2 * LATENT_CHANNELS:
            raise ValueError("the noise estimator takes 8 channels: 4 noisy target + 4 condition")
        self.autoencoder = self.freeze(autoencoder)  # frozen: its codebook must not drift
        self.unet = EpsilonUNet(unet_config)
        self.schedule = diffusion.NoiseSchedule.cosine(self.settings.train_timesteps)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"unet": list(self.unet.parameters())}

    def prepare_dataset(self, dataset, device: torch.device):
        """With ``cache_latents``, every pair encoded once: the frozen encoder's work leaves the training loop.

        The encoder is frozen and deterministic, so a cached latent is the one
        the loop would compute, as long as a sample index always gives the same
        images (no random augmentation). At 1024² the encoder costs about four
        times the UNet's forward and backward pass.
        """
        return LatentPairs.encode(self.autoencoder, dataset, device) if self.cache_latents else dataset

    def latents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(soft-tissue latent, radiograph latent), precomputed in the batch when available."""
        if "z_soft" in batch and "z_cxr" in batch:
            return batch["z_soft"], batch["z_cxr"]
        return self.autoencoder.encode(batch["soft"]), self.autoencoder.encode(batch["cxr"])

    def network_input(self, x_t: torch.Tensor, z_cxr: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """[x_t ‖ condition] as the network sees it in training."""
        if self.settings.condition == "official":
            z_cxr = self.schedule.add_noise(z_cxr, torch.zeros_like(z_cxr), t)  # √ᾱ_t · z_cxr
        return torch.cat([x_t, z_cxr], dim=1)

    def losses(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        z_soft, z_cxr = self.latents(batch)
        t = self.schedule.sample_timesteps(z_soft.shape[0], device=z_soft.device)
        noise = diffusion.offset_noise(z_soft.shape, self.settings.offset_noise, device=z_soft.device,
                                       dtype=z_soft.dtype)
        x_t = self.schedule.add_noise(z_soft, noise, t)
        predicted = self.unet(self.network_input(x_t, z_cxr, t), t)[:, :LATENT_CHANNELS]
        return {"unet": F.mse_loss(predicted.float(), noise.float())}

    @torch.no_grad()
    def validate(self, batches) -> dict[str, float]:
        """ε-MSE on validation pairs at fixed timesteps and noise (as BS-LDM validates): cheap, no sampling."""
        generator = torch.Generator().manual_seed(0)
        total, count = 0.0, 0
        for batch in batches:
            z_soft, z_cxr = self.latents(batch)
            t = torch.randint(0, self.schedule.train_timesteps, (z_soft.shape[0],), generator=generator)
            t = t.to(z_soft.device)
            noise = diffusion.offset_noise(z_soft.shape, self.settings.offset_noise, generator=generator)
            noise = noise.to(z_soft.device, z_soft.dtype)
            x_t = self.schedule.add_noise(z_soft, noise, t)
            predicted = self.unet(self.network_input(x_t, z_cxr, t), t)[:, :LATENT_CHANNELS]
            total += F.mse_loss(predicted.float(), noise.float(), reduction="sum").item()
            count += noise.numel()
        return {"eps_mse": total / count}

    def denoiser(self, z_cxr: torch.Tensor):
        """ε̂(x_t, t) for sampling, with the clean condition concatenated."""

        def predict(x_t, t):
            return self.unet(torch.cat([x_t, z_cxr.to(x_t.dtype)], dim=1), t)[:, :LATENT_CHANNELS]

        return predict

    @torch.no_grad()
    def sample_latent(self, z_cxr: torch.Tensor, generator: torch.Generator | None = None, snapshots: int = 0,
                      **overrides) -> diffusion.SamplingResult:
        """Soft-tissue latents for radiograph latents, with the settings (or ``overrides`` of them)."""
        s = self.settings
        kind = overrides.pop("threshold", s.threshold)
        options = overrides.pop("threshold_options", s.threshold_options if kind == s.threshold else {})
        unknown = set(overrides) - {"sampler", "sampling_steps", "spacing", "eta"}
        if unknown:
            raise TypeError(f"unknown sampling option(s) {sorted(unknown)}")
        return diffusion.sample(self.denoiser(z_cxr), tuple(z_cxr.shape), self.schedule,
                                sampler=overrides.get("sampler", s.sampler),
                                sampling_steps=overrides.get("sampling_steps", s.sampling_steps),
                                spacing=overrides.get("spacing", s.spacing),
                                eta=overrides.get("eta", s.eta), threshold=diffusion.make_threshold(kind, **options),
                                generator=generator, device=z_cxr.device, dtype=z_cxr.dtype, snapshots=snapshots)

    @torch.no_grad()
    def predict(self, cxr: torch.Tensor, generator: torch.Generator | None = None, **overrides) -> torch.Tensor:
        """Bone suppression end to end: radiograph in [0, 1] → soft-tissue estimate in [0, 1].

        ``overrides``: the sampling settings of :meth:`sample_latent`, ``residual`` and ``samples``.
        """
        residual = bool(overrides.pop("residual", self.settings.residual))
        samples = int(overrides.pop("samples", self.settings.samples))
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        z_cxr = self.autoencoder.encode(cxr)
        chains = self.sample_latent(z_cxr.repeat_interleave(samples, dim=0), generator, **overrides).sample
        soft = self.autoencoder.decode(chains).unflatten(0, (len(cxr), samples)).mean(dim=1)
        if not residual:
            return soft
        bone = self.autoencoder.decode(z_cxr) - soft
        return (cxr.to(soft.dtype) - bone).clamp(0, 1)


class LatentPairs(torch.utils.data.Dataset):
    """(z_soft, z_cxr) of every pair of a dataset, kept on the CPU in float32."""

    def __init__(self, z_soft: torch.Tensor, z_cxr: torch.Tensor):
        self.z_soft, self.z_cxr = z_soft, z_cxr

    @classmethod
    @torch.no_grad()
    def encode(cls, autoencoder: MLVQGAN, dataset, device: torch.device, batch_size: int = 16) -> LatentPairs:
        from bs_lib.config import progress

        soft, cxr = [], []
        for start in progress(range(0, len(dataset), batch_size), desc="encoding the pairs once"):
            samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            for key, out in (("soft", soft), ("cxr", cxr)):
                images = torch.stack([sample[key] for sample in samples]).to(device)
                out.append(autoencoder.encode(images).float().cpu())
        return cls(torch.cat(soft), torch.cat(cxr))

    def __len__(self) -> int:
        return len(self.z_soft)

    def __getitem__(self, index: int) -> dict:
        return {"z_soft": self.z_soft[index], "z_cxr": self.z_cxr[index]}


@register_method("bs_ldm", family="diffusion", label="BS-LDM", rebuild_without=("autoencoder",))
def build_bs_ldm(config: TrainConfig) -> ConditionalLDM:
    """``method_args``: ``preset`` (smoke | colab | full), ``autoencoder`` (a trained ML-VQGAN
    checkpoint, needed for training), ``cache_latents`` (encode every pair once, see
    :meth:`ConditionalLDM.prepare_dataset`), and any :class:`DiffusionSettings` field."""
    args = dict(config.method_args)
    preset = args.pop("preset", "smoke")
    if preset not in UNET_PRESETS:
        raise ValueError(f"Unknown BS-LDM preset {preset!r}: choose one of {', '.join(UNET_PRESETS)}.")
    autoencoder_checkpoint = args.pop("autoencoder", None)
    cache_latents = bool(args.pop("cache_latents", False))
    autoencoder = MLVQGAN(VQGAN_PRESETS[preset], prefer_lpips=False)
    if autoencoder_checkpoint:
        load_weights(autoencoder_checkpoint, autoencoder)
    return ConditionalLDM(autoencoder, UNET_PRESETS[preset], DiffusionSettings(**args), cache_latents=cache_latents)
