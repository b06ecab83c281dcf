"""``bs-lib sample`` on a folder: every readable file is suppressed, unreadable ones are reported at the end."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bs_lib import cli, suppress
from bs_lib.diffusion import SAMPLERS
from bs_lib.engine import CheckpointError, TrainConfig, Trainer
from bs_lib.suppress import SuppressionReport, suppress_files

FIXTURES = Path(__file__).parent / "fixtures" / "train"
sys.path.insert(0, str(FIXTURES))
import tiny_train  # noqa: E402  (the fixture folder is not a package)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder holding a two-convolution model trained for two steps: a real checkpoint in a second."""
    runs = tmp_path_factory.mktemp("runs")
    config = TrainConfig(name="tiny", method="tiny_train:build_objective", image_size=8, batch_size=4, steps=2,
                         lr=1e-2, output_dir=str(runs), data="tiny_train:build_dataset")
    Trainer(tiny_train.build_objective(config), config, tiny_train.TinyPairs(8, 8)).fit()
    return runs / config.name


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """An empty PNG and a truncated one, sorted before a good one: the good one must still be processed."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_empty.png").touch()
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "c_good.png")
    whole = (folder / "c_good.png").read_bytes()
    (folder / "b_truncated.png").write_bytes(whole[: len(whole) // 2])
    return folder


def test_suppress_files_reads_each_input_on_its_own(tiny_run, mixed_folder, tmp_path):
    out = tmp_path / "out"
    report = suppress_files(tiny_run, [mixed_folder], out, figures=False, device="cpu")
    assert isinstance(report, SuppressionReport)
    assert report.written == [out / "c_good_suppressed.png"]
    assert Image.open(out / "c_good_suppressed.png").size == (30, 20)
    failed = dict(report.failed)
    assert list(failed) == [mixed_folder / "a_empty.png", mixed_folder / "b_truncated.png"]
    assert "empty" in failed[mixed_folder / "a_empty.png"]
    assert "truncated" in failed[mixed_folder / "b_truncated.png"]
    assert not str(failed[mixed_folder / "a_empty.png"]).startswith(str(mixed_folder))  # the path is not repeated
    assert sorted(p.name for p in out.iterdir()) == ["c_good_suppressed.png"]


def test_sample_lists_the_unreadable_files_and_exits_1(tiny_run, mixed_folder, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")]),
           "BS_QUIET": "1"}
    done = subprocess.run([sys.executable, "-m", "bs_lib", "sample", str(tiny_run), str(mixed_folder),
                           "--output", str(tmp_path / "out"), "--no-figures", "--device", "cpu"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1, done.stderr
    assert (tmp_path / "out" / "c_good_suppressed.png").is_file()
    assert "wrote 1 suppressed image(s)" in done.stdout
    lines = done.stderr.splitlines()
    assert lines[0] == "could not read 2 input(s), skipped:"
    assert lines[1].startswith(f"  {mixed_folder / 'a_empty.png'}: ") and "empty" in lines[1]
    assert lines[2].startswith(f"  {mixed_folder / 'b_truncated.png'}: ") and "truncated" in lines[2]
    assert len(lines) == 3 and "Traceback" not in done.stderr


def test_sample_exits_0_when_every_input_was_suppressed(tiny_run, mixed_folder, tmp_path, capsys):
    good = mixed_folder / "c_good.png"
    assert cli.main(["sample", str(tiny_run), str(good), "--output", str(tmp_path / "out"), "--no-figures",
                     "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "wrote 1 suppressed image(s)" in captured.out and "could not read" not in captured.err


def test_sampling_steps_is_the_flag_and_steps_its_old_name_that_still_works(monkeypatch, capsys):
    given = {}

    def record(checkpoint, inputs, output, **options):
        given.update(options["sampling"])
        return SuppressionReport()

    monkeypatch.setattr(suppress, "suppress_files", record)
    assert cli.main(["sample", "run", "x.png", "--output", "out", "--sampling-steps", "7"]) == 0
    assert given["sampling_steps"] == 7 and "--steps" not in capsys.readouterr().err
    assert cli.main(["sample", "run", "x.png", "--output", "out", "--steps", "5", "--sampler", "dpm++2m"]) == 0
    assert (given["sampling_steps"], given["sampler"]) == (5, "dpm++2m")
    assert capsys.readouterr().err.strip() == "--steps is now --sampling-steps; the old name still works for now."
    parser = argparse.ArgumentParser()
    suppress.add_arguments(parser)
    usage = parser.format_help()
    assert "--sampling-steps" in usage and "--steps " not in usage  # the old name is hidden
    assert all(name in usage for name in SAMPLERS)  # the choices come from the registry


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory) -> Path:
    """The tiny model with a config that says it learned from the phantom, through random imaging chains."""
    runs = tmp_path_factory.mktemp("phantom-runs")
    config = TrainConfig(name="tiny-phantom", method="tiny_train:build_objective", image_size=8, batch_size=4,
                         steps=1, output_dir=str(runs), data="phantom", data_args={"randomise": True})
    Trainer(tiny_train.build_objective(config), config, tiny_train.TinyPairs(8, 8)).fit()
    return runs / config.name


def test_sample_says_what_a_checkpoint_learned_from_and_warns_for_the_phantom(phantom_run, tiny_run,
                                                                               mixed_folder, tmp_path, capsys):
    good = mixed_folder / "c_good.png"
    assert cli.main(["sample", str(phantom_run), str(good), "--output", str(tmp_path / "a"), "--no-figures",
                     "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "learned from: synthetic phantom pairs, seen through random imaging chains" in captured.out
    assert captured.err.count("warning: This checkpoint learned bone suppression from synthetic phantom") == 1
    assert "worse" in captured.err and "szch-x-rays" in captured.err
    assert "bone-layer rules: highpass, nonnegative" in captured.out  # the phantom's shortcut is cut
    assert cli.main(["sample", str(tiny_run), str(good), "--output", str(tmp_path / "b"), "--no-figures",
                     "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "learned from: pairs from tiny_train:build_dataset (a custom dataset)" in captured.out
    assert "warning" not in captured.err
    assert "bone-layer rules: nonnegative\n" in captured.out
    with pytest.warns(suppress.PhantomOnlyWarning):  # the library call warns too
        report = suppress_files(phantom_run, [good], tmp_path / "c", figures=False, device="cpu")
    assert report.bone_rules == suppress.PHANTOM_BONE_RULES
    assert cli.main(["sample", str(phantom_run), str(good), "--output", str(tmp_path / "d"), "--no-figures",
                     "--device", "cpu", "--bone-rules"]) == 0  # none: the model's layer as is
    assert "bone-layer rules: none" in capsys.readouterr().out


def test_training_data_names_the_labelled_source_of_domain_adaptation():
    adapted = TrainConfig(method="domain_adaptation", data="bs_lib.models.adaptation:adaptation_dataset",
                          data_args={"source": "phantom", "target": "szch-x-rays"})
    assert suppress.training_data(adapted) == (
        "synthetic phantom pairs, adapted to unlabelled szch-x-rays radiographs", True)
    assert suppress.training_data(TrainConfig(data="szch-x-rays")) == ("szch-x-rays pairs", False)


def test_an_ensemble_removes_the_mean_of_its_members_bone_layers(phantom_run, tiny_run, mixed_folder, tmp_path,
                                                                 capsys):
    good = mixed_folder / "c_good.png"
    image, _ = suppress.io.read_image(good)
    members = [suppress.load_member(run, "cpu", None, {}, None) for run in (tiny_run, phantom_run)]
    layers = [member.layer(image, 0) for member in members]
    assert members[1].bone_rules == suppress.PHANTOM_BONE_RULES  # each member keeps its own rules
    assert not np.allclose(layers[0], layers[1], atol=1e-3)  # two different models: the test can fail
    with pytest.warns(suppress.PhantomOnlyWarning):  # one phantom-only member is enough to warn
        report = suppress_files(tiny_run, [good], tmp_path / "e", figures=False, device="cpu", ensemble=[phantom_run])
    written = np.asarray(Image.open(report.written[0]), dtype=np.float32)[None] / 255
    expected = np.clip(image - (layers[0] + layers[1]) / 2, 0, 1)
    assert np.abs(written - expected).max() <= 1 / 255 + 1e-6  # up to the 8-bit rounding of the PNG
    alone = np.clip(image - layers[0], 0, 1)
    assert np.abs(written - alone).max() > 2 / 255  # ... and not the first model's output alone
    assert [member.checkpoint for member in report.ensemble] == [phantom_run]
    assert cli.main(["sample", str(tiny_run), str(good), "--output", str(tmp_path / "f"), "--no-figures",
                     "--device", "cpu", "--ensemble", str(phantom_run)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "warning: 1 of the 2 checkpoints averaged learned bone suppression from synthetic phantom" in captured.err
    assert "averaged with the bone layers of 1 more checkpoint(s):" in out
    assert f"{phantom_run}: " in out and "learned from synthetic phantom pairs" in out


def test_a_missing_ensemble_checkpoint_stops_before_anything_is_written(tiny_run, mixed_folder, tmp_path):
    with pytest.raises(CheckpointError, match="nowhere"):
        suppress_files(tiny_run, [mixed_folder / "c_good.png"], tmp_path / "g", figures=False, device="cpu",
                       ensemble=[tmp_path / "nowhere"])
    assert not (tmp_path / "g").exists()
    with pytest.raises(ValueError, match="at least one bone layer"):
        suppress.bone_layer.average([])
    with pytest.raises(ValueError, match="differ in shape"):
        suppress.bone_layer.average([np.zeros((1, 4, 4)), np.zeros((1, 8, 8))])
