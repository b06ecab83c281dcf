"""The course's training runs: one YAML recipe per method, one section per profile.

Each ``bs_lib/configs/<method>.yaml`` has a ``base`` section (what every
profile shares: the method, its optimiser, the paper's hyper-parameters) and
one section per profile (``smoke``, ``colab``, ``full``: image size, steps,
batch size, model preset). :func:`load_config` merges ``base`` with a profile
and applies overrides; the notebooks, ``python -m bs_lib train`` and the
benchmark all start from the same files.

Three environment variables cap a run for tests of a GPU profile's code path on
a small machine (:func:`capped`): ``BS_MAX_STEPS`` shortens it with its
schedule stretched to match, ``BS_MAX_SIZE`` shrinks its images, never below
the smallest side its method registered (:func:`smallest_side`), and
``BS_MAX_IMAGES`` draws fewer of them from a named dataset.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bs_lib.config import PROFILES, max_images, max_size, max_steps
from bs_lib.engine.config import ConfigError, TrainConfig, apply_override, read_yaml_mapping
from bs_lib.engine.objective import method_info

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"


def available_methods() -> list[str]:
    """Methods that have a recipe."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def config_dict(method: str, profile: str) -> dict:
    """``base`` updated with the profile's section (nested dicts merged one level deep)."""
    path = CONFIGS_DIR / f"{method}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"No config for method {method!r}: expected {path}. "
                                f"Methods with configs: {', '.join(available_methods())}.")
    merged = merge_sections(read_yaml_mapping(path), profile, path.name)
    merged.setdefault("name", f"{method}-{profile}")
    return merged


def load_config(method: str, profile: str, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of ``method`` at ``profile``, with ``overrides`` applied (dicts merged)."""
    values = config_dict(method, profile)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return TrainConfig.from_dict(capped(values))


def resolve_run_config(spec: str | Path, profile: str, overrides: Iterable[str] = ()) -> TrainConfig:
    """The :class:`TrainConfig` for the command line.

    ``spec`` is a method name with a recipe (``bs_ldm``) or a YAML file: a flat
    run description, or ``base`` + profile sections like the course's.
    ``overrides`` are ``key=value`` strings (``method_args.x=1``).
    """
    path = Path(spec)
    if not path.suffix and not path.exists():
        values, source = config_dict(str(spec), profile), f"bs_lib/configs/{spec}.yaml"
    else:
        values, source = read_yaml_mapping(path), str(path)
        if is_sectioned(values):
            values = merge_sections(values, profile, str(path))
            values.setdefault("name", f"{path.stem}-{profile}")
    for override in overrides:
        apply_override(values, override)
    try:
        return TrainConfig.from_dict(capped(values))
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


# --------------------------------------------------------------------------- sections


def is_sectioned(values: dict) -> bool:
    """True for a ``base`` + per-profile file, False for a flat run description."""
    return "base" in values or any(name in values for name in PROFILES)


def merge_sections(sections: dict, profile: str, source: str = "config") -> dict:
    """The ``base`` section updated with ``profile``'s section."""
    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}: choose one of {', '.join(PROFILES)}.")
    unknown = set(sections) - {"base", *PROFILES}
    if unknown:
        raise ValueError(f"{source}: unknown section(s) {sorted(unknown)}; use base, {', '.join(PROFILES)}.")
    merged = dict(sections.get("base") or {})
    for key, value in (sections.get(profile) or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------- budgets and caps


def rescheduled(config: dict, steps: int) -> dict:
    """Overrides that give ``config`` a budget of ``steps`` with its schedule stretched to match.

    Everything counted in steps keeps its place in the run: step-decay
    milestones, ``checkpoint_every`` and ``val_every`` are multiplied by
    ``steps / config["steps"]`` (a checkpoint or validation that was on stays
    on, at least every step). A run cut to a tenth of its steps therefore still
    decays its learning rate at the same fractions, and still writes the
    intermediate checkpoints a stopped run resumes from.
    """
    steps = int(steps)
    ratio = steps / config.get("steps", steps)
    overrides: dict = {"steps": steps}
    for key in ("checkpoint_every", "val_every"):
        if config.get(key):
            overrides[key] = max(1, round(config[key] * ratio))
    arguments = dict(config.get("scheduler_args") or {})
    if config.get("scheduler") == "multistep" and "milestones" in arguments:
        arguments["milestones"] = [max(1, round(m * ratio)) for m in arguments["milestones"]]
        overrides["scheduler_args"] = arguments
    return overrides


def capped(values: dict) -> dict:
    """``values`` within the caps of :func:`bs_lib.config.max_steps`, ``max_size`` and ``max_images``.

    The steps are cut with :func:`rescheduled` (the schedule keeps its shape),
    and so is a diffusion model's default sampling chain
    (``method_args.sampling_steps``; a chain passed to ``predict`` is kept);
    the image side to the cap. Under a size cap a run never goes below the
    smallest side its model trains on (:func:`smallest_side`), even when the
    size asked for came from a capped profile. An image cap sets ``num_images``
    of a dataset named in ``data`` (a ``module:function`` is left as it is).
    Without caps, ``values`` is returned as is.
    """
    steps, size, images = max_steps(), max_size(), max_images()
    values = {"steps": TrainConfig.steps, "image_size": TrainConfig.image_size, **values}
    if steps is not None and values["steps"] > steps:
        values.update(rescheduled(values, steps))
    chain = (values.get("method_args") or {}).get("sampling_steps", steps)
    if steps is not None and (chain is None or chain > steps):  # None: the whole chain
        values["method_args"] = {**values["method_args"], "sampling_steps": steps}
    if size is not None:
        values["image_size"] = max(min(values["image_size"], size), smallest_side(values))
    if images is not None and ":" not in values.get("data", TrainConfig.data):
        data_args = dict(values.get("data_args") or {})
        data_args["num_images"] = min(data_args.get("num_images") or images, images)
        values["data_args"] = data_args
    return values


def smallest_side(values: dict) -> int:
    """The smallest image side a run's method trains on, as the method registered it (else 1).

    A GAN's coarsest discriminator needs a patch to judge. The registry knows
    this once the method's module is imported (``import bs_lib.models``).
    """
    info = method_info(values.get("method", ""))
    if info is None or info.smallest_side is None:
        return 1
    return info.smallest_side(values.get("method_args") or {})
