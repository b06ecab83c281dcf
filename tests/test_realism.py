"""bs_lib.realism: each measure recovers a known property of an image built to have it."""

import numpy as np
import pytest

from bs_lib import realism


def power_law_image(beta: float, size: int = 256, seed: int = 0) -> np.ndarray:
    """Random phases, amplitude k^(-beta/2): a power spectrum P(k) ∝ k^-beta."""
    rng = np.random.default_rng(seed)
    ky, kx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    spectrum = k ** (-beta / 2) * np.exp(2j * np.pi * rng.random((size, size)))
    return np.real(np.fft.ifft2(spectrum))


@pytest.mark.parametrize("beta", [1.5, 2.5, 3.0])
def test_spectrum_slope_recovers_the_exponent_of_a_power_law(beta):
    assert realism.spectrum_slope(power_law_image(beta)) == pytest.approx(beta, abs=0.15)


@pytest.mark.parametrize("sigma", [0.002, 0.01, 0.03])
def test_noise_level_finds_white_noise_on_smooth_anatomy_with_edges(sigma):
    rows, columns = np.mgrid[0:256, 0:256] / 256
    anatomy = 0.5 + 0.2 * np.sin(3 * rows) * np.cos(2 * columns) + 0.3 * (columns > 0.5)  # one sharp edge
    noisy = anatomy + np.random.default_rng(1).normal(0, sigma, anatomy.shape)
    assert realism.noise_level(noisy) == pytest.approx(sigma, rel=0.1)


def test_high_frequency_share_separates_thin_bands_from_a_smooth_ramp():
    columns = np.arange(256)[None, :].repeat(256, axis=0)
    ribs = (np.sin(2 * np.pi * columns / 8) > 0).astype(float)  # 0.125 cycles per pixel
    ramp = columns / 255.0
    assert realism.high_frequency_share(ribs) > 0.9 > 0.1 > realism.high_frequency_share(ramp)


def test_lung_region_uses_a_given_mask_else_the_darkest_third_of_the_body():
    image = np.linspace(0, 1, 300).reshape(1, 300).repeat(10, axis=0)
    mask = np.zeros_like(image, dtype=bool)
    mask[:, :5] = True
    assert (realism.lung_region(image, mask) == mask).all()
    region = realism.lung_region(image)
    body = image > 0.05
    assert not region[~body].any() and region.sum() == pytest.approx(body.sum() / 3, rel=0.02)
    assert image[region].max() < image[body & ~region].min()


def test_measure_reads_a_pair_and_compare_tabulates_sources():
    rng = np.random.default_rng(0)
    soft = np.clip(0.4 + 0.05 * rng.standard_normal((64, 64)), 0, 1)
    cxr = soft.copy()
    cxr[::8] += 0.2  # horizontal "ribs": the bone layer is 0.2 on one row in eight
    values = realism.measure(cxr, soft)
    assert set(values) == set(realism.MEASURES)
    assert values["bone mean"] == pytest.approx(0.2 / 8) and values["black share"] == 0.0
    table = realism.compare({"a": [values], "b": [values, values]})
    assert list(table.index) == list(realism.MEASURES) and list(table.columns) == ["a", "b"]
    assert table.loc["bone mean", "b"] == pytest.approx(0.025)


def test_measure_dataset_uses_lung_masks_only_when_asked():
    rng = np.random.default_rng(2)
    soft = np.clip(0.2 + 0.6 * rng.random((1, 32, 32)), 0, 1)
    mask = np.zeros((1, 32, 32), dtype=bool)
    mask[:, :4, :4] = True
    sample = {"cxr": soft + 0.01, "soft": soft, "masks": {"lungs": mask}}
    with_mask, = realism.measure_dataset([sample])
    proxy, = realism.measure_dataset([sample], lung_masks=False)
    assert with_mask == realism.measure(soft[0] + 0.01, soft[0], mask[0])
    assert proxy == realism.measure(soft[0] + 0.01, soft[0]) and proxy["lung texture"] != with_mask["lung texture"]


def test_bright_is_bone_tells_bright_bone_from_bright_soft_tissue():
    rng = np.random.default_rng(3)
    soft = 0.3 + 0.05 * rng.random((64, 64))
    bone = np.zeros_like(soft)
    bone[:48, 27:37] = 0.3  # a spine (12 % of the pixels): the brightest tenth is bone
    assert realism.bright_is_bone(soft + bone, bone) == pytest.approx(0.3 - bone.mean())
    soft[48:] = 0.9  # an abdomen brighter than the spine above it: the brightest tenth holds no bone
    assert realism.bright_is_bone(soft + bone, bone) == pytest.approx(-bone.mean())


@pytest.mark.parametrize("period", [12, 18])
def test_the_rib_period_of_horizontal_bands_is_their_spacing(period):
    size = 256
    rows = np.arange(size, dtype=np.float64)[:, None]
    ribs = np.clip(np.sin(2 * np.pi * rows / period), 0, None) * np.ones((1, size))
    assert realism.rib_period(0.05 * ribs) == pytest.approx(period / size, abs=1.5 / size)


@pytest.mark.parametrize("degrees", [0, 20, 40, 60])
def test_the_rib_tilt_of_oblique_bands_is_their_angle_on_either_side(degrees):
    size = 256
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = np.radians(degrees)
    for side in (1, -1):  # ribs falling to the left or to the right read alike
        across = rows * np.cos(angle) - side * columns * np.sin(angle)
        ribs = np.clip(np.sin(2 * np.pi * across / 16), 0, None)
        assert realism.rib_tilt(0.05 * ribs) == pytest.approx(degrees, abs=3)


def test_the_rib_tilt_of_white_noise_is_about_45_degrees():
    noise = np.random.default_rng(0).normal(size=(256, 256))
    assert 40 < realism.rib_tilt(noise) < 55
