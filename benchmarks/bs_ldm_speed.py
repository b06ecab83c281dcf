"""Speed of BS-LDM: training images/s and sampling seconds per image, for a preset.

    python benchmarks/bs_ldm_speed.py --preset full            # the paper's model at 1024² (needs a GPU)
    python benchmarks/bs_ldm_speed.py --preset smoke --batch 2  # a quick CPU check of the script itself

Prints, for the chosen preset and its image size:

* training: images/s and peak GPU memory of one stage-2 step (frozen autoencoder encode + UNet
  forward/backward + AdamW), at ``--batch`` (the paper's 4 by default), fp32 as the official loop,
  bf16 autocast, bf16 autocast + channels-last, and with the latents encoded beforehand
  (``cache_latents``: the frozen encoder leaves the loop);
* sampling: seconds per image for DDPM with all 1 000 steps (the official sampler, fp32) and for
  DDIM with each of ``--ddim-steps`` (20 and 50) steps and temporal adaptive thresholding (bf16,
  channels-last, optionally ``torch.compile``), at batch 1 and at ``--sample-batch``. On the
  benchmark's model DDIM 20 on trailing timesteps matches the official sampler's quality
  (``results/bs_ldm_samplers_smoke_128.md``); the spacing does not change the time.

The headline measurement, official against ours on one model in one process, is one part at a
time (``bs_ldm_gpu.sh quick`` runs both and merges them):

    python benchmarks/bs_ldm_speed.py --headline sampling --preset full --json LOGDIR/sampling_full.json
    python benchmarks/bs_ldm_speed.py --headline training --preset full --json LOGDIR/training_full.json
    python benchmarks/bs_ldm_speed.py --merge LOGDIR --command "..."   # LOGDIR/bs_ldm_gpu.json and .md

* ``--headline sampling``: the official sampler (DDPM 1 000 steps + TAT, fp32, eager) against ours
  (DDIM 20 on trailing timesteps + TAT, half precision, the faster memory layout, CUDA graphs),
  both at batch 1, then ours at the largest batch that fits;
* ``--headline training``: the official loop (both images encoded by the frozen autoencoder at
  every step, fp32) against ours (latents encoded once, the fastest precision), images/s and peak
  memory of each.

Each part rewrites its JSON after every measurement, so a part stopped at its time limit still
leaves what it measured; ``--time-limit`` tells it that limit, and it skips or shortens what would
not fit.

The published reference is 84.62 s per 1024² image for the official 1 000-step sampler
(GL-LCM's table; GPU not stated). Results belong in ``benchmarks/results/`` with this command line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from bs_lib.models.ldm import UNET_PRESETS, ConditionalLDM, DiffusionSettings, count_parameters
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


# --------------------------------------------------------------------------- CUDA graphs


class CompiledUNet(nn.Module):
    """The UNet through ``torch.compile``; with ``mode="reduce-overhead"``, replayed as CUDA graphs.

    Every call starts a new step for the CUDA graph trees and returns a copy of
    the output: a graph's output buffer is overwritten by its next replay,
    while the sampler still holds the last ε̂.
    """

    def __init__(self, unet: nn.Module, **options):
        super().__init__()
        self.unet = unet
        self.compiled = torch.compile(unet, **options)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        return self.compiled(x, t).clone()


class CapturedUNet(nn.Module):
    """The UNet's forward pass captured once as a CUDA graph and replayed: one launch per step.

    No compiler: the same kernels as eager, minus the thousands of launches
    from Python that make a batch-1 step launch-bound. Captured at the first
    call, for that call's shape, precision and layout; later calls copy their
    input into the captured one. Autocast's weight cache is off while
    capturing, so the graph's casts of the weights live in the graph's memory.
    """

    def __init__(self, unet: nn.Module, dtype: torch.dtype | None):
        super().__init__()
        self.unet, self.dtype = unet, dtype
        self.graph: torch.cuda.CUDAGraph | None = None

    def capture(self, x: torch.Tensor, t: torch.Tensor) -> None:
        self.x, self.t = x.clone(), t.clone()
        cast = (torch.autocast("cuda", dtype=self.dtype, cache_enabled=False) if self.dtype is not None
                else contextlib.nullcontext())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), cast:
            for _ in range(3):  # warm up off the default stream, as capture wants
                self.unet(self.x, self.t)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), cast:
            self.out = self.unet(self.x, self.t)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.graph is None:
            self.capture(x, t)
        elif x.shape != self.x.shape:
            raise ValueError(f"captured for input {tuple(self.x.shape)}, called with {tuple(x.shape)}")
        self.x.copy_(x)
        self.t.copy_(t)
        self.graph.replay()
        return self.out.clone()


# --------------------------------------------------------------------------- the survey (all variants, printed)


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


def training_speed(preset: str, device: torch.device, batch: int, bf16: bool, channels_last: bool,
                   steps: int, cached_latents: bool = False) -> tuple[float, float | None]:
    """(images per second, peak GiB) of stage-2 training steps on a fresh model; ``cached_latents``: encoded first."""
    model = build(preset, device, channels_last=channels_last)
    data = images(preset, device, batch)
    if cached_latents:
        data = cached(model, data)
    return train_speed(model, data, half_precision(device) if bf16 else None, steps)


@torch.no_grad()
def sampling_speed(preset: str, device: torch.device, batch: int, sampler: str, steps: int | None, bf16: bool,
                   compile_mode: str | None) -> float:
    """Seconds per image of one sampling run (after a short warm-up)."""
    model = build(preset, device, channels_last=bf16).eval()
    if compile_mode:
        model.unet = CompiledUNet(model.unet, mode=compile_mode)
    size = SIZES[preset]
    cxr = torch.rand(batch, 1, size, size, device=device)
    _, seconds = time_sampling(model, cxr, half_precision(device) if bf16 else None,
                               sampler=sampler, sampling_steps=steps, threshold="tat")
    return seconds


def survey(args: argparse.Namespace, device: torch.device) -> None:
    """Every training and sampling variant of the preset, one printed line each."""
    fast = device.type == "cuda"
    variants = [("fp32", False, False, False), ("fp32, cached latents", False, False, True)]
    if fast:
        variants += [("bf16", True, False, False), ("bf16 + channels-last", True, True, False),
                     ("bf16, cached latents", True, False, True)]
    for label, bf16, channels_last, cached_latents in [] if args.skip_training else variants:
        speed, peak = training_speed(args.preset, device, args.batch, bf16, channels_last, args.train_steps,
                                     cached_latents)
        memory = f", peak {peak:.1f} GiB" if peak is not None else ""
        print(f"training, batch {args.batch}, {label}: {speed:.3g} images/s ({1 / speed:.3g} s per image){memory}")
    runs = [(f"DDIM {steps} + TAT, batch {batch}" + (", bf16 + channels-last" if fast else ""),
             batch, "ddim", steps, fast, args.compile if fast else None)
            for steps in args.ddim_steps for batch in (1, args.sample_batch)]
    if not args.skip_ddpm:  # last: the slowest
        runs.append(("DDPM 1000 (official, fp32), batch 1", 1, "ddpm", None, False, None))
    for label, batch, sampler, steps, bf16, compiled in [] if args.skip_sampling else runs:
        seconds = sampling_speed(args.preset, device, batch, sampler, steps, bf16, compiled)
        print(f"sampling, {label}{f', compiled ({compiled})' if compiled else ''}: {seconds:.3f} s per image")


# --------------------------------------------------------------------------- headline: sampling


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


def ours_settings(dtype: torch.dtype | None, channels_last: bool, graphs: str, batch: int = 1) -> dict:
    label = (f"DDIM {OURS['sampling_steps']} {OURS['spacing']} + TAT, {precision_name(dtype)}, "
             f"{'channels-last' if channels_last else 'contiguous'}, {graphs}, batch {batch}")
    return {"label": label, **OURS, "precision": precision_name(dtype), "channels_last": channels_last,
            "graphs": graphs, "batch": batch}


def official_sampling(model: ConditionalLDM, cxr: torch.Tensor, steps: int, deadline: Deadline,
                      reserve_s: float) -> dict:
    """The official sampler's seconds per image: DDPM + TAT, fp32, eager, contiguous, batch 1.

    A 10-step chain and an encode + decode (each the faster of two, the first
    warming the fp32 kernels) estimate the whole chain's time. The whole chain
    (``steps`` = 1 000) is timed when it fits in the time left, less
    ``reserve_s`` for what follows; otherwise as many steps as fit (at least
    50), and the chain's time is extrapolated linearly from them: encode +
    decode once, plus 1 000 times the mean step. Every step costs the same
    network evaluation, so only the step count changes.
    """
    device = cxr.device
    autoencoder = model.autoencoder
    codec = min(timed(device, lambda: autoencoder.decode(autoencoder.encode(cxr))) for _ in range(2))
    probe = min(timed(device, lambda: model.predict(cxr, **(OFFICIAL | {"sampling_steps": 10}))) for _ in range(2))
    step = max(probe - codec, 0.0) / 10
    affordable = int((deadline.left() - reserve_s - codec) / step) if step > 0 else steps
    steps = min(steps, TRAIN_STEPS, max(affordable, 50))
    chain = OFFICIAL | {"sampling_steps": None if steps == TRAIN_STEPS else steps}
    seconds = timed(device, lambda: model.predict(cxr, torch.Generator(device=device).manual_seed(0), **chain))
    found = {"settings": {"label": "DDPM 1000 + TAT, fp32, contiguous, eager, batch 1", **OFFICIAL,
                          "precision": "fp32", "channels_last": False, "graphs": "none", "batch": 1},
             "steps_timed": steps, "codec_s": codec, "probe_step_s": step}
    if steps == TRAIN_STEPS:
        return found | {"s_per_image": seconds, "extrapolated_from_steps": None, "step_s": (seconds - codec) / steps}
    per_step = max(seconds - codec, 0.0) / steps
    return found | {"s_per_image": codec + TRAIN_STEPS * per_step, "extrapolated_from_steps": steps,
                    "step_s": per_step, "timed_s": seconds}


def largest_batch(model: ConditionalLDM, size: int, dtype: torch.dtype | None, cap: int, deadline: Deadline,
                  batch1_s: float) -> dict:
    """Ours, eager, at the largest batch that fits: doubled from 2 until out of memory, ``cap`` or time.

    Each batch is first tried on a 2-step chain, whose peak memory is the 20-step
    chain's; the largest that fits is then timed. Eager, not compiled: a large
    batch is compute-bound, and each new shape would cost a compilation.
    """
    device = next(model.parameters()).device
    fits, stopped, estimate = 1, f"the cap of {cap}", 2.2 * batch1_s  # a 2-step probe and a 20-step chain
    batch = 2
    while batch <= cap:
        if deadline.left() < estimate:
            stopped = f"the time limit (batch {batch} would not have fitted)"
            break
        cxr = torch.rand(batch, 1, size, size, device=device)
        failure = None
        try:
            with autocast(device, dtype):
                probe = timed(device, lambda cxr=cxr: model.predict(cxr, **(OURS | {"sampling_steps": 2})))
        except RuntimeError as error:  # out of memory, or a kernel refusing the size
            failure = str(error).strip().splitlines()[0][:200]
        del cxr
        if failure is not None:  # the traceback is gone here, and with it the tensors it held
            if device.type == "cuda":
                torch.cuda.empty_cache()
            stopped = f"batch {batch}: {failure}"
            break
        print(f"sampling, batch {batch} fits (2-step probe {probe:.2f} s)")
        fits, estimate, batch = batch, 22 * probe, 2 * batch
    if fits == 1:
        return {"batch": 1, "stopped_by": stopped, "s_per_image": batch1_s, "peak_gib": None}
    cxr = torch.rand(fits, 1, size, size, device=device)
    reset_peak(device)
    _, seconds = time_sampling(model, cxr, dtype, **OURS)
    return {"batch": fits, "stopped_by": stopped, "s_per_image": seconds, "peak_gib": peak_gib(device)}


def run_variant(fragment: Fragment, label: str, keep_going: bool, work) -> None:
    """Run an optional measurement; with ``keep_going`` a failure becomes a note instead of the part's end."""
    try:
        work()
    except Exception as error:
        if not keep_going:
            raise
        fragment.note(f"{label} failed: {type(error).__name__}: {str(error).strip()[:300]}")


@torch.no_grad()
def headline_sampling(args: argparse.Namespace, device: torch.device, fragment: Fragment) -> None:
    """Official against ours on one model, in the order of importance; see the module docstring."""
    deadline = Deadline(args.time_limit)
    model = build(args.preset, device, channels_last=False).eval()
    size, half = SIZES[args.preset], half_precision(device)
    cxr = torch.rand(1, 1, size, size, device=device)
    variants = []

    def measured(settings: dict, seconds: float, warmup: float) -> None:
        variants.append({"settings": settings, "s_per_image": seconds, "warmup_s": warmup})
        fragment.update(variants=variants)
        print(f"sampling, ours, {settings['label']}: {seconds:.3f} s per image (warm-up {warmup:.1f} s)")

    for channels_last in (False, True):  # the layout that pays, in the eager network
        set_layout(model, channels_last)
        warmup, seconds = time_sampling(model, cxr, half, repeats=2, **OURS)
        measured(ours_settings(half, channels_last, "eager"), seconds, warmup)
    layout = min(variants, key=lambda v: v["s_per_image"])["settings"]["channels_last"]
    fragment.update(channels_last=layout)

    set_layout(model, False)
    official = official_sampling(model, cxr, args.ddpm_steps, deadline, reserve_s=args.reserve)
    fragment.update(official=official)
    extrapolated = official["extrapolated_from_steps"]
    how = f"extrapolated from {extrapolated} steps" if extrapolated else "the full chain"
    print(f"sampling, official, {official['settings']['label']}: {official['s_per_image']:.3f} s per image ({how})")
    if extrapolated:
        fragment.note(f"the official sampler's time is extrapolated linearly from {extrapolated} of its 1000 steps")
    set_layout(model, layout)
    eager = model.unet

    def captured() -> None:
        model.unet = CapturedUNet(eager, half)
        warmup, seconds = time_sampling(model, cxr, half, warmup_steps=3, repeats=2, **OURS)
        measured(ours_settings(half, layout, "CUDA graph (captured)"), seconds, warmup)

    def compiled() -> None:
        options = {"mode": args.compile} if device.type == "cuda" else {"backend": "eager"}
        model.unet = CompiledUNet(eager, **options)
        warmup, seconds = time_sampling(model, cxr, half, warmup_steps=3, repeats=2, **OURS)
        graphs = f"torch.compile {args.compile}" if device.type == "cuda" else "torch.compile (dynamo only)"
        measured(ours_settings(half, layout, graphs), seconds, warmup)
        fragment.update(compile_mode=graphs, compile_s=warmup)

    if device.type == "cuda":
        run_variant(fragment, "CUDA graph capture", args.keep_going, captured)
    else:
        fragment.note("CUDA graphs need a GPU: the captured variant is skipped")
    model.unet = eager
    batch1_s = min(v["s_per_image"] for v in variants)
    run_variant(fragment, "largest batch", args.keep_going, lambda: fragment.update(
        largest_batch=largest_batch(model, size, half, args.max_batch, deadline, batch1_s)))
    if args.compile is None:
        fragment.note("torch.compile not asked for (--compile)")
    elif deadline.left() < args.min_compile:
        fragment.note(f"torch.compile skipped: {deadline.left():.0f} s left, under --min-compile {args.min_compile} s")
    else:
        if device.type != "cuda":
            fragment.note("on the CPU torch.compile only traces the UNet (backend 'eager'): no CUDA graphs, no kernels")
        fragment.update(compile_started_s_left=deadline.left())  # if the limit stops it, the summary says so
        run_variant(fragment, "torch.compile", args.keep_going, compiled)
    model.unet = eager


# --------------------------------------------------------------------------- headline: training


def headline_training(args: argparse.Namespace, device: torch.device, fragment: Fragment) -> None:
    """The official loop (encode both images every step, fp32) against ours (cached latents, fastest precision)."""
    model = build(args.preset, device, channels_last=False)
    data = images(args.preset, device, args.batch)
    speed, peak = train_speed(model, data, None, args.train_steps)
    settings = {"label": f"encode both images every step, fp32, contiguous, batch {args.batch}",
                "cached_latents": False, "precision": "fp32", "channels_last": False, "batch": args.batch}
    fragment.update(batch=args.batch, official={"settings": settings, "images_per_s": speed, "peak_gib": peak})
    print(f"training, official, {settings['label']}: {speed:.3g} images/s, peak {gib(peak)}")
    latents = {}
    cache_s = timed(device, lambda: latents.update(cached(model, data)))
    fragment.update(latent_cache_s_per_pair=cache_s / args.batch)
    variants = []

    def measure(dtype: torch.dtype | None, channels_last: bool) -> None:
        set_layout(model, channels_last)
        speed, peak = train_speed(model, latents, dtype, args.train_steps)
        label = (f"cached latents, {precision_name(dtype)}, {'channels-last' if channels_last else 'contiguous'}, "
                 f"batch {args.batch}")
        variants.append({"settings": {"label": label, "cached_latents": True, "precision": precision_name(dtype),
                                      "channels_last": channels_last, "batch": args.batch},
                         "images_per_s": speed, "peak_gib": peak})
        fragment.update(variants=variants)
        print(f"training, ours, {label}: {speed:.3g} images/s, peak {gib(peak)}")

    for dtype, channels_last in ((None, False), (half_precision(device), False), (half_precision(device), True)):
        run_variant(fragment, f"training in {precision_name(dtype)}", args.keep_going,
                    lambda dtype=dtype, channels_last=channels_last: measure(dtype, channels_last))


# --------------------------------------------------------------------------- merging the parts


def ratio(numerator, denominator) -> float | None:
    return numerator / denominator if numerator and denominator else None


def outcomes(logdir: Path) -> dict:
    """Each part's last outcome, from the ``parts.tsv`` that ``bs_ldm_gpu.sh`` appends to."""
    found = {}
    table = logdir / "parts.tsv"
    for line in table.read_text().splitlines() if table.is_file() else []:
        name, limit, status, seconds = line.split("\t")
        status = int(status)
        outcome = {0: "finished", 124: "stopped at its time limit", 137: "killed at its time limit"}.get(
            status, "skipped: the budget was spent" if status < 0 else "failed")
        found[name] = {"limit_s": int(limit), "exit": status, "seconds": int(seconds), "outcome": outcome}
    return found


def end_to_end(path: Path | None) -> dict | None:
    """BS-LDM and identity from the benchmark's JSON: quality, cost and the gain over identity."""
    if path is None or not path.is_file():
        return None
    written = json.loads(path.read_text())
    keys = ("label", "psnr_mean", "bsr_symmetric_mean", "ssim_mean", "seconds_per_image", "budget_steps",
            "budget_wall_time_s", "budget_note", "psnr_gain_over_identity", "beats_identity")
    rows = {row["method"]: {key: row.get(key) for key in keys} for row in written["summary"]}
    settings = written["settings"]
    return {"command": settings["command"], "image_size": settings["image_size"], "num_test": settings["num_test"],
            "steps_scale": settings["steps_scale"], "steps_override": settings["steps_override"],
            "device": settings["device"], "methods": rows}


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def merge(logdir: Path, command: str, dry_run: bool, end_to_end_json: Path | None = None) -> dict:
    """The parts' fragments as one flat summary: the headline numbers first, their details after."""
    sampling, training = load(logdir / "sampling_full.json"), load(logdir / "training_full.json")
    env = sampling.get("environment") or training.get("environment") or {}
    if not env:
        gpu = "unknown (no part reached its first measurement)"
    elif env["device"] != "cuda":
        gpu = "none (a CPU dry run)" if dry_run else f"none ({env['device']})"
    else:
        gpu = env["device_name"]
    official = sampling.get("official") or {}
    batch1 = [v for v in sampling.get("variants", []) if v["settings"]["batch"] == 1]
    ours = min(batch1, key=lambda v: v["s_per_image"], default={})  # the fastest variant at batch 1
    largest = sampling.get("largest_batch") or {}
    train_official = training.get("official") or {}
    train_ours = max(training.get("variants", []), key=lambda v: v["images_per_s"], default={})
    captured = [v for v in sampling.get("variants", []) if v["settings"]["graphs"].startswith("CUDA graph")]
    notes = sampling.get("notes", []) + training.get("notes", [])
    if "compile_started_s_left" in sampling and "compile_s" not in sampling:
        notes.append(f"torch.compile started with {sampling['compile_started_s_left']:.0f} s left in its part "
                     "and did not finish")
    return {
        "gpu": gpu,
        "command": command,
        "dry_run": dry_run,
        "date": datetime.date.today().isoformat(),
        "preset": sampling.get("preset") or training.get("preset"),
        "image_size": sampling.get("image_size") or training.get("image_size"),
        "sampling_official_s_per_image": official.get("s_per_image"),
        "sampling_official_settings": official.get("settings"),
        "sampling_official_steps_timed": official.get("steps_timed"),
        "sampling_official_extrapolated_from_steps": official.get("extrapolated_from_steps"),
        "sampling_ours_s_per_image": ours.get("s_per_image"),
        "sampling_ours_settings": ours.get("settings"),
        "sampling_speedup": ratio(official.get("s_per_image"), ours.get("s_per_image")),
        "sampling_channels_last": sampling.get("channels_last"),
        "sampling_compile_mode": sampling.get("compile_mode"),
        "sampling_compile_s": sampling.get("compile_s"),
        "sampling_capture_s": captured[0]["warmup_s"] if captured else None,
        "sampling_largest_batch": largest.get("batch"),
        "sampling_largest_batch_s_per_image": largest.get("s_per_image"),
        "sampling_largest_batch_speedup": ratio(official.get("s_per_image"), largest.get("s_per_image")),
        "sampling_largest_batch_peak_gib": largest.get("peak_gib"),
        "sampling_largest_batch_stopped_by": largest.get("stopped_by"),
        "sampling_variants": sampling.get("variants", []),
        "training_batch": training.get("batch"),
        "training_official_images_per_s": train_official.get("images_per_s"),
        "training_official_peak_gib": train_official.get("peak_gib"),
        "training_official_settings": train_official.get("settings"),
        "training_ours_images_per_s": train_ours.get("images_per_s"),
        "training_ours_peak_gib": train_ours.get("peak_gib"),
        "training_ours_settings": train_ours.get("settings"),
        "training_speedup": ratio(train_ours.get("images_per_s"), train_official.get("images_per_s")),
        "training_latent_cache_s_per_pair": training.get("latent_cache_s_per_pair"),
        "training_variants": training.get("variants", []),
        "end_to_end": end_to_end(end_to_end_json),
        "parts": outcomes(logdir),
        "environment": env,
        "notes": notes,
    }


def number(value, digits: int = 3, unit: str = "") -> str:
    return "not measured" if value is None else f"{value:.{digits}g}{unit}"


def gib(value) -> str:
    return "—" if value is None else f"{value:.1f} GiB"


def markdown(summary: dict) -> str:
    """The summary in the style of ``benchmarks/results/bs_ldm_gpu.md``, ready to be kept there."""
    env = summary["environment"]
    machine = summary["gpu"]
    if env.get("device") == "cuda":
        tf32 = "may use TF32 (torch's default, as in the official code)" if env["tf32_convolutions"] else "in full fp32"
        machine += (f" ({env['memory_gib']} GiB, compute capability {env['compute_capability']}), CUDA {env['cuda']}; "
                    f"fp32 convolutions {tf32}")
    lines = [f"# BS-LDM on one GPU: the headline measurement ({summary['date']})", ""]
    if summary["dry_run"]:
        lines += ["**Dry run** on the CPU at smoke sizes: it checks the script and its code paths; its numbers "
                  "say nothing about BS-LDM's speed.", ""]
    lines += [f"Machine: {machine}; Python {env.get('python', '?')}, torch {env.get('torch', '?')}, "
              f"bs_lib {env.get('bs_lib', '?')}.", "", f"Command: `{summary['command']}`", "",
              f"Model: the `{summary['preset']}` preset at {summary['image_size']}², random weights (speed does "
              "not depend on them), official and ours on the same model in the same process.", ""]
    if summary["preset"] == "full":
        lines += ["Published reference: 84.62 s per 1024² image for the official 1 000-step sampler (GL-LCM's "
                  "table; GPU not stated).", ""]
    lines += [*speed_table(summary), "", *variant_lines(summary), "", *end_to_end_lines(summary["end_to_end"])]
    lines += ["", "## Parts", "", "| part | limit (s) | exit | time (s) | outcome |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {p['limit_s']} | {p['exit']} | {p['seconds']} | {p['outcome']} |"
              for name, p in summary["parts"].items()]
    if summary["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines) + "\n"


def speed_table(s: dict) -> list[str]:
    official, ours = s["sampling_official_settings"] or {}, s["sampling_ours_settings"] or {}
    train_official, train_ours = s["training_official_settings"] or {}, s["training_ours_settings"] or {}
    chain = (f"; extrapolated from {s['sampling_official_extrapolated_from_steps']} steps"
             if s["sampling_official_extrapolated_from_steps"] else "; the full chain timed" if official else "")
    largest = s["sampling_largest_batch"]
    return ["## Speed", "",
            "| measurement | official | ours | ours faster by |",
            "|---|---|---|---|",
            f"| sampling, s per image, batch 1 | {number(s['sampling_official_s_per_image'])} "
            f"({official.get('label', '—')}{chain}) | {number(s['sampling_ours_s_per_image'])} "
            f"({ours.get('label', '—')}) | **{number(s['sampling_speedup'], unit='×')}** |",
            f"| sampling, s per image, largest batch ({largest or '—'}) | — | "
            f"{number(s['sampling_largest_batch_s_per_image'])} (eager; stopped by "
            f"{s['sampling_largest_batch_stopped_by'] or '—'}; peak {gib(s['sampling_largest_batch_peak_gib'])}) | "
            f"{number(s['sampling_largest_batch_speedup'], unit='×')} |",
            f"| training, images/s, batch {s['training_batch']} | {number(s['training_official_images_per_s'])} "
            f"({train_official.get('label', '—')}; peak {gib(s['training_official_peak_gib'])}) | "
            f"{number(s['training_ours_images_per_s'])} ({train_ours.get('label', '—')}; peak "
            f"{gib(s['training_ours_peak_gib'])}) | **{number(s['training_speedup'], unit='×')}** |"]


def variant_lines(s: dict) -> list[str]:
    lines = ["Every variant measured:", "", "| variant | result | warm-up (compile, capture) |", "|---|---|---|"]
    lines += [f"| sampling, {v['settings']['label']} | {number(v['s_per_image'])} s per image | "
              f"{v['warmup_s']:.1f} s |" for v in s["sampling_variants"]]
    lines += [f"| training, {v['settings']['label']} | {number(v['images_per_s'])} images/s, peak "
              f"{gib(v['peak_gib'])} | — |" for v in s["training_variants"]]
    if s["training_latent_cache_s_per_pair"] is not None:
        lines += ["", f"Encoding a pair once for the cache costs {s['training_latent_cache_s_per_pair']:.3g} s, "
                  "once per training run instead of at every step."]
    return lines


def end_to_end_lines(e2e: dict | None) -> list[str]:
    lines = ["## End to end on the phantom", ""]
    if e2e is None:
        return [*lines, "Not completed in this run (see the parts below): no quality numbers."]
    lines += [f"`{e2e['command']}` ({e2e['num_test']} test images at {e2e['image_size']}², device "
              f"{e2e['device']}, step scale ×{e2e['steps_scale']:g}, overrides {e2e['steps_override'] or 'none'}):",
              "", "| method | PSNR (dB) | BSR sym. (%) | SSIM | Δ PSNR against identity (dB) [95 % CI] | s per image | "
              "training |", "|---|---|---|---|---|---|---|"]
    for row in e2e["methods"].values():
        gain = row["psnr_gain_over_identity"]
        gain = f"{gain[0]:+.2f} [{gain[1]:+.2f}, {gain[2]:+.2f}]" if gain else "—"
        training = f"{row['budget_steps']} steps, {number(row['budget_wall_time_s'])} s" if row["budget_steps"] else "—"
        lines.append(f"| {row['label']} | {row['psnr_mean']:.2f} | {100 * row['bsr_symmetric_mean']:.2f} | "
                     f"{row['ssim_mean']:.4f} | {gain} | {number(row['seconds_per_image'])} | {training} |")
    return lines


def write_summary(logdir: Path, command: str, dry_run: bool, end_to_end_json: Path | None) -> dict:
    """``LOGDIR/bs_ldm_gpu.json`` and ``LOGDIR/bs_ldm_gpu.md`` from the parts' fragments."""
    summary = merge(logdir, command, dry_run, end_to_end_json)
    (logdir / "bs_ldm_gpu.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    (logdir / "bs_ldm_gpu.md").write_text(markdown(summary))
    print(f"wrote {logdir / 'bs_ldm_gpu.json'} and {logdir / 'bs_ldm_gpu.md'}")
    return summary


# --------------------------------------------------------------------------- command line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(SIZES), default="full")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the best available)")
    parser.add_argument("--batch", type=int, default=4, help="training batch (the paper's is 4)")
    parser.add_argument("--sample-batch", type=int, default=8, help="a larger sampling batch")
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--compile", nargs="?", const="default", default=None,
                        choices=["default", "reduce-overhead", "max-autotune"],
                        help="torch.compile the UNet for DDIM sampling, in this mode (reduce-overhead: CUDA graphs)")
    parser.add_argument("--ddim-steps", type=int, nargs="+", default=[20, 50], help="DDIM step counts to time")
    parser.add_argument("--skip-ddpm", action="store_true", help="skip the slow 1000-step DDPM measurement")
    parser.add_argument("--skip-training", action="store_true", help="measure sampling only")
    parser.add_argument("--skip-sampling", action="store_true", help="measure training only")
    headline = parser.add_argument_group("the headline measurement (bs_ldm_gpu.sh quick)")
    headline.add_argument("--headline", choices=["sampling", "training"], default=None,
                          help="official against ours for one part, instead of the survey")
    headline.add_argument("--json", type=Path, default=None, help="write the part's results here as they come")
    headline.add_argument("--time-limit", type=float, default=600, help="the part's time limit (s)")
    headline.add_argument("--ddpm-steps", type=int, default=TRAIN_STEPS,
                          help="official DDPM steps to time (fewer: extrapolated to 1000)")
    headline.add_argument("--reserve", type=float, default=30,
                          help="seconds kept for what follows the official sampler (else it is extrapolated)")
    headline.add_argument("--max-batch", type=int, default=64, help="cap of the largest sampling batch")
    headline.add_argument("--min-compile", type=float, default=60,
                          help="skip torch.compile with fewer seconds left than this")
    headline.add_argument("--keep-going", action="store_true",
                          help="an optional variant that fails becomes a note (for the GPU run; a dry run stops)")
    headline.add_argument("--merge", type=Path, default=None, metavar="LOGDIR",
                          help="merge the parts in LOGDIR into bs_ldm_gpu.json and .md, and stop")
    headline.add_argument("--command", default="", help="the command line to record (with --merge)")
    headline.add_argument("--end-to-end", type=Path, default=None, help="the benchmark's JSON (with --merge)")
    headline.add_argument("--dry-run", action="store_true", help="mark the merged summary as a dry run")
    args = parser.parse_args()

    if args.merge is not None:
        write_summary(args.merge, args.command, args.dry_run, args.end_to_end)
        return
    from bs_lib.config import detect_device, environment_report

    device = detect_device(args.device)
    print(environment_report())
    with torch.device("meta"):
        sizes = build(args.preset, torch.device("meta"), channels_last=False)
    print(f"\npreset {args.preset}: {SIZES[args.preset]}² images, UNet {count_parameters(sizes.unet):,} "
          f"+ autoencoder {count_parameters(sizes.autoencoder.autoencoder):,} parameters\n")
    if args.headline is None:
        survey(args, device)
        return
    fragment = Fragment(args.json, environment=environment(device), preset=args.preset,
                        image_size=SIZES[args.preset])
    part = headline_sampling if args.headline == "sampling" else headline_training
    part(args, device, fragment)
    print(f"\n{args.headline}: done" + (f", results in {args.json}" if args.json else ""))


if __name__ == "__main__":
    main()
