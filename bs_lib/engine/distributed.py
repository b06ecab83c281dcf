"""Devices, precision and several processes.

``accelerate`` starts the processes and the process group: under ``accelerate
launch --multi_gpu --num_processes 2`` (or ``torchrun --nproc_per_node 2``)
NCCL on GPUs, gloo on a machine without CUDA. The engine asks it for nothing
more than the process state (:func:`process_state`): which device, which
process, how many. Everything else is written here, in plain
``torch.distributed``: gradients are averaged with an explicit all-reduce
(:func:`average_gradients`) rather than a DDP wrapper, because an Objective is
called through ``losses``, not ``forward``, and holds several networks with
separate optimisers, which DDP wrappers handle badly.

Mixed precision is the engine's own too: ``torch.autocast`` in bf16 (no
scaling needed) or fp16 (one gradient scaler per group). Because accelerate
never hears of it, a notebook can train one model in fp32 and the next in bf16
without restarting its kernel (accelerate refuses a second ``Accelerator``
with another precision in one process).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch
from torch import nn

from bs_lib import config as course_config
from bs_lib.engine.config import ConfigError

if TYPE_CHECKING:  # accelerate is imported when a Trainer starts, not with the engine
    from accelerate import PartialState


def resolve_precision(requested: str, cpu: bool = False) -> str:
    """The precision a run trains in: ``requested``, with ``"auto"`` decided by the hardware.

    ``"auto"`` is :func:`bs_lib.config.detect_precision` of the device the run
    will use: bf16 on GPUs with bf16 hardware (compute capability 8.0+), fp16 on
    older ones such as Colab's T4, whose convolutions have no bf16 kernels, and
    float32 (``"no"``) on CPUs. An explicit ``"bf16"`` on a CUDA GPU without
    bf16 hardware is refused: such GPUs only emulate it, slowly.
    """
    device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
    if requested == "auto":
        return course_config.detect_precision(device)
    if requested == "bf16" and device.type == "cuda" and not course_config.native_bf16(device):
        name = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        raise ConfigError(f"mixed_precision: bf16 needs a GPU with bf16 hardware (compute capability 8.0 or "
                          f"newer: A100, L4, RTX 30xx, H100, ...); this {name} has {major}.{minor}. Set "
                          f"mixed_precision: auto (fp16 with loss scaling here) or fp16.")
    return requested


def process_state(cpu: bool = False) -> PartialState:
    """``accelerate.PartialState``: this process's device, index and count, and ``wait_for_everyone``.

    The first call in a process starts the process group when the process was
    launched as one of several; later calls return the same state. On a
    machine without CUDA, several launched processes need ``cpu=True``: it is
    accelerate's cue for gloo (its ``--multi_gpu`` flag is what starts them).
    """
    from accelerate import PartialState

    launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
    return PartialState(cpu=cpu or (launched_processes > 1 and not torch.cuda.is_available()))


def end_processes() -> None:
    """Wait for every process, then close the process group: a launched process that exits with its
    group still open can abort at interpreter shutdown (gloo's threads are never joined)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def is_distributed() -> bool:
    """True when this process is one of several in a started process group."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


@torch.no_grad()
def average_gradients(params: list[nn.Parameter], bucket_elements: int = 2**25) -> None:
    """Replace each gradient by its mean over all processes (one all-reduce per bucket of flattened grads)."""
    world_size = torch.distributed.get_world_size()
    grads = []
    for param in params:
        if param.grad is None:  # every process must send the same tensors
            param.grad = torch.zeros_like(param)
        grads.append(param.grad)
    start = 0
    while start < len(grads):
        stop, size = start, 0
        while stop < len(grads) and (size == 0 or size + grads[stop].numel() <= bucket_elements):
            size += grads[stop].numel()
            stop += 1
        bucket = torch.cat([g.reshape(-1) for g in grads[start:stop]])
        torch.distributed.all_reduce(bucket)
        bucket /= world_size
        offset = 0
        for grad in grads[start:stop]:
            grad.copy_(bucket[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()
        start = stop


@torch.no_grad()
def broadcast_state(module: nn.Module) -> None:
    """Copy every parameter and buffer of the main process to the others."""
    for tensor in module.state_dict().values():
        torch.distributed.broadcast(tensor, src=0)


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Average float buffers (BatchNorm statistics) over processes, so all hold the same model."""
    world_size = torch.distributed.get_world_size()
    for buffer in module.buffers():
        if buffer.is_floating_point():
            torch.distributed.all_reduce(buffer)
            buffer /= world_size
