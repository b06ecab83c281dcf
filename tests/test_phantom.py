"""The synthetic chest phantom: determinism, physics, rib structure, masks and the dataset."""

import numpy as np
import pytest
import torch
from scipy.ndimage import center_of_mass, gaussian_filter, gaussian_filter1d, label

from bs_lib import phantom
from bs_lib.datasets import PhantomDataset, get_dataset


def test_the_same_seed_and_size_give_identical_images():
    first, second = phantom.render(11, 128), phantom.render(11, 128)
    for key in ("cxr", "soft", "bone"):
        assert np.array_equal(first[key], second[key])
        assert first[key].dtype == np.float32 and first[key].shape == (1, 128, 128)
        assert 0 <= first[key].min() and first[key].max() <= 1
    assert not np.array_equal(first["cxr"], phantom.render(12, 128)["cxr"])


@pytest.mark.parametrize("size", [63, 4096])
def test_sizes_outside_the_range_are_refused(size):
    with pytest.raises(ValueError, match="from 64 to 2048"):
        phantom.render(0, size)


def test_the_radiograph_is_soft_tissue_plus_bone_without_blur_and_noise():
    sample = phantom.render(3, 128, dose=None, blur_mm=0)
    assert np.allclose(sample["cxr"], np.clip(sample["soft"] + sample["bone"], 0, 1), atol=1e-6)
    noisy = phantom.render(3, 128)
    assert 1e-4 < np.abs(noisy["cxr"] - sample["cxr"]).mean() < 0.05  # quantum noise and blur, but small


def test_dual_energy_subtraction_recovers_the_path_lengths_exactly():
    paths = phantom.path_lengths(5, 96)
    low = phantom.log_image(paths["soft_cm"], paths["bone_cm"], phantom.DUAL_ENERGIES[0])
    high = phantom.log_image(paths["soft_cm"], paths["bone_cm"], phantom.DUAL_ENERGIES[1])
    separated = phantom.dual_energy_subtraction(low, high)
    assert np.allclose(separated["soft"], separated["soft_per_cm"] * paths["soft_cm"], atol=1e-4)
    assert np.allclose(separated["bone"], separated["bone_per_cm"] * paths["bone_cm"], atol=1e-4)
    assert separated["soft_per_cm"] > 0 and separated["bone_per_cm"] > 0
    assert (paths["bone_cm"] > 0).mean() > 0.1  # there is bone to remove


def _periodicity(profile: np.ndarray, period: float) -> float:
    """Autocorrelation at one rib period of a profile with its slow trend removed."""
    detrended = profile - gaussian_filter1d(profile, period)
    centred = detrended - detrended.mean()
    lag = round(period)
    return float(np.dot(centred[:-lag], centred[lag:]) / np.dot(centred, centred))


@pytest.mark.parametrize("seed", [0, 7, 21])
def test_bone_carries_periodic_ribs_across_the_lung_and_soft_tissue_does_not(seed):
    size = 256
    sample = phantom.render(seed, size, dose=None)
    period = phantom.Anatomy.draw(seed).rib_spacing * size / 2  # pixels between ribs
    column = size // 2 - int(0.45 * size / 2)  # down the middle of the right lung
    rows = np.where(sample["masks"]["lungs"][0][:, column])[0]
    assert len(rows) > 5 * period
    assert _periodicity(sample["bone"][0][rows, column], period) > 0.5
    assert abs(_periodicity(sample["soft"][0][rows, column], period)) < 0.3


def test_masks_and_nodules_are_where_the_metadata_says():
    sample = phantom.render(4, 128, num_nodules=3, nodule_radius=0.05)
    masks = {name: mask[0] for name, mask in sample["masks"].items()}
    assert 0.1 < masks["lungs"].mean() < 0.5
    assert (masks["ribs"] & masks["lungs"]).any() and masks["clavicles"].any()
    assert len(sample["meta"]["nodules"]) == 3
    for nodule in sample["meta"]["nodules"]:
        assert masks["nodules"][int(nodule["y"]), int(nodule["x"])]
    without = phantom.render(4, 128)
    assert not without["masks"]["nodules"].any() and without["meta"]["nodules"] == []


def test_anatomy_varies_with_the_seed():
    draws = [phantom.Anatomy.draw(seed) for seed in range(30)]
    for field in ("rib_spacing", "heart_scale", "inspiration", "rotation_deg", "body_half_width"):
        values = [getattr(a, field) for a in draws]
        assert np.std(values) > 0, field


def test_the_negative_option_flips_polarity():
    normal, negative = phantom.render(2, 64, dose=None), phantom.render(2, 64, dose=None, negative=True)
    assert np.allclose(negative["cxr"], 1 - normal["cxr"])


def test_the_dataset_serves_course_samples_with_disjoint_splits():
    train = PhantomDataset(size=64, split="train", num_images=16)
    test = get_dataset("phantom", split="test", size=64, num_images=4)
    assert len(train) == 16 and len(test) == 4
    sample = train[0]
    assert sample["cxr"].dtype == torch.float32 and tuple(sample["cxr"].shape) == (1, 64, 64)
    assert {"cxr", "soft", "bone", "masks", "id", "patient"} <= set(sample)
    train_ids = {train[i]["patient"] for i in range(len(train))}
    assert not train_ids & {test[i]["patient"] for i in range(len(test))}
    assert torch.equal(train[3]["cxr"], PhantomDataset(64, "train", 16)[3]["cxr"])
    assert "num_samples=16" in repr(train)
    with pytest.raises(IndexError):
        train[16]
    with pytest.raises(ValueError, match="Unknown split"):
        PhantomDataset(split="dev")


def test_nodule_metadata_follows_the_patients_rotation():
    seed = next(s for s in range(100) if abs(phantom.Anatomy.draw(s).rotation_deg) > 3)
    sample = phantom.render(seed, 512, num_nodules=3, nodule_radius=0.02, dose=None)
    labels, _ = label(sample["masks"]["nodules"][0])
    for nodule in sample["meta"]["nodules"]:
        row, column = round(nodule["y"]), round(nodule["x"])
        centroid = center_of_mass(labels == labels[row, column])
        assert labels[row, column] > 0
        assert np.hypot(centroid[0] - nodule["y"], centroid[1] - nodule["x"]) < 1.0  # pixels


def test_the_fast_detector_blur_is_scipys_gaussian_filter():
    image = np.random.default_rng(0).random((90, 70), dtype=np.float32)
    for sigma in (0.3, 0.83, 3.0):
        assert np.allclose(phantom._blur(image, sigma), gaussian_filter(image, sigma), atol=1e-6)


def test_quantum_noise_has_poisson_mean_and_variance_at_every_count():
    rng = np.random.default_rng(1)
    for expected in (5.0, 30.0, 400.0):  # exact Poisson below 50 counts, its normal approximation above
        log_image = np.full((200, 200), -np.log(expected / 1e4), dtype=np.float32)
        counts = 1e4 * np.exp(-phantom._count_photons(log_image, 1e4, rng))
        assert abs(counts.mean() - expected) < 0.02 * expected
        assert abs(counts.var() - expected) < 0.05 * expected
