"""Tests for the autoencoder and CNN families and their shared supervised objective."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bs_lib.configs import load_config
from bs_lib.engine import Trainer, build_objective, count_parameters
from bs_lib.engine.objective import METHODS
from bs_lib.models import autoencoder, cnn
from bs_lib.models.supervised import SupervisedObjective, TrainingOutputs

FAMILY_METHODS = ("gusarev_ae", "vae", "vq_vae", "resnet_bs", "unet", "unet_plus_plus")


class ToyPairs(torch.utils.data.Dataset):
    """Smooth 'soft tissue' plus bright horizontal 'ribs': just enough structure to learn to remove."""

    def __init__(self, count: int, size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        coarse = torch.rand(count, 1, 4, 4, generator=generator)
        soft = 0.2 + 0.5 * nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
        rows = torch.arange(size).float().view(1, 1, size, 1)
        phase = torch.rand(count, 1, 1, 1, generator=generator) * 6.28
        bone = 0.25 * (torch.sin(rows * 0.8 + phase) > 0.4).float().expand(count, 1, size, size)
        self.soft, self.cxr = soft, (soft + bone).clamp(0, 1)

    def __len__(self) -> int:
        return len(self.soft)

    def __getitem__(self, index: int) -> dict:
        return {"cxr": self.cxr[index], "soft": self.soft[index]}


def smoke_objective(method: str, **method_args) -> SupervisedObjective:
    torch.manual_seed(0)
    return build_objective(load_config(method, "smoke", method_args=method_args))


# --------------------------------------------------------------------------- registry and configs


def test_every_method_is_registered_and_has_a_config():
    for method in FAMILY_METHODS:
        assert method in METHODS
        config = load_config(method, "smoke")
        assert config.method == method and config.image_size == 64
        for profile in ("colab", "full"):
            assert load_config(method, profile).image_size > 64


@pytest.mark.parametrize("method", FAMILY_METHODS)
def test_smoke_models_are_small_and_map_images_to_images(method):
    objective = smoke_objective(method).eval()
    assert isinstance(objective, SupervisedObjective)
    assert 5_000 <= count_parameters(objective) <= 300_000
    prediction = objective.predict(ToyPairs(2, 64).cxr)
    assert prediction.shape == (2, 1, 64, 64)
    assert prediction.min() >= 0 and prediction.max() <= 1


def test_builders_scale_with_width_for_teacher_and_student():
    teacher, student = cnn.build_unet(width=32), cnn.build_unet(width=8)
    assert count_parameters(teacher) > 10 * count_parameters(student)
    assert count_parameters(cnn.build_resnet_bs()) == 1_219_841  # (2·16 + 1) convolutions of 64×64×3×3 + ends
    assert count_parameters(cnn.build_unet_plus_plus(8)) > count_parameters(cnn.build_unet(8))


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("method", FAMILY_METHODS)
def test_a_few_steps_lower_the_validation_error(method, tmp_path):
    config = load_config(method, "smoke", image_size=32, steps=30, batch_size=8, log_every=5,
                         output_dir=str(tmp_path), data="unused")
    torch.manual_seed(0)
    objective = build_objective(config)
    train_set, val_set = ToyPairs(16, 32, seed=0), ToyPairs(8, 32, seed=1)
    val_batch = [next(iter(torch.utils.data.DataLoader(val_set, batch_size=8)))]
    before = objective.eval().validate(val_batch)["l1"]
    Trainer(objective, config, train_set).fit()
    after = objective.eval().validate(val_batch)["l1"]
    assert after < 0.9 * before, f"{method}: validation L1 {before:.4f} -> {after:.4f}"


# --------------------------------------------------------------------------- the objective


class Zeros(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.scale * x


def test_residual_estimate_of_a_silent_network_is_the_identity():
    cxr = ToyPairs(2, 16).cxr
    assert torch.equal(SupervisedObjective(Zeros(), residual=True).predict(cxr), cxr)
    assert torch.equal(SupervisedObjective(Zeros(), residual=False).predict(cxr), torch.zeros_like(cxr))


def test_losses_return_the_model_group_and_logs():
    objective = smoke_objective("vae").train()
    batch = next(iter(torch.utils.data.DataLoader(ToyPairs(4, 64), batch_size=4)))
    losses = objective.losses(batch, step=0)
    assert set(losses) == {"model", "log/l1", "log/l1_final", "log/kl"}
    assert losses["model"].ndim == 0 and losses["model"].requires_grad
    assert losses["log/kl"] >= 0


def test_unet_plus_plus_deep_supervision_trains_every_head():
    network = cnn.build_unet_plus_plus(width=4, deep_supervision=True)
    x = ToyPairs(2, 32).cxr
    outputs = network.training_outputs(x)
    assert len(outputs.predictions) == 4 and all(p.shape == x.shape for p in outputs.predictions)
    SupervisedObjective(network).losses({"cxr": x, "soft": x}, step=0)["model"].backward()
    head_convs = [network.unet.final_conv_0_1, network.unet.final_conv_0_2, network.unet.final_conv_0_3,
                  network.unet.final_conv_0_4]
    assert all(conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0 for conv in head_convs)
    assert torch.equal(network.eval()(x), network.heads(x)[-1])

    plain = cnn.build_unet_plus_plus(width=4, deep_supervision=False)
    assert len(plain.training_outputs(x).predictions) == 1
    with pytest.raises(ValueError, match="head_weights has 2 entries but the network has 4 outputs"):
        SupervisedObjective(network, head_weights=[0.5, 0.5]).losses({"cxr": x, "soft": x}, step=0)


def test_resnet_bs_keeps_any_resolution_and_its_receptive_field():
    network = cnn.build_resnet_bs(width=4, num_blocks=2, scaling=1.0)
    x = torch.rand(1, 1, 37, 45, requires_grad=True)
    output = network(x)
    assert output.shape == x.shape
    output[0, 0, 18, 22].backward()
    rows = x.grad[0, 0].abs().sum(dim=1).nonzero()
    assert network.receptive_field == 1 + 2 * (2 * 2 + 3) == int(rows.max() - rows.min() + 1)


def test_vae_decodes_the_mean_at_inference_and_samples_in_training():
    network = autoencoder.build_vae(width=8, levels=2).eval()
    x = ToyPairs(2, 32).cxr
    assert torch.equal(network(x), network(x))
    outputs = network.training_outputs(x)
    assert set(outputs.penalties) == {"kl"} and not torch.equal(outputs.predictions[0], network(x))
    assert autoencoder.kl_divergence(torch.zeros(2, 4, 3, 3), torch.ones(2, 4, 3, 3)).item() == 0.0


def test_vq_vae_reports_its_quantisation_loss():
    outputs = autoencoder.build_vq_vae(width=8).train().training_outputs(ToyPairs(2, 32).cxr)
    assert isinstance(outputs, TrainingOutputs) and set(outputs.penalties) == {"quantisation"}
    assert outputs.penalties["quantisation"].item() >= 0


# --------------------------------------------------------------------------- bad input


def test_bad_radiographs_get_clear_errors():
    objective = smoke_objective("unet").eval()
    with pytest.raises(ValueError, match=r"radiographs shaped \(N, 1, H, W\), got \(1, 64, 64\)"):
        objective.predict(torch.rand(1, 64, 64))
    with pytest.raises(ValueError, match=r"multiples of 16 \(it halves the image 4 times\), got 60×60"):
        objective.predict(torch.rand(1, 1, 60, 60))
    with pytest.raises(TypeError, match="floating-point radiographs"):
        objective.predict(torch.zeros(1, 1, 64, 64, dtype=torch.uint8))


def test_bad_method_args_get_clear_errors():
    with pytest.raises(ValueError, match=r"Method 'unet': unknown method_args \['depth'\].* width, norm"):
        smoke_objective("unet", depth=3)
    with pytest.raises(ValueError, match="Unknown reconstruction loss 'ssim'"):
        smoke_objective("resnet_bs", loss="ssim")
    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        cnn.build_unet(width=0)
