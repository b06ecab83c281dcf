"""Domain randomisation: one imaging chain for both images of a pair, reproducible draws, clear settings."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from bs_lib import augment
from bs_lib.augment import PARTS, Randomisation, Randomised, randomise, randomised
from bs_lib.engine import TrainConfig
from bs_lib.engine.data import build_datasets


def pair(size: int = 64, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    soft = torch.rand(1, size, size, generator=g) * 0.5 + 0.2
    bone = torch.zeros(1, size, size)
    bone[:, size // 3: size // 3 + 4, :] = 0.2  # one rib
    return {"cxr": (soft + bone).clamp(0, 1), "soft": soft, "bone": bone, "masks": {"lung": soft > 0.4}, "id": "p"}


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n: int = 4, size: int = 64, split: str = "train"):
        self.items, self.split = [pair(size, seed) for seed in range(n)], split

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def pairs_factory(split: str, size: int, num: int = 4):
    return Pairs(num, size, split)


def test_every_part_off_is_the_identity():
    sample = pair()
    out = randomise(sample, Randomisation().without(*PARTS), torch.Generator().manual_seed(0))
    assert torch.equal(out["cxr"], sample["cxr"]) and torch.equal(out["soft"], sample["soft"])


def test_both_images_go_through_the_same_chain():
    # Without noise, a pair whose two images are equal stays equal: one draw serves both.
    sample = pair()
    sample["cxr"] = sample["soft"].clone()
    out = randomise(sample, Randomisation().without("noise"), torch.Generator().manual_seed(3))
    assert torch.allclose(out["cxr"], out["soft"])
    assert not torch.allclose(out["soft"], sample["soft"], atol=1e-3)  # and the chain did change them


def test_noise_touches_the_radiograph_only():
    sample = pair()
    chain = Randomisation(noise_sigma=(0.05, 0.05)).without(*(part for part in PARTS if part != "noise"))
    out = randomise(sample, chain, torch.Generator().manual_seed(0))
    assert torch.equal(out["soft"], sample["soft"])
    assert 0.03 < float((out["cxr"] - sample["cxr"]).std()) < 0.06


def test_bone_contrast_scales_the_bone_layer_and_nothing_else():
    sample = pair()
    sample["cxr"] = (sample["soft"] + 0.1 * sample["cxr"]).clamp(0, 0.5)
    chain = Randomisation(bone_gain=(2.0, 2.0)).without(*(part for part in PARTS if part != "bone_contrast"))
    out = randomise(sample, chain, torch.Generator().manual_seed(0))
    assert torch.equal(out["soft"], sample["soft"])
    assert torch.allclose(out["cxr"] - out["soft"], 2 * (sample["cxr"] - sample["soft"]), atol=1e-6)


def test_texture_is_soft_tissue_inside_the_body_the_bone_layer_is_kept():
    sample = pair()
    sample["soft"][..., :4] = 0.0  # air beside the body
    sample["cxr"] = (sample["soft"] + 0.05).clamp(0.1, 0.9) * (sample["soft"] > 0)
    chain = Randomisation(texture_amplitude=(0.02, 0.02)).without(*(part for part in PARTS if part != "texture"))
    out = randomise(sample, chain, torch.Generator().manual_seed(0))
    body = sample["soft"] > 0.05
    change = out["soft"] - sample["soft"]
    assert 0.01 < float(change[body].std()) < 0.03 and torch.equal(change[~body], torch.zeros_like(change[~body]))
    assert torch.allclose(out["cxr"] - out["soft"], sample["cxr"] - sample["soft"], atol=1e-6)


def test_bone_and_masks_are_dropped_and_the_sample_is_left_alone():
    sample = pair()
    before = sample["cxr"].clone()
    out = randomise(sample, Randomisation(), torch.Generator().manual_seed(0))
    assert "bone" not in out and "masks" not in out and out["id"] == "p"
    assert torch.equal(sample["cxr"], before)
    assert float(out["cxr"].min()) >= 0 and float(out["cxr"].max()) <= 1


def test_draws_are_reproducible_and_differ_from_draw_to_draw():
    first, second = Randomised(Pairs(), Randomisation(), seed=5), Randomised(Pairs(), Randomisation(), seed=5)
    a, b = [first[0]["cxr"] for _ in range(2)], [second[0]["cxr"] for _ in range(2)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(Randomised(Pairs(), Randomisation(), seed=6)[0]["cxr"], a[0])


def test_settings_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match=r"Unknown part.*choose among bone_contrast, texture, geometry"):
        Randomisation().without("colour")
    with pytest.raises(ValueError, match=r"unknown key.*'gama'.*valid keys are"):
        Randomisation.from_dict({"gama": [0.5, 2]})
    with pytest.raises(ValueError, match=r"unknown chain 'yes'; named chains are default, faint-bone"):
        randomised(Pairs(), "yes")
    with pytest.raises(ValueError, match="expected true, false, a chain's name or a mapping"):
        randomised(Pairs(), 3)
    assert Randomisation.from_dict({"gamma": [0.8, 1.25], "noise": False}) == Randomisation(gamma=(0.8, 1.25),
                                                                                             noise=False)


def test_a_named_chain_is_that_chain():
    assert randomised(Pairs(), "default").chain == Randomisation() == randomised(Pairs(), True).chain
    faint = randomised(Pairs(), "faint-bone").chain
    assert faint.bone_gain == (0.2, 1.0) and replace(faint, bone_gain=Randomisation().bone_gain) == Randomisation()
    wide = randomised(Pairs(), "wide-bone").chain
    assert wide.bone_gain == (0.2, 1.4) and replace(wide, bone_gain=Randomisation().bone_gain) == Randomisation()


def test_a_config_randomises_its_training_pairs_only():
    config = TrainConfig(name="r", method="unet", data=f"{__name__}:pairs_factory", image_size=32, val_every=10,
                         data_args={"num": 3, "randomise": {"noise": False}})
    train, val = build_datasets(config)
    assert isinstance(train, Randomised) and train.chain.noise is False and len(train) == 3
    assert isinstance(val, Pairs) and val.split == "val"
    plain, _ = build_datasets(TrainConfig(name="p", method="unet", data=f"{__name__}:pairs_factory", image_size=32,
                                          data_args={"randomise": False}))
    assert isinstance(plain, Pairs)


def test_the_blur_is_the_same_fraction_of_the_image_at_every_size():
    # σ = 4 px at 256² is σ = 1 px at 64²: an edge spreads over the same fraction of the side
    chain = Randomisation(blur_px=(4.0, 4.0)).without(*(part for part in PARTS if part != "sharpness"))
    widths = {}
    for size in (64, 256):
        edge = torch.zeros(1, 1, size, size)
        edge[..., size // 2:] = 1.0
        blurred = augment.imaging_chain(edge, chain, torch.Generator().manual_seed(0))[0, 0, 0]
        widths[size] = int(((blurred > 0.05) & (blurred < 0.95)).sum())
    assert 3 < widths[256] / widths[64] < 5, widths
