"""The benchmark on real pairs and on any folder of pairs: labelled data, sources, lung rows only with lung masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bs_lib import evaluate
from bs_lib.cli import main

SIZE = 64


def write_pairs(folder, names, seed=0, cxr_dir="CXR", soft_dir="BS"):
    """Small radiograph / soft-tissue PNG pairs: the radiograph is the soft tissue plus bright stripes (bone)."""
    rng = np.random.default_rng(seed)
    for sub in (cxr_dir, soft_dir):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rows = np.arange(48)[:, None] * np.ones((1, 48))
    for name in names:
        soft = 0.3 + 0.4 * rng.random((48, 48)) * 0.2 + 0.2 * rows / 48
        cxr = np.clip(soft + 0.25 * (np.sin(rows / 3.0) > 0.6), 0, 1)
        Image.fromarray((soft * 255).astype(np.uint8)).save(folder / soft_dir / f"{name}.png")
        Image.fromarray((cxr * 255).astype(np.uint8)).save(folder / cxr_dir / f"{name}.png")


def run_cli(tmp_path, dataset, *methods):
    stem = tmp_path / "out" / "bench"
    code = main(["benchmark", "--dataset", str(dataset), "--image-size", str(SIZE), "--num-test", "0",
                 "--runs-dir", str(tmp_path / "runs"), "--output", str(stem), "--no-figures",
                 *(["--methods", *methods] if methods else [])])
    assert code == 0
    return stem.with_name("bench.md").read_text(encoding="utf-8")


def test_a_folder_of_pairs_is_a_test_set_labelled_as_other_data(tmp_path, capsys):
    write_pairs(tmp_path / "mine", ["a", "b", "c"], cxr_dir="radiographs", soft_dir="soft")
    report = run_cli(tmp_path, tmp_path / "mine", "rib_band_filter")
    printed = capsys.readouterr().out
    assert f"other: your pairs in {tmp_path / 'mine'}" in report and "3 images at 64²" in report
    assert evaluate.label_of(evaluate.IDENTITY) in report  # the do-nothing baseline, although not asked for
    assert evaluate.NO_LUNG_MASKS in report and evaluate.NO_LUNG_MASKS in printed
    assert "lung/" not in report and "By source" not in report  # one source: no breakdown


def test_several_sources_get_their_own_rows_and_no_lung_rows(tmp_path):
    write_pairs(tmp_path / "pairs" / "hospital-a", ["1", "2"], seed=1)
    write_pairs(tmp_path / "pairs" / "hospital-b", ["1", "2", "3"], seed=2)
    samples = evaluate.load_test_samples(str(tmp_path / "pairs"), SIZE, 0, None)
    assert evaluate.sources(samples) == ["hospital-a", "hospital-b"]
    assert all(not sample["masks"] for sample in samples)
    result = evaluate.run_benchmark(["rib_band_filter"], "smoke", image_size=SIZE, num_test=None,
                                    runs=tmp_path / "runs", device="cpu", dataset=str(tmp_path / "pairs"))
    assert [r.name for r in result.results] == [evaluate.IDENTITY, "rib_band_filter"]
    assert all(not key.startswith(evaluate.LUNG_PREFIX) for r in result.results for key in r.metric_keys())
    header, rows = result.table("source")
    assert header[:2] == ["method", "source (images)"]
    assert {row[1] for row in rows} == {"hospital-a (2)", "hospital-b (3)"} and len(rows) == 4
    markdown = result.leaderboard_markdown()
    assert "### By source" in markdown and evaluate.NO_LUNG_MASKS in markdown and "### Lung region" in markdown
    identity = result.result(evaluate.IDENTITY)
    by_hand = np.mean([identity.per_image[i]["psnr"] for i in (0, 1)])
    assert identity.summary([0, 1])["psnr"][0] == pytest.approx(by_hand)


def test_real_pairs_by_name(tmp_path, monkeypatch):
    write_pairs(tmp_path / "real" / "szch-bsldm", ["0", "1"], seed=3)
    write_pairs(tmp_path / "real" / "szch-bsdiff", ["0"], seed=4)
    monkeypatch.setenv("BS_REAL_PAIRS", str(tmp_path / "real"))
    report = run_cli(tmp_path, "real-pairs", "rib_band_filter")
    assert "real development pairs" in report and "### By source" in report
    assert "szch-bsldm (2)" in report and "szch-bsdiff (1)" in report
    assert evaluate.NO_LUNG_MASKS in report


def test_lung_rows_only_where_the_image_has_its_own_lung_mask():
    lungs = torch.zeros(1, 32, 32)
    lungs[:, 8:24, 8:24] = 1
    with_mask = {"cxr": torch.rand(1, 32, 32), "soft": torch.rand(1, 32, 32), "masks": {"lungs": lungs}, "id": "a"}
    without = {"cxr": torch.rand(1, 32, 32), "soft": torch.rand(1, 32, 32), "masks": {}, "id": "b"}
    assert any(k.startswith(evaluate.LUNG_PREFIX) for k in evaluate.image_metrics(with_mask["cxr"], with_mask))
    assert not any(k.startswith(evaluate.LUNG_PREFIX) for k in evaluate.image_metrics(without["cxr"], without))
    method = evaluate.identity_method()
    result = evaluate.BenchmarkResult([evaluate.evaluate_method(method, [with_mask, without], batch_size=2)],
                                      [with_mask, without], {"dataset": "mixed"})
    assert result.lung_images() == [0]
    assert "1 of 2 images" in result.lung_note()
    assert result.result(evaluate.IDENTITY).summary()["lung/psnr"][1] == 0.0  # one image: no spread


def test_mask_guided_subtraction_needs_bone_masks(tmp_path):
    write_pairs(tmp_path / "mine", ["a"])
    with pytest.raises(ValueError, match="needs bone masks"):
        evaluate.run_benchmark(["mask_guided_subtraction"], "smoke", image_size=SIZE, runs=tmp_path / "runs",
                               device="cpu", dataset=str(tmp_path / "mine"))
