"""The metrics: the official definitions pinned to reference values, analytic cases, and bad input."""

import numpy as np
import pytest
import torch
from PIL import Image

from bs_lib import metrics

# README of the real sample pairs: (BSR official, MSE, PSNR float, PSNR uint8 official), prediction = radiograph
REFERENCE = {
    ("szch-bsldm", 0): (0.820067, 4.380609e-03, 23.5847, 28.5701),
    ("szch-bsldm", 1): (0.661336, 3.752700e-03, 24.2566, 29.0367),
    ("szch-bsldm", 2): (0.893037, 9.633565e-03, 20.1621, 27.7696),
    ("szch-bsdiff", 0): (0.825388, 5.721134e-03, 22.4252, 28.5438),
    ("szch-bsdiff", 1): (0.732498, 4.137555e-03, 23.8326, 28.9060),
    ("szch-bsdiff", 2): (0.844258, 6.536594e-03, 21.8465, 28.1281),
}


@pytest.mark.parametrize(("folder", "index"), list(REFERENCE))
def test_the_official_definitions_reproduce_the_reference_values(real_pairs, folder, index):
    def read(kind):
        return np.asarray(Image.open(real_pairs / folder / kind / f"{index}.png").convert("L"), np.float64) / 255

    cxr, soft = read("CXR"), read("BS")
    bsr, mse, psnr, psnr_uint8 = REFERENCE[(folder, index)]
    assert metrics.bsr(cxr, soft, cxr) == pytest.approx(bsr, abs=1e-5)
    assert metrics.mse(cxr, soft) == pytest.approx(mse, rel=1e-5)
    assert metrics.psnr(cxr, soft) == pytest.approx(psnr, abs=1e-3)
    assert metrics.psnr_uint8_official(cxr, soft) == pytest.approx(psnr_uint8, abs=1e-3)
    assert metrics.psnr_uint8_official(cxr, soft) > metrics.psnr(cxr, soft) + 4  # the wrap-around inflates


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    soft = rng.uniform(0.2, 0.6, (32, 32))
    bone = np.zeros((32, 32))
    bone[::4] = 0.2  # rib-like stripes
    return soft + bone, soft, bone


def test_a_perfect_prediction(pair):
    cxr, soft, _ = pair
    assert metrics.mse(soft, soft) == 0 and metrics.psnr(soft, soft) == np.inf
    assert metrics.bsr(soft, soft, cxr) == 1 and metrics.bsr_symmetric(soft, soft, cxr) == 1
    assert metrics.ssim(soft, soft) == pytest.approx(1) and metrics.ms_ssim(soft, soft) == pytest.approx(1)


def test_a_constant_offset_is_forgiven_by_bsr_but_not_by_psnr(pair):
    cxr, soft, _ = pair
    shifted = soft + 0.1
    assert metrics.mse(shifted, soft) == pytest.approx(0.01)
    assert metrics.psnr(shifted, soft) == pytest.approx(20.0)
    assert metrics.bsr(shifted, soft, cxr) == pytest.approx(1) and metrics.bsr_symmetric(shifted, soft, cxr) == 1


def test_pure_bone_residual_fools_the_official_bsr_only(pair):
    cxr, soft, bone = pair
    # doing nothing leaves all the bone: the one-sided clip ignores most of it
    official, symmetric = metrics.bsr(cxr, soft, cxr), metrics.bsr_symmetric(cxr, soft, cxr)
    uniform_share = bone.mean() ** 2 / (bone**2).mean()  # what the mean shift forgives
    assert symmetric == pytest.approx(uniform_share)
    assert official > symmetric + 0.3
    half = soft + bone / 2
    assert metrics.bsr_symmetric(half, soft, cxr) > symmetric  # removing half the bone helps


def test_numpy_torch_single_and_batch_inputs_agree(pair):
    _, soft, _ = pair
    prediction = np.clip(soft + 0.05 * np.random.default_rng(1).standard_normal(soft.shape), 0, 1)
    batch = torch.from_numpy(np.stack([prediction, soft]))[:, None].float()
    targets = torch.from_numpy(np.stack([soft, soft]))[:, None].float()
    per_image = metrics.psnr(batch, targets, per_image=True)
    assert per_image.shape == (2,) and per_image[1] == np.inf
    assert per_image[0] == pytest.approx(metrics.psnr(prediction, soft), abs=1e-3)
    assert metrics.mse(torch.from_numpy(prediction)[None], soft) == pytest.approx(metrics.mse(prediction, soft))


def test_region_metrics_use_only_the_mask(pair):
    cxr, soft, _ = pair
    prediction = soft.copy()
    prediction[:, 16:] = np.clip(prediction[:, 16:] + 0.2, 0, 1)  # errors only in the right half
    left = np.zeros_like(soft, dtype=bool)
    left[:, :16] = True
    assert metrics.mse(prediction, soft, mask=left) == 0
    assert metrics.mse(prediction, soft, mask=~left) > 0
    scores = metrics.evaluate(prediction, soft, cxr, mask=left)
    assert scores["lung/psnr"] == np.inf and scores["psnr"] < 30


def test_evaluate_reports_every_metric(pair):
    cxr, soft, _ = pair
    scores = metrics.evaluate(cxr, soft, cxr)
    assert {"mse", "psnr", "psnr_uint8_official", "ssim", "ms_ssim", "bsr", "bsr_symmetric"} <= set(scores)
    assert all(isinstance(v, float) for v in scores.values())


def test_lpips_is_none_without_local_weights(pair):
    cxr, soft, _ = pair
    if metrics.lpips_available():
        pytest.skip("LPIPS weights are on this machine")
    with pytest.warns(UserWarning, match="LPIPS skipped"):
        assert metrics.lpips(cxr, soft) is None


def test_lpips_availability_asks_for_the_backbone_s_own_weights(tmp_path, monkeypatch):
    import sys
    import types

    import torch

    for package in ("lpips", "torchvision"):  # stand-ins: only their presence is asked about
        monkeypatch.setitem(sys.modules, package, sys.modules.get(package) or types.ModuleType(package))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    assert not metrics.lpips_available() and not metrics.lpips_available("vgg")
    (tmp_path / "checkpoints" / "vgg16-397923af.pth").touch()
    assert metrics.lpips_available("vgg") and not metrics.lpips_available("alex")
    with pytest.raises(ValueError, match="unknown LPIPS backbone 'resnet'"):
        metrics.lpips_available("resnet")


@pytest.mark.parametrize(
    ("prediction", "target", "message"),
    [
        (np.zeros((8, 8)), np.zeros((9, 8)), "shape mismatch"),
        (np.full((8, 8), np.nan), np.zeros((8, 8)), "NaN or infinite"),
        (np.full((8, 8), 255.0), np.zeros((8, 8)), r"outside \[0, 1\]"),
        (np.full((8, 8), -1.0), np.zeros((8, 8)), r"convert from \[-1, 1\]"),
        (np.full((8, 8), 1.00002), np.zeros((8, 8)), r"\[1\.00002, 1\.00002\], outside"),  # not "[1, 1]"
        (np.zeros((2, 3, 8, 8)), np.zeros((2, 3, 8, 8)), "expected an image shaped"),
    ],
)
def test_bad_input_gets_a_clear_error(prediction, target, message):
    with pytest.raises(ValueError, match=message):
        metrics.mse(prediction, target)


def test_undefined_cases_are_errors_not_numbers():
    image = np.full((16, 16), 0.5)
    with pytest.raises(ValueError, match="no bone"):
        metrics.bsr(image, image, image)
    with pytest.raises(ValueError, match="mask is empty"):
        metrics.mse(image, image, mask=np.zeros((16, 16), bool))
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(image, image, data_range=0)
