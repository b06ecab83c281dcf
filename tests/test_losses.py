"""Tests for bs_lib.losses: pixel losses, MS-SSIM and its hybrid, adversarial losses."""

from __future__ import annotations

import math

import pytest
import torch

from bs_lib import losses


def smooth_images(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [0, 1] (noise blurred by pooling, then rescaled)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, size // 8, size // 8, generator=generator)
    images = torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)
    return (images - images.min()) / (images.max() - images.min())


# --------------------------------------------------------------------------- pixel losses


def test_l1_and_mse_values():
    prediction, target = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    assert losses.l1(prediction, target).item() == pytest.approx(1.0)
    assert losses.mse(prediction, target).item() == pytest.approx(1.5)


@pytest.mark.parametrize("loss", [losses.l1, losses.mse, losses.ms_ssim_l1])
def test_shape_mismatch_is_an_error_not_a_broadcast(loss):
    with pytest.raises(ValueError, match=r"prediction has shape \(1, 64, 64\) but target has shape \(2, 1, 64, 64\)"):
        loss(torch.rand(1, 64, 64), torch.rand(2, 1, 64, 64))


def test_integer_images_are_rejected():
    with pytest.raises(TypeError, match="l1: prediction must be a floating-point tensor"):
        losses.l1(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), torch.zeros(1, 1, 4, 4))
    with pytest.raises(TypeError, match=r"mse: target must be a torch\.Tensor, got ndarray"):
        losses.mse(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4).numpy())


# --------------------------------------------------------------------------- MS-SSIM


def test_ms_ssim_of_identical_images_is_one():
    images = smooth_images()
    assert losses.ms_ssim(images, images).item() == pytest.approx(1.0, abs=1e-5)
    assert losses.ms_ssim_l1(images, images).item() == pytest.approx(0.0, abs=1e-5)


def test_ms_ssim_is_symmetric():
    a, b = smooth_images(seed=0), smooth_images(seed=1)
    assert losses.ms_ssim(a, b).item() == pytest.approx(losses.ms_ssim(b, a).item(), rel=1e-5)


def test_ms_ssim_drops_as_noise_grows():
    images = smooth_images(size=128)
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(images.shape, generator=generator)
    values = [losses.ms_ssim((images + level * noise).clamp(0, 1), images).item() for level in (0.01, 0.05, 0.2)]
    assert 1.0 > values[0] > values[1] > values[2] > 0.0


def test_ms_ssim_uses_fewer_scales_for_small_images():
    assert losses.ms_ssim_scales(256, 256) == 5
    assert losses.ms_ssim_scales(128, 128) == 4
    assert losses.ms_ssim_scales(64, 64) == 3
    assert losses.ms_ssim_scales(64, 20) == 1
    assert losses.ms_ssim_scales(16, 16, window_size=3) == 3


def test_ms_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match=r"at least 11×11 pixels .* got 8×8.* smaller odd window_size"):
        losses.ms_ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    assert math.isfinite(losses.ms_ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), window_size=3).item())


def test_ms_ssim_needs_a_batch_dimension():
    with pytest.raises(ValueError, match=r"expects \(N, C, H, W\) images, got shape \(1, 64, 64\)"):
        losses.ms_ssim(torch.rand(1, 64, 64), torch.rand(1, 64, 64))


def test_ms_ssim_l1_is_differentiable_and_finite_for_anticorrelated_images():
    target = smooth_images()
    prediction = (1 - target).requires_grad_(True)  # negative contrast-structure terms everywhere
    loss = losses.ms_ssim_l1(prediction, target)
    loss.backward()
    assert math.isfinite(loss.item()) and 0.0 < loss.item() <= 1.0 + 1e-6
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0


def test_ms_ssim_l1_mixes_with_alpha():
    a, b = smooth_images(seed=0), smooth_images(seed=1)
    structure, pixels = 1 - losses.ms_ssim(a, b), losses.l1(a, b)
    assert losses.ms_ssim_l1(a, b, alpha=1.0).item() == pytest.approx(structure.item(), rel=1e-5)
    assert losses.ms_ssim_l1(a, b, alpha=0.0).item() == pytest.approx(pixels.item(), rel=1e-5)
    assert losses.ms_ssim_l1(a, b).item() == pytest.approx((0.84 * structure + 0.16 * pixels).item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\], got 1.5"):
        losses.ms_ssim_l1(a, b, alpha=1.5)


def test_gaussian_window_is_normalised_and_odd():
    window = losses.gaussian_window(11, 1.5)
    assert window.sum().item() == pytest.approx(1.0) and window.argmax().item() == 5
    with pytest.raises(ValueError, match="positive odd number, got 4"):
        losses.gaussian_window(4)


# --------------------------------------------------------------------------- adversarial


def test_lsgan_losses_reach_zero_at_their_targets():
    real, fake = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert losses.lsgan_discriminator(real, fake).item() == 0.0
    assert losses.lsgan_generator(real).item() == 0.0  # fakes scored "real": the generator has won
    assert losses.lsgan_generator(fake).item() == 1.0
    assert losses.lsgan_discriminator(fake, real).item() == 1.0


def test_bce_losses_are_log2_at_chance():
    zeros = torch.zeros(3, 1, 5, 5)
    assert losses.bce_generator(zeros).item() == pytest.approx(math.log(2))
    assert losses.bce_discriminator(zeros, zeros).item() == pytest.approx(math.log(2))
    confident = losses.bce_discriminator(torch.full((3, 1, 5, 5), 10.0), torch.full((3, 1, 5, 5), -10.0))
    assert confident.item() < 1e-4


def test_adversarial_losses_take_monai_lists_and_use_the_last_entry():
    features, scores = torch.randn(2, 8, 4, 4), torch.ones(2, 1, 4, 4)
    assert losses.lsgan_generator([features, scores]).item() == 0.0
    assert losses.bce_generator((features, scores)).item() == pytest.approx(math.log(1 + math.exp(-1)))


def test_adversarial_bad_scores():
    with pytest.raises(ValueError, match="lsgan_generator: the discriminator returned an empty list"):
        losses.lsgan_generator([])
    with pytest.raises(TypeError, match=r"bce_discriminator: scores must be a tensor .* got float"):
        losses.bce_discriminator(torch.zeros(1), 0.5)


def test_reconstruction_losses_by_name():
    assert losses.get_reconstruction_loss("ms_ssim_l1") is losses.ms_ssim_l1
    with pytest.raises(ValueError, match="Unknown reconstruction loss 'ssim': choose one of l1, mse, ms_ssim_l1"):
        losses.get_reconstruction_loss("ssim")
