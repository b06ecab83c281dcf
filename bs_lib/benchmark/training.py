"""Training (or reusing) the learned methods at the benchmark's size, seed and step budget.

Each learned method is trained by :func:`bs_lib.engine.train_or_reuse` from
``load_config(method, profile)`` with the benchmark's image size, seed and
optional training-step overrides (a finished run of exactly that config is
reused), and loaded for inference with :func:`bs_lib.suppress.load_suppressor`
(EMA weights when the run has them). ``distillation`` trains its teacher first;
``bs_ldm`` trains (or reuses) both stages through :mod:`bs_lib.runs`, the one
module that knows the notebooks' run names.

A method's training steps: its override (``train_steps[name]``, or
``train_steps["all"]``), else its config's steps × ``steps_scale``.
``randomise=True`` trains every learned method but BS-LDM on pairs seen through
random imaging chains (:mod:`bs_lib.augment`), in runs of their own;
``randomise="faint-bone"`` through that named chain (:data:`bs_lib.augment.CHAINS`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bs_lib import config as course_config
from bs_lib import runs as course_runs
from bs_lib.augment import chain_named
from bs_lib.benchmark.methods import (
    IDENTITY,
    Method,
    TrainingBudget,
    family_of,
    identity_method,
    label_of,
    manual_method,
    manual_methods,
)
from bs_lib.engine import (
    TrainConfig,
    accepts_generator,
    build_datasets,
    config_dict,
    finished_run,
    load_config,
    read_state,
    rescheduled,
    resolve_checkpoint,
    train_or_reuse,
)
from bs_lib.suppress import load_suppressor

WALL_TIME_FILE = "benchmark_wall_time.json"
TEACHER = "distillation-teacher"  # the train_steps key of the distillation teacher


def scaled_steps(steps: int, method: str, train_steps: dict[str, int], steps_scale: float) -> int:
    """A method's benchmark training steps: its override (by name, or ``"all"``), else its config's × scale."""
    if method in train_steps:
        return int(train_steps[method])
    if "all" in train_steps:
        return int(train_steps["all"])
    return max(1, round(steps * steps_scale))


def randomise_setting(randomise: bool | str) -> tuple[bool | str, str]:
    """The benchmark's ``randomise`` as ``(data_args.randomise, run-name suffix)``.

    ``True`` and ``"default"`` are the default chain (``-randomised``, the
    runs' name since before chains had names); another name of
    :data:`bs_lib.augment.CHAINS` is that chain (``-randomised-<name>``).
    """
    if randomise is True or randomise == "default":
        return True, "-randomised"
    if not randomise:
        return False, ""
    chain_named(randomise)  # an unknown name fails here, before any training
    return randomise, f"-randomised-{randomise}"


def learned_config(method: str, profile: str, *, image_size: int | None, seed: int, runs: Path,
                   train_steps: dict[str, int] | None = None, steps_scale: float = 1.0, data: str | None = None,
                   randomise: bool | str = False, **variant: Any) -> TrainConfig:
    """The benchmark's :class:`~bs_lib.engine.TrainConfig` for ``method``: its profile config, our size, seed, steps.

    The run is named after everything that changes it, so two benchmarks with
    different settings never share (or resume) a run, and a notebook that
    trains with this config (notebook 03) hands its runs to the benchmark.
    ``data`` replaces the config's dataset (the benchmark keeps the config's);
    ``randomise`` sets ``data_args.randomise`` (teacher included; :func:`randomise_setting`);
    ``variant`` are further config overrides for a notebook's own variant of
    the method (give it its own ``name``).
    """
    train_steps = train_steps or {}
    base = config_dict(method, profile)
    size = image_size or base.get("image_size", 64)
    steps = scaled_steps(base.get("steps", 1000), method, train_steps, steps_scale)
    name = f"benchmark-{method}-{profile}-{size}px-{steps}steps-seed{seed}"
    overrides: dict[str, Any] = {"name": name, "seed": seed, "output_dir": str(runs), "image_size": size,
                                 **rescheduled(base, steps)}
    if data is not None and data != base.get("data"):
        overrides.update(data=data, name=f"{name}-{data}")
    chain, suffix = randomise_setting(randomise)
    if chain:
        overrides.update(data_args={"randomise": chain}, name=overrides["name"] + suffix)
    overrides.update(variant)
    teacher = (base.get("method_args") or {}).get("teacher")
    if method == "distillation" and isinstance(teacher, dict):
        overrides["method_args"] = {"teacher": teacher_spec(teacher, overrides["name"], size, seed, train_steps,
                                                            steps_scale, randomise)}
    return load_config(method, profile, **overrides)


def teacher_spec(teacher: dict, student_name: str, size: int, seed: int, train_steps: dict[str, int],
                 steps_scale: float, randomise: bool | str = False) -> dict:
    """The distillation teacher's spec, trained at the benchmark's size, seed and step scale, in its own run."""
    method, profile = teacher.get("method", "unet"), teacher.get("profile", "smoke")
    own = config_dict(method, profile)
    overrides = dict(teacher.get("overrides") or {})
    method_args = {**(own.get("method_args") or {}), **(overrides.get("method_args") or {})}
    teacher_steps = scaled_steps(own.get("steps", 1000), TEACHER, train_steps, steps_scale)
    overrides.update(name=f"{student_name}-teacher", image_size=size, seed=seed, steps=teacher_steps,
                     method_args=method_args)
    chain, _ = randomise_setting(randomise)
    if chain:
        overrides["data_args"] = {**(overrides.get("data_args") or {}), "randomise": chain}
    return {**{k: v for k, v in teacher.items() if k != "checkpoint"}, "overrides": overrides,
            "train_if_missing": True}


def budget_of(checkpoint: Path, note: str = "") -> TrainingBudget:
    """Steps × batch (× gradient accumulation) of a finished run, from its ``state.json``."""
    state = read_state(resolve_checkpoint(checkpoint))
    config = state.get("config", {})
    steps, batch = int(state.get("step", 0)), int(config.get("batch_size", 0)) * int(config.get("grad_accum", 1))
    return TrainingBudget(steps, batch, steps * batch, note=note)


def timed_training(train: Callable[[], Path], record_dir: Callable[[Path], Path],
                   reused: Callable[[Path], bool]) -> tuple[Path, float | None]:
    """Run ``train``; return (checkpoint, wall seconds), the seconds kept beside the run.

    A run trained now records its wall time in ``record_dir(checkpoint)/``
    :data:`WALL_TIME_FILE`; a reused one reports the time recorded when it
    trained (None when it was trained without a record).
    """
    started = time.perf_counter()
    checkpoint = train()
    record = record_dir(checkpoint) / WALL_TIME_FILE
    if not reused(checkpoint):
        wall = time.perf_counter() - started
        record.write_text(json.dumps({"wall_time_s": wall}))
        return checkpoint, wall
    if record.is_file():
        return checkpoint, float(json.loads(record.read_text())["wall_time_s"])
    return checkpoint, None


def written_before(checkpoint: Path, moment: float) -> bool:
    """True when a checkpoint's ``state.json`` was written before ``moment`` (a ``time.time()``)."""
    return (resolve_checkpoint(checkpoint) / "state.json").stat().st_mtime < moment


def method_from_objective(name: str, objective: nn.Module, budget: TrainingBudget, device: torch.device) -> Method:
    """A trained objective as a benchmark method (a sampler gets the benchmark's seeded generator)."""
    stochastic = accepts_generator(objective.predict)

    def predict(cxr: torch.Tensor, masks: dict, generator: torch.Generator | None) -> torch.Tensor:
        return objective.predict(cxr, generator=generator) if stochastic else objective.predict(cxr)

    return Method(name, label_of(name), family_of(name), predict, budget, device)


def prepare_learned(name: str, profile: str, *, image_size: int | None, seed: int, runs: Path,
                    device: torch.device, train_steps: dict[str, int] | None = None,
                    steps_scale: float = 1.0, randomise: bool | str = False) -> Method:
    """Train (or reuse) a learned method and load it for inference."""
    config = learned_config(name, profile, image_size=image_size, seed=seed, runs=runs,
                            train_steps=train_steps, steps_scale=steps_scale, randomise=randomise)
    reused = finished_run(config) is not None
    course_config.seed_everything(config.seed)  # the initial weights are drawn when the objective is built
    checkpoint, wall = timed_training(lambda: train_or_reuse(config, build_datasets(config)[0]),
                                      lambda _: Path(config.run_dir), lambda _: reused)
    note = "trained earlier, time not recorded" if wall is None else ""
    if name == "domain_adaptation":  # the unlabelled domain decides what it learns: say which it was
        from bs_lib.models.adaptation import resolve_target

        target = resolve_target(config.data_args.get("target", "auto"))
        note = ", ".join(filter(None, [note, f"unlabelled target: {target} radiographs"]))
    if name == "distillation":
        teacher = config.method_args["teacher"]
        teacher_budget = budget_of(Path(runs) / teacher["overrides"]["name"])
        note = ", ".join(filter(None, [note, f"+ teacher {teacher_budget.steps} × {teacher_budget.batch_size}"]))
    budget = budget_of(checkpoint, note)
    budget.wall_time_s = wall
    objective, _ = load_suppressor(checkpoint, device)
    return method_from_objective(name, objective, budget, device)


# =========================================================================== BS-LDM


def bs_ldm_suffix(image_size: int | None, profile: str) -> str:
    """The run-name suffix under which the benchmark trains its own BS-LDM when no finished run exists."""
    return f"-benchmark{image_size or config_dict('bs_ldm', profile).get('image_size', 64)}"


def seeded_suffix(suffix: str, seed: int) -> str:
    """``suffix`` with the training seed in it (seed 0 keeps it as it is): one run folder per seed."""
    return f"{suffix}-seed{seed}" if seed else suffix


def bs_ldm_ready(profile: str, *, seed: int = 0, image_size: int | None = None, suffix: str | None = None) -> bool:
    """True when both BS-LDM stages of ``profile`` have finished runs (notebooks 06–08 or an earlier benchmark).

    Looks where :func:`bs_lib.runs.bs_ldm` looks, so that a notebook can
    leave BS-LDM out (or shorten it) rather than train it within a short time budget.
    """
    suffix = seeded_suffix(suffix if suffix is not None else bs_ldm_suffix(image_size, profile), seed)
    return course_runs.finished_bs_ldm(profile, seed=seed, image_size=image_size, own_suffix=suffix) is not None


@contextlib.contextmanager
def runs_folder(runs: Path | None) -> Iterator[None]:
    """Inside the block :func:`bs_lib.config.runs_dir` is ``runs`` (``None``: unchanged)."""
    previous = os.environ.get(course_config.RUNS_DIR_ENV)
    if runs is not None:
        os.environ[course_config.RUNS_DIR_ENV] = str(runs)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(course_config.RUNS_DIR_ENV, None)
        else:
            os.environ[course_config.RUNS_DIR_ENV] = previous


def bs_ldm_steps(profile: str, train_steps: dict[str, int] | None, steps_scale: float) -> tuple[int, int] | None:
    """(stage 1, stage 2) training steps when the benchmark changes BS-LDM's budget, else ``None`` (its configs').

    Stage 1 answers to ``ml_vqgan=N``, stage 2 to ``bs_ldm=N``; ``all=N`` and
    ``steps_scale`` apply to both.
    """
    train_steps = train_steps or {}
    if steps_scale == 1.0 and not {"ml_vqgan", "bs_ldm", "all"} & set(train_steps):
        return None
    return (scaled_steps(config_dict("ml_vqgan", profile).get("steps", 1000), "ml_vqgan", train_steps, steps_scale),
            scaled_steps(config_dict("bs_ldm", profile).get("steps", 1000), "bs_ldm", train_steps, steps_scale))


def trained_bs_ldm(profile: str, *, image_size: int | None, seed: int, suffix: str | None = None,
                   runs: Path | None = None, train_steps: dict[str, int] | None = None,
                   steps_scale: float = 1.0) -> tuple[Path, TrainingBudget]:
    """BS-LDM's stage-2 checkpoint (stage 1 inside it) and what both stages cost: finished runs reused, else trained.

    Runs live in ``runs`` (default :func:`bs_lib.config.runs_dir`, where notebooks 06–08 leave theirs).
    With its configs' budgets, the notebooks' finished runs are reused; a changed
    budget (``steps_scale``, ``ml_vqgan=N``/``bs_ldm=N`` overrides) trains runs
    of its own, named after both budgets; a seed other than 0 is in the name too.
    """
    size_override = {"image_size": image_size} if image_size else {}
    train_set = build_datasets(load_config("ml_vqgan", profile, seed=seed, **size_override))[0]
    suffix = seeded_suffix(suffix if suffix is not None else bs_ldm_suffix(image_size, profile), seed)
    steps = bs_ldm_steps(profile, train_steps, steps_scale)
    if steps is not None:
        suffix += f"-{steps[0]}+{steps[1]}steps"
    course_config.seed_everything(seed)
    started_clock = time.time()
    stages: list[Path] = []

    def train() -> Path:
        with runs_folder(runs):
            stages.extend(course_runs.bs_ldm(profile, train_set, seed=seed, image_size=image_size,
                                             own_suffix=suffix, steps=steps))
        return stages[1]

    stage2, wall = timed_training(train, lambda checkpoint: resolve_checkpoint(checkpoint).parent.parent,
                                  lambda checkpoint: written_before(checkpoint, started_clock))
    first, second = budget_of(stages[0]), budget_of(stage2)
    note = f"stage 1 {first.steps} × {first.batch_size} + stage 2 {second.steps} × {second.batch_size}"
    budget = TrainingBudget(first.steps + second.steps, second.batch_size, first.images_seen + second.images_seen,
                            wall, note + ("; trained earlier, time not recorded" if wall is None else ""))
    return stage2, budget


def prepare_bs_ldm(profile: str, *, image_size: int | None, seed: int, device: torch.device,
                   suffix: str | None = None, runs: Path | None = None,
                   train_steps: dict[str, int] | None = None, steps_scale: float = 1.0) -> Method:
    """BS-LDM ready to predict with its config's sampler (see :func:`trained_bs_ldm` for the runs)."""
    checkpoint, budget = trained_bs_ldm(profile, image_size=image_size, seed=seed, suffix=suffix, runs=runs,
                                        train_steps=train_steps, steps_scale=steps_scale)
    objective, _ = load_suppressor(checkpoint, device)
    return method_from_objective("bs_ldm", objective, budget, device)


# =========================================================================== any method


def prepare_method(name: str, profile: str, *, image_size: int | None, seed: int, runs: Path, device: torch.device,
                   train_steps: dict[str, int] | None = None, steps_scale: float = 1.0,
                   bs_ldm_suffix: str | None = None, randomise: bool | str = False) -> Method:
    """The method ``name`` ready to predict (trained first when it learns; BS-LDM never randomised)."""
    if name == IDENTITY:
        return identity_method()
    if name in manual_methods():
        return manual_method(name)
    if name == "bs_ldm":
        return prepare_bs_ldm(profile, image_size=image_size, seed=seed, device=device, suffix=bs_ldm_suffix,
                              runs=runs, train_steps=train_steps, steps_scale=steps_scale)
    return prepare_learned(name, profile, image_size=image_size, seed=seed, runs=runs, device=device,
                           train_steps=train_steps, steps_scale=steps_scale, randomise=randomise)


def shortened_budgets(methods: Sequence[str], profile: str, *, image_size: int | None, seed: int, runs: Path,
                      fraction: float, bs_ldm_suffix: str | None = None) -> dict[str, int]:
    """Training-step overrides that train, at ``fraction`` of their steps, the methods without a finished run.

    A method whose full-budget run is already finished (an earlier notebook,
    an earlier benchmark) keeps it; every other one is trained for
    ``fraction`` of its config's steps (BS-LDM: both stages; distillation:
    its teacher too). Give the result to ``run_benchmark(train_steps=...)``.
    """
    shortened: dict[str, int] = {}

    def shorten(method: str, key: str | None = None) -> None:
        shortened[key or method] = max(1, round(config_dict(method, profile).get("steps", 1000) * fraction))

    for name in methods:
        if name == "bs_ldm":
            if not bs_ldm_ready(profile, seed=seed, image_size=image_size, suffix=bs_ldm_suffix):
                shorten("ml_vqgan")
                shorten("bs_ldm")
        elif name not in (IDENTITY, *manual_methods()):
            config = learned_config(name, profile, image_size=image_size, seed=seed, runs=runs)
            if finished_run(config) is None:
                shorten(name)
                if name == "distillation":
                    teacher = (config_dict(name, profile).get("method_args") or {}).get("teacher") or {}
                    shorten(teacher.get("method", "unet") if isinstance(teacher, dict) else "unet", TEACHER)
    return shortened
