"""benchmarks/seeds.py: gains over identity across training seeds, on made-up benchmark results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def seeds(benchmark_script):
    return benchmark_script("seeds")


def result(path: Path, seed: int, gains: dict[str, tuple[float, float]], ids=("a", "b", "c")) -> Path:
    """A benchmark JSON whose methods beat identity by ``gains[method] = (PSNR dB, symmetric BSR)`` on every image."""
    rows = []
    for index, image in enumerate(ids):
        rows.append({"method": "identity", "id": image, "psnr": 20.0 + index, "bsr_symmetric": 0.5})
        rows += [{"method": m, "id": image, "psnr": 20.0 + index + dp, "bsr_symmetric": 0.5 + db}
                 for m, (dp, db) in gains.items()]
    summary = [{"method": m, "label": m.upper()} for m in gains]
    path.write_text(json.dumps({"settings": {"seed": seed, "data_label": "made-up pairs"}, "per_image": rows,
                                "summary": summary}))
    return path


def test_every_seed_is_shown_and_a_family_passes_only_on_the_seeds_where_it_does(seeds, tmp_path, capsys):
    first = result(tmp_path / "s0.json", 0, {"good": (2.0, 0.10), "flaky": (1.0, -0.05)})
    second = result(tmp_path / "s1.json", 1, {"good": (1.0, 0.02), "flaky": (1.0, 0.05)})
    assert seeds.main([str(first), str(second), "--output", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out.md").read_text()
    assert text.strip() == capsys.readouterr().out.strip()  # printed as written
    assert "made-up pairs" in text and "seeds 0, 1" in text
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines() if line.startswith("| ")}
    good, flaky = rows["GOOD"], rows["FLAKY"]
    assert good[1:4] == ["+2.00", "+1.00", "+1.50 [+1.50, +1.50]"]  # per seed, then the seed mean
    assert good[4:7] == ["+10.0", "+2.0", "+6.0 [+6.0, +6.0]"]
    assert good[-1].strip(" |") == "2" and flaky[-1].strip(" |") == "1"  # flaky lowers the BSR on seed 0
    assert flaky[6] == "+0.0 [+0.0, +0.0]"


def test_results_on_other_images_are_refused(seeds, tmp_path):
    first = result(tmp_path / "s0.json", 0, {"good": (2.0, 0.1)})
    other = result(tmp_path / "s1.json", 1, {"good": (2.0, 0.1)}, ids=("a", "b", "z"))
    with pytest.raises(SystemExit, match="same test images"):
        seeds.main([str(first), str(other)])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a benchmark result"):
        seeds.main([str(first), str(tmp_path / "bad.json")])


def test_against_pairs_two_sets_of_seeds_image_by_image_and_leaves_out_what_learns_nothing(seeds, tmp_path):
    better = [result(tmp_path / f"a{s}.json", s, {"net": (2.0 + s, 0.10), "filter": (1.0, 0.0)}) for s in (0, 1)]
    worse = [result(tmp_path / f"b{s}.json", s, {"net": (1.0, 0.05), "filter": (1.0, 0.0)}) for s in (0, 1, 2)]
    argv = [*map(str, better), "--against", *map(str, worse), "--output", str(tmp_path / "out")]
    assert seeds.main(argv) == 0
    text = (tmp_path / "out.md").read_text()
    assert "--against " + " ".join(map(str, worse)) in text  # the command reruns
    section = text.split("## A − B")[1]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in section.splitlines()
            if line.startswith("| ")}
    assert rows["NET"][1:4] == ["+1.50 [+1.50, +1.50]", "+5.0 [+5.0, +5.0]", "3 of 3 |"]  # (2.5 - 1.0) dB
    assert rows["**mean of the 1 methods**"][1].startswith("+1.50")
    assert "FILTER" not in rows and "Left out, scored the same in both sets (nothing learned): FILTER." in section


def test_against_refuses_sets_on_other_images_or_with_nothing_to_compare(seeds, tmp_path):
    first = result(tmp_path / "a.json", 0, {"net": (2.0, 0.1)})
    other = result(tmp_path / "b.json", 0, {"net": (1.0, 0.1)}, ids=("a", "b", "z"))
    with pytest.raises(SystemExit, match="same test images"):
        seeds.main([str(first), "--against", str(other)])
    with pytest.raises(SystemExit, match="no method in common"):
        seeds.main([str(first), "--against", str(first)])
