"""benchmarks/bone_layer_gain.py: the gain the rule reads, split into the part that is bone and the part that is not."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("bone_layer_gain")


def chest(size: int = 128):
    """Soft tissue with vessels (a vertical stripe pattern) under bone ribs (a horizontal one)."""
    y, x = np.mgrid[0:size, 0:size] / size
    vessels = 0.04 * (1 + np.cos(2 * np.pi * 23 * x))
    ribs = 0.05 * (1 + np.cos(2 * np.pi * 17 * y))
    soft = (0.3 + vessels)[None].astype(np.float32)
    return {"cxr": torch.as_tensor(soft + ribs[None].astype(np.float32)), "soft": torch.as_tensor(soft),
            "ribs": torch.as_tensor(ribs[None].astype(np.float32)),
            "vessels": torch.as_tensor(vessels[None].astype(np.float32))}


def remover(layer: torch.Tensor):
    """A model that removes a fixed ``layer`` from every radiograph."""
    return SimpleNamespace(predict=lambda cxr, masks, generator: cxr - layer[None])


def test_a_fixed_remover_on_weaker_bone_reads_the_bone_it_finds(script):
    sample = chest()
    weak = script.weaken_bone([sample], 0.4)
    layers = script.model_layers(remover(sample["ribs"]), weak)  # the ribs as recorded: 2.5 times too many
    reading = script.readings(layers, weak)
    assert reading["bone"][0] == pytest.approx(0.4, abs=0.03)
    assert abs(reading["soft"][0]) < 0.02  # vessels do not line up with ribs
    assert reading["image"][0] == pytest.approx(reading["bone"][0] + reading["soft"][0], abs=1e-4)


def test_a_layer_that_takes_vessels_reads_them_as_soft_tissue_the_rule_cannot_tell_apart(script):
    sample = chest()
    layers = script.model_layers(remover(sample["ribs"] + 2 * sample["vessels"]), [sample])
    reading = {key: values[0] for key, values in script.readings(layers, [sample]).items()}
    assert reading["soft"] > 0.2 and reading["bone"] < 0.8  # what is not bone shows in the soft-tissue gain
    assert reading["image"] == pytest.approx(reading["bone"] + reading["soft"], abs=1e-4)
    assert reading["image"] < 1  # the radiograph shows less than the layer: here the rule would scale it down


def test_the_true_bone_layer_reads_about_one_and_the_row_reports_it(script):
    sample = chest()
    reading = script.readings(script.recorded_layers([sample]), [sample])
    assert reading["bone"][0] == pytest.approx(1.0, abs=0.05)
    line = script.row("ribs", 0.4, {key: values * 2 for key, values in reading.items()})
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[:2] == ["ribs", "×0.4"] and len(cells) == 7
    assert cells[5] in ("0%", "100%")  # the two identical readings are both kept whole, or neither is


def test_without_the_real_pairs_it_says_what_it_needs(script, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BS_REAL_PAIRS", str(tmp_path / "absent"))
    monkeypatch.setenv("BS_DATA_DIR", str(tmp_path))
    assert script.main(["--methods", "unet", "--output", str(tmp_path / "out")]) == 2
    assert "real development pairs are needed" in capsys.readouterr().err
    assert not (tmp_path / "out.md").exists()


def test_the_figure_draws_every_model_at_every_bone_strength(script, tmp_path):
    sample = chest(64)
    results = {}
    for label, layer in (("ribs", sample["ribs"]), ("ribs and vessels", sample["ribs"] + sample["vessels"])):
        results[label] = {shown: script.readings(script.model_layers(remover(layer), weak), weak)
                          for shown, weak in ((1.0, [sample]), (0.4, script.weaken_bone([sample], 0.4)))}
    script.figure(tmp_path / "gain.png", results)
    from PIL import Image

    assert Image.open(tmp_path / "gain.png").size[0] > 600
