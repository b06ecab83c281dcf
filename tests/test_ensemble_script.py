"""benchmarks/ensemble.py: several models' bone layers averaged keep what they share and shrink what each adds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("ensemble")


SIZE = 128


def pair():
    """Flat soft tissue and a rib pattern as the bone."""
    y = np.mgrid[0:SIZE, 0:SIZE][0] / SIZE
    soft = np.full((1, SIZE, SIZE), 0.4, dtype=np.float32)
    ribs = (0.05 * (1 + np.cos(2 * np.pi * 9 * y)))[None].astype(np.float32)
    return {"cxr": torch.as_tensor(soft + ribs), "soft": torch.as_tensor(soft), "id": "made-up"}


def stripes(top: int, left: int) -> np.ndarray:
    """Bright vertical stripes (not bone) over one quadrant: each made-up model removes its own."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    inside = (y >= top) & (y < top + SIZE // 2) & (x >= left) & (x < left + SIZE // 2)
    return (0.05 * (1 + np.cos(2 * np.pi * 11 * x / SIZE)) * inside)[None].astype(np.float32)


def model(label: str, mistake: np.ndarray):
    """Removes the true bone and its own mistake (at any working size)."""
    def predict(cxr, masks, generator):
        from bs_lib import io

        bone = (pair()["cxr"] - pair()["soft"]).numpy() + mistake
        return cxr - torch.as_tensor(io.resize(bone, tuple(cxr.shape[-2:]), clip=False))[None]

    return SimpleNamespace(label=label, predict=predict)


def test_averaging_keeps_the_shared_bone_and_shrinks_each_models_own_mistake(script, monkeypatch):
    half = SIZE // 2
    mistakes = {("A", 0): stripes(0, 0), ("A", 1): stripes(0, half), ("B", 0): stripes(half, 0),
                ("B", 1): stripes(half, half)}
    monkeypatch.setattr("bs_lib.benchmark.training.prepare_method",
                        lambda name, profile, *, seed, **options: model(name, mistakes[name, seed]))
    args = SimpleNamespace(methods=["A", "B"], seeds=[0, 1], size=64, runs_dir=None, steps_scale=1,
                           randomise=False)
    samples = [pair()]
    layers = script.model_layers(args, {1.0: samples})[1.0]
    assert sorted(layers) == sorted(mistakes) and layers["A", 0][0].shape == (1, SIZE, SIZE)
    summary, per_method, ratio, versus_shrunk = script.rows_for(layers, samples)
    assert 0.3 < ratio < 0.95  # the mean of four layers holds less detail than one: the mistakes do not line up
    alone, everyone = summary["one model"], summary["all 4 models averaged"]
    assert everyone["psnr"][0] > alone["psnr"][0] + 1 and everyone["bsr"][0] > alone["bsr"][0]
    assert versus_shrunk["psnr"][0] == pytest.approx(everyone["psnr"][0] - summary["one model, layer × r"]["psnr"][0])
    assert per_method["A"]["seeds averaged"]["psnr"][0] > per_method["A"]["alone"]["psnr"][0]
    identity = script.scores([np.zeros((1, SIZE, SIZE), np.float32)], samples)
    text = "\n".join(script.tables({1.0: (summary, per_method, ratio, versus_shrunk)}, {1.0: identity}))
    assert "| all 4 models averaged | +" in text and "| A, seeds averaged |" in text
    assert "| methods passing, seeds averaged | 2 of 2 (alone, seed mean: 2) |" in text


def test_one_model_is_not_an_ensemble(script):
    with pytest.raises(SystemExit):
        script.main(["--methods", "unet", "--seeds", "0"])
