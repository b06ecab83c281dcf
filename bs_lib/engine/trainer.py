"""The loop: :class:`Trainer` trains an :class:`~bs_lib.engine.objective.Objective` as its config says.

The walkthrough of one optimiser step, of exact resume and of several
processes is :mod:`bs_lib.engine`'s docstring; this module is that text in
code. Below the Trainer, four functions decide whether a run must train at
all: :func:`finished_run`, :func:`discard_stale_run`, :func:`train_or_reuse`
and :func:`fit_or_reuse`, so a notebook that is run twice, or a later
notebook that asks for the same run, loses nothing that was checkpointed.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from bs_lib import config as course_config
from bs_lib.engine.checkpoint import (
    capture_rng_state,
    check_complete,
    checkpoint_name,
    latest_checkpoint,
    library_versions,
    load_group_states,
    load_model_file,
    preserved_rng_state,
    prune_checkpoints,
    read_ema,
    read_state,
    resolve_checkpoint,
    restore_rng_state,
    write_checkpoint,
)
from bs_lib.engine.config import ConfigError, TrainConfig
from bs_lib.engine.data import EpochBatchSampler, build_datasets, collate_tensors, move_to
from bs_lib.engine.distributed import (
    average_buffers,
    average_gradients,
    broadcast_state,
    is_distributed,
    process_state,
    resolve_precision,
)
from bs_lib.engine.objective import Objective, build_objective, method_info
from bs_lib.engine.optim import EMA, make_optimizer, make_scheduler

Data = Dataset | Sequence[dict]


class Callback:
    """Hooks into :meth:`Trainer.fit`; override the ones you need. Called on the main process only."""

    def on_step_end(self, trainer: Trainer, step: int, logs: dict[str, float] | None) -> None:
        """After every step; ``logs`` holds the averaged losses on logging steps, else None."""

    def on_validate(self, trainer: Trainer, step: int) -> dict[str, float] | None:
        """At validation time (EMA weights in place when ``val_use_ema``): extra metrics to record."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """After a checkpoint was written."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` reports."""

    final_step: int
    history: list[dict[str, float]]  # {"step": s, "loss/<group>": ..., "lr/<group>": ...} and {"step", "val/..."}
    wall_time_s: float  # this call of fit()
    images_per_s: float  # training samples per second over all processes, this call
    checkpoint: Path | None
    run_dir: Path


class Trainer:
    """Trains an :class:`Objective` as its :class:`TrainConfig` says.

    >>> trainer = Trainer(objective, config, train_dataset, val_dataset)   # doctest: +SKIP
    >>> result = trainer.fit(resume=True)    # picks up the latest checkpoint of the run, if any
    >>> soft = trainer.predict(cxr, use_ema=True)
    """

    def __init__(self, objective: Objective, config: TrainConfig | Mapping[str, Any], train_dataset: Data,
                 val_dataset: Data | None = None, callbacks: Iterable[Callback] = ()) -> None:
        self.config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        self.precision = resolve_precision(self.config.mixed_precision, self.config.cpu)
        self.processes = process_state(self.config.cpu)
        self.device = torch.device("cpu") if self.config.cpu else self.processes.device
        self.objective = objective.to(self.device)
        if self.config.channels_last:
            self.objective.to(memory_format=torch.channels_last)
        if is_distributed():
            broadcast_state(self.objective)
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self._datasets_prepared = False  # Objective.prepare_dataset runs once, at the first fit()
        self.callbacks = list(callbacks)
        self.groups = self._checked_groups(objective.parameter_groups())
        self.optimizers = {name: make_optimizer(params, self.config, name) for name, params in self.groups.items()}
        self.schedulers = {name: make_scheduler(opt, self.config) for name, opt in self.optimizers.items()}
        self.scalers = {name: torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
                        for name in self.groups}
        self.ema = EMA(self.objective, self.config.ema_decay, self.config.ema_modules) \
            if self.config.ema_decay else None
        if self.config.compile:
            for module in self.objective.children():
                module.compile()
        self.step = 0
        self.history: list[dict[str, float]] = []
        self._rng_states: list[dict] | None = None  # set by resume(), applied when fit() starts

    # ------------------------------------------------------------------ properties

    @property
    def is_main_process(self) -> bool:
        return self.processes.is_main_process

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def _checked_groups(self, groups: dict[str, list[nn.Parameter]]) -> dict[str, list[nn.Parameter]]:
        if not groups:
            raise ValueError(f"{type(self.objective).__name__}.parameter_groups() is empty: nothing to train.")
        seen: dict[int, str] = {}
        for name, params in groups.items():
            if name.startswith("log/") or not params:
                raise ValueError(f"Parameter group {name!r} is empty or uses the reserved prefix 'log/'.")
            for param in params:
                if not param.requires_grad:
                    raise ValueError(f"Parameter group {name!r} contains a frozen parameter (requires_grad=False).")
                if id(param) in seen:
                    raise ValueError(f"A parameter is in both groups {seen[id(param)]!r} and {name!r}; "
                                     f"each parameter must belong to exactly one group.")
                seen[id(param)] = name
        unknown = set(self.config.groups) - set(groups)
        if unknown:
            raise ConfigError(f"config.groups names {sorted(unknown)}, but the objective's parameter groups are "
                              f"{sorted(groups)}.")
        return groups

    # ------------------------------------------------------------------ inference

    @contextlib.contextmanager
    def ema_scope(self) -> Iterator[None]:
        """Use the EMA weights inside the block (no-op without EMA)."""
        if self.ema is None:
            yield
            return
        with self.ema.scope():
            yield

    @torch.no_grad()
    def predict(self, cxr: torch.Tensor, use_ema: bool = True) -> torch.Tensor:
        """``objective.predict`` in eval mode, with EMA weights when available and ``use_ema``."""
        was_training = self.objective.training
        self.objective.eval()
        try:
            with self.ema_scope() if use_ema else contextlib.nullcontext(), self._autocast():
                return self.objective.predict(cxr.to(self.device)).float()
        finally:
            self.objective.train(was_training)

    def _autocast(self):
        precision = self.precision
        if precision == "no":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

    # ------------------------------------------------------------------ the loop

    def fit(self, resume: bool | str | Path = False) -> TrainResult:
        """Train until ``config.steps``. ``resume=True`` continues from the run's latest checkpoint when one
        exists (else starts fresh); ``resume=PATH`` continues from that checkpoint."""
        if resume is True:
            latest = latest_checkpoint(self.run_dir)
            if latest is not None:
                self.resume(latest)
        elif resume:
            self.resume(resume)
        if self._rng_states is not None:
            restore_rng_state(self._rng_states[self.processes.process_index])
            self._rng_states = None
        elif self.step == 0:
            course_config.seed_everything(self.config.seed + self.processes.process_index)
        if self.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.config.to_yaml(self.run_dir / "config.yaml")

        start_step, started = self.step, time.perf_counter()
        self._prepare_datasets()
        batches = self._batches()
        running: dict[str, torch.Tensor] = {}
        bar = course_config.progress(total=self.config.steps, initial=self.step, desc=self.config.name,
                                     disable=course_config.is_quiet() or not self.is_main_process)
        self.objective.train()
        checkpoint = None
        while self.step < self.config.steps:
            for name, value in self._train_step(batches).items():
                running[name] = running[name] + value if name in running else value
            self.step += 1
            bar.update(1)
            logs = None
            if self.step % self.config.log_every == 0 or self.step == self.config.steps:
                logs = self._log(running, steps=(self.step - 1) % self.config.log_every + 1)
                running = {}
                bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in logs.items() if k.startswith("loss/")})
            if self.config.val_every and self.step % self.config.val_every == 0:
                self.validate()
            if self.is_main_process:
                for callback in self.callbacks:
                    callback.on_step_end(self, self.step, logs)
            every = self.config.checkpoint_every
            if (every and self.step % every == 0) or self.step == self.config.steps:
                checkpoint = self.save_checkpoint()
        bar.close()
        wall = time.perf_counter() - started
        samples = (self.step - start_step) * self.config.batch_size * self.config.grad_accum \
            * self.processes.num_processes
        return TrainResult(final_step=self.step, history=list(self.history), wall_time_s=wall,
                           images_per_s=samples / wall if wall > 0 else 0.0,
                           checkpoint=checkpoint or latest_checkpoint(self.run_dir), run_dir=self.run_dir)

    def _train_step(self, batches: Iterator[dict]) -> dict[str, torch.Tensor]:
        """One optimiser step over ``grad_accum`` micro-batches; returns detached loss tensors (no host sync)."""
        accum = self.config.grad_accum
        logged: dict[str, torch.Tensor] = {}
        stepped: list[str] = []  # groups with a loss this step, in the order losses() returned them
        for _ in range(accum):
            batch = next(batches)
            with self._autocast():
                losses = self.objective.losses(batch, self.step)
            for name, loss in losses.items():
                if not name.startswith("log/"):
                    self._backward(name, loss / accum)
                    if name not in stepped:
                        stepped.append(name)
                key = name if name.startswith("log/") else f"loss/{name}"
                value = loss.detach().float() / accum
                logged[key] = logged[key] + value if key in logged else value
        for name in stepped:
            logged.update(self._update_group(name))
        for name, scheduler in self.schedulers.items():
            if name in stepped:
                scheduler.step()
            else:  # a skipped group's schedule still follows the global step
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
                    scheduler.step()
        if self.ema is not None:
            self.ema.update()
        return logged

    def _backward(self, group: str, loss: torch.Tensor) -> None:
        """Accumulate the gradient of ``loss`` into ``group``'s parameters, and theirs only."""
        if group not in self.groups:
            raise KeyError(f"{type(self.objective).__name__}.losses returned {group!r}, which is neither a parameter "
                           f"group ({', '.join(self.groups)}) nor a 'log/<name>' entry.")
        if loss.ndim != 0:
            raise ValueError(f"The loss of group {group!r} has shape {tuple(loss.shape)}; losses must be scalars.")
        self.scalers[group].scale(loss.float()).backward(inputs=self.groups[group])

    def _update_group(self, name: str) -> dict[str, torch.Tensor]:
        params, optimizer, scaler = self.groups[name], self.optimizers[name], self.scalers[name]
        if is_distributed():
            average_gradients(params)
        logs = {}
        if self.config.max_grad_norm is not None:
            scaler.unscale_(optimizer)
            logs[f"grad_norm/{name}"] = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm).detach()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return logs

    def _batches(self) -> Iterator[dict]:
        """Endless device batches, starting where the run left off (``step × grad_accum`` batches consumed)."""
        sampler = EpochBatchSampler(
            len(self.train_dataset), self.config.batch_size, seed=self.config.seed, drop_last=self.config.drop_last,
            rank=self.processes.process_index, world_size=self.processes.num_processes,
            start_batch=self.step * self.config.grad_accum,
        )
        loader = torch.utils.data.DataLoader(
            self.train_dataset, batch_sampler=sampler, collate_fn=collate_tensors,
            num_workers=self.config.num_workers, pin_memory=self.device.type == "cuda",
            persistent_workers=self.config.num_workers > 0,
            generator=torch.Generator().manual_seed(self.config.seed),  # keeps the global generator untouched
        )
        for batch in loader:
            yield move_to(batch, self.device, self.config.channels_last)

    def _log(self, running: dict[str, torch.Tensor], steps: int) -> dict[str, float]:
        """Average the running sums over ``steps`` (and processes) with one host sync; append to the history."""
        names = sorted(running)
        values = torch.stack([running[name].float() for name in names]) / steps if names else torch.zeros(0)
        if is_distributed():
            torch.distributed.all_reduce(values)
            values /= self.processes.num_processes
        logs = dict(zip(names, values.tolist(), strict=True))
        bad = [name for name, value in logs.items() if not math.isfinite(value)]
        if bad:
            raise FloatingPointError(f"Step {self.step}: {', '.join(bad)} is not finite. Lower the learning rate, "
                                     f"set max_grad_norm, or check the data for NaNs.")
        for name, scheduler in self.schedulers.items():
            logs[f"lr/{name}"] = scheduler.get_last_lr()[0]
        self.history.append({"step": self.step, **logs})
        return logs

    # ------------------------------------------------------------------ validation

    def validate(self) -> dict[str, float]:
        """Validate on the main process, without touching the training's random state; returns the metrics."""
        metrics: dict[str, float] = {}
        if is_distributed():
            average_buffers(self.objective)
        if self.is_main_process and (self.val_dataset is not None or self.callbacks):
            self.objective.eval()
            use_ema = self.config.val_use_ema and self.ema is not None
            with preserved_rng_state(), torch.no_grad(), self.ema_scope() if use_ema else contextlib.nullcontext():
                if self.val_dataset is not None:
                    with self._autocast():
                        metrics.update(self.objective.validate(self._val_batches()))
                for callback in self.callbacks:
                    metrics.update(callback.on_validate(self, self.step) or {})
            self.objective.train()
            self.history.append({"step": self.step, **{f"val/{k}": float(v) for k, v in metrics.items()}})
        self.processes.wait_for_everyone()
        return metrics

    def _prepare_datasets(self) -> None:
        """Let the objective turn the datasets into what its loop reads (once per Trainer)."""
        if self._datasets_prepared:
            return
        self.train_dataset = self.objective.prepare_dataset(self.train_dataset, self.device)
        if self.val_dataset is not None:
            self.val_dataset = self.objective.prepare_dataset(self.val_dataset, self.device)
        self._datasets_prepared = True

    def _val_batches(self) -> Iterator[dict]:
        loader = torch.utils.data.DataLoader(self.val_dataset, batch_size=self.config.batch_size, shuffle=False,
                                             collate_fn=collate_tensors, num_workers=self.config.num_workers,
                                             pin_memory=self.device.type == "cuda")
        for batch in loader:
            yield move_to(batch, self.device, self.config.channels_last)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-NNNNNN/`` (on the main process); every process must call it."""
        from accelerate.utils import gather_object

        rng_states = gather_object([capture_rng_state()]) if is_distributed() else [capture_rng_state()]
        if is_distributed():
            average_buffers(self.objective)
        folder = self.checkpoint_dir / checkpoint_name(self.step)
        if self.is_main_process:
            write_checkpoint(folder, self.objective, ema=self.ema.state_dict() if self.ema is not None else None,
                             optimizers=self.optimizers, schedulers=self.schedulers, state=self._state(rng_states))
            prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
            for callback in self.callbacks:
                callback.on_checkpoint(self, folder)
        self.processes.wait_for_everyone()
        return folder

    def _state(self, rng_states: list[dict]) -> dict:
        """What ``state.json`` holds besides the tensors: all a resume needs to continue exactly."""
        return {
            "step": self.step,
            "data_position": {"batches_consumed_per_process": self.step * self.config.grad_accum},
            "num_processes": self.processes.num_processes,
            "grad_scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
            "rng": rng_states,
            "history": self.history,
            "config": self.config.to_dict(),
            "objective": type(self.objective).__qualname__,
            "versions": library_versions(),
        }

    def resume(self, path: str | Path | None = None) -> Trainer:
        """Restore weights, optimisers, schedulers, EMA, scalers, step, history and random states.

        ``path``: a checkpoint folder, or a run folder (its latest checkpoint);
        default: this run's folder. The random states are applied when
        :meth:`fit` starts.
        """
        folder = resolve_checkpoint(path if path is not None else self.run_dir)
        check_complete(folder)
        state = read_state(folder)
        self._warn_config_changes(state.get("config", {}), folder)
        load_model_file(self.objective, folder / "model.safetensors")
        load_group_states(folder / "optimizers.pt", self.optimizers)
        load_group_states(folder / "schedulers.pt", self.schedulers)
        if self.ema is not None:
            fix = f"ema_decay is now {self.config.ema_decay}: set ema_decay: null to resume."
            self.ema.load_state_dict(read_ema(folder, str(self.device), fix=fix), folder / "ema.safetensors")
        for name, scaler_state in state.get("grad_scalers", {}).items():
            if name in self.scalers and scaler_state:
                self.scalers[name].load_state_dict(scaler_state)
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        rng = state.get("rng", [])
        if len(rng) == self.processes.num_processes:
            self._rng_states = rng
        else:
            warnings.warn(f"{folder} was written by {len(rng)} process(es), this run has "
                          f"{self.processes.num_processes}: random states are re-seeded, so the run continues "
                          f"correctly but not bit-identically.", stacklevel=2)
            self._rng_states = None
            course_config.seed_everything(self.config.seed + 7919 * self.step + self.processes.process_index)
        return self

    def _warn_config_changes(self, saved: dict, folder: Path) -> None:
        harmless = {"steps", "val_every", "checkpoint_every", "keep_checkpoints", "log_every", "num_workers",
                    "output_dir", "compile"}
        current = self.config.to_dict()
        changed = sorted(k for k in current if k not in harmless and k in saved and saved[k] != current[k])
        if changed and self.is_main_process:
            warnings.warn(f"Resuming from {folder} with a changed config ({', '.join(changed)}): the run will not "
                          f"match an uninterrupted one.", stacklevel=3)


# =========================================================================== train, or reuse what was trained


WHERE_KEYS = ("output_dir",)  # say where a run lives, not what it trains: the same folder spelt another way


def _trained_with(config: TrainConfig, checkpoint: Path | None) -> dict | None:
    """The state of ``checkpoint`` when written for exactly ``config``, however its folder is spelt; else None."""
    if checkpoint is None or not (checkpoint / "state.json").is_file():
        return None
    state = read_state(checkpoint)

    def what(values: dict) -> dict:
        return {key: value for key, value in values.items() if key not in WHERE_KEYS}

    return state if what(state.get("config") or {}) == what(json.loads(json.dumps(config.to_dict()))) else None


def finished_run(config: TrainConfig) -> Path | None:
    """The checkpoint of a run that already trained *this exact config* to its last step, else None.

    Notebooks use it to reuse an earlier notebook's model instead of training
    it again; a run with another config (or unfinished) does not count.
    """
    latest = latest_checkpoint(config.run_dir)
    state = _trained_with(config, latest)
    return latest if state is not None and state.get("step") == config.steps else None


def discard_stale_run(config: TrainConfig) -> bool:
    """Delete the run folder when its checkpoints were written for *another* config; True if deleted.

    A run of the same config is kept (finished: reused; unfinished: resumed),
    so notebooks can always call ``fit(resume=True)`` without mixing models.
    """
    latest = latest_checkpoint(config.run_dir)
    if latest is None or not (latest / "state.json").is_file() or _trained_with(config, latest) is not None:
        return False
    shutil.rmtree(config.run_dir)
    return True


def train_needed_runs(config: TrainConfig) -> list[Path]:
    """Train the runs ``config``'s method reads but cannot find (a distillation student's teacher).

    The method names them through its registration (``needs``, see
    :class:`~bs_lib.engine.objective.MethodInfo`). Each is trained with its own
    seed inside :func:`preserved_rng_state`, so training a teacher never
    changes the student's initial weights. Returns their checkpoints.
    """
    info = method_info(config.method)
    checkpoints = []
    for needed in info.needs(config) if info is not None and info.needs is not None else []:
        with preserved_rng_state():
            course_config.seed_everything(needed.seed)
            train_needed_runs(needed)
            result = Trainer(build_objective(needed), needed, *build_datasets(needed)).fit()
        checkpoints.append(result.checkpoint)
    return checkpoints


def train_or_reuse(config: TrainConfig, train_dataset: Data, val_dataset: Data | None = None) -> Path:
    """The checkpoint of ``config``: reused when :func:`finished_run` finds it, trained (or resumed) otherwise."""
    found = finished_run(config)
    if found is not None:
        return found
    discard_stale_run(config)
    train_needed_runs(config)
    result = Trainer(build_objective(config), config, train_dataset, val_dataset).fit(resume=True)
    return result.checkpoint


def fit_or_reuse(objective: Objective, config: TrainConfig, train_dataset: Data,
                 val_dataset: Data | None = None) -> TrainResult:
    """Train ``objective`` under ``config``: a finished run of this exact config is reused, an interrupted one
    resumed from its last checkpoint, a run of another config under the same name replaced.

    What a notebook calls, so that a session that disconnects (or a later
    notebook asking for the same run) loses nothing that was checkpointed.
    """
    discard_stale_run(config)
    return Trainer(objective, config, train_dataset, val_dataset).fit(resume=True)
