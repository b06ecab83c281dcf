"""Profiles, seeding, device choice, quiet progress bars and the papermill guard."""

import random

import numpy as np
import pytest
import torch

from bs_lib import config


def test_every_profile_is_reachable_by_name_and_scales_up():
    sizes = [config.get_profile(name).image_size for name in ("smoke", "colab", "full")]
    assert sizes == sorted(sizes) and sizes[0] == 64 and sizes[-1] == 1024
    assert config.get_profile(" Colab ").name == "colab"


def test_a_misspelled_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown profile 'smoky': choose one of smoke, colab, full"):
        config.get_profile("smoky")


def test_default_profile_follows_the_environment(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "full")
    assert config.default_profile() == "full"
    monkeypatch.setenv(config.PROFILE_ENV, "nonsense")
    with pytest.raises(ValueError, match="Unknown profile"):
        config.default_profile()


def test_default_profile_without_environment_depends_on_the_hardware(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    expected = "smoke" if config.detect_device().type == "cpu" else "colab"
    assert config.default_profile() == expected


def test_profile_overrides_reject_unknown_fields():
    smoke = config.get_profile("smoke")
    assert smoke.with_overrides(image_size=32).image_size == 32
    assert smoke.image_size != 32  # profiles are immutable
    with pytest.raises(TypeError, match="no field"):
        smoke.with_overrides(image_sise=32)


def test_seed_everything_replays_python_numpy_and_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()  # noqa: NPY002

    config.seed_everything(7)
    first = draw()
    config.seed_everything(7)
    assert draw() == first
    config.seed_everything(8)
    assert draw() != first


def test_device_and_precision_on_this_machine():
    device = config.detect_device()
    assert device.type in ("cpu", "cuda", "mps")
    assert config.detect_precision(torch.device("cpu")) == "no"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            config.detect_device("cuda")


def test_setup_seeds_chooses_a_device_and_silences_smoke_progress(monkeypatch):
    monkeypatch.delenv(config.QUIET_ENV, raising=False)
    run = config.setup("smoke", seed=3)
    assert run.profile.name == "smoke" and run.seed == 3
    assert "profile=smoke" in str(run)
    assert config.progress(range(3)).disable is True
    monkeypatch.setattr(config, "_active_profile", config.get_profile("colab"))
    assert config.progress(range(3)).disable is False
    monkeypatch.setenv(config.QUIET_ENV, "1")
    assert config.progress(range(3)).disable is True


def test_gpu_profiles_warn_on_a_cpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.warns(UserWarning, match="meant for a GPU"):
        config.setup("full", device="cpu")
    config.setup("smoke")


def test_caps_shrink_a_profile_and_say_so(monkeypatch, capsys):
    colab = config.get_profile("colab")
    assert config.capped_profile(colab) == colab and capsys.readouterr().out == ""  # no caps: untouched, silent
    monkeypatch.setenv("BS_MAX_SIZE", "64")
    monkeypatch.setenv("BS_MAX_IMAGES", "8")
    capped = config.capped_profile(colab)
    assert (capped.image_size, capped.num_images, capped.dataset) == (64, 8, colab.dataset)
    assert "capped by BS_MAX_SIZE=64, BS_MAX_IMAGES=8: images at most 64², 8 per split" in capsys.readouterr().out
    assert config.capped_profile(config.get_profile("smoke").with_overrides(num_images=4)).num_images == 4
    monkeypatch.setenv("BS_MAX_IMAGES", "0")
    with pytest.raises(ValueError, match="BS_MAX_IMAGES must be a positive whole number"):
        config.capped_profile(colab)


@pytest.mark.parametrize(
    ("declared", "injected", "unknown"),
    [
        ("PROFILE = 'smoke'\nSEED = 0\n", "# Parameters\nPROFILE = \"colab\"\n", set()),
        ("PROFILE = 'smoke'\nSEED = 0\n", "# Parameters\nPROFLE = \"colab\"\nSEED = 1\n", {"PROFLE"}),
        ("PROFILE = config.default_profile()  # comment\nSTEPS: int = 5\n", "STEPS = 9\nLR = 0.1\n", {"LR"}),
    ],
)
def test_unknown_parameters_are_found_by_name(declared, injected, unknown):
    assert config.unknown_parameters(declared, injected) == unknown


def test_real_pairs_and_data_dir_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(config.REAL_PAIRS_ENV, str(tmp_path))
    assert config.real_pairs_dir() == tmp_path
    monkeypatch.setenv(config.REAL_PAIRS_ENV, str(tmp_path / "absent"))
    assert config.real_pairs_dir() is None
    monkeypatch.setenv(config.DATA_DIR_ENV, str(tmp_path / "data"))
    assert config.data_dir() == tmp_path / "data"


def test_environment_report_names_versions_and_device():
    text = config.environment_report()
    assert torch.__version__ in text and "device:" in text and "default profile:" in text
