"""Training runs of the course, one YAML file per method, one section per profile.

Each ``<method>.yaml`` has a ``base`` section (what every profile shares: the
method, its optimiser, the paper's hyper-parameters) and one section per
profile (``smoke``, ``colab``, ``full``: image size, steps, batch size, model
preset). :func:`load_config` merges ``base`` with a profile and applies
overrides; the notebooks, ``python -m bs_lib train`` and the benchmark all
start from the same files.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bs_lib.config import PROFILES

CONFIGS_DIR = Path(__file__).resolve().parent


def available_methods() -> list[str]:
    """Methods that have a config file."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def config_dict(method: str, profile: str) -> dict:
    """``base`` updated with the profile's section (nested dicts merged one level deep)."""
    path = CONFIGS_DIR / f"{method}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"No config for method {method!r}: expected {path}. "
                                f"Methods with configs: {', '.join(available_methods())}.")
    sections = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}: choose one of {', '.join(PROFILES)}.")
    unknown = set(sections) - {"base", *PROFILES}
    if unknown:
        raise ValueError(f"{path.name}: unknown section(s) {sorted(unknown)}; use base, {', '.join(PROFILES)}.")
    merged = dict(sections.get("base") or {})
    for key, value in (sections.get(profile) or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    merged.setdefault("name", f"{method}-{profile}")
    return merged


def load_config(method: str, profile: str, **overrides):
    """The :class:`bs_lib.train.TrainConfig` of ``method`` at ``profile``, with ``overrides`` applied."""
    from bs_lib.train import TrainConfig

    values = config_dict(method, profile)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return TrainConfig.from_dict(values)
