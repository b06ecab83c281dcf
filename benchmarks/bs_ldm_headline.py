"""The headline measurement (``bs_ldm_speed.py --headline``): official against ours, one part at a time.

``headline_sampling`` times the official sampler against ours on one model in
one process, then ours at the largest batch that fits; ``headline_training``
the official loop against ours with cached latents. Each writes its results
into a :class:`bs_ldm_timing.Fragment` as they come. Also here: the UNet
wrappers that replay it as CUDA graphs, captured or through ``torch.compile``.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from bs_ldm_timing import (
    OFFICIAL,
    OURS,
    SIZES,
    TRAIN_STEPS,
    Deadline,
    Fragment,
    autocast,
    build,
    cached,
    gib,
    half_precision,
    images,
    peak_gib,
    precision_name,
    reset_peak,
    set_layout,
    time_sampling,
    timed,
    train_speed,
)
from torch import nn

from bs_lib.models.ldm import ConditionalLDM

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


# --------------------------------------------------------------------------- headline: sampling


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
