"""Patient-wise splits that cannot leak, saved once and read by every method.

Splitting is where paired bone-suppression data most often cheats. An
augmented collection holds many copies of one patient; a random split of
*images* puts copies of the same chest in training and test, and a model that
memorises looks brilliant. So splits here are made of **patients**
(:func:`make_patient_split`), seeded, saved to a JSON file (:func:`save_split`)
that every method reads, and checked (:func:`check_no_patient_overlap`).
:func:`random_image_split` keeps the wrong way, to show the trap.

A dataset honours ``split=`` through :func:`select_split`: ``"all"`` keeps
everything, any other name keeps the patients a split file lists for it.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bs_lib import config

SPLIT_NAMES = ("train", "val", "test")
Item = TypeVar("Item", bound=tuple)


class SplitLeakageError(ValueError):
    """A patient appears in more than one split."""


def natural_key(text: str) -> list:
    """Sort ``2`` before ``10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def select_split(items: list[Item], patient_of: Callable[[str], str], split: str, split_file,
                 dataset: str = "") -> list[Item]:
    """The items (tuples whose first element is a file stem) of ``split``.

    ``"all"`` keeps every item. Any other split name needs ``split_file`` (see
    :func:`make_patient_split` / :func:`save_split`) and keeps the items whose
    patient the file lists under that name; a split with no patients is an error,
    never an empty dataset.
    """
    if split == "all":
        return items
    who = f"{dataset}: " if dataset else ""
    if split_file is None:
        raise ValueError(f"{who}split={split!r} needs a split_file (see make_patient_split / save_split), "
                         f"or use split='all'.")
    patients = set(load_split(split_file)["splits"].get(split, []))
    if not patients:
        raise ValueError(f"{split_file}: has no patients for split {split!r}.")
    return [item for item in items if patient_of(item[0]) in patients]


def split_counts(total: int, fractions: Sequence[float]) -> list[int]:
    """Integer counts that sum to ``total`` and follow ``fractions`` (largest remainders first)."""
    if abs(sum(fractions) - 1.0) > 1e-6 or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    exact = [total * f for f in fractions]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def make_patient_split(
    patients: Iterable[str],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    counts: Sequence[int] | None = None,
    seed: int = 0,
    names: Sequence[str] = SPLIT_NAMES,
) -> dict[str, list[str]]:
    """Assign whole patients to train / val / test with a seeded shuffle.

    ``patients`` may repeat (one entry per image); each distinct patient lands in
    exactly one split, so every image of a patient follows it. ``counts`` (e.g.
    192 / 24 / 25 for BSE-JSRT's 241 pairs) overrides ``fractions``.
    """
    unique = sorted(set(patients), key=natural_key)
    if not unique:
        raise ValueError("make_patient_split: no patients given.")
    counts = list(counts) if counts is not None else split_counts(len(unique), fractions)
    if sum(counts) != len(unique) or len(counts) != len(names):
        raise ValueError(f"split counts {counts} must give one count per split {list(names)} "
                         f"and sum to the {len(unique)} patients.")
    random.Random(seed).shuffle(unique)
    splits, start = {}, 0
    for name, count in zip(names, counts, strict=True):
        splits[name] = sorted(unique[start:start + count], key=natural_key)
        start += count
    check_no_patient_overlap(splits)
    return splits


def random_image_split(ids: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                       names: Sequence[str] = SPLIT_NAMES) -> dict[str, list[str]]:
    """The *wrong* way, kept to show the trap: a seeded random split of image ids, patients ignored."""
    shuffled = list(ids)
    random.Random(seed).shuffle(shuffled)
    splits, start = {}, 0
    for name, count in zip(names, split_counts(len(shuffled), fractions), strict=True):
        splits[name] = shuffled[start:start + count]
        start += count
    return splits


def shared_patients(split: dict[str, Sequence[str]], patient_of: Callable[[str], str] = str) -> dict[str, set]:
    """Patients that occur in two splits, for every pair of splits (``"train&test"`` → {...})."""
    members = {name: {patient_of(item) for item in items} for name, items in split.items()}
    names = list(members)
    return {f"{a}&{b}": members[a] & members[b] for i, a in enumerate(names) for b in names[i + 1:]}


def check_no_patient_overlap(split: dict[str, Sequence[str]], patient_of: Callable[[str], str] = str) -> None:
    """Raise :class:`SplitLeakageError` when a patient appears in two splits."""
    leaks = {pair: sorted(found)[:5] for pair, found in shared_patients(split, patient_of).items() if found}
    if leaks:
        raise SplitLeakageError(f"patients appear in more than one split: {leaks}. Split by patient "
                                f"(make_patient_split), never by image.")


def save_split(path: str | Path, splits: dict[str, list[str]], dataset: str, seed: int | None,
               note: str = "") -> Path:
    """Write a patient-wise split as JSON (checked for leakage first) and return its path."""
    check_no_patient_overlap(splits)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"dataset": dataset, "seed": seed, "unit": "patient", "note": note,
                "counts": {name: len(items) for name, items in splits.items()}, "splits": splits}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=1), encoding="utf-8")
    temporary.replace(path)
    return path


def load_split(path: str | Path) -> dict[str, Any]:
    """Read a split written by :func:`save_split` (and check it again)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found; build one with make_patient_split + save_split.")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        splits = document["splits"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a split file written by save_split ({error}).") from error
    check_no_patient_overlap(splits)
    return document


def default_split_path(dataset: str, seed: int, data_dir: Path | None = None) -> Path:
    """Where the shared split of ``dataset`` lives: ``<data dir>/splits/<dataset>-seed<seed>.json``."""
    return Path(data_dir or config.data_dir()) / "splits" / f"{dataset}-seed{seed}.json"
