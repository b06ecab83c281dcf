"""What BS-LDM's speed measurements share, for ``bs_ldm_speed.py`` and ``bs_ldm_headline.py``.

The presets' image sizes and the official and our sampler settings; building a
model in a precision and memory layout; timing with the GPU's queue drained,
peak memory and the machine's description; a part's JSON fragment and its
deadline; and the two timed primitives, stage-2 training steps and a sampling
chain. Run ``bs_ldm_speed.py``, not this module.
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from bs_lib.models.ldm import UNET_PRESETS, ConditionalLDM, DiffusionSettings
from bs_lib.models.vqgan import MLVQGAN, VQGAN_PRESETS

SIZES = {"smoke": 64, "colab": 256, "full": 1024}

#: The official sampler: all 1 000 DDPM steps with temporal adaptive thresholding, in fp32.
OFFICIAL = {"sampler": "ddpm", "sampling_steps": None, "threshold": "tat"}
#: Ours: 20 DDIM steps on trailing timesteps with TAT, the official sampler's quality on the benchmark's model.
OURS = {"sampler": "ddim", "sampling_steps": 20, "spacing": "trailing", "threshold": "tat"}
TRAIN_STEPS = 1000
SAFETY_S = 20  # seconds kept in hand before a part's time limit: start-up before the clock, the last write


# --------------------------------------------------------------------------- shared


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def half_precision(device: torch.device) -> torch.dtype:
    """bf16 where the GPU computes it in hardware (and on the CPU), else fp16 (a T4 only emulates bf16)."""
    from bs_lib.config import native_bf16

    if device.type == "cuda" and not native_bf16(device):
        return torch.float16
    return torch.bfloat16


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[dtype]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype``, or nothing (fp32) when it is ``None``."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def build(preset: str, device: torch.device, channels_last: bool) -> ConditionalLDM:
    model = ConditionalLDM(MLVQGAN(VQGAN_PRESETS[preset], prefer_lpips=False), UNET_PRESETS[preset],
                           DiffusionSettings()).to(device)
    set_layout(model, channels_last)
    return model


def set_layout(model: nn.Module, channels_last: bool) -> None:
    """Store the convolution weights channels-last (NHWC) or in the default contiguous layout (NCHW)."""
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def timed(device: torch.device, work) -> float:
    """Wall seconds of ``work()``, with the GPU's queue drained before and after."""
    synchronise(device)
    started = time.perf_counter()
    work()
    synchronise(device)
    return time.perf_counter() - started


def peak_gib(device: torch.device) -> float | None:
    """Peak GPU memory allocated since the last reset, in GiB (``None`` on the CPU)."""
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def environment(device: torch.device) -> dict:
    """What ran the measurement: the device, the software, and the fp32 settings that change its speed."""
    import bs_lib

    found = {"device": device.type, "device_name": "cpu", "torch": torch.__version__, "cuda": torch.version.cuda,
             "python": platform.python_version(), "bs_lib": bs_lib.__version__,
             "cpu_threads": torch.get_num_threads(),
             "tf32_convolutions": torch.backends.cudnn.allow_tf32,
             "float32_matmul_precision": torch.get_float32_matmul_precision()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        found |= {"device_name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                  "compute_capability": f"{props.major}.{props.minor}"}
    return found


class Fragment:
    """One part's results as JSON, rewritten whole after every measurement.

    The file is replaced, never half-written, so a part stopped at its time
    limit leaves everything it measured before the limit.
    """

    def __init__(self, path: Path | None, **items):
        self.path = path
        self.data: dict = {"notes": []}
        self.update(**items)

    def update(self, **items) -> None:
        self.data.update(items)
        if self.path is not None:
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_text(json.dumps(self.data, indent=1))
            partial.replace(self.path)

    def note(self, text: str) -> None:
        print(f"note: {text}")
        self.update(notes=[*self.data["notes"], text])


class Deadline:
    """The seconds left before a part's time limit, less :data:`SAFETY_S`."""

    def __init__(self, limit_s: float):
        self.end = time.monotonic() + limit_s - SAFETY_S

    def left(self) -> float:
        return self.end - time.monotonic()


def gib(value) -> str:
    return "—" if value is None else f"{value:.1f} GiB"


# --------------------------------------------------------------------------- timed training steps and sampling chains


def train_speed(model: ConditionalLDM, data: dict, dtype: torch.dtype | None, steps: int) -> tuple[float, float | None]:
    """(images per second, peak GiB) of ``steps`` stage-2 training steps on ``data``, after two warm-up steps.

    ``data`` holds images (``cxr``, ``soft``: encoded at every step, as the
    official loop does) or latents (``z_cxr``, ``z_soft``: encoded once). fp16
    runs without loss scaling, which costs the same time.
    """
    device = next(model.parameters()).device
    batch = len(next(iter(data.values())))
    model.train()
    optimiser = torch.optim.AdamW(model.unet.parameters(), lr=2e-4)

    def step(index: int) -> None:
        with autocast(device, dtype):
            loss = model.losses(data, index)["unet"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    reset_peak(device)
    for index in range(2):
        step(index)
    seconds = timed(device, lambda: [step(index) for index in range(steps)])
    model.zero_grad(set_to_none=True)
    return batch * steps / seconds, peak_gib(device)


def images(preset: str, device: torch.device, batch: int) -> dict:
    size = SIZES[preset]
    return {"cxr": torch.rand(batch, 1, size, size, device=device),
            "soft": torch.rand(batch, 1, size, size, device=device)}


@torch.no_grad()
def cached(model: ConditionalLDM, data: dict) -> dict:
    """The latents of ``data``, encoded once: what ``ConditionalLDM.prepare_dataset`` does with ``cache_latents``."""
    return dict(zip(("z_soft", "z_cxr"), model.latents(data), strict=True))


def time_sampling(model: ConditionalLDM, cxr: torch.Tensor, dtype: torch.dtype | None, warmup_steps: int = 2,
                  repeats: int = 1, **options) -> tuple[float, float]:
    """(seconds of a short warm-up chain, seconds per image of the timed chain) of ``model.predict(cxr, **options)``.

    The warm-up runs every kernel once, and compiles or captures the network
    where it is compiled or captured, so the timed chain starts warm. With
    ``repeats``, the fastest of that many timed chains.
    """
    device = cxr.device
    with autocast(device, dtype):
        warmup = timed(device, lambda: model.predict(cxr, sampler="ddim", sampling_steps=warmup_steps,
                                                     spacing="trailing", threshold="tat"))
        seconds = min(timed(device, lambda: model.predict(cxr, torch.Generator(device=device).manual_seed(0),
                                                          **options)) for _ in range(repeats))
    return warmup, seconds / len(cxr)
