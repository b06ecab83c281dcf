"""The benchmark: one split, one metric code, the identity baseline always present, clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from bs_lib import evaluate, metrics
from bs_lib.evaluate import IDENTITY, BenchmarkResult, MethodResult, TrainingBudget

SIZE = 64  # the smallest size the phantom renders
MANUAL = ["rib_band_filter", "mask_guided_subtraction"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def bench(runs, tmp_path_factory) -> BenchmarkResult:
    """The identity, the manual methods and a U-Net trained for 3 steps, on 4 phantom test images of 64²."""
    torch.set_num_threads(1)
    split = tmp_path_factory.mktemp("out") / "split.json"
    return evaluate.run_benchmark(["unet", *MANUAL], "smoke", image_size=SIZE, num_test=4, train_steps={"unet": 3},
                                  runs=runs, device="cpu", split_out=split, command="test command")


def test_identity_row_is_always_present(bench):
    assert [r.name for r in bench.results] == [IDENTITY, "unet", *MANUAL]  # identity added although not asked for
    markdown = bench.leaderboard_markdown()
    assert evaluate.label_of(IDENTITY) in markdown and "U-Net" in markdown
    assert "### Whole image" in markdown and "### Cost" in markdown


def test_numbers_match_direct_metric_calls(bench, runs):
    from bs_lib.engine import latest_checkpoint
    from bs_lib.suppress import load_suppressor

    identity, unet = bench.result(IDENTITY), bench.result("unet")
    objective, config = load_suppressor(latest_checkpoint(runs / f"benchmark-unet-smoke-{SIZE}px-3steps-seed0"), "cpu")
    assert config.steps == 3 and config.image_size == SIZE
    for index, sample in enumerate(bench.samples):
        direct_identity = metrics.evaluate(sample["cxr"], sample["soft"], sample["cxr"])
        prediction = objective.predict(sample["cxr"][None])[0]
        direct_unet = metrics.evaluate(prediction, sample["soft"], sample["cxr"])
        for key in ("psnr", "bsr", "bsr_symmetric", "mse"):
            assert identity.per_image[index][key] == pytest.approx(direct_identity[key], rel=1e-6, abs=1e-9)
            assert unet.per_image[index][key] == pytest.approx(direct_unet[key], rel=1e-4, abs=1e-7)
    psnr = [row["psnr"] for row in unet.per_image]
    mean, std = unet.summary()["psnr"]
    assert mean == pytest.approx(np.mean(psnr)) and std == pytest.approx(np.std(psnr))


def test_manual_methods_match_their_own_predict(bench):
    from bs_lib.models import manual

    for name in MANUAL:
        result = bench.result(name)
        assert result.parameters == 0 and result.budget.describe() == "none (no training)"
        for index, sample in enumerate(bench.samples):
            direct = manual.predict(name, sample["cxr"], sample["masks"])
            assert torch.allclose(result.predictions[index], direct.float(), atol=1e-6)
    assert bench.result("mask_guided_subtraction").family == "manual"


def test_lung_region_metrics_are_reported(bench):
    lungs = bench.samples[0]["masks"]["lungs"]
    direct = metrics.evaluate(bench.samples[0]["cxr"], bench.samples[0]["soft"], bench.samples[0]["cxr"], mask=lungs)
    lung_keys = [k for k in bench.result(IDENTITY).per_image[0] if k.startswith(evaluate.LUNG_PREFIX)]
    assert lung_keys, "no lung-region metric in the per-image results"
    for key in lung_keys:
        assert bench.result(IDENTITY).per_image[0][key] == pytest.approx(direct[key])


def test_per_image_rows_align_across_methods(bench):
    ids = [str(sample["id"]) for sample in bench.samples]
    assert len(ids) == 4 == len(set(ids))
    for result in bench.results:
        assert [row["id"] for row in result.per_image] == ids
        assert result.predictions.shape == (4, 1, SIZE, SIZE)
    frame = bench.per_image_frame()
    assert len(frame) == 16 and set(frame["method"]) == {IDENTITY, "unet", *MANUAL}


def test_cost_fields(bench, runs):
    from bs_lib.engine import latest_checkpoint
    from bs_lib.suppress import load_suppressor

    identity, unet = bench.result(IDENTITY), bench.result("unet")
    assert all(r.seconds_per_image > 0 for r in bench.results)
    assert identity.parameters == 0 and identity.budget.steps == 0
    objective, _ = load_suppressor(latest_checkpoint(runs / f"benchmark-unet-smoke-{SIZE}px-3steps-seed0"), "cpu")
    assert unet.parameters == sum(p.numel() for p in objective.network.parameters())
    assert unet.budget.steps == 3 and unet.budget.images_seen == 3 * unet.budget.batch_size
    assert unet.budget.wall_time_s is not None and unet.budget.wall_time_s > 0


def test_parameters_count_only_what_prediction_touches():
    generator, discriminator = torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.Conv2d(2, 8, 3)
    method = evaluate.Method("toy", "toy", "GAN", lambda cxr, masks, g: generator(cxr).clamp(0, 1))
    sample = {"cxr": torch.rand(1, 8, 8), "soft": torch.rand(1, 8, 8), "id": "a"}
    _, seconds, parameters = evaluate.predict_all(method, [sample], batch_size=1, seed=0)
    assert parameters == sum(p.numel() for p in generator.parameters()) == 10
    assert seconds > 0
    del discriminator


def test_deterministic_on_cpu(bench, runs):
    again = evaluate.run_benchmark(["unet"], "smoke", image_size=SIZE, num_test=4, train_steps={"unet": 3},
                                   runs=runs / "again", device="cpu")
    assert torch.equal(again.result("unet").predictions, bench.result("unet").predictions)
    assert again.result("unet").per_image == bench.result("unet").per_image


def test_saved_split_and_files(bench, tmp_path):
    split = json.loads(open(bench.settings["split_file"], encoding="utf-8").read())
    assert split["unit"] == "patient" and len(split["splits"]["test"]) == 4
    written = bench.save(tmp_path / "bench", figures=True)
    names = {path.name for path in written}
    assert {"bench.md", "bench.html", "bench.csv", "bench.json", "bench_cases.png", "bench_differences.png"} <= names
    report = (tmp_path / "bench.md").read_text(encoding="utf-8")
    assert "test command" in report
    document = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert document["settings"]["command"] == "test command"
    assert len(document["per_image"]) == 16 and {row["method"] for row in document["summary"]} == {
        IDENTITY, "unet", *MANUAL}
    assert "<table>" in (tmp_path / "bench.html").read_text(encoding="utf-8")


def test_published_table_is_labelled_and_kept_apart(bench):
    table = evaluate.published_table("SZCH-X-Rays")
    assert "DIFFERENT DATA" in table.attrs["title"] and "not comparable" in table.attrs["caveat"]
    assert table.loc["BS-LDM", "PSNR ↑"] == "31.953 ± 1.969"
    report = bench.report_markdown()
    ours, published = report.split("## Published numbers")
    assert "GL-LCM" not in ours and "GL-LCM" in published  # never merged into our ranking
    assert "DIFFERENT DATA" in published and "not comparable" in published
    with pytest.raises(ValueError, match="No published table for 'CheXpert'"):
        evaluate.published_table("CheXpert")


def test_a_longer_phantom_test_split_starts_with_the_default_one():
    default = evaluate.load_test_samples("phantom", 64, 0, None)
    longer = evaluate.load_test_samples("phantom", 64, 0, len(default) + 5)
    assert len(longer) == len(default) + 5
    assert [s["id"] for s in longer[:len(default)]] == [s["id"] for s in default]
    assert torch.equal(longer[len(default) - 1]["cxr"], default[-1]["cxr"])
    assert len({s["id"] for s in longer}) == len(longer)


def test_an_image_cap_shortens_the_test_split_from_its_start(monkeypatch):
    default = evaluate.load_test_samples("phantom", 64, 0, None)
    monkeypatch.setenv("BS_MAX_IMAGES", "3")
    for asked in (None, 8, 2):
        capped = evaluate.load_test_samples("phantom", 64, 0, asked)
        assert [s["id"] for s in capped] == [s["id"] for s in default[:min(asked or 3, 3)]]


def test_bad_method_names_get_a_clear_error():
    with pytest.raises(ValueError, match=r"Unknown benchmark method\(s\) \['unnet'\]: choose from identity"):
        evaluate.check_method_names(["unnet"])
    with pytest.raises(ValueError, match="ml_vqgan is BS-LDM's autoencoder"):
        evaluate.check_method_names(["ml_vqgan"])
    with pytest.raises(ValueError, match="must not repeat"):
        evaluate.check_method_names(["unet", "unet"])
    assert "ml_vqgan" not in evaluate.all_methods() and "bs_ldm" in evaluate.all_methods()


def test_train_steps_parsing():
    assert evaluate.parse_train_steps(["200", "unet=50"]) == {"all": 200, "unet": 50}
    with pytest.raises(ValueError, match="--train-steps 'unet=lots': give a positive number of training steps"):
        evaluate.parse_train_steps(["unet=lots"])
    assert evaluate.scaled_steps(50, "vae", {}, 4.0) == 200
    assert evaluate.scaled_steps(50, "vae", {"vae": 7}, 4.0) == 7


def test_bs_ldm_budget_scales_both_stages_and_its_schedule():
    from bs_lib.configs import config_dict, rescheduled

    assert evaluate.bs_ldm_steps("colab", {}, 1.0) is None  # the configs' budgets: notebook runs reusable
    stage1, stage2 = config_dict("ml_vqgan", "colab")["steps"], config_dict("bs_ldm", "colab")["steps"]
    assert evaluate.bs_ldm_steps("colab", {}, 0.1) == (round(stage1 * 0.1), round(stage2 * 0.1))
    assert evaluate.bs_ldm_steps("colab", {"bs_ldm": 30}, 1.0) == (stage1, 30)
    assert evaluate.bs_ldm_steps("smoke", {"all": 5}, 1.0) == (5, 5)
    colab = config_dict("bs_ldm", "colab")
    shrunk = rescheduled(colab, stage2 // 10)
    assert shrunk["steps"] == stage2 // 10
    assert shrunk["scheduler_args"]["milestones"] == [round(m / 10) for m in colab["scheduler_args"]["milestones"]]
    assert shrunk["scheduler_args"]["gamma"] == colab["scheduler_args"]["gamma"]
    # a stopped short run still has intermediate checkpoints to resume from
    assert shrunk["checkpoint_every"] == round(colab["checkpoint_every"] / 10) < shrunk["steps"]
    assert shrunk["val_every"] == round(colab["val_every"] / 10)
    assert rescheduled(colab, 3)["checkpoint_every"] == 1  # on stays on
    assert rescheduled(config_dict("bs_ldm", "smoke"), 10) == {"steps": 10}  # nothing else counted in steps


def test_scaled_runs_of_other_methods_keep_their_checkpoints(tmp_path):
    from bs_lib.configs import config_dict

    config = evaluate.learned_config("unet", "colab", image_size=64, seed=0, runs=tmp_path, steps_scale=0.1)
    colab = config_dict("unet", "colab")
    assert config.steps == round(colab["steps"] * 0.1)
    assert config.checkpoint_every == round(colab["checkpoint_every"] * 0.1)


def test_randomised_runs_are_their_own_and_their_teacher_is_randomised_too(tmp_path):
    plain = evaluate.learned_config("distillation", "smoke", image_size=32, seed=0, runs=tmp_path)
    randomised = evaluate.learned_config("distillation", "smoke", image_size=32, seed=0, runs=tmp_path, randomise=True)
    assert randomised.name == plain.name + "-randomised" and "randomise" not in plain.data_args
    assert randomised.data_args["randomise"] is True
    teacher = randomised.method_args["teacher"]["overrides"]
    assert teacher["data_args"]["randomise"] is True and teacher["name"] == randomised.name + "-teacher"
    assert {k: v for k, v in randomised.data_args.items() if k != "randomise"} == plain.data_args
    assert evaluate.learned_config("distillation", "smoke", image_size=32, seed=0, runs=tmp_path,
                                   randomise="default").name == randomised.name  # the default chain, by name
    faint = evaluate.learned_config("distillation", "smoke", image_size=32, seed=0, runs=tmp_path,
                                    randomise="faint-bone")
    assert faint.name == plain.name + "-randomised-faint-bone" and faint.data_args["randomise"] == "faint-bone"
    assert faint.method_args["teacher"]["overrides"]["data_args"]["randomise"] == "faint-bone"
    with pytest.raises(ValueError, match="unknown chain 'faint'; named chains are default, faint-bone"):
        evaluate.learned_config("unet", "smoke", image_size=32, seed=0, runs=tmp_path, randomise="faint")


def fake_result(name: str, psnr: list[float], bsr_symmetric: list[float], mse: list[float]) -> MethodResult:
    rows = [{"id": f"img{i}", "psnr": p, "bsr_symmetric": b, "mse": m}
            for i, (p, b, m) in enumerate(zip(psnr, bsr_symmetric, mse, strict=True))]
    budget = TrainingBudget() if name == IDENTITY else TrainingBudget(10, 4, 40, 1.0)
    return MethodResult(name, name, "test", 0 if name == IDENTITY else 5, 1e-3, budget, rows,
                        torch.zeros(len(rows), 1, 4, 4))


def test_sorting_and_best_marks():
    result = BenchmarkResult([
        fake_result(IDENTITY, [20, 22], [0.10, 0.20], [0.010, 0.006]),
        fake_result("good", [30, 32], [0.90, 0.80], [0.001, 0.0006]),
        fake_result("mixed", [25, 25], [0.05, 0.05], [0.003, 0.003]),
    ], samples=[{}, {}], settings={})
    assert [r.name for r in result.ranked()] == ["good", "mixed", IDENTITY]
    header, rows = result.table("whole")
    assert header[0] == "method" and header[-1].startswith("beats identity")
    good, mixed, identity = rows
    assert good[1] == "**31.00** ± 1.00" and good[2].startswith("**85.00**")  # PSNR and BSR sym. (%)
    assert good[3] == "**0.800** ± 0.200"  # MSE in 10⁻³, lower is better
    assert not mixed[1].startswith("**") and not identity[1].startswith("**")
    assert good[-1] == "yes" and mixed[-1] == "**no**" and identity[-1] == "—"  # mixed loses on BSR sym.
    assert header[-3].startswith("Δ PSNR against identity") and header[-2].startswith("Δ BSR sym. against")
    assert good[-3] == "+10.00 [+10.00, +10.00]" and mixed[-3] == "+4.00 [+3.00, +5.00]" and identity[-3] == "—"
    assert good[-2] == "+70.0 [+60.0, +80.0]" and mixed[-2] == "-10.0 [-15.0, -5.0]" and identity[-2] == "—"
    assert result.summary_rows()[0]["psnr_gain_over_identity"] == (10.0, 10.0, 10.0)
    assert result.summary_rows()[0]["bsr_symmetric_gain_over_identity"] == pytest.approx((0.7, 0.6, 0.8))
    assert result.beats_identity("mixed") == {"psnr": True, "bsr_symmetric": False}
    html_header, html_rows = result.table("whole", html_output=True)
    assert html_rows[0][1] == "<b>31.00</b> ± 1.00"
    assert "<b>31.00</b>" in evaluate.html_table(html_header, html_rows)
    _, cost_rows = result.table("cost")
    assert cost_rows[0][4] == "10 × 4 = 40 images" and cost_rows[2][4] == "none (no training)"
    assert math.isclose(result.summary_rows()[0]["psnr_mean"], 31.0)


def test_command_line(tmp_path, capsys):
    from bs_lib.cli import main

    stem = tmp_path / "cli"
    code = main(["benchmark", "--methods", "identity", "--image-size", str(SIZE), "--num-test", "2",
                 "--runs-dir", str(tmp_path / "runs"), "--output", str(stem), "--no-figures"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "### Whole image" in printed and evaluate.label_of(IDENTITY) in printed
    report = stem.with_name("cli.md").read_text(encoding="utf-8")
    assert "benchmark" in report and "--image-size" in report and "2 images at 64²" in report
    assert stem.with_name("cli_split.json").is_file() and not stem.with_name("cli_cases.png").exists()
    assert main(["benchmark", "--methods", "unnet"]) == 2
    assert "Unknown benchmark method(s) ['unnet']" in capsys.readouterr().err


def test_a_benchmark_called_from_python_records_the_command_as_it_would_be_typed(monkeypatch):
    import argparse
    from pathlib import Path

    from bs_lib.benchmark.cli import command_line

    monkeypatch.setattr("sys.argv", ["a-notebook-kernel"])
    args = argparse.Namespace(methods=["identity", "unet"], num_test=0, seed=0, no_figures=True, randomise=False,
                              split=None, train_steps=[], output=Path("out/x"))
    assert command_line(args) == ("python -m bs_lib benchmark --methods identity unet --num-test 0 --seed 0 "
                                  "--no-figures --output out/x")


def test_bs_ldm_runs_of_two_seeds_live_side_by_side(tmp_path):
    from bs_lib.benchmark.training import trained_bs_ldm

    first, _ = trained_bs_ldm("smoke", image_size=64, seed=0, runs=tmp_path, train_steps={"all": 2})
    second, _ = trained_bs_ldm("smoke", image_size=64, seed=1, runs=tmp_path, train_steps={"all": 2})
    assert first.is_dir() and second.is_dir()  # seed 1 neither overwrote nor deleted seed 0's run
    assert first.parent.parent.name == "bs_ldm-smoke-benchmark64-2+2steps"  # seed 0's name is unchanged
    assert second.parent.parent.name == "bs_ldm-smoke-benchmark64-seed1-2+2steps"


def test_bs_ldm_is_not_ready_without_finished_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("BS_RUNS_DIR", str(tmp_path))
    assert evaluate.bs_ldm_ready("smoke") is False
    with evaluate.runs_folder(tmp_path / "elsewhere"):
        from bs_lib.config import runs_dir

        assert runs_dir() == tmp_path / "elsewhere"
    assert runs_dir() == tmp_path  # restored


def test_paired_difference_is_exact_for_a_constant_shift():
    reference = np.linspace(20, 40, 25)  # a wide spread between images
    mean, low, high = evaluate.paired_difference(reference + 0.3, reference)
    assert mean == pytest.approx(0.3) and low == pytest.approx(0.3) and high == pytest.approx(0.3)


def test_paired_difference_interval_covers_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    reference = rng.uniform(20, 40, 400)
    method = reference + 0.2 + rng.normal(0, 0.5, reference.size)
    mean, low, high = evaluate.paired_difference(method, reference, seed=3)
    assert low < mean < high and low > 0  # 0.2 dB better, visible although the images spread over 20 dB
    few = evaluate.paired_difference(method[:25], reference[:25], seed=3)
    assert few[2] - few[1] > high - low
    assert evaluate.paired_difference(method, reference, seed=3) == (mean, low, high)  # seeded: repeatable


def test_paired_difference_rejects_unpaired_input():
    with pytest.raises(ValueError, match="equally long"):
        evaluate.paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="equally long"):
        evaluate.paired_difference([], [])
    with pytest.raises(ValueError, match="confidence"):
        evaluate.paired_difference([1.0], [1.0], confidence=95)
