"""BS-LDM end to end on tiny data: train both stages with the engine, then suppress user files."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from bs_lib import cli, io
from bs_lib.configs import load_config
from bs_lib.engine import Trainer, build_objective
from bs_lib.models.ldm import ConditionalLDM
from bs_lib.suppress import PHANTOM_BONE_RULES, PHANTOM_RESIDUAL, collect_inputs, load_suppressor, suppress_files

# sample's choices for these checkpoints (their config: phantom)
PHANTOM = {"bone_rules": PHANTOM_BONE_RULES, "residual": PHANTOM_RESIDUAL}


def _pairs(n, size=64, seed=0):
    """Smooth 'soft tissue' plus bright periodic 'ribs': enough structure for a smoke run."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    samples = []
    for i in range(n):
        r = torch.rand(4, generator=g)
        soft = 0.35 + 0.25 * torch.exp(-((x - 0.3 * r[0]) ** 2 + (y - 0.3 * r[1]) ** 2) / 0.3)
        ribs = 0.18 * (torch.sin((y + 0.15 * x**2) * (12 + 4 * r[2]) * math.pi / 2 + 6 * r[3]) > 0.3).float()
        samples.append({"cxr": (soft + ribs).clamp(0, 1)[None], "soft": soft[None], "id": str(i), "patient": str(i)})
    return samples


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Stage 1 then stage 2, a few steps each, through the course's configs and engine."""
    runs = tmp_path_factory.mktemp("runs")
    data = _pairs(16)
    stage1 = load_config("ml_vqgan", "smoke", steps=12, output_dir=str(runs))
    Trainer(build_objective(stage1), stage1, data).fit()
    stage2 = load_config("bs_ldm", "smoke", steps=12, output_dir=str(runs),
                         method_args={"autoencoder": str(runs / stage1.name), "sampling_steps": 3})
    result = Trainer(build_objective(stage2), stage2, data).fit()
    return runs / stage2.name, result


def test_both_stages_train_and_write_loadable_checkpoints(trained):
    run_dir, result = trained
    assert result.final_step == 12
    objective, config = load_suppressor(run_dir, device="cpu")
    assert isinstance(objective, ConditionalLDM) and config.method == "bs_ldm"
    cxr = torch.rand(2, 1, 64, 64)
    first = objective.predict(cxr, torch.Generator().manual_seed(0))
    assert torch.equal(first, objective.predict(cxr, torch.Generator().manual_seed(0)))


def _write(path, array, bits):
    scale = 65535 if bits == 16 else 255
    pixels = np.round(array * scale).astype(np.uint16 if bits == 16 else np.uint8)
    Image.fromarray(pixels).save(path)  # uint16 → 16-bit greyscale, uint8 → 8-bit


def test_sample_keeps_each_inputs_size_bit_depth_and_polarity(trained, tmp_path):
    run_dir, _ = trained
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    _write(inputs / "wide16.png", rng.uniform(0.2, 0.8, (70, 90)), 16)
    conventional = rng.uniform(0.2, 0.8, (50, 40))
    _write(inputs / "negative8.png", 1 - conventional, 8)
    out = tmp_path / "out"
    written = suppress_files(run_dir, [inputs / "wide16.png"], out, device="cpu").written
    assert [p.name for p in written] == ["wide16_suppressed.png"]
    assert (out / "wide16_before_after.png").exists()
    wide = Image.open(out / "wide16_suppressed.png")
    assert wide.size == (90, 70) and wide.mode.startswith("I;16")

    suppress_files(run_dir, [inputs / "negative8.png"], out / "neg", negative=True, figures=False, device="cpu")
    suppress_files(run_dir, [inputs / "negative8.png"], out / "pos", figures=False, device="cpu")
    negative, _ = io.read_image(out / "neg" / "negative8_suppressed.png", invert=True)
    assert negative.shape == (1, 50, 40)
    assert not (out / "neg" / "negative8_before_after.png").exists()
    # read as a negative, the written image is the conventional suppression of the flipped input
    objective, _ = load_suppressor(run_dir, device="cpu")
    from bs_lib.suppress import suppress_image

    expected = suppress_image(objective, io.read_image(inputs / "negative8.png", invert=True)[0], 64, **PHANTOM)
    assert np.abs(negative - expected).max() <= 1 / 255 + 1e-6


def test_sample_can_change_a_diffusion_checkpoints_sampler(trained, tmp_path):
    from bs_lib.suppress import suppress_image

    run_dir, _ = trained
    image = tmp_path / "a.png"
    _write(image, np.random.default_rng(2).uniform(0.2, 0.8, (64, 64)), 8)
    suppress_files(run_dir, [image], tmp_path / "config", figures=False, device="cpu")
    assert cli.main(["sample", str(run_dir), str(image), "--output", str(tmp_path / "dpm"), "--no-figures",
                     "--device", "cpu", "--sampler", "dpm++2m", "--sampling-steps", "5", "--spacing", "leading"]) == 0
    own, _ = io.read_image(tmp_path / "config" / "a_suppressed.png")
    changed, _ = io.read_image(tmp_path / "dpm" / "a_suppressed.png")
    objective, _ = load_suppressor(run_dir, device="cpu")
    expected = suppress_image(objective, io.read_image(image)[0], 64, 0, sampler="dpm++2m", sampling_steps=5,
                              spacing="leading", **PHANTOM)
    trailing = suppress_image(objective, io.read_image(image)[0], 64, 0, sampler="dpm++2m", sampling_steps=5, **PHANTOM)
    assert np.abs(changed - expected).max() <= 1 / 255 + 1e-6 and np.abs(changed - own).max() > 1 / 255
    assert np.abs(changed - trailing).max() > 1 / 255  # the spacing was passed on
    with pytest.raises(ValueError, match="--sampling-steps must be at least 1"):
        suppress_files(run_dir, [image], tmp_path / "zero", device="cpu", sampling={"sampling_steps": 0})


def test_a_phantom_checkpoint_returns_the_residual_output_unless_told_not_to(trained, tmp_path, capsys):
    from bs_lib.suppress import suppress_image

    run_dir, _ = trained
    image = tmp_path / "a.png"
    _write(image, np.random.default_rng(4).uniform(0.2, 0.8, (64, 64)), 8)
    written, printed = {}, {}
    for name, flags in (("default", []), ("decoded", ["--no-residual"])):
        assert cli.main(["sample", str(run_dir), str(image), "--output", str(tmp_path / name), "--no-figures",
                         "--device", "cpu", *flags]) == 0
        written[name], printed[name] = io.read_image(tmp_path / name / "a_suppressed.png")[0], capsys.readouterr().out
    objective, _ = load_suppressor(run_dir, device="cpu")
    radiograph = io.read_image(image)[0]
    residual, decoded = (suppress_image(objective, radiograph, 64, 0, PHANTOM_BONE_RULES, residual=flag)
                         for flag in (True, False))
    assert np.abs(residual - decoded).max() > 1 / 255
    assert np.abs(written["default"] - residual).max() <= 1 / 255 + 1e-6
    assert np.abs(written["decoded"] - decoded).max() <= 1 / 255 + 1e-6
    assert "diffusion output: residual" in printed["default"] and "diffusion output: decoded" in printed["decoded"]


def test_sample_averages_as_many_samples_as_asked(trained, tmp_path):
    from bs_lib.suppress import suppress_image

    run_dir, _ = trained
    image = tmp_path / "a.png"
    _write(image, np.random.default_rng(5).uniform(0.2, 0.8, (64, 64)), 8)
    assert cli.main(["sample", str(run_dir), str(image), "--output", str(tmp_path / "mean"), "--no-figures",
                     "--device", "cpu", "--samples", "3"]) == 0
    written, _ = io.read_image(tmp_path / "mean" / "a_suppressed.png")
    objective, _ = load_suppressor(run_dir, device="cpu")
    radiograph = io.read_image(image)[0]
    mean, one = (suppress_image(objective, radiograph, 64, 0, samples=count, **PHANTOM) for count in (3, 1))
    assert np.abs(written - mean).max() <= 1 / 255 + 1e-6 and np.abs(mean - one).max() > 1 / 255
    with pytest.raises(ValueError, match="--samples must be at least 1"):
        suppress_files(run_dir, [image], tmp_path / "none", device="cpu", sampling={"samples": 0})
    assert not (tmp_path / "none").exists()


def test_sampler_options_are_refused_for_a_one_pass_model(tmp_path):
    config = load_config("unet", "smoke", steps=1, output_dir=str(tmp_path / "runs"))
    Trainer(build_objective(config), config, _pairs(4)).fit()
    image = tmp_path / "a.png"
    _write(image, np.random.default_rng(3).uniform(0.2, 0.8, (64, 64)), 8)
    with pytest.raises(ValueError, match=r"apply to diffusion checkpoints.*'unet'"):
        suppress_files(tmp_path / "runs" / config.name, [image], tmp_path / "out", device="cpu",
                       sampling={"sampler": "ddim"})
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_sample_refuses_to_overwrite_and_explains_bad_inputs(trained, tmp_path):
    run_dir, _ = trained
    image = tmp_path / "a.png"
    _write(image, np.random.default_rng(1).uniform(0.2, 0.8, (64, 64)), 8)
    suppress_files(run_dir, [image], tmp_path / "out", figures=False, device="cpu")
    with pytest.raises(FileExistsError, match="--overwrite"):
        suppress_files(run_dir, [image], tmp_path / "out", figures=False, device="cpu")
    suppress_files(run_dir, [image], tmp_path / "out", figures=False, overwrite=True, device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="contains no image"):
        collect_inputs([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_inputs([tmp_path / "missing.png"])
