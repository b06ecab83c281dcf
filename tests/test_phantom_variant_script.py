"""benchmarks/phantom_variant.py: the benchmark on another phantom, noted in its leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bs_lib import phantom


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("phantom_variant")


def identity_psnr(script, tmp_path: Path, *change: str) -> tuple[list[float], str]:
    """Identity's per-image PSNR on the phantom's test images under ``change``, and the leaderboard's note."""
    output = tmp_path / "-".join(change).replace(" ", "")
    assert script.main([*change, "--", "--profile", "smoke", "--methods", "identity", "--image-size", "64",
                        "--num-test", "2", "--no-figures", "--runs-dir", str(tmp_path / "runs"),
                        "--output", str(output)]) == 0
    note = next(line for line in output.with_name(output.name + ".md").read_text().splitlines()
                if line.startswith("- phantom variant"))
    rows = json.loads(output.with_name(output.name + ".json").read_text())["per_image"]
    return [row["psnr"] for row in rows], note


def test_the_abdomen_reaches_the_test_images_and_is_put_back(script, tmp_path):
    default = phantom.ABDOMEN_EXTRA
    same, _ = identity_psnr(script, tmp_path, "--abdomen", str(default))
    deeper, note = identity_psnr(script, tmp_path, "--abdomen", "0.6")
    assert same != deeper
    assert "abdomen 0.6 deeper than the chest" in note and "phantom_variant.py --abdomen 0.6 --" in note
    assert phantom.ABDOMEN_EXTRA == default


def test_the_rib_spacing_reaches_the_test_images_and_is_put_back(script, tmp_path):
    default = phantom.RIB_SPACING
    same, _ = identity_psnr(script, tmp_path, "--rib-spacing", *map(str, default))
    wider, note = identity_psnr(script, tmp_path, "--rib-spacing", "0.14", "0.16")
    assert same != wider
    assert "ribs 0.14–0.16 apart (the default phantom: 0.105–0.125)" in note
    assert phantom.RIB_SPACING == default


def test_the_rib_arch_reaches_the_test_images_and_is_put_back(script, tmp_path):
    default = phantom.RIB_ARCH
    same, _ = identity_psnr(script, tmp_path, "--rib-arch", *map(str, default))
    steeper, note = identity_psnr(script, tmp_path, "--rib-spacing", "0.13", "0.165", "--rib-arch", "0.55", "0.8")
    assert same != steeper
    assert "ribs 0.13–0.165 apart (the default phantom: 0.105–0.125); ribs falling 0.55–0.8" in note
    assert "phantom_variant.py --rib-spacing 0.13 0.165 --rib-arch 0.55 0.8 --" in note
    assert phantom.RIB_ARCH == default


def test_a_steeper_rib_arch_tilts_the_ribs():
    from bs_lib.realism import rib_tilt

    def tilt() -> float:
        samples = [phantom.render(seed, 128, dose=None) for seed in range(3)]
        return sum(rib_tilt(sample["cxr"][0] - sample["soft"][0]) for sample in samples) / len(samples)

    flat = tilt()
    with phantom.variant(rib_arch=(0.7, 0.7)):
        steep = tilt()
    assert steep > flat + 10


def test_wider_rib_spacing_draws_ribs_further_apart_and_the_default_comes_back():
    from bs_lib.realism import rib_period

    def period(seed: int) -> float:
        sample = phantom.render(seed, 128, dose=None)
        return rib_period(sample["cxr"][0] - sample["soft"][0])

    default, spacing = [period(seed) for seed in range(3)], phantom.RIB_SPACING
    with pytest.raises(RuntimeError), phantom.variant(rib_spacing=(0.15, 0.15)):
        wider = [period(seed) for seed in range(3)]
        raise RuntimeError("the defaults must come back after an error too")
    assert min(wider) > max(default) * 1.15
    assert phantom.RIB_SPACING == spacing and [period(seed) for seed in range(3)] == default


@pytest.mark.parametrize(("change", "says"), [([], "name what to change"), (["--abdomen", "-1"], "--abdomen must"),
                                              (["--rib-spacing", "0.2", "0.1"], "--rib-spacing needs"),
                                              (["--rib-spacing", "0", "0.1"], "--rib-spacing needs"),
                                              (["--rib-spacing", "0.2", "0.5"], "--rib-spacing needs"),
                                              (["--rib-arch", "0.8", "0.5"], "--rib-arch needs")])
def test_a_missing_or_impossible_change_is_refused(script, change, says, capsys):
    with pytest.raises(SystemExit):
        script.main([*change, "--", "--methods", "identity"])
    assert says in capsys.readouterr().err
