"""BS-LDM's two stages: paper-scale shapes and sizes, the conditioning, and the training objectives."""

import inspect

import pytest
import torch

from bs_lib import diffusion
from bs_lib.engine import count_parameters
from bs_lib.models.ldm import UNET_PRESETS, ConditionalLDM, DiffusionSettings
from bs_lib.models.unet import AttentionBlock, EpsilonUNet, UNetConfig
from bs_lib.models.vqgan import (
    MLVQGAN,
    VQGAN_PRESETS,
    build_discriminator,
    build_vqvae,
    laplacian_pyramid_loss,
)


def test_the_full_configuration_has_the_papers_shapes_and_parameter_counts():
    with torch.device("meta"):
        vqvae = build_vqvae(VQGAN_PRESETS["full"])
        discriminator = build_discriminator(VQGAN_PRESETS["full"])
        unet8 = EpsilonUNet(UNetConfig(out_channels=8))  # the official model's 8 outputs
        unet4 = EpsilonUNet(UNET_PRESETS["full"])
        latent = vqvae.encode_stage_2_inputs(torch.empty(1, 1, 1024, 1024))
        noise = unet4(torch.empty(2, 8, 128, 128), torch.zeros(2, dtype=torch.long))
    assert count_parameters(vqvae) == 38_326_533
    assert count_parameters(discriminator) == 2_763_585
    assert count_parameters(unet8) == 382_978_184
    assert count_parameters(unet8) + count_parameters(vqvae) == 421_304_717
    assert count_parameters(unet8) - count_parameters(unet4) == 4 * 128 * 9 + 4  # only the 4 untrained outputs go
    assert sum(isinstance(m, AttentionBlock) for m in unet8.modules()) == 52
    assert tuple(latent.shape) == (1, 4, 128, 128)
    assert tuple(noise.shape) == (2, 4, 128, 128)


def test_the_unet_rejects_a_side_it_cannot_halve():
    with torch.device("meta"):
        unet = EpsilonUNet(UNET_PRESETS["full"])
        with pytest.raises(ValueError, match="multiple of 32"):
            unet(torch.empty(1, 8, 100, 100), torch.zeros(1, dtype=torch.long))


@pytest.fixture(scope="module")
def autoencoder():
    torch.manual_seed(0)
    return MLVQGAN(VQGAN_PRESETS["smoke"])


def _batch(n, size=64):
    return {"cxr": torch.rand(n, 1, size, size), "soft": torch.rand(n, 1, size, size)}


def test_stage_one_trains_on_both_image_kinds_with_every_loss_term(autoencoder):
    losses = autoencoder.losses(_batch(3), step=0)
    assert set(losses) >= {"autoencoder", "discriminator", "log/l1", "log/quantisation", "log/perceptual",
                           "log/adversarial"}
    assert autoencoder.perceptual.kind in ("lpips-vgg", "laplacian-pyramid")
    late = MLVQGAN(VQGAN_PRESETS["smoke"], adversarial_start=100)
    assert "discriminator" not in late.losses(_batch(2), step=99)
    assert "discriminator" in late.losses(_batch(2), step=100)


def test_stage_one_latents_decode_without_requantising(autoencoder):
    image = torch.rand(2, 1, 64, 64)
    z = autoencoder.encode(image)
    assert tuple(z.shape) == (2, 4, 16, 16)
    shifted = autoencoder.decode(z + 0.01)  # a latent between codes must decode to something else
    assert not torch.equal(shifted, autoencoder.decode(z))
    assert 0 <= autoencoder.predict(image).min() and autoencoder.predict(image).max() <= 1


def test_the_laplacian_substitute_sees_edges_not_brightness():
    x = torch.rand(2, 1, 64, 64)
    assert laplacian_pyramid_loss(x, x).item() == 0
    assert laplacian_pyramid_loss(x + 0.2, x).item() == pytest.approx(0, abs=1e-5)
    assert laplacian_pyramid_loss(torch.rand(2, 1, 64, 64), x).item() > 0.05


class _Spy(torch.nn.Module):
    """Stands in for the UNet and records what it is shown."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x, t):
        self.seen.append((x.detach().clone(), t.clone()))
        return self.scale * x


@pytest.mark.parametrize("condition", ["clean", "official"])
def test_the_condition_seen_in_training_is_documented_behaviour(autoencoder, condition):
    ldm = ConditionalLDM(autoencoder, UNET_PRESETS["smoke"], DiffusionSettings(condition=condition))
    ldm.unet = _Spy()
    z_soft, z_cxr = torch.randn(5, 4, 16, 16), torch.randn(5, 4, 16, 16)  # any batch size, here 5
    loss = ldm.losses({"z_soft": z_soft, "z_cxr": z_cxr}, step=0)["unet"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    seen, t = ldm.unet.seen[-1]
    condition_seen = seen[:, 4:]
    if condition == "clean":
        assert torch.equal(condition_seen, z_cxr)
    else:
        scale = ldm.schedule.alpha_bar[t].sqrt().float().view(-1, 1, 1, 1)
        assert torch.allclose(condition_seen, scale * z_cxr, atol=1e-6)


def test_sampling_always_sees_the_clean_radiograph_latent(autoencoder):
    ldm = ConditionalLDM(autoencoder, UNET_PRESETS["smoke"], DiffusionSettings(condition="official"))
    ldm.unet = _Spy()
    cxr = torch.rand(2, 1, 64, 64)
    ldm.predict(cxr, sampling_steps=3)
    expected = autoencoder.encode(cxr)
    assert all(torch.equal(x[:, 4:], expected) for x, _ in ldm.unet.seen)


def test_predict_is_seeded_shaped_and_in_range(autoencoder):
    ldm = ConditionalLDM(autoencoder, UNET_PRESETS["smoke"], DiffusionSettings(sampling_steps=4))
    cxr = torch.rand(3, 1, 64, 64)
    first = ldm.predict(cxr, torch.Generator().manual_seed(1))
    assert first.shape == cxr.shape and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, ldm.predict(cxr, torch.Generator().manual_seed(1)))
    ddpm = ldm.predict(cxr, torch.Generator().manual_seed(1), sampler="ddpm", threshold="none")
    assert ddpm.shape == cxr.shape
    with pytest.raises(TypeError, match="unknown sampling option"):
        ldm.predict(cxr, stepz=3)


def test_the_residual_output_keeps_what_the_autoencoder_cannot_reconstruct(autoencoder, monkeypatch):
    ldm = ConditionalLDM(autoencoder, UNET_PRESETS["smoke"], DiffusionSettings(sampling_steps=2))
    cxr = torch.rand(2, 1, 64, 64) * 0.8 + 0.1
    # A model that removes nothing: the sampled soft-tissue latent is the radiograph's own.
    monkeypatch.setattr(ldm, "sample_latent", lambda z_cxr, generator=None, **_: diffusion.SamplingResult(z_cxr, []))
    decoded, residual = ldm.predict(cxr), ldm.predict(cxr, residual=True)
    assert (decoded - cxr).abs().mean() > 0.05  # the decoding loses what stage 1 cannot reconstruct
    assert torch.allclose(residual, cxr, atol=1e-5)  # the residual output gives the radiograph back
    ldm.settings.residual = True
    assert torch.equal(ldm.predict(cxr), residual)  # the setting is the default of predict


def test_the_mean_of_several_samples_varies_less_between_seeds(autoencoder):
    torch.manual_seed(0)
    ldm = ConditionalLDM(autoencoder, UNET_PRESETS["smoke"], DiffusionSettings(sampling_steps=2)).eval()
    cxr = torch.rand(2, 1, 64, 64) * 0.8 + 0.1

    def spread(samples: int) -> float:  # pixel variance over six sampling seeds, averaged over the pixels
        draws = torch.stack([ldm.predict(cxr, torch.Generator().manual_seed(seed), samples=samples)
                             for seed in range(6)])
        assert draws.shape == (6, *cxr.shape)
        return draws.var(dim=0).mean().item()

    one, four = spread(1), spread(4)
    assert one > 0  # each seed draws another soft-tissue image
    assert four < 0.5 * one  # four independent chains: about a quarter of the variance
    with pytest.raises(ValueError, match="samples must be at least 1"):
        ldm.predict(cxr, samples=0)


def test_the_autoencoder_stays_frozen_and_only_the_unet_trains(autoencoder):
    ldm = ConditionalLDM(autoencoder, UNET_PRESETS["smoke"]).train()
    assert not ldm.autoencoder.training
    assert list(ldm.parameter_groups()) == ["unet"]
    assert all(not p.requires_grad for p in ldm.autoencoder.parameters())
    ldm.losses(_batch(2), step=0)["unet"].backward()
    assert all(p.grad is None for p in ldm.autoencoder.parameters())


def test_bs_ldm_samples_short_chains_from_pure_noise_behind_its_threshold():
    settings = DiffusionSettings()
    assert (settings.spacing, settings.threshold) == ("trailing", "tat")  # trailing needs the x̂₀ clamp
    assert inspect.signature(diffusion.sample).parameters["spacing"].default == "leading"  # it clamps nothing


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"condition": "scaled"}, "condition must be"), ({"offset_noise": -0.1}, "non-negative"),
     ({"threshold": "imagen"}, "Unknown threshold"), ({"sampler": "euler"}, "sampler must be one of"),
     ({"spacing": "middle"}, "spacing must be one of"), ({"samples": 0}, "samples must be at least 1")],
)
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        DiffusionSettings(**changes)


def test_cached_latents_train_exactly_as_encoding_every_step(tmp_path):
    """``cache_latents`` moves the frozen encoder out of the loop and changes nothing else."""
    from bs_lib.configs import load_config
    from bs_lib.engine import Trainer, build_objective
    from bs_lib.models.ldm import LatentPairs

    pairs = [{"cxr": torch.rand(1, 64, 64), "soft": torch.rand(1, 64, 64)} for _ in range(6)]
    weights = {}
    for cache in (False, True):
        torch.manual_seed(0)
        config = load_config("bs_ldm", "smoke", steps=3, batch_size=4, output_dir=str(tmp_path), name=f"cache{cache}",
                             method_args={"cache_latents": cache})
        objective = build_objective(config)
        trainer = Trainer(objective, config, pairs)
        trainer.fit()
        assert isinstance(trainer.train_dataset, LatentPairs) is cache
        weights[cache] = torch.cat([p.detach().flatten() for p in objective.unet.parameters()])
    torch.manual_seed(0)
    initial = torch.cat([p.detach().flatten() for p in build_objective(config).unet.parameters()])
    assert not torch.allclose(weights[True], initial, atol=1e-4)  # it trained
    assert torch.allclose(weights[False], weights[True], atol=1e-6)
