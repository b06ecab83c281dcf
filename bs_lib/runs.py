"""Training runs by name: which finished run to reuse, and the names the notebooks give theirs.

A run lives in ``<runs_dir>/<name>/`` (:func:`bs_lib.config.runs_dir`), and a
finished run of exactly the same config is never trained twice
(:func:`bs_lib.engine.finished_run`). That lets the notebooks hand models to
each other: notebook 06 trains BS-LDM's autoencoder as ``ml_vqgan-<profile>``,
notebook 07 trains stage 2 on it as ``bs_ldm-<profile>``, and notebook 08 and
the benchmark sample from both. A notebook run alone, without the earlier one,
trains its own copy under its own suffix (:data:`NOTEBOOK_07`,
:data:`NOTEBOOK_08`), so it never writes into a run another notebook may be
training at the same moment. This module is the one place that knows those
names.
"""

from __future__ import annotations

from pathlib import Path

import bs_lib.models  # noqa: F401  (registers the methods these runs train)
from bs_lib.config import runs_dir
from bs_lib.engine import TrainConfig, finished_run, train_or_reuse
from bs_lib.engine.recipes import config_dict, load_config, rescheduled
from bs_lib.engine.trainer import Data

NOTEBOOK_07 = "-for-07"  # notebook 07's own autoencoder (and stage 2 on it) when notebook 06 has not run
NOTEBOOK_08 = "-for-08"  # notebook 08's own BS-LDM (notebook 09 reuses it) when notebooks 06 and 07 have not run
NOTEBOOK_SUFFIXES = ("", NOTEBOOK_07)  # where notebooks 06 and 07 leave BS-LDM's two stages


# =========================================================================== BS-LDM's two stages


def stage1_config(profile: str, *, seed: int = 0, image_size: int | None = None, suffix: str = "",
                  steps: int | None = None) -> TrainConfig:
    """The ML-VQGAN run ``ml_vqgan-<profile><suffix>``; ``steps`` replaces the recipe's budget (schedule stretched)."""
    return load_config("ml_vqgan", profile, name=f"ml_vqgan-{profile}{suffix}",
                       **_common(seed, image_size), **_budget("ml_vqgan", profile, steps))


def stage2_config(profile: str, autoencoder: str | Path, *, seed: int = 0, image_size: int | None = None,
                  suffix: str = "", steps: int | None = None) -> TrainConfig:
    """The BS-LDM run ``bs_ldm-<profile><suffix>`` on the stage-1 checkpoint ``autoencoder``."""
    return load_config("bs_ldm", profile, name=f"bs_ldm-{profile}{suffix}",
                       method_args={"autoencoder": str(autoencoder)}, **_common(seed, image_size),
                       **_budget("bs_ldm", profile, steps))


def autoencoder(profile: str, train_set: Data, *, seed: int = 0, image_size: int | None = None,
                own_suffix: str = NOTEBOOK_07) -> tuple[Path, str]:
    """Stage 1 for a new stage 2: notebook 06's finished run, else a copy trained (or reused) under ``own_suffix``.

    Returns the checkpoint and the suffix that the stage 2 trained on it takes
    (``""`` on notebook 06's run, ``own_suffix`` on the copy), as notebook 07 names them.
    """
    found = finished_run(stage1_config(profile, seed=seed, image_size=image_size))
    if found is not None:
        return found, ""
    own = stage1_config(profile, seed=seed, image_size=image_size, suffix=own_suffix)
    return train_or_reuse(own, train_set), own_suffix


def finished_bs_ldm(profile: str, *, seed: int = 0, image_size: int | None = None, own_suffix: str = "-own",
                    steps: tuple[int, int] | None = None) -> tuple[Path, Path] | None:
    """Both stages' checkpoints when :func:`bs_ldm` would reuse them without training anything, else None.

    A notebook asks it to leave BS-LDM out rather than train it within a short time budget.
    """
    stage1, stage2 = _notebook_stages(profile, seed, image_size, steps)
    if stage2 is not None:
        return stage1, stage2
    own = {"seed": seed, "image_size": image_size, "suffix": own_suffix}
    budget1, budget2 = steps or (None, None)
    stage1 = stage1 or finished_run(stage1_config(profile, **own, steps=budget1))
    stage2 = finished_run(stage2_config(profile, stage1, **own, steps=budget2)) if stage1 is not None else None
    return (stage1, stage2) if stage2 is not None else None


def bs_ldm(profile: str, train_set: Data, *, seed: int = 0, image_size: int | None = None,
           own_suffix: str = "-own", steps: tuple[int, int] | None = None) -> tuple[Path, Path]:
    """Checkpoints of both stages for ``profile``: finished runs of notebooks 06 and 07 when they exist.

    A stage that has no finished run is trained here, under its run name plus
    ``own_suffix``, so it never writes into a run another notebook may be
    training at the same moment. ``steps`` = (stage 1, stage 2) replaces the
    configs' budgets; the notebooks' runs, trained for other budgets, are then
    not reused, and each stage's schedule (learning-rate milestones, checkpoint
    and validation intervals) is stretched to its budget by
    :func:`bs_lib.engine.recipes.rescheduled`.
    """
    stage1, stage2 = _notebook_stages(profile, seed, image_size, steps)
    if stage2 is not None:
        return stage1, stage2
    own = {"seed": seed, "image_size": image_size, "suffix": own_suffix}
    budget1, budget2 = steps or (None, None)
    stage1 = stage1 or train_or_reuse(stage1_config(profile, **own, steps=budget1), train_set)
    return stage1, train_or_reuse(stage2_config(profile, stage1, **own, steps=budget2), train_set)


def _notebook_stages(profile: str, seed: int, image_size: int | None,
                     steps: tuple[int, int] | None) -> tuple[Path | None, Path | None]:
    """What notebooks 06 and 07 left: both stages when one finished both, else (their first stage 1, None).

    Notebook 07 names stage 2 after the stage 1 it used; runs of another
    budget (``steps``) are never the notebooks'.
    """
    first = None
    for suffix in NOTEBOOK_SUFFIXES if steps is None else ():
        stage1 = finished_run(stage1_config(profile, seed=seed, image_size=image_size, suffix=suffix))
        if stage1 is None:
            continue
        stage2 = finished_run(stage2_config(profile, stage1, seed=seed, image_size=image_size, suffix=suffix))
        if stage2 is not None:
            return stage1, stage2
        first = first or stage1
    return first, None


def _common(seed: int, image_size: int | None) -> dict:
    return {"output_dir": str(runs_dir()), "seed": seed} | ({"image_size": image_size} if image_size else {})


def _budget(method: str, profile: str, steps: int | None) -> dict:
    return rescheduled(config_dict(method, profile), steps) if steps is not None else {}

