"""Tests for bs_lib.models.adaptation: gradient reversal, the domain-adversarial objective and the two domains."""

from __future__ import annotations

import itertools

import pytest
import torch

from bs_lib.engine import TrainConfig, Trainer
from bs_lib.engine.objective import METHODS
from bs_lib.models import adaptation


def build(**method_args) -> adaptation.DomainAdversarial:
    torch.manual_seed(0)
    return METHODS["domain_adaptation"](TrainConfig(method="domain_adaptation", steps=100,
                                                    method_args={"width": 4, **method_args}))


def test_method_is_registered():
    import bs_lib.models  # noqa: F401

    assert METHODS["domain_adaptation"] is adaptation.build_domain_adaptation


def test_gradient_reversal_is_identity_forward_and_flips_the_gradient():
    features = torch.randn(3, 4, requires_grad=True)
    weights = torch.randn(3, 4)
    reversed_features = adaptation.reverse_gradient(features, strength=0.5)
    assert torch.equal(reversed_features, features)
    (reversed_features * weights).sum().backward()
    assert torch.allclose(features.grad, -0.5 * weights)


def test_reversal_strength_ramps_from_zero_to_one():
    values = [adaptation.reversal_strength(p / 10) for p in range(11)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(1.0, abs=1e-4)
    assert all(a < b for a, b in itertools.pairwise(values))
    assert adaptation.reversal_strength(2.0) == values[-1]  # progress is clipped to [0, 1]


def test_encoder_receives_the_reversed_domain_gradient(striped_chests):
    model = build(domain_weight=1.0)
    data = striped_chests(1, 32)
    _, features = model.suppress_with_features(torch.cat([data.cxr, data.target]))
    labels = torch.tensor([0.0, 1.0])

    def domain_loss(f):
        return torch.nn.functional.binary_cross_entropy_with_logits(model.classifier(f), labels)

    plain = features.detach().requires_grad_()
    domain_loss(plain).backward()  # what the classifier's own gradient pushes toward
    classifier_grad = [p.grad.clone() for p in model.classifier.parameters()]
    model.classifier.zero_grad()
    features.retain_grad()
    domain_loss(adaptation.reverse_gradient(features, 0.3)).backward()
    assert torch.allclose(features.grad, -0.3 * plain.grad)  # the encoder is pushed the other way
    for reversed_grad, grad in zip((p.grad for p in model.classifier.parameters()), classifier_grad, strict=True):
        assert torch.allclose(reversed_grad, grad)  # the classifier itself learns normally
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.network.down_1.parameters())


def test_objective_starts_as_identity_and_logs_its_terms(striped_chests):
    model = build(domain_weight=0.1)
    data = striped_chests(4, 32)
    assert torch.equal(model.eval().predict(data.cxr), data.cxr)
    losses = model.train().losses({"cxr": data.cxr, "soft": data.soft, "target_cxr": data.target}, step=50)
    assert set(losses) == {"model", "log/task", "log/domain", "log/domain_accuracy", "log/reversal"}
    assert losses["log/reversal"] == pytest.approx(adaptation.reversal_strength(0.5))
    assert torch.allclose(losses["model"], losses["log/task"] + 0.1 * losses["log/domain"])
    assert list(model.parameter_groups()) == ["model"]


def test_source_only_baseline_needs_no_target_images(striped_chests):
    model = build(domain_weight=0.0)
    data = striped_chests(2, 32)
    assert set(model.losses({"cxr": data.cxr, "soft": data.soft}, step=0)) == {"model", "log/task"}
    with pytest.raises(KeyError, match="needs unpaired target radiographs in batch\\['target_cxr'\\]"):
        build(domain_weight=0.1).losses({"cxr": data.cxr, "soft": data.soft}, step=0)


def test_a_few_steps_lower_the_source_l1(tmp_path, striped_chests):
    model = build(domain_weight=0.1)
    data = striped_chests(16, 32)
    model.eval()
    before = (model.predict(data.cxr) - data.soft).abs().mean().item()
    Trainer(model, TrainConfig(name="da", method="domain_adaptation", steps=40, batch_size=8, lr=3e-3,
                               log_every=40, output_dir=str(tmp_path)), data).fit()
    model.eval()
    after = (model.predict(data.cxr) - data.soft).abs().mean().item()
    assert after < 0.7 * before, (before, after)


def test_detector_shift_is_deterministic_and_noise_free_in_the_target():
    shift = adaptation.DetectorShift(gamma=0.75, sigma=0.8, noise=0.03)
    image = torch.rand(1, 64, 64)
    first, again, other = shift.radiograph(image, 3), shift.radiograph(image, 3), shift.radiograph(image, 4)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.min() >= 0 and first.max() <= 1 and first.shape == image.shape
    assert torch.equal(shift.target(image), shift.target(image))
    flat = torch.full((1, 64, 64), 0.25)
    assert torch.allclose(shift.target(flat), torch.full_like(flat, 0.25**0.75))


def test_with_target_radiographs_attaches_an_unpaired_image():
    source = [{"cxr": torch.zeros(1, 8, 8), "soft": torch.zeros(1, 8, 8)} for _ in range(5)]
    target = [{"cxr": torch.full((1, 8, 8), float(i))} for i in range(2)]
    data = adaptation.WithTargetRadiographs(source, target)
    assert len(data) == 5 and data[3]["target_cxr"][0, 0, 0] == 1.0
    with pytest.raises(ValueError, match="no images to adapt to"):
        adaptation.WithTargetRadiographs(source, [])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"Unknown target domain 'mars': choose one of auto, real"):
        adaptation.resolve_target("mars")
    with pytest.raises(ValueError, match=r"unknown method_args \['lambda'\]"):
        build(**{"lambda": 1.0})
    with pytest.raises(ValueError, match="feature_layer 'encoder' is not a layer"):
        build(feature_layer="encoder")
    with pytest.raises(ValueError, match="domain_weight must be 0 or more"):
        build(domain_weight=-1.0)


def test_real_radiographs_are_a_target_domain(real_pairs):
    pairs = adaptation.target_domain_pairs("real", size=32)
    assert len(pairs) == 6 and pairs[0]["cxr"].shape == (1, 32, 32) and "soft" in pairs[0]
    assert adaptation.resolve_target("auto") == "real"


def test_a_target_dataset_that_is_not_here_gives_way_to_the_stand_in(monkeypatch, tmp_path, capsys):
    from bs_lib.datasets import catalogue

    monkeypatch.setenv("BS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(catalogue, "_REPORTED_MISSING", set())
    assert adaptation.resolve_target("szch-x-rays") == "shifted-phantom"
    assert "python -m bs_lib download szch-x-rays" in capsys.readouterr().out


def test_a_folder_of_unlabelled_radiographs_is_a_target_domain(tmp_path):
    import numpy as np
    from PIL import Image

    from bs_lib.datasets import DatasetNotFoundError

    folder = tmp_path / "my_radiographs"
    folder.mkdir()
    Image.fromarray(np.tile(np.linspace(0, 255, 30), (40, 1)).astype(np.uint8)).save(folder / "a.png")
    Image.fromarray(np.tile(np.linspace(0, 30000, 50), (50, 1)).astype(np.uint16)).save(folder / "b.png")
    assert adaptation.resolve_target(str(folder)) == str(folder)
    data = adaptation.adaptation_dataset(size=64, target=str(folder), num_images=3)
    assert len(data) == 3 and data.domain.startswith("unlabelled radiographs in")
    images = [data[i]["target_cxr"] for i in range(3)]
    assert all(image.shape == (1, 64, 64) for image in images)
    assert images[0].max() > 0.95 and 0.4 < images[1].max() < 30000 / 65535 + 1e-3  # 8 and 16 bits read as such
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="holds no image"):
        adaptation.target_domain_pairs(str(tmp_path / "empty"), size=32)
    with pytest.raises(ValueError, match="or an existing folder of radiographs"):
        adaptation.resolve_target(str(tmp_path / "missing"))
