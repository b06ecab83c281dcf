"""Every shipped run description loads for every profile, and the command line reads all three forms."""

import pytest
import yaml

from bs_lib.config import PROFILES
from bs_lib.configs import available_methods, config_dict, load_config, resolve_run_config
from bs_lib.engine import ConfigError, build_objective
from bs_lib.engine.objective import METHODS

METHODS_WITH_CONFIGS = available_methods()


def test_every_family_has_configs():
    expected = {"gusarev_ae", "vae", "vq_vae", "resnet_bs", "unet", "unet_plus_plus", "pix2pix", "mca_net",
                "distillation", "domain_adaptation", "ml_vqgan", "bs_ldm"}
    assert expected <= set(METHODS_WITH_CONFIGS)


@pytest.mark.parametrize("method", METHODS_WITH_CONFIGS)
@pytest.mark.parametrize("profile", list(PROFILES))
def test_each_config_loads_and_names_a_registered_method(method, profile):
    import bs_lib.models  # noqa: F401  (registers the methods)

    config = load_config(method, profile)
    assert config.method in METHODS, f"{method}.yaml names an unregistered method {config.method!r}"
    assert config.name == f"{method}-{profile}"
    if profile == "smoke":
        assert config.image_size == 64 and config.steps <= 400, "smoke runs must stay CPU-sized"
    if profile == "full":
        assert config.image_size == 1024


def test_the_full_bs_ldm_schedule_is_the_papers():
    full = load_config("bs_ldm", "full")
    steps_per_epoch = 592 // full.batch_size  # SZCH-X-Rays training split at batch 4
    assert full.steps == 2500 * steps_per_epoch
    assert full.scheduler_args["milestones"] == [epoch * steps_per_epoch for epoch in (200, 400, 750, 1500)]
    assert full.lr == 2e-4 and full.ema_decay == 0.995 and full.method_args["offset_noise"] == 0.1


def test_a_smoke_config_builds_its_method():
    objective = build_objective(load_config("unet", "smoke"))
    assert callable(objective.predict)


def test_the_command_line_reads_names_sectioned_files_and_flat_files(tmp_path):
    assert resolve_run_config("unet", "colab", ["steps=7"]).steps == 7
    sectioned = tmp_path / "mine.yaml"
    sectioned.write_text(yaml.safe_dump({"base": config_dict("unet", "smoke") | {"name": "x"},
                                         "smoke": {"steps": 3}}))
    assert resolve_run_config(sectioned, "smoke").steps == 3
    flat = tmp_path / "flat.yaml"
    flat.write_text(yaml.safe_dump(config_dict("unet", "smoke") | {"steps": 5}))
    assert resolve_run_config(flat, "colab").steps == 5  # a flat file has no profiles
    with pytest.raises(ConfigError, match=r"flat\.yaml"):
        resolve_run_config(flat, "smoke", ["stpes=5"])
    with pytest.raises(FileNotFoundError, match="No config for method 'unett'"):
        resolve_run_config("unett", "smoke")


def test_unknown_sections_and_profiles_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"base": {"method": "unet"}, "smoky": {"steps": 3}}))
    with pytest.raises(ValueError, match=r"unknown section\(s\) \['smoky'\]"):
        resolve_run_config(bad, "smoke")
    with pytest.raises(ValueError, match="Unknown profile"):
        load_config("unet", "quick")


def test_caps_cut_steps_and_size_but_never_below_what_a_model_trains_on(monkeypatch):
    import torch

    import bs_lib.models  # noqa: F401  (registers the methods)

    monkeypatch.setenv("BS_MAX_STEPS", "2")
    monkeypatch.setenv("BS_MAX_SIZE", "64")
    unet, pix2pix, mca_net = (load_config(m, "colab") for m in ("unet", "pix2pix", "mca_net"))
    assert (unet.steps, unet.image_size) == (2, 64)
    assert pix2pix.image_size == 64  # one discriminator of 3 layers needs 24 pixels
    assert mca_net.image_size == 96  # its third scale sees a quarter of the side: 4 × 24
    assert load_config("mca_net", "colab", image_size=64).image_size == 96  # a size from the capped profile
    monkeypatch.delenv("BS_MAX_SIZE")
    assert load_config("mca_net", "colab", image_size=64).image_size == 64  # no cap: what was asked for
    batch = {key: torch.rand(2, 1, 96, 96) for key in ("cxr", "soft")}
    assert "discriminator" in build_objective(mca_net).losses(batch, step=0)


def test_a_step_cap_shortens_the_default_sampling_chain_too(monkeypatch):
    monkeypatch.setenv("BS_MAX_STEPS", "3")
    assert load_config("bs_ldm", "colab").method_args["sampling_steps"] == 3  # 50 in the recipe
    assert load_config("bs_ldm", "full").method_args["sampling_steps"] == 3  # None in the recipe: all 1000
    assert "sampling_steps" not in load_config("unet", "colab").method_args  # no chain: nothing added
    monkeypatch.delenv("BS_MAX_STEPS")
    assert load_config("bs_ldm", "colab").method_args["sampling_steps"] == 50
    assert load_config("bs_ldm", "full").method_args["sampling_steps"] is None


def test_an_image_cap_draws_fewer_images_from_a_named_dataset_only(monkeypatch):
    monkeypatch.setenv("BS_MAX_IMAGES", "8")
    assert load_config("unet", "colab").data_args["num_images"] == 8  # colab: all of szch-x-rays
    assert load_config("unet", "smoke", data_args={"num_images": 4}).data_args["num_images"] == 4
    own = load_config("unet", "colab", data="my_module:chests", data_args={"root": "x"}).data_args
    monkeypatch.delenv("BS_MAX_IMAGES")
    assert own == load_config("unet", "colab", data="my_module:chests", data_args={"root": "x"}).data_args
    assert "num_images" not in own  # a user's own factory may not take num_images: left as it is


def test_every_recipe_names_a_method_registered_with_its_family_and_label():
    import bs_lib.models  # noqa: F401  (registers the methods)
    from bs_lib import evaluate
    from bs_lib.engine import method_info

    for method in METHODS_WITH_CONFIGS:
        info = method_info(config_dict(method, "smoke")["method"])
        assert info.family and info.label, method
        if method in evaluate.learned_methods():  # the benchmark names each method as it registered itself
            assert (evaluate.family_of(method), evaluate.label_of(method)) == (info.family, info.label), method
