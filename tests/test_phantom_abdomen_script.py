"""benchmarks/phantom_abdomen.py: the benchmark on a phantom with another abdomen, noted in its leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bs_lib import phantom


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("phantom_abdomen")


def identity_psnr(script, tmp_path: Path, abdomen: float) -> list[float]:
    output = tmp_path / f"abdomen-{abdomen:g}"
    assert script.main(["--abdomen", str(abdomen), "--", "--profile", "smoke", "--methods", "identity",
                        "--image-size", "64", "--num-test", "2", "--no-figures", "--runs-dir", str(tmp_path / "runs"),
                        "--output", str(output)]) == 0
    assert f"abdomen {abdomen:g} deeper than the chest" in output.with_name(output.name + ".md").read_text()
    rows = json.loads(output.with_name(output.name + ".json").read_text())["per_image"]
    return [row["psnr"] for row in rows]


def test_the_abdomen_reaches_the_test_images_and_is_put_back(script, tmp_path):
    default = phantom.ABDOMEN_EXTRA
    assert identity_psnr(script, tmp_path, default) != identity_psnr(script, tmp_path, 0.6)
    assert phantom.ABDOMEN_EXTRA == default
    with pytest.raises(SystemExit):
        script.main(["--abdomen", "-1", "--", "--methods", "identity"])
