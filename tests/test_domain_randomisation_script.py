"""benchmarks/domain_randomisation.py: its variants are valid chains, and the weak-bone stress test is a bone gain."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("domain_randomisation")


def test_every_variant_is_a_chain_the_augmentation_accepts(script):
    from bs_lib.augment import CHAINS, Randomisation

    for variant in script.VARIANTS:
        chain = script.chain_of(variant)
        if isinstance(chain, dict):
            Randomisation.from_dict(chain)  # an unknown key or part would raise
    for name in ("faint-bone", "wide-bone"):
        assert name in script.VARIANTS and Randomisation.from_dict(script.chain_of(name)) == CHAINS[name]
    assert script.chain_of("plain") is False and script.chain_of("all") is True


def test_the_weak_bone_pairs_keep_the_soft_tissue_and_scale_the_bone(script):
    generator = torch.Generator().manual_seed(0)
    soft = torch.rand(1, 16, 16, generator=generator) * 0.5
    cxr = soft + 0.3 * torch.rand(1, 16, 16, generator=generator)
    pairs = script.weakened([{"cxr": cxr, "soft": soft, "id": "a"}], 0.25)
    assert pairs[0]["id"] == "a" and torch.equal(pairs[0]["soft"], soft)
    assert torch.allclose(pairs[0]["cxr"] - soft, 0.25 * (cxr - soft), atol=1e-6)
    with pytest.raises(SystemExit, match="bone-gain"):
        script.weakened([{"cxr": cxr, "soft": soft}], 1.5)


class Brightener(torch.nn.Module):
    """A "suppression" that brightens everything: its bone layer is negative, which no bone can be."""

    def predict(self, cxr):
        return (cxr + 0.1).clamp(0, 1)


def test_the_bone_rules_score_what_sample_would_return(script):
    generator = torch.Generator().manual_seed(1)
    soft = torch.rand(1, 32, 32, generator=generator) * 0.5
    pairs = [{"cxr": soft + 0.2 * torch.rand(1, 32, 32, generator=generator), "soft": soft}]
    raw, ruled = script.scores(Brightener(), pairs), script.scores(Brightener(), pairs, ("nonnegative",))
    assert raw["psnr"][0] < raw["psnr_identity"][0] - 1  # brightening does harm
    assert ruled["psnr"] == pytest.approx(ruled["psnr_identity"], abs=1e-4)  # the rule removes nothing: no harm
    assert script.rules_note([]) == ""
    assert "`+ highpass + nonnegative`" in script.rules_note(["highpass", "nonnegative"])


class Remover(torch.nn.Module):
    """Removes ``layer`` from whatever it is given, or, with no layer, exactly the bone there is (knows ``soft``)."""

    def __init__(self, soft, layer=None):
        super().__init__()
        self.soft, self.layer = soft, layer

    def predict(self, cxr):
        return self.soft.expand_as(cxr) if self.layer is None else cxr - self.layer


def test_removal_reads_the_bone_gain_only_for_a_remover_that_follows_the_bone(script, tmp_path):
    generator = torch.Generator().manual_seed(1)
    soft = torch.rand(1, 64, 64, generator=generator) * 0.5
    rows = torch.arange(64, dtype=torch.float32).view(1, 64, 1)
    bone = 0.2 * (torch.sin(rows / 2) > 0).float().expand(1, 64, 64)  # ribs: bands a few pixels wide
    pair = {"cxr": soft + bone, "soft": soft}
    for gain in (1.4, 0.4):
        exact = script.removal(Remover(soft), [pair], gain)
        fixed = script.removal(Remover(soft, bone), [pair], gain)
        assert exact[0][0] == pytest.approx(gain, rel=1e-3) and exact[1][0] == pytest.approx(gain, rel=1e-3)
        assert fixed[0][0] == pytest.approx(1, rel=1e-3) and fixed[1][0] == pytest.approx(1, rel=1e-3)
    lines = script.tracking_lines({("phantom", "plain"): {g: ([g], [g]) for g in script.TRACKING_GAINS}})
    assert lines[-1] == "| phantom | plain | 1.40 (1.40) | 1.00 (1.00) | 0.60 (0.60) | 0.40 (0.40) | 0.20 (0.20) |"
    script.tracking_figure({("phantom", "plain"): {g: ([g], [g]) for g in script.TRACKING_GAINS}},
                           tmp_path / "tracking.png")
    assert (tmp_path / "tracking.png").stat().st_size > 1000
    bone_layer, removed, rest = script.removed_layers(Remover(soft, 0.5 * bone), {"cxr": soft + bone, "soft": soft})
    assert bone_layer.shape == removed.shape == rest.shape == (64, 64)
    assert abs(rest).max() < 1e-5 * abs(bone_layer).max()  # half the bone, all of it along the bone
    script.removed_figure(pair, {"plain": [bone_layer, removed, rest]}, tmp_path / "removed.png")
    assert (tmp_path / "removed.png").stat().st_size > 1000


def test_a_run_on_another_phantom_is_named_for_it_and_not_mistaken_for_the_default(script, tmp_path):
    script.train("plain", 64, 2, 0, tmp_path, phantom="-ribs0.15-0.15")
    assert [path.name for path in tmp_path.iterdir()] == ["drplain-ribs0.15-0.15-64-2-s0"]
    script.train("plain", 64, 2, 0, tmp_path)
    assert {path.name for path in tmp_path.iterdir()} == {"drplain-ribs0.15-0.15-64-2-s0", "drplain-64-2-s0"}
