"""Checkpoints: what a run leaves on disk, how it is written safely, and how it is read back.

``<output_dir>/<name>/checkpoints/step-000100/`` holds

* ``model.safetensors``: the whole Objective state (every network, frozen ones too);
* ``ema.safetensors``: the EMA shadow weights, when the run keeps them;
* ``optimizers.pt`` and ``schedulers.pt``: state dicts only, read back with
  ``weights_only=True``, so loading a checkpoint never runs pickled code;
* ``state.json``: the step, the config, the data position, the history, the
  random states of Python, NumPy and torch of every process, and the library
  versions.

A checkpoint is written to a hidden temporary folder and renamed into place
(:func:`write_checkpoint`), so a killed run never leaves half a checkpoint.
Every reader fails with a :class:`CheckpointError` that names the file and
says what to do. :func:`load_trained` is the one way back from a folder to a
method ready to predict.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import platform
import random
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bs_lib.config import detect_device
from bs_lib.engine.config import TrainConfig
from bs_lib.engine.objective import Objective, build_objective, method_info


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model; the message names the file."""


CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)$")
REQUIRED_FILES = ("model.safetensors", "optimizers.pt", "schedulers.pt", "state.json")

# =========================================================================== finding checkpoints


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders of interrupted writes are ignored)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), path) for path in folder.iterdir()
             if (m := CHECKPOINT_PATTERN.match(path.name)) and (path / "state.json").is_file()]
    return [path for _, path in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from a checkpoint folder, a run folder (its latest) or a ``model.safetensors`` file."""
    path = Path(path)
    if path.is_file() and path.name == "model.safetensors":
        path = path.parent
    if path.is_dir() and not (path / "model.safetensors").exists():
        latest = latest_checkpoint(path)
        if latest is not None:
            return latest
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(f"{path / 'model.safetensors'} does not exist: {path} is not a checkpoint folder "
                              f"(expected <run>/checkpoints/step-NNNNNN/) nor a run folder with checkpoints.")
    return path


# =========================================================================== writing


def write_checkpoint(folder: Path, objective: nn.Module, *, ema: Mapping[str, torch.Tensor] | None,
                     optimizers: Mapping[str, Any], schedulers: Mapping[str, Any], state: dict) -> Path:
    """Write ``folder`` atomically: every file into a hidden temporary folder, then one rename."""
    from safetensors.torch import save_file, save_model

    temporary = folder.with_name(f".tmp-{folder.name}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_model(objective, str(temporary / "model.safetensors"), metadata={"step": str(state["step"])},
               force_contiguous=True)
    if ema is not None:
        save_file({k: v.contiguous() for k, v in ema.items()}, str(temporary / "ema.safetensors"))
    torch.save({name: optimizer.state_dict() for name, optimizer in optimizers.items()}, temporary / "optimizers.pt")
    torch.save({name: scheduler.state_dict() for name, scheduler in schedulers.items()}, temporary / "schedulers.pt")
    (temporary / "state.json").write_text(json.dumps(state, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(temporary, folder)
    return folder


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints of a run (``keep`` = 0 keeps all)."""
    if keep:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


# =========================================================================== reading


def read_state(folder: Path) -> dict:
    state_file = folder / "state.json"
    try:
        return json.loads(state_file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{state_file} is missing: the checkpoint is incomplete. Delete {folder} and "
                              f"resume from an earlier checkpoint.") from None
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{state_file} is corrupt ({error}). Delete {folder} and resume from an earlier "
                              f"checkpoint.") from None


def check_complete(folder: Path) -> None:
    """Every file a resume needs is there."""
    for required in REQUIRED_FILES:
        if not (folder / required).is_file():
            raise CheckpointError(f"{folder / required} is missing: the checkpoint is incomplete. Delete "
                                  f"{folder} and resume from an earlier checkpoint.")


def load_model_file(objective: nn.Module, file: Path) -> None:
    """Load ``model.safetensors`` into ``objective`` with an error that says what does not fit."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model

    try:
        with safe_open(str(file), framework="pt") as handle:
            stored = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{file} cannot be read ({error}): the file is corrupt or truncated. Delete its "
                              f"folder and resume from an earlier checkpoint, or train again.") from None
    expected = {key: tuple(value.shape) for key, value in objective.state_dict().items()}
    wrong_shapes = [f"{key} {stored[key]} in the file vs {expected[key]} in the model"
                    for key in stored.keys() & expected.keys() if stored[key] != expected[key]]
    unexpected = stored.keys() - expected.keys()
    if wrong_shapes or unexpected:
        detail = "; ".join(wrong_shapes[:3]) or key_difference(set(expected), set(stored))
        raise CheckpointError(f"{file} does not fit {type(objective).__name__}: {detail}. It was written for a "
                              f"different model or method_args; build the objective with the checkpoint's config "
                              f"(state.json) or start a new run in another folder.")
    try:
        device = next(iter(objective.state_dict().values()), torch.empty(0)).device
        load_model(objective, str(file), strict=True, device=str(device))
    except RuntimeError as error:  # missing keys (shared tensors are handled by load_model)
        raise CheckpointError(f"{file} does not fit {type(objective).__name__}: {error}. Build the objective "
                              f"with the checkpoint's config (state.json) or start a new run.") from None


def read_ema(folder: Path, device: str = "cpu", *, fix: str) -> dict[str, torch.Tensor]:
    """The EMA tensors of a checkpoint; ``fix`` tells the reader what to do when the run kept none."""
    from safetensors.torch import load_file

    ema_file = folder / "ema.safetensors"
    if not ema_file.is_file():
        raise CheckpointError(f"{ema_file} does not exist: this run was trained without EMA (ema_decay null). {fix}")
    return load_file(str(ema_file), device=device)


def load_group_states(file: Path, targets: Mapping[str, Any]) -> None:
    """Load the per-group states in ``file`` (optimisers or schedulers) into ``targets``, group by group."""
    states = _torch_load(file)
    if not isinstance(states, dict) or set(states) != set(targets):
        found = sorted(states) if isinstance(states, dict) else type(states).__name__
        raise CheckpointError(f"{file} holds states for groups {found}, the objective has {sorted(targets)}. "
                              f"The checkpoint belongs to another method; start a new run in another folder.")
    for name, target in targets.items():
        try:
            target.load_state_dict(states[name])
        except (ValueError, KeyError, RuntimeError) as error:
            raise CheckpointError(f"{file}: the state of group {name!r} does not fit ({error}). The model "
                                  f"changed since this checkpoint; start a new run in another folder.") from None


def load_weights(path: str | Path, objective: nn.Module, use_ema: bool = False) -> dict:
    """Load trained weights for inference; returns the checkpoint's ``state.json``.

    ``path`` is a checkpoint folder, a run folder (its latest checkpoint) or a
    ``model.safetensors`` file. ``use_ema=True`` overlays the EMA weights.
    """
    folder = resolve_checkpoint(path)
    load_model_file(objective, folder / "model.safetensors")
    if use_ema:
        named = dict(objective.named_parameters())
        with torch.no_grad():
            for name, tensor in read_ema(folder, fix="Load with use_ema=False.").items():
                if name not in named or named[name].shape != tensor.shape:
                    raise CheckpointError(f"{folder / 'ema.safetensors'}: EMA tensor {name} does not fit "
                                          f"{type(objective).__name__}.")
                named[name].copy_(tensor)
    return read_state(folder) if (folder / "state.json").is_file() else {}


def load_trained(checkpoint: str | Path, device: str | torch.device | None = None,
                 use_ema: bool = True) -> tuple[Objective, TrainConfig]:
    """A trained method ready to predict, rebuilt from its checkpoint alone; returns ``(objective, config)``.

    ``checkpoint`` is a checkpoint folder or a run folder (its latest), wherever it now lies. The
    method is built from the config in ``state.json``, so it is exactly the
    network that was trained; the EMA weights are loaded when ``use_ema`` and
    the run kept them (BS-LDM samples with them), the raw weights otherwise.
    The objective comes back in eval mode on ``device`` (default: the best
    device here). The method must be registered: import its module first.
    """
    folder = resolve_checkpoint(checkpoint)
    state = read_state(folder)
    if "config" not in state:
        raise CheckpointError(f"{folder / 'state.json'} has no 'config': it was not written by the bs_lib engine, "
                              f"so the method it holds cannot be rebuilt.")
    values = dict(state["config"])
    if folder.parent.name == "checkpoints":  # the run may have moved: what it reads beside it (a teacher) moved too
        values["output_dir"], values["name"] = str(folder.parent.parent.parent), folder.parent.parent.name
    info = method_info(values.get("method", ""))
    dropped = info.rebuild_without if info is not None else ()
    values["method_args"] = {k: v for k, v in (values.get("method_args") or {}).items() if k not in dropped}
    config = TrainConfig.from_dict(values)
    objective = build_objective(config)
    load_weights(folder, objective, use_ema=use_ema and (folder / "ema.safetensors").is_file())
    return objective.to(detect_device() if device is None else torch.device(device)).eval(), config


def key_difference(expected: set[str], found: set[str]) -> str:
    """``missing [...]``, ``unexpected [...]``: how two sets of tensor names differ, briefly."""
    missing, extra = sorted(expected - found), sorted(found - expected)
    parts = []
    if missing:
        parts.append(f"missing {missing[:3]}{' …' if len(missing) > 3 else ''}")
    if extra:
        parts.append(f"unexpected {extra[:3]}{' …' if len(extra) > 3 else ''}")
    return ", ".join(parts) or "same keys"


def _torch_load(file: Path) -> dict:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: the checkpoint is incomplete. Delete {file.parent} and resume "
                              f"from an earlier checkpoint.")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{file} cannot be read ({type(error).__name__}: {error}). The file is corrupt or "
                              f"not a state dict; delete {file.parent} and resume from an earlier "
                              f"checkpoint.") from None


# =========================================================================== random states as JSON


def capture_rng_state() -> dict:
    """The states of Python's, NumPy's and torch's global generators, as JSON-friendly values."""
    version, words, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()  # noqa: NPY002 -- the global generator itself
    state = {
        "python": [version, _encode(torch.tensor(words, dtype=torch.int64)), gauss],
        "numpy": [name, _encode(torch.from_numpy(keys.astype(np.int64))), int(position), int(has_gauss),
                  float(cached)],
        "torch": _encode(torch.get_rng_state()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_encode(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(_decode(words, torch.int64).tolist()), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    keys = _decode(keys, torch.int64).numpy().astype(np.uint32)
    np.random.set_state((name, keys, position, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(_decode(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_decode(s) for s in state["cuda"]])


def _encode(tensor: torch.Tensor) -> str:
    """A CPU tensor's bytes as base64 text."""
    return base64.b64encode(tensor.contiguous().numpy().tobytes()).decode("ascii")


def _decode(text: str, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=dtype)


@contextlib.contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block (validation, training another run) without moving any global random generator."""
    saved = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(saved)


def library_versions() -> dict[str, str]:
    """The versions a checkpoint was written with, by library."""
    import accelerate
    import safetensors

    import bs_lib

    return {"bs_lib": bs_lib.__version__, "torch": torch.__version__, "accelerate": accelerate.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__, "python": platform.python_version()}
