"""benchmarks/do_no_harm.py: every way of bringing a bone layer back, scored against identity over seeds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("do_no_harm")


def chest(size: int):
    """Soft tissue with a bright mediastinum-wide band (not bone) and a rib pattern as the bone."""
    y, x = np.mgrid[0:size, 0:size] / size
    body = 0.2 * np.exp(-(((x - 0.5) / 0.15) ** 2))
    soft = (0.3 + body)[None].astype(np.float32)
    ribs = (0.05 * (1 + np.cos(2 * np.pi * 17 * y)))[None].astype(np.float32)
    return {"cxr": torch.as_tensor(soft + ribs), "soft": torch.as_tensor(soft), "body": body[None]}


def test_the_highpass_variant_gives_back_what_a_bright_is_bone_model_took(script):
    from bs_lib import io

    sample = chest(256)
    small_soft = torch.as_tensor(io.resize(sample["soft"].numpy(), (128, 128)))
    small_body = torch.as_tensor(io.resize(sample["body"].astype(np.float32), (128, 128), clip=False))
    shortcut = SimpleNamespace(  # removes the ribs *and* the body's bright band
        predict=lambda cxr, masks, generator: (small_soft - small_body)[None])
    estimates = script.predictions(shortcut, [sample], 128)
    assert set(estimates) == set(script.VARIANTS)
    scores = {variant: script.scores(values, [sample]) for variant, values in estimates.items()}
    as_is, kept = scores["bone layer"]["bsr_symmetric"][0], scores["+ highpass"]["bsr_symmetric"][0]
    assert as_is < 0 < 0.5 < kept  # the band removed as bone costs more than the ribs bring; highpass gives it back


def test_seed_means_passes_and_the_summary_counts(script):
    identity = {"psnr": np.array([20.0, 20.0]), "bsr_symmetric": np.array([0.5, 0.5]),
                "fine_detail_error": np.array([1.0, 1.0])}

    def draw(psnr, bsr):
        return {"psnr": np.full(2, psnr), "bsr_symmetric": np.full(2, bsr), "fine_detail_error": np.ones(2)}

    per_seed = {"A": {v: [draw(21, 0.6), draw(21, 0.3)] for v in script.VARIANTS},  # seed mean 0.45: fails
                "B": {v: [draw(22, 0.6), draw(23, 0.7)] for v in script.VARIANTS}}  # passes on both seeds
    results = {m: {v: script.seed_mean(d) for v, d in variants.items()} for m, variants in per_seed.items()}
    assert results["A"]["bone layer"]["bsr_symmetric"] == pytest.approx([0.45, 0.45])
    assert not script.passes(results["A"]["bone layer"], identity)
    assert script.passes(results["B"]["bone layer"], identity)
    lines = script.summary(results, identity, per_seed)
    assert "(of 2)" in lines[0] and "(of 4)" in lines[0]
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[0] == "soft upsampled" and cells[-2:] == ["1", "3"]  # B, and B twice + A's first seed


def test_weakening_the_bone_scales_the_bone_layer_and_keeps_the_soft_tissue(script):
    sample = chest(64)
    weak = script.weaken_bone([sample], 0.5)[0]
    assert torch.equal(weak["soft"], sample["soft"])
    assert torch.allclose(weak["cxr"] - weak["soft"], 0.5 * (sample["cxr"] - sample["soft"]), atol=1e-6)
    doing_nothing = [script.scores([s["cxr"].numpy()], [s])["psnr"][0] for s in (sample, weak)]
    assert doing_nothing[1] - doing_nothing[0] == pytest.approx(20 * np.log10(2), abs=0.01)  # half the error
    assert torch.allclose(script.weaken_bone([sample], 1.0)[0]["cxr"], sample["cxr"], atol=1e-6)
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="bone-gain"):
            script.weaken_bone([sample], bad)


def test_the_report_names_the_chain_the_runs_were_trained_through(script):
    assert script.chain_note(False) == ""
    assert script.chain_note(True) == ", trained through random imaging chains"
    assert "(`faint-bone`, `bs_lib.augment.CHAINS`)" in script.chain_note("faint-bone")


def test_the_phantom_the_runs_saw_is_named(script):
    assert script.ribs_note(None) == ""
    assert script.ribs_note((0.13, 0.165)) == " on a phantom with ribs 0.13–0.165 apart"
    assert script.ribs_note((0.13, 0.165), (0.55, 0.8)) == " on a phantom with ribs 0.13–0.165 apart, falling 0.55–0.8"
