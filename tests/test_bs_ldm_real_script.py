"""benchmarks/bs_ldm_real.py: BS-LDM's decoded and residual outputs as gains over identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bs_lib import diffusion
from bs_lib.models.ldm import UNET_PRESETS, ConditionalLDM, DiffusionSettings
from bs_lib.models.vqgan import MLVQGAN, VQGAN_PRESETS


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("bs_ldm_real")


def test_a_model_that_removes_nothing_gives_the_radiograph_back_only_through_the_residual(script, monkeypatch):
    torch.manual_seed(0)
    ldm = ConditionalLDM(MLVQGAN(VQGAN_PRESETS["smoke"]), UNET_PRESETS["smoke"], DiffusionSettings(sampling_steps=2))
    monkeypatch.setattr(ldm, "sample_latent", lambda z_cxr, generator=None, **_: diffusion.SamplingResult(z_cxr, []))
    rng = np.random.default_rng(0)
    samples = [{"cxr": torch.as_tensor(rng.uniform(0.2, 0.8, (1, 64, 64)), dtype=torch.float32),
                "soft": torch.as_tensor(rng.uniform(0.2, 0.8, (1, 64, 64)), dtype=torch.float32)} for _ in range(3)]
    gains = script.gains(ldm.eval(), samples)
    assert set(gains) == {"autoencoder only", "decoded", "decoded + nonnegative", "decoded + highpass + nonnegative",
                          "residual", "residual + nonnegative", "residual + highpass + nonnegative"}
    assert np.allclose(gains["decoded"]["psnr"], gains["autoencoder only"]["psnr"], atol=1e-4)
    assert abs(gains["autoencoder only"]["psnr"].mean()) > 0.1  # an untrained stage 1 changes the image
    for name in ("residual", "residual + nonnegative", "residual + highpass + nonnegative"):
        assert np.allclose(gains[name]["psnr"], 0, atol=0.01)  # the radiograph itself: no gain, no loss
    averaged = script.gains(ldm, samples, averages=(1, 2))
    assert set(averaged) - set(gains) == {f"{output}, mean of 2{rules}" for output in ("decoded", "residual")
                                          for rules in ("", " + nonnegative", " + highpass + nonnegative")}
    assert np.allclose(averaged["residual, mean of 2"]["psnr"], 0, atol=0.01)


def test_the_table_shows_every_seed_and_the_seed_mean(script):
    per_seed = [{"residual": {"psnr": np.array([1.0, 1.0]), "bsr_symmetric": np.array([0.1, 0.1])}},
                {"residual": {"psnr": np.array([3.0, 3.0]), "bsr_symmetric": np.array([-0.1, -0.1])}}]
    lines = script.table(per_seed, [0, 1])
    assert "seed 0" in lines[0] and "seed 1" in lines[0]
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells == ["residual", "+1.00", "+3.00", "+2.00 [+2.00, +2.00]", "+10.0", "-10.0", "+0.0 [+0.0, +0.0]"]
