"""The bone layer: transfer to full size keeps fine detail, the rules do what they say, harm is measured."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from bs_lib import bone_layer, io, metrics


def full_size_pair(size: int = 256, seed: int = 0):
    """A radiograph = soft tissue with fine texture + a smooth, wide 'rib'; its soft-tissue image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    texture = 0.05 * gaussian_filter(rng.standard_normal((size, size)), 1.0) / 0.28
    soft = np.clip(0.4 + 0.2 * x + texture, 0, 1)
    rib = 0.2 * np.exp(-(((y - 0.5) / 0.06) ** 2))
    return (np.clip(soft + rib, 0, 1)[None].astype(np.float32), soft[None].astype(np.float32),
            rib[None].astype(np.float32))


def test_transfer_keeps_detail_finer_than_the_working_size():
    cxr, soft, rib = full_size_pair()
    small = io.resize(cxr, (32, 32))
    oracle_small = small - io.resize(rib, (32, 32))  # a perfect suppression at the working size
    transferred = bone_layer.transfer(cxr, small, oracle_small)
    upsampled = io.resize(oracle_small, cxr.shape[1:])
    assert metrics.psnr(transferred, soft) > metrics.psnr(upsampled, soft) + 10
    assert metrics.fine_detail_error(transferred, soft, cxr) < 0.2 * metrics.fine_detail_error(upsampled, soft, cxr)


def test_identity_model_returns_the_radiograph_unchanged():
    cxr, _, _ = full_size_pair()
    small = io.resize(cxr, (64, 64))
    np.testing.assert_allclose(bone_layer.transfer(cxr, small, small), cxr, atol=1e-6)


def test_rules_nonnegative_and_smooth():
    bone = np.array([[[-0.2, 0.3], [0.0, -0.1]]], dtype=np.float32)
    assert (bone_layer.nonnegative(bone) >= 0).all()
    np.testing.assert_array_equal(bone_layer.nonnegative(bone)[bone > 0], bone[bone > 0])
    spike = np.zeros((1, 9, 9), dtype=np.float32)
    spike[0, 4, 4] = 1
    smoothed = bone_layer.smooth(spike, 1.0)
    assert smoothed.max() < 0.2 and smoothed.sum() == pytest.approx(1, abs=1e-4)
    both = bone_layer.restrict(np.stack([-spike[0], spike[0]]), ("nonnegative", "smooth"))
    assert both[0].max() == 0 and both[1].max() > 0


def test_highpass_removes_the_body_and_keeps_the_ribs_and_the_mean():
    size = 256
    y, x = np.mgrid[0:size, 0:size] / size
    ribs = 0.1 * (1 + np.cos(2 * np.pi * y * 17))  # the phantom's rib spacing: 1/17 of the width
    body = 0.3 * np.exp(-(((x - 0.5) / 0.15) ** 2))  # a mediastinum-wide bright band, not bone
    layer = (ribs + body)[None].astype(np.float32)
    kept = bone_layer.highpass(layer)
    assert kept.mean() == pytest.approx(layer.mean(), abs=1e-5)
    inner = (slice(None), slice(32, -32), slice(32, -32))  # away from the border's reflection
    rib_part = (ribs - ribs.mean())[None][inner]
    residue = (kept - layer.mean())[inner] - rib_part
    assert np.sum(residue**2) < 0.05 * np.sum(rib_part**2)  # the ribs pass, the band is gone
    band_part = (body - body.mean())[None][inner]
    assert np.sum(band_part**2) > 2 * np.sum(rib_part**2)  # ... and the band was the larger part
    both = bone_layer.restrict(layer, ("highpass", "nonnegative"))
    assert both.min() >= 0
    with pytest.raises(ValueError, match="sigma above 0"):
        bone_layer.highpass(layer, sigma=0)


def ribbed_pair(size: int = 256, bone_gain: float = 0.4, seed: int = 0):
    """A radiograph showing ``bone_gain`` of a rib pattern over textured soft tissue, and that full rib pattern."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    ribs = (0.1 * (1 + np.cos(2 * np.pi * y * 17)))[None].astype(np.float32)
    soft = 0.4 + 0.2 * x + 0.03 * gaussian_filter(rng.standard_normal((size, size)), 1.5) / 0.19
    return (soft[None] + bone_gain * ribs).astype(np.float32), ribs


def test_gain_removes_only_as_much_bone_as_the_radiograph_shows():
    cxr, ribs = ribbed_pair(bone_gain=0.4)
    fitted = bone_layer.gain(ribs, cxr)  # a layer 2.5 times the bone the image shows
    assert np.sum(fitted) / np.sum(ribs) == pytest.approx(0.4, abs=0.03)
    np.testing.assert_allclose(bone_layer.gain(0.5 * ribs, ribbed_pair(bone_gain=1.0)[0]), 0.5 * ribs)  # never more
    assert not bone_layer.gain(-ribs, cxr).any()  # a layer the image shows the opposite of: nothing removed
    small = io.resize(cxr, (128, 128))  # through sample's path: fitted at the working size, then brought back
    through = bone_layer.transfer(cxr, small, small - io.resize(ribs, (128, 128)), ("gain",))
    unfitted = bone_layer.transfer(cxr, small, small - io.resize(ribs, (128, 128)))
    truth = cxr - 0.4 * ribs
    assert np.abs(through - truth).mean() < 0.2 * np.abs(unfitted - truth).mean()
    with pytest.raises(ValueError, match="pass radiograph"):
        bone_layer.restrict(ribs, ("gain",))
    with pytest.raises(ValueError, match="same shape"):
        bone_layer.measured_gain(ribs, cxr[:, :128])


def test_bad_rules_and_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="choose from highpass, nonnegative, gain, smooth"):
        bone_layer.check_rules(["clip"])
    cxr, soft, _ = full_size_pair(64)
    with pytest.raises(ValueError, match="differ in shape"):
        bone_layer.transfer(cxr, io.resize(cxr, (32, 32)), io.resize(soft, (16, 16)))


def test_resize_keeps_a_signed_image_when_asked():
    bone = np.full((1, 8, 8), -0.25, dtype=np.float32)
    assert io.resize(bone, (16, 16), clip=False).min() == pytest.approx(-0.25)
    assert io.resize(bone, (16, 16)).min() == 0


def test_fine_detail_error_sees_blur_and_added_texture_but_not_a_smooth_offset():
    cxr, soft, _ = full_size_pair()
    assert metrics.fine_detail_error(soft, soft, cxr) == 0
    assert metrics.fine_detail_error(np.clip(soft + 0.05, 0, 1), soft, cxr) < 1e-3
    blurred = gaussian_filter(soft, (0, 4, 4))
    noisy = np.clip(soft + 0.03 * np.random.default_rng(1).standard_normal(soft.shape), 0, 1).astype(np.float32)
    assert metrics.fine_detail_error(blurred, soft, cxr) > 0.01
    assert metrics.fine_detail_error(noisy, soft, cxr) > 0.005
    with pytest.raises(ValueError, match="sigma > 0"):
        metrics.fine_detail_error(soft, soft, cxr, share=0)


class _Identity(torch.nn.Module):
    """A 'model' that removes nothing: its output is its input."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def predict(self, cxr):
        return cxr


@pytest.mark.parametrize("rules", [("nonnegative",), ("highpass", "nonnegative", "gain")])
def test_suppress_image_keeps_the_full_size_radiograph_where_nothing_is_removed(rules):
    from bs_lib.suppress import suppress_image

    cxr, _, _ = full_size_pair()
    np.testing.assert_allclose(suppress_image(_Identity(), cxr, 32, bone_rules=rules), cxr, atol=1e-6)


def test_sample_refuses_an_unknown_bone_rule_before_reading_anything(tmp_path):
    from bs_lib.suppress import suppress_files

    with pytest.raises(ValueError, match="unknown bone-layer rule"):
        suppress_files(tmp_path / "no-checkpoint", [tmp_path / "no-image.png"], tmp_path / "out", bone_rules=["clip"])
    assert not (tmp_path / "out").exists()
