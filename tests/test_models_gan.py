"""Tests for bs_lib.models.gan: pix2pix and the multi-scale MCA-Net idea as conditional-GAN objectives."""

from __future__ import annotations

import pytest
import torch

from bs_lib.engine import TrainConfig, Trainer
from bs_lib.engine.objective import METHODS
from bs_lib.models import gan


def build(method: str, **method_args) -> gan.ConditionalGAN:
    torch.manual_seed(0)
    args = {"width": 4, "discriminator_width": 4, **({"scales": 2} if method == "mca_net" else {}), **method_args}
    return METHODS[method](TrainConfig(method=method, method_args=args))


def test_methods_are_registered():
    import bs_lib.models  # noqa: F401  (registers every family)

    assert METHODS["pix2pix"] is gan.build_pix2pix
    assert METHODS["mca_net"] is gan.build_mca_net


def test_pix2pix_shapes_and_identity_at_start():
    model = build("pix2pix", depth=3).eval()
    cxr = torch.rand(2, 1, 32, 32)
    estimates = model.generate(cxr)
    assert len(estimates) == 1 and estimates[0].shape == cxr.shape
    assert torch.equal(model.predict(cxr), cxr)  # residual generator with a zero last layer: the identity baseline
    direct = build("pix2pix", depth=3, residual=False).eval()
    assert not torch.equal(direct.predict(cxr), cxr)


def test_mca_net_returns_one_estimate_per_scale():
    model = build("mca_net", levels=3, scales=3).eval()
    cxr = torch.rand(2, 1, 32, 32)
    estimates = model.generate(cxr)
    assert [tuple(e.shape[-2:]) for e in estimates] == [(32, 32), (16, 16), (8, 8)]
    for scale, estimate in enumerate(estimates):  # each scale starts as the pooled radiograph
        assert torch.allclose(estimate, gan.downsample(cxr, scale))
    assert len(model.discriminators) == 3


@pytest.mark.parametrize("method", ["pix2pix", "mca_net"])
def test_parameter_groups_generator_then_discriminator(method):
    model = build(method)
    groups = model.parameter_groups()
    assert list(groups) == ["generator", "discriminator"]
    ids = [{id(p) for p in params} for params in groups.values()]
    assert not ids[0] & ids[1]
    assert ids[0] | ids[1] == {id(p) for p in model.parameters()}
    batch = {"cxr": torch.rand(2, 1, 32, 32), "soft": torch.rand(2, 1, 32, 32)}
    assert [k for k in model.losses(batch, step=0) if not k.startswith("log/")] == ["generator", "discriminator"]


def test_discriminator_joins_at_adversarial_start():
    model = build("pix2pix", adversarial_start=5)
    batch = {"cxr": torch.rand(2, 1, 32, 32), "soft": torch.rand(2, 1, 32, 32)}
    assert "discriminator" not in model.losses(batch, step=4)
    assert "discriminator" in model.losses(batch, step=5)


@pytest.mark.parametrize("adversarial", ["lsgan", "bce"])
def test_discriminator_loss_never_reaches_the_generator(adversarial):
    model = build("mca_net", adversarial=adversarial)
    batch = {"cxr": torch.rand(2, 1, 32, 32), "soft": torch.rand(2, 1, 32, 32)}
    model.losses(batch, step=0)["discriminator"].backward()
    assert all(p.grad is None for p in model.generator.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminators.parameters())


@pytest.mark.parametrize("method", ["pix2pix", "mca_net"])
def test_a_few_steps_lower_the_generators_l1(tmp_path, method, striped_chests):
    model = build(method, adversarial_weight=0.01)
    data = striped_chests(16, 32, seed=0)
    batch = {"cxr": data.cxr, "soft": data.soft}
    model.eval()
    before = (model.predict(data.cxr) - data.soft).abs().mean().item()
    config = TrainConfig(name=method, method=method, steps=40, batch_size=8, lr=3e-3, log_every=40,
                         output_dir=str(tmp_path))
    Trainer(model, config, data).fit()
    model.eval()
    after = (model.predict(data.cxr) - data.soft).abs().mean().item()
    assert after < 0.7 * before, (before, after)
    assert torch.isfinite(model.losses(batch, step=40)["discriminator"])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"pix2pix: unknown method_args \['widht'\]"):
        METHODS["pix2pix"](TrainConfig(method="pix2pix", method_args={"widht": 8}))
    with pytest.raises(ValueError, match="Unknown adversarial loss 'wgan'"):
        build("pix2pix", adversarial="wgan")
    with pytest.raises(ValueError, match="divisible by 8"):
        build("mca_net", levels=3).generate(torch.rand(1, 1, 36, 36))
    with pytest.raises(ValueError, match="scale 2 sees 8-pixel images but needs at least 12"):
        build("mca_net", scales=3).losses({"cxr": torch.rand(1, 1, 32, 32), "soft": torch.rand(1, 1, 32, 32)}, 0)
    with pytest.raises(ValueError, match="scales <= levels"):
        gan.MultiScaleGenerator(width=4, levels=2, scales=4)
