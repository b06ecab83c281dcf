"""The conventional methods beat doing nothing on the phantom, keep the caller's form and reject bad input."""

import numpy as np
import pytest
import torch

from bs_lib import metrics, phantom
from bs_lib.models import manual

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def samples():
    return [phantom.render(seed, 128, dose=None) for seed in SEEDS]


@pytest.mark.parametrize("name", sorted(manual.MANUAL_METHODS))
def test_beats_the_identity_baseline(samples, name):
    scores = {"identity": [], name: []}
    for sample in samples:
        cxr, soft = sample["cxr"], sample["soft"]
        for method, prediction in (("identity", cxr), (name, manual.predict(name, cxr, sample["masks"]))):
            scores[method].append((metrics.bsr_symmetric(prediction, soft, cxr), metrics.psnr(prediction, soft)))
    identity, method = np.mean(scores["identity"], axis=0), np.mean(scores[name], axis=0)
    assert method[0] > identity[0] + 0.03, f"symmetric BSR {method[0]:.3f} vs identity {identity[0]:.3f}"
    assert method[1] > identity[1] + 0.5, f"PSNR {method[1]:.2f} dB vs identity {identity[1]:.2f} dB"


@pytest.mark.parametrize("name", sorted(manual.MANUAL_METHODS))
@pytest.mark.parametrize("squeeze", [False, True])
def test_shape_dtype_and_range_are_kept(samples, name, squeeze):
    sample = samples[0]
    cxr = sample["cxr"][0] if squeeze else sample["cxr"]
    masks = {k: (v[0] if squeeze else v) for k, v in sample["masks"].items()}
    result = manual.predict(name, cxr, masks)
    assert isinstance(result, np.ndarray)
    assert result.shape == cxr.shape and result.dtype == cxr.dtype
    assert 0.0 <= result.min() and result.max() <= 1.0


@pytest.mark.parametrize("name", sorted(manual.MANUAL_METHODS))
def test_torch_in_torch_out(samples, name):
    sample = samples[0]
    cxr = torch.from_numpy(sample["cxr"])
    masks = {k: torch.from_numpy(v) for k, v in sample["masks"].items()}
    result = manual.predict(name, cxr, masks)
    assert isinstance(result, torch.Tensor)
    assert result.shape == cxr.shape and result.dtype == cxr.dtype
    expected = manual.predict(name, sample["cxr"], sample["masks"])
    np.testing.assert_allclose(result.numpy(), expected, atol=1e-6)


def test_the_benchmark_finds_the_methods():
    assert manual.METHODS is manual.MANUAL_METHODS
    assert set(manual.MANUAL_METHODS) == {"mask_guided_subtraction", "rib_band_filter"}


def test_mask_guided_details_explain_the_result(samples):
    sample = samples[0]
    mask = sample["masks"]["ribs"] | sample["masks"]["clavicles"]
    details = manual.mask_guided_subtraction(sample["cxr"], mask, return_details=True)
    assert 0.3 < details["alpha"] <= 1.5
    assert (details["bone"] >= 0).all()
    rebuilt = np.clip(sample["cxr"][0] - details["alpha"] * details["bone"], 0, 1)
    np.testing.assert_allclose(details["soft"][0], rebuilt, atol=1e-6)


def test_bad_input_is_refused_with_a_clear_message(samples):
    cxr = samples[0]["cxr"]
    with pytest.raises(ValueError, match="expected one image"):
        manual.rib_band_filter(np.zeros((2, 1, 64, 64)))
    with pytest.raises(ValueError, match="expected one image"):
        manual.mask_guided_subtraction(np.zeros((3, 64, 64)), np.zeros((64, 64), bool))
    with pytest.raises(ValueError, match="must cover the image pixel for pixel"):
        manual.mask_guided_subtraction(cxr, np.zeros((64, 64), bool))
    with pytest.raises(ValueError, match="NaN"):
        manual.rib_band_filter(np.full((64, 64), np.nan))
    with pytest.raises(ValueError, match="Unknown manual method"):
        manual.predict("rib_filter", cxr)
    with pytest.raises(ValueError, match="needs masks"):
        manual.predict("mask_guided_subtraction", cxr, masks=None)
