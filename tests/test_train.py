"""Tests for the training engine (bs_lib.engine) and its command line (bs_lib.train): config, schedules, the
update rule, EMA, checkpoints, resume and data parallelism."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from bs_lib import engine
from bs_lib.engine import (
    Callback,
    CheckpointError,
    ConfigError,
    Objective,
    TrainConfig,
    Trainer,
    latest_checkpoint,
    load_weights,
)
from bs_lib.engine.data import EpochBatchSampler, collate_tensors
from bs_lib.engine.optim import lr_multiplier

FIXTURES = Path(__file__).parent / "fixtures" / "train"
sys.path.insert(0, str(FIXTURES))
import tiny_train  # noqa: E402  (the fixture folder is not a package)

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def tiny_config(tmp_path: Path, **changes) -> TrainConfig:
    values = {"name": "tiny", "method": "tiny-test", "image_size": 8, "batch_size": 4, "steps": 6, "lr": 1e-2,
              "log_every": 2, "output_dir": str(tmp_path / "runs"), "data": "tiny_train:build_dataset"}
    values.update(changes)
    return TrainConfig(**values)


def tiny_trainer(tmp_path: Path, callbacks=(), val=False, **changes) -> Trainer:
    config = tiny_config(tmp_path, **changes)
    torch.manual_seed(config.seed)
    objective = tiny_train.build_objective(config)
    return Trainer(objective, config, tiny_train.TinyPairs(10, 8, seed=0),
                   tiny_train.TinyPairs(4, 8, seed=1) if val else None, callbacks=callbacks)


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --------------------------------------------------------------------------- config


def test_config_yaml_round_trip_and_overrides(tmp_path):
    config = tiny_config(tmp_path, scheduler="multistep", scheduler_args={"milestones": [2, 4], "gamma": 0.1},
                         groups={"model": {"lr": 5e-4}}, ema_decay=0.995, method_args={"width": 4})
    path = tmp_path / "run.yaml"
    config.to_yaml(path)
    assert TrainConfig.from_yaml(path) == config
    changed = TrainConfig.from_yaml(path, ["steps=20", "lr=2e-4", "method_args.width=8", "betas=[0.5, 0.9]"])
    assert (changed.steps, changed.lr, changed.method_args, changed.betas) == (20, 2e-4, {"width": 8}, (0.5, 0.9))


def test_config_accepts_yaml_number_strings(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("method: tiny-test\nlr: 1e-4\nsteps: 1e3\n")  # PyYAML reads both as strings
    config = TrainConfig.from_yaml(path)
    assert config.lr == 1e-4 and config.steps == 1000 and isinstance(config.steps, int)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"step": 10}, "Unknown training config key 'step'. Did you mean steps"),
        ({"mixed_precision": "fp8"}, "mixed_precision must be one of"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"lr": "fast"}, "lr must be float, got 'fast'"),
        ({"ema_decay": 1.5}, "ema_decay must lie in (0, 1)"),
        ({"betas": [0.9]}, "betas must be two numbers"),
        ({"scheduler": "step"}, "missing ['step_size']"),
        ({"scheduler": "cosine", "scheduler_args": {"gamma": 0.5}}, "unknown ['gamma']"),
        ({"groups": {"generator": {"momentum": 0.9}}}, "groups.generator must be a mapping"),
        ({"drop_last": "yes"}, "drop_last must be bool"),
    ],
)
def test_config_rejects_bad_values_with_clear_errors(values, message):
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_dict(values)
    assert message in str(error.value)


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("method: tiny-test\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: Unknown training config key 'learning_rate'"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="must look like key=value"):
        TrainConfig.from_yaml(path, ["steps"])


# --------------------------------------------------------------------------- schedules


def test_lr_schedules():
    step = TrainConfig(steps=100, scheduler="step", scheduler_args={"step_size": 10, "gamma": 0.5})
    assert [lr_multiplier(s, step) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    bs_ldm = TrainConfig(steps=100, scheduler="multistep", scheduler_args={"milestones": [20, 40, 75]})
    assert lr_multiplier(19, bs_ldm) == 1.0 and lr_multiplier(40, bs_ldm) == pytest.approx(0.01)
    cosine = TrainConfig(steps=110, scheduler="cosine", warmup_steps=10, scheduler_args={"min_lr_ratio": 0.1})
    assert lr_multiplier(0, cosine) == pytest.approx(0.1)  # warm-up: (s + 1) / W
    assert lr_multiplier(10, cosine) == pytest.approx(1.0)
    assert lr_multiplier(60, cosine) == pytest.approx(0.55)  # half-way: r + (1 - r) / 2
    assert lr_multiplier(110, cosine) == pytest.approx(0.1)


# --------------------------------------------------------------------------- data


def test_collate_drops_non_tensor_fields_and_keeps_masks():
    samples = [tiny_train.TinyPairs(3, 8)[i] for i in range(3)]
    batch = collate_tensors(samples)
    assert set(batch) == {"cxr", "soft", "masks"}
    assert batch["cxr"].shape == (3, 1, 8, 8) and batch["masks"]["lungs"].dtype == torch.bool
    with pytest.raises(TypeError, match="Training samples must be dicts"):
        collate_tensors([torch.zeros(1)])


def test_sampler_shards_epochs_and_restarts_anywhere():
    shards = [EpochBatchSampler(10, 2, seed=3, drop_last=False, rank=r, world_size=2) for r in range(2)]
    epoch = [s.epoch_batches(0) for s in shards]
    assert len(epoch[0]) == len(epoch[1]) == 3  # 5 samples per process: batches of 2, 2, 1
    assert sorted(i for batches in epoch for batch in batches for i in batch) == list(range(10))
    assert shards[0].epoch_batches(1) != epoch[0]  # a fresh permutation every epoch
    endless = iter(shards[0])
    first_seven = [next(endless) for _ in range(7)]
    restarted = iter(EpochBatchSampler(10, 2, seed=3, drop_last=False, rank=0, world_size=2, start_batch=4))
    assert [next(restarted) for _ in range(3)] == first_seven[4:]
    with pytest.raises(ValueError, match="too few for one batch"):
        EpochBatchSampler(3, 4, seed=0, drop_last=True)


# --------------------------------------------------------------------------- the update rule


class TinyGAN(Objective):
    """Two linear 'networks' whose generator loss also reaches the discriminator's parameters."""

    def __init__(self, discriminator_from: int = 0) -> None:
        super().__init__()
        self.generator = nn.Linear(4, 4)
        self.discriminator = nn.Linear(4, 1)
        self.discriminator_from = discriminator_from

    def parameter_groups(self):
        return {"generator": list(self.generator.parameters()),
                "discriminator": list(self.discriminator.parameters())}

    def gan_losses(self, batch):
        real = batch["soft"].flatten(1)[:, :4]
        fake = self.generator(batch["cxr"].flatten(1)[:, :4])
        generator = -self.discriminator(fake).mean() + (fake - real).abs().mean()
        discriminator = self.discriminator(fake.detach()).mean() - self.discriminator(real).mean()
        return generator, discriminator

    def losses(self, batch, step):
        generator, discriminator = self.gan_losses(batch)
        if step < self.discriminator_from:
            return {"generator": generator}
        return {"generator": generator, "discriminator": discriminator}

    def predict(self, cxr):
        return cxr


def gan_trainer(tmp_path, **changes):
    discriminator_from = changes.pop("discriminator_from", 0)
    torch.manual_seed(0)
    config = tiny_config(tmp_path, **{"method": "", "batch_size": 10, "steps": 1, "weight_decay": 0.0, **changes})
    return Trainer(TinyGAN(discriminator_from), config, tiny_train.TinyPairs(10, 8))


def manual_gan_step(objective: TinyGAN, batch: dict, leak: bool) -> None:
    """The textbook update: each group's gradient from its own loss (``leak`` adds the generator loss to D)."""
    generator_loss, discriminator_loss = objective.gan_losses(batch)
    d_params = list(objective.discriminator.parameters())
    g_grads = torch.autograd.grad(generator_loss, list(objective.generator.parameters()), retain_graph=True)
    d_grads = torch.autograd.grad(discriminator_loss + (generator_loss if leak else 0), d_params)
    for params, grads in ((objective.generator.parameters(), g_grads), (d_params, d_grads)):
        params = list(params)
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
        torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0).step()


def test_each_group_is_updated_by_its_own_loss_only(tmp_path):
    trainer = gan_trainer(tmp_path)
    start = weights(trainer.objective)
    batch = collate_tensors([trainer.train_dataset[int(i)] for i in trainer_order(trainer)])
    trainer.fit()
    expected, leaky = TinyGAN(), TinyGAN()
    for reference, leak in ((expected, False), (leaky, True)):
        reference.load_state_dict(start)
        manual_gan_step(reference, batch, leak)
    for key, value in weights(expected).items():
        assert torch.allclose(trainer.objective.state_dict()[key], value, atol=1e-6), key
    # the test can fail: counting the generator loss's gradient in D gives other weights
    assert not torch.allclose(trainer.objective.discriminator.weight, leaky.discriminator.weight, atol=1e-4)


def trainer_order(trainer: Trainer) -> list[int]:
    sampler = EpochBatchSampler(len(trainer.train_dataset), trainer.config.batch_size, seed=trainer.config.seed,
                                drop_last=False)
    return sampler.epoch_batches(0)[0]


def test_a_group_can_join_late(tmp_path):
    trainer = gan_trainer(tmp_path, steps=3, log_every=1, discriminator_from=2)
    before = weights(trainer.objective.discriminator)
    seen = []

    class Watch(Callback):
        def on_step_end(self, trainer, step, logs):
            seen.append((step, torch.equal(trainer.objective.discriminator.weight, before["weight"])))

    trainer.callbacks.append(Watch())
    result = trainer.fit()
    assert seen == [(1, True), (2, True), (3, False)]
    assert "loss/discriminator" not in result.history[0] and "loss/discriminator" in result.history[2]


def test_gradient_accumulation_equals_a_larger_batch(tmp_path):
    big = tiny_trainer(tmp_path / "big", batch_size=4, steps=2)
    small = tiny_trainer(tmp_path / "small", batch_size=2, grad_accum=2, steps=2)
    big.fit(), small.fit()
    for key, value in weights(big.objective).items():
        assert torch.allclose(small.objective.state_dict()[key], value, atol=1e-6), key


def test_seeded_runs_are_identical_and_drop_last_false_handles_any_final_batch(tmp_path):
    runs = [tiny_trainer(tmp_path / str(i), batch_size=3, steps=5, method_args={"noise_std": 0.1}) for i in range(2)]
    results = [run.fit() for run in runs]  # 10 samples in batches of 3: the fourth batch holds one
    assert_same_weights(weights(runs[0].objective), weights(runs[1].objective))
    assert results[0].history == results[1].history
    assert results[0].final_step == 5 and results[0].images_per_s > 0
    assert [h["step"] for h in results[0].history] == [2, 4, 5]


def test_losses_must_name_a_group(tmp_path):
    class Wrong(tiny_train.TinyRegression):
        def losses(self, batch, step):
            return {"generator": super().losses(batch, step)["model"]}

    trainer = Trainer(Wrong(), tiny_config(tmp_path), tiny_train.TinyPairs(10, 8))
    with pytest.raises(KeyError, match="returned 'generator', which is neither a parameter group"):
        trainer.fit()


def test_bf16_after_fp32_in_one_process(tmp_path):
    tiny_trainer(tmp_path / "fp32", steps=1).fit()
    result = tiny_trainer(tmp_path / "bf16", steps=2, mixed_precision="bf16").fit()
    assert result.final_step == 2 and torch.isfinite(torch.tensor(result.history[-1]["loss/model"]))


def pretend_gpu(monkeypatch, name: str, capability: tuple[int, int]) -> None:
    """A CUDA GPU as torch would describe it; torch's own bf16 check says yes even without bf16 hardware."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.version, "hip", None)


def test_auto_precision_follows_the_hardware(monkeypatch):
    from bs_lib.engine import resolve_precision

    assert resolve_precision("auto", cpu=True) == "no"  # float32 on CPUs
    pretend_gpu(monkeypatch, "NVIDIA A100", (8, 0))
    assert resolve_precision("auto") == "bf16"
    assert resolve_precision("auto", cpu=True) == "no"
    pretend_gpu(monkeypatch, "Tesla T4", (7, 5))  # Colab's free GPU: bf16 only emulated
    assert resolve_precision("auto") == "fp16"
    assert resolve_precision("fp16") == "fp16" and resolve_precision("no") == "no"
    with pytest.raises(ConfigError, match=r"Tesla T4 has 7\.5.*mixed_precision: auto"):
        resolve_precision("bf16")


def test_auto_precision_trains_in_float32_on_a_cpu(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=1, mixed_precision="auto")
    assert trainer.precision == "no" and not any(s.is_enabled() for s in trainer.scalers.values())
    assert trainer.fit().final_step == 1


def test_fp16_with_loss_scaling_trains(tmp_path):
    """The precision a T4 gets from ``auto``: autocast to fp16, one gradient scaler per group."""
    trainer = tiny_trainer(tmp_path, steps=3, mixed_precision="fp16")
    before = weights(trainer.objective)
    assert all(scaler.is_enabled() for scaler in trainer.scalers.values())
    result = trainer.fit()
    assert result.final_step == 3 and math.isfinite(result.history[-1]["loss/model"])
    assert not torch.equal(before["net.0.weight"], trainer.objective.state_dict()["net.0.weight"])


def test_gpu_configs_let_the_hardware_choose_the_precision():
    from bs_lib.configs import available_methods, config_dict

    for method in available_methods():
        for profile in ("colab", "full"):
            assert config_dict(method, profile).get("mixed_precision", "no") in ("auto", "no"), (method, profile)


# --------------------------------------------------------------------------- EMA and validation


def test_ema_follows_the_recurrence_and_is_saved(tmp_path):
    snapshots = []

    class Record(Callback):
        def on_step_end(self, trainer, step, logs):
            snapshots.append(trainer.objective.net[0].weight.detach().clone())

    trainer = tiny_trainer(tmp_path, steps=3, ema_decay=0.5, ema_modules=["net"], callbacks=[Record()])
    initial = trainer.objective.net[0].weight.detach().clone()
    trainer.fit()
    expected = initial
    for live in snapshots:
        expected = 0.5 * expected + 0.5 * live
    with trainer.ema_scope():
        assert torch.allclose(trainer.objective.net[0].weight, expected, atol=1e-7)
    assert torch.equal(trainer.objective.net[0].weight, snapshots[-1])  # live weights are back

    fresh = tiny_train.TinyRegression()
    load_weights(trainer.run_dir, fresh, use_ema=True)
    assert torch.allclose(fresh.net[0].weight, expected, atol=1e-7)
    load_weights(trainer.run_dir, fresh)
    assert torch.equal(fresh.net[0].weight, snapshots[-1])
    cxr = tiny_train.TinyPairs(2, 8)[0]["cxr"][None]
    assert not torch.equal(trainer.predict(cxr, use_ema=True), trainer.predict(cxr, use_ema=False))


def test_ema_modules_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="has no sub-network 'generator'; it has net"):
        tiny_trainer(tmp_path, ema_decay=0.9, ema_modules=["generator"])


def test_validation_uses_objective_and_callbacks_without_moving_the_random_state(tmp_path):
    class Draws(Callback):
        def on_validate(self, trainer, step):
            return {"noise": torch.rand(()).item()}

    with_val = tiny_trainer(tmp_path / "a", val=True, val_every=2, method_args={"noise_std": 0.1},
                            callbacks=[Draws()])
    without = tiny_trainer(tmp_path / "b", method_args={"noise_std": 0.1})
    history = with_val.fit().history
    without.fit()
    assert_same_weights(weights(with_val.objective), weights(without.objective))
    val = [h for h in history if "val/l1" in h]
    assert [h["step"] for h in val] == [2, 4, 6] and all(set(h) == {"step", "val/l1", "val/mse", "val/noise"}
                                                          for h in val)


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_layout_pruning_and_loading_without_pickles(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=6, checkpoint_every=2, keep_checkpoints=2, ema_decay=0.9)
    (trainer.checkpoint_dir / ".tmp-step-000008").mkdir(parents=True)  # left by a killed writer
    result = trainer.fit()
    names = sorted(p.name for p in trainer.checkpoint_dir.iterdir())
    assert names == [".tmp-step-000008", "step-000004", "step-000006"]
    assert result.checkpoint == latest_checkpoint(trainer.run_dir) == trainer.checkpoint_dir / "step-000006"
    assert sorted(p.name for p in result.checkpoint.iterdir()) == sorted(
        ["model.safetensors", "ema.safetensors", "optimizers.pt", "schedulers.pt", "state.json"])
    for name in ("optimizers.pt", "schedulers.pt"):
        torch.load(result.checkpoint / name, weights_only=True)
    state = load_weights(result.checkpoint, tiny_train.TinyRegression())
    assert state["step"] == 6 and state["config"]["steps"] == 6 and "torch" in state["versions"]
    assert (trainer.run_dir / "config.yaml").is_file()


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return tiny_trainer(tmp_path, steps=2).fit().checkpoint


def test_load_trained_rebuilds_a_method_from_its_checkpoint_alone(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=3, ema_decay=0.5, method_args={"width": 6})
    trainer.fit()
    objective, config = engine.load_trained(trainer.run_dir, device="cpu")
    assert isinstance(objective, tiny_train.TinyRegression) and not objective.training
    assert config == trainer.config and objective.net[0].out_channels == 6  # built from state.json's config
    with trainer.ema_scope():
        assert_same_weights(weights(objective), weights(trainer.objective))  # the EMA weights by default
    raw, _ = engine.load_trained(trainer.run_dir, device="cpu", use_ema=False)
    assert_same_weights(weights(raw), weights(trainer.objective))


def test_corrupt_weights_give_a_clear_error(checkpoint):
    model_file = checkpoint / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:40])
    with pytest.raises(CheckpointError) as error:
        load_weights(checkpoint, tiny_train.TinyRegression())
    message = str(error.value)
    assert str(model_file) in message and "corrupt or truncated" in message and "earlier checkpoint" in message


def test_mismatched_model_gives_a_clear_error(checkpoint):
    with pytest.raises(CheckpointError) as error:
        load_weights(checkpoint, tiny_train.TinyRegression(width=8))
    message = str(error.value)
    assert "model.safetensors does not fit TinyRegression" in message
    assert "net.0.weight (4, 1, 3, 3) in the file vs (8, 1, 3, 3) in the model" in message
    assert "start a new run" in message


def test_incomplete_or_garbled_checkpoints_give_clear_errors(checkpoint, tmp_path):
    (checkpoint / "optimizers.pt").write_bytes(b"not a state dict")
    trainer = tiny_trainer(tmp_path / "again", steps=4)
    with pytest.raises(CheckpointError, match=r"(?s)optimizers\.pt cannot be read .* corrupt"):
        trainer.resume(checkpoint)
    (checkpoint / "schedulers.pt").unlink()
    with pytest.raises(CheckpointError, match=r"schedulers\.pt is missing: the checkpoint is incomplete"):
        trainer.resume(checkpoint)
    with pytest.raises(CheckpointError, match="is not a checkpoint folder"):
        load_weights(tmp_path / "nowhere", tiny_train.TinyRegression())


def test_other_groups_in_checkpoint_give_a_clear_error(checkpoint, tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(TinyGAN(), tiny_config(tmp_path / "gan", method=""), tiny_train.TinyPairs(10, 8))
    with pytest.raises(CheckpointError, match="does not fit TinyGAN"), \
            pytest.warns(UserWarning, match=r"with a changed config \(method\)"):
        trainer.resume(checkpoint)


def test_resume_in_process_matches_an_uninterrupted_run(tmp_path):
    options = {"steps": 6, "batch_size": 3, "grad_accum": 2, "ema_decay": 0.9, "scheduler": "step",
               "scheduler_args": {"step_size": 2, "gamma": 0.5}, "warmup_steps": 2,
               "method_args": {"noise_std": 0.05, "batchnorm": True}}
    whole = tiny_trainer(tmp_path / "whole", **options)
    whole.fit()
    first = tiny_trainer(tmp_path / "parts", **{**options, "steps": 3})
    first.fit()
    second = tiny_trainer(tmp_path / "parts", **options)
    torch.manual_seed(123)  # whatever happened meanwhile must not matter
    result = second.fit(resume=True)
    assert result.final_step == 6
    assert_same_weights(weights(whole.objective), weights(second.objective))
    assert torch.equal(whole.ema.shadow[0], second.ema.shadow[0])


# --------------------------------------------------------------------------- command line and processes


def write_config(path: Path, runs: Path, **changes) -> Path:
    config = tiny_config(runs, method="tiny_train:build_objective", **changes)
    config.to_yaml(path)
    return path


def subprocess_env(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TINY_")}
    env.update(PYTHONPATH=os.pathsep.join([str(FIXTURES), str(REPO)]), BS_QUIET="1", OMP_NUM_THREADS="1", **extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_cli_print_config_and_errors(tmp_path, capsys):
    from bs_lib.cli import main

    path = write_config(tmp_path / "run.yaml", tmp_path)
    assert main(["train", str(path), "--set", "steps=7", "--print-config"]) == 0
    assert "steps: 7" in capsys.readouterr().out
    assert main(["train", str(path), "--set", "method=no-such-method"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and "Unknown method 'no-such-method'" in error


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_exact_weights(tmp_path):
    options = {"steps": 10, "batch_size": 3, "grad_accum": 2, "checkpoint_every": 4, "ema_decay": 0.9,
               "scheduler": "cosine", "warmup_steps": 2, "max_grad_norm": 1.0, "val_every": 4,
               "method_args": {"noise_std": 0.05, "batchnorm": True}}
    killed_cfg = write_config(tmp_path / "killed.yaml", tmp_path / "killed", **options)
    whole_cfg = write_config(tmp_path / "whole.yaml", tmp_path / "whole", **options)
    marker = tmp_path / "hanging"
    command = [PYTHON, "-m", "bs_lib", "train"]
    whole = subprocess.Popen([*command, str(whole_cfg)], env=subprocess_env(), cwd=tmp_path)
    killed = subprocess.Popen([*command, str(killed_cfg)], cwd=tmp_path,
                              env=subprocess_env(TINY_HANG_AT_STEP="6", TINY_HANG_MARKER=str(marker)))
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert killed.poll() is None and time.monotonic() < deadline, "the run never reached step 6"
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    run_dir = tmp_path / "killed" / "runs" / "tiny"
    assert latest_checkpoint(run_dir).name == "step-000004"

    resumed = subprocess.run([*command, str(killed_cfg), "--resume"], env=subprocess_env(), cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert whole.wait(timeout=120) == 0
    ours, theirs = latest_checkpoint(run_dir), latest_checkpoint(tmp_path / "whole" / "runs" / "tiny")
    assert ours.name == theirs.name == "step-000010"
    for name in ("model.safetensors", "ema.safetensors"):
        assert_same_weights(load_file(ours / name), load_file(theirs / name))
    assert engine.read_state(ours)["history"] == engine.read_state(theirs)["history"]


def launch_two_processes(config: Path, out_dir: Path) -> None:
    """``accelerate launch`` tiny_train.py on two CPU processes (gloo); each writes its final weights to out_dir."""
    launcher = Path(PYTHON).with_name("accelerate")
    if not launcher.exists():
        pytest.skip("the accelerate launcher is not installed beside this Python")
    launched = subprocess.run(
        [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
         str(FIXTURES / "tiny_train.py"), str(config), str(out_dir)],
        env=subprocess_env(), cwd=out_dir, capture_output=True, text=True, timeout=240,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_on_cpu_end_with_identical_weights(tmp_path):
    config = write_config(tmp_path / "ddp.yaml", tmp_path, steps=4, batch_size=2, data_args={"num_images": 8})
    launch_two_processes(config, tmp_path)
    ranks = [load_file(tmp_path / f"rank-{rank}.safetensors") for rank in range(2)]
    assert_same_weights(ranks[0], ranks[1])
    # two processes with 2 samples each step like one process with 4 (same samples, averaged gradients)
    single = tiny_trainer(tmp_path / "single", steps=4, batch_size=4)
    single.train_dataset = tiny_train.TinyPairs(8, 8)
    single.fit()
    for key, value in weights(single.objective).items():
        assert torch.allclose(ranks[0][key], value, atol=1e-6), key
    torch.manual_seed(0)
    assert not torch.allclose(ranks[0]["net.0.weight"], tiny_train.TinyRegression().net[0].weight)  # it trained


def test_bs_ldm_trains_on_two_processes_with_cached_latents(tmp_path):
    """The `full` recipe's multi-GPU path in miniature: each process caches the latents, DDP keeps ranks equal."""
    from safetensors.torch import save_file

    from bs_lib.models.vqgan import MLVQGAN, VQGAN_PRESETS

    torch.manual_seed(0)
    autoencoder = {k: v.contiguous() for k, v in MLVQGAN(VQGAN_PRESETS["smoke"], prefer_lpips=False)
                   .state_dict().items()}
    save_file(autoencoder, str(tmp_path / "model.safetensors"))
    config = TrainConfig(name="bs-ldm-ddp", method="bs_ldm", image_size=32, batch_size=2, steps=3, lr=1e-3,
                         output_dir=str(tmp_path / "runs"), data="tiny_train:build_dataset",
                         data_args={"num_images": 8}, method_args={
                             "preset": "smoke", "autoencoder": str(tmp_path / "model.safetensors"),
                             "cache_latents": True})
    config.to_yaml(tmp_path / "ddp.yaml")
    launch_two_processes(tmp_path / "ddp.yaml", tmp_path)
    ranks = [load_file(tmp_path / f"rank-{rank}.safetensors") for rank in range(2)]
    assert_same_weights(ranks[0], ranks[1])
    for name, value in autoencoder.items():  # the frozen stage 1 is untouched
        assert torch.equal(ranks[0][f"autoencoder.{name}"], value), name
    last_layer = "unet.head.2.weight"  # zero-initialised: non-zero only if the UNet trained
    assert ranks[0][last_layer].abs().sum() > 0


def test_a_finished_run_is_reused_only_for_the_exact_same_config(tmp_path):
    config = tiny_config(tmp_path)
    assert engine.finished_run(config) is None
    data = tiny_train.TinyPairs(10, 8, seed=0)
    first = engine.train_or_reuse(config, data)
    assert engine.finished_run(config) == first
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert engine.train_or_reuse(config, data) == first  # reused, not trained again
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert engine.finished_run(tiny_config(tmp_path, lr=5e-3)) is None  # another config is another model
    assert engine.finished_run(tiny_config(tmp_path, steps=8)) is None  # a longer run is not finished


def test_a_finished_run_reached_through_another_spelling_of_its_folder_is_reused_not_deleted(tmp_path, monkeypatch):
    data = tiny_train.TinyPairs(10, 8, seed=0)
    monkeypatch.chdir(tmp_path)
    relative = tiny_config(tmp_path, output_dir="runs")
    first = engine.train_or_reuse(relative, data)
    absolute = tiny_config(tmp_path, output_dir=str((tmp_path / "runs").resolve()))
    assert not engine.discard_stale_run(absolute)  # same model, same folder: kept
    assert engine.finished_run(absolute) == Path(absolute.run_dir) / first.relative_to(relative.run_dir)


def test_a_stale_run_of_another_config_is_discarded_and_a_finished_one_resumes_instantly(tmp_path):
    data = tiny_train.TinyPairs(10, 8, seed=0)
    config = tiny_config(tmp_path)
    first = engine.train_or_reuse(config, data)
    assert not engine.discard_stale_run(config)  # same config: kept
    again = Trainer(tiny_train.build_objective(config), config, data).fit(resume=True)
    assert again.final_step == config.steps and again.history  # nothing left to train, history restored
    other = tiny_config(tmp_path, lr=5e-3)  # same run folder, another model
    assert engine.discard_stale_run(other) and not first.exists()


# --------------------------------------------------------------------------- the registry and the old names


def test_a_method_registers_its_family_and_label():
    info = engine.method_info("tiny-test")
    assert (info.family, info.label, info.build) == ("test", "tiny regression", tiny_train.build_objective)
    assert "tiny-test" in engine.registered_methods() and engine.method_info("no-such-method") is None
    with pytest.raises(ConfigError, match=r"Unknown method 'no-such-method'.*import bs_lib.models"):
        engine.build_objective(TrainConfig(method="no-such-method"))


def test_the_command_line_module_keeps_the_names_older_code_imports():
    from bs_lib import train

    for name in ("Trainer", "TrainConfig", "Objective", "finished_run", "train_or_reuse", "fit_or_reuse",
                 "discard_stale_run", "read_state", "resolve_checkpoint", "build_datasets", "register_method"):
        assert getattr(train, name) is getattr(engine, name), name
    assert engine.method_info("unet") is not None  # importing it registered the course's methods
