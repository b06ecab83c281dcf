r"""How long each notebook's ``colab`` profile runs on a free Colab T4, estimated from FLOP counts.

There is no T4 to time the notebooks on, so their run time is *computed*, in four steps.

1. **The work**: the training runs and the prediction and sampling passes each notebook's
   ``colab`` profile performs, read from the notebook (configs, overrides, steps, images,
   sampling steps; :func:`notebook_jobs`).
2. **The FLOPs**, counted by ``torch.utils.flop_counter.FlopCounterMode``. One optimiser step
   is the forward and backward pass of the objective's ``losses(batch, step)`` on a batch of
   the config's ``batch_size`` at its ``image_size`` (BS-LDM's stage 2 reads cached latents:
   the UNet alone, the pairs encoded once per run). A BS-LDM sample is the encoder, one UNet
   evaluation per DDIM, DPM-Solver or DDPM step, and the decoder. The networks live on the
   ``meta`` device (shapes, no numbers), so the count is exact at 256² and takes seconds.
3. **The seconds.** A pass takes the longer of two times, since the GPU computes while
   Python launches the next kernels:

   * its FLOPs at a sustained rate: ``--tflops`` 8 under fp16 autocast (training and
     validation; ``mixed_precision: auto`` is fp16 on a T4), ``--fp32-tflops`` 3.5 for the
     notebooks' predictions, which run without autocast. NVIDIA's ResNet-50 v1.5 PyTorch
     figures for the T4: 1 190 images/s at batch 128 with mixed precision (≈ 9.8 TFLOPS at
     8.2 GFLOP an image; 8.6 TFLOPS at batch 16), 428 images/s in fp32 (3.5 TFLOPS). Our
     networks are smaller, so a little less. In the same tables a V100 trains at about the
     FLOP rate it infers at, so one rate serves forward and backward passes;
   * its operators at ``--op-us`` 26 µs each (roughly one kernel launch): a small network
     at a small batch leaves the GPU waiting for Python. A DDIM step of the ``colab`` UNet
     took 20–24 ms on an H200 at batch 1 and at batch 64 (``results/bs_ldm_gpu.md``) and
     dispatches about 840 operators; :func:`sanity` checks the figure against the training
     step on the same page. Colab's slower host CPU can only make it larger.

   Normalisations, activations and the optimiser are memory traffic the FLOP counter does
   not see; the sustained rate is meant to absorb them.
4. **Per notebook**: the passes, plus ``--overhead`` 2 minutes (installing ``bs_lib``,
   imports, CUDA, rendering the phantom, checkpoints) and, for notebook 02, ``--download``
   5 minutes for SZCH-X-Rays (an allowance: it depends on the connection).

Assumptions. "In order": the notebooks run one after the other, each on a fresh runtime, with
Google Drive mounted, so a finished run of an earlier notebook is found when its config
matches (``bs_lib.train.finished_run``); "alone": nothing is found. A fresh runtime has no
SZCH-X-Rays (the data folder is not on Drive), so 03–09 train on the phantom, and 09 finds
03's six runs (the benchmark's names) and BS-LDM's two stages, and retrains 04's and 05's
methods (other names). Split sizes are SZCH-X-Rays' 592 / 74 / 75, more than the phantom's.

    python benchmarks/colab_time.py [--tflops 8] [--fp32-tflops 3.5] [--op-us 26]

``--num-eval``, ``--step-counts`` and ``--ablation-steps`` try other values of notebook 08's constants.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from bs_lib.configs import load_config
from bs_lib.evaluate import DEFAULT_TEST_IMAGES
from bs_lib.train import TrainConfig, build_objective

PROFILE = "colab"
SPLIT = {"train": 592, "val": 74, "test": 75}  # SZCH-X-Rays' official split (the phantom's is smaller)
REAL_PAIRS = 6  # bs_lib.datasets.real_pairs
STAND_IN_TEST = 40  # notebook 05's shifted phantom: the phantom's test split
SUPERVISED = ["gusarev_ae", "vae", "vq_vae", "resnet_bs", "unet", "unet_plus_plus"]  # notebook 03
#: notebooks/08_bs_ldm_sampling.py, the ``colab`` entries of NUM_EVAL, STEP_COUNTS and ABLATION_STEPS
NOTEBOOK_08 = {"NUM_EVAL": 32, "STEP_COUNTS": [5, 10, 20, 50, 100], "ABLATION_STEPS": 4000}
H200_STAGE2_IMAGES_PER_S = 223.5  # results/bs_ldm_gpu.md: colab stage 2, batch 16, fp32, encoding every step



@dataclass(frozen=True)
class Work:
    """One pass: floating-point operations, and operators dispatched (about one kernel launch each)."""

    flops: float
    ops: int

    def times(self, batch: int) -> Work:
        """The same pass on ``batch`` images (counted on one): the FLOPs grow, the launches do not."""
        return Work(self.flops * batch, self.ops)


class OperatorCount(TorchDispatchMode):
    """Counts the ATen operators a computation dispatches."""

    count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def counted(compute: Callable[[], object]) -> Work:
    with FlopCounterMode(display=False) as flops, OperatorCount() as ops:
        compute()
    return Work(flops.get_total_flops(), ops.count)


def per_config(count: Callable[[TrainConfig], object]) -> Callable[[TrainConfig], object]:
    """``count(config)`` once per config, on the meta device (a run's name and folder change nothing)."""
    found: dict[str, object] = {}

    def cached(config: TrainConfig):
        values = {k: v for k, v in config.to_dict().items() if k not in ("name", "output_dir")}
        key = json.dumps(values, sort_keys=True, default=str)
        if key not in found:
            with torch.device("meta"):
                found[key] = count(config)
        return found[key]

    return cached


def objective_of(config: TrainConfig):
    """The config's objective; a distillation student gets its teacher built rather than trained."""
    if config.method != "distillation":
        return build_objective(config)
    from bs_lib.models.distillation import Distillation, teacher_config

    arguments = dict(config.method_args)
    return Distillation(objective_of(teacher_config(arguments.pop("teacher"), config.output_dir)), **arguments)


def training_batch(config: TrainConfig) -> dict:
    """A batch as the loop reads it: image pairs (and target radiographs), or BS-LDM's cached latents."""
    n, side = config.batch_size, config.image_size
    if config.method_args.get("cache_latents"):
        from bs_lib.models.vqgan import VQGAN_PRESETS

        z = side // VQGAN_PRESETS[config.method_args["preset"]].downsampling_factor
        return {"z_soft": torch.randn(n, 4, z, z), "z_cxr": torch.randn(n, 4, z, z)}
    return {key: torch.rand(n, 1, side, side) for key in ("cxr", "soft", "target_cxr")}


@per_config
def step_work(config: TrainConfig) -> Work:
    """One optimiser step: ``losses`` at the last step (every group active), each group's backward pass."""
    objective, batch = objective_of(config).train(), training_batch(config)
    groups = objective.parameter_groups()

    def step() -> None:
        for name, loss in objective.losses(batch, config.steps - 1).items():
            if not name.startswith("log/"):
                loss.backward(inputs=groups[name])

    return counted(step)


@per_config
@torch.no_grad()
def predict_work(config: TrainConfig) -> Work:
    """One image through ``predict``; for BS-LDM one UNet evaluation, what its validation does per pair."""
    objective = objective_of(config).eval()
    image = torch.rand(1, 1, config.image_size, config.image_size)
    if config.method != "bs_ldm":
        return counted(lambda: objective.predict(image))
    z = objective.autoencoder.encode(image)
    return counted(lambda: objective.denoiser(z)(torch.randn_like(z), torch.tensor([500])))


@per_config
@torch.no_grad()
def sampling_parts(config: TrainConfig) -> dict[str, Work]:
    """Per image: BS-LDM's encoder, one sampling step (the UNet and the sampler's arithmetic), the decoder."""
    ldm = objective_of(config).eval()
    image = torch.rand(1, 1, config.image_size, config.image_size)
    z = ldm.autoencoder.encode(image)
    one, two = (counted(lambda n=n: ldm.sample_latent(z, sampling_steps=n)) for n in (1, 2))
    encode, decode = counted(lambda: ldm.autoencoder.encode(image)), counted(lambda: ldm.autoencoder.decode(z))
    return {"encode": encode, "decode": decode,
            "step": Work(two.flops - one.flops, two.ops - one.ops)}


@dataclass(frozen=True)
class T4:
    tflops: float = 8.0  # fp16 autocast, sustained
    fp32_tflops: float = 3.5  # predictions without autocast
    op_us: float = 26.0  # microseconds per operator launched

    def seconds(self, work: Work, fp32: bool = False) -> float:
        rate = (self.fp32_tflops if fp32 else self.tflops) * 1e12
        return max(work.flops / rate, work.ops * self.op_us * 1e-6)

    def passes(self, work: Work, images: int, batch: int, fp32: bool = True) -> float:
        """``images`` through a pass counted on one image, ``batch`` at a time."""
        batch = max(1, min(batch, images))
        return math.ceil(images / batch) * self.seconds(work.times(batch), fp32)


@dataclass
class Job:
    label: str
    seconds: float
    reused: bool = False  # a finished run of an earlier notebook, found when the notebooks run in order


def training(gpu: T4, label: str, method: str, *, validate: bool = False, reused: bool = False,
             **overrides) -> Job:
    """A training run of ``load_config(method, "colab", **overrides)``, its validations and latent cache."""
    config = load_config(method, PROFILE, **overrides)
    seconds = config.steps * gpu.seconds(step_work(config))
    if validate and config.val_every:
        validation = gpu.passes(predict_work(config), SPLIT["val"], config.batch_size, fp32=False)
        seconds += config.steps // config.val_every * validation
    if config.method_args.get("cache_latents"):
        pairs = SPLIT["train"] + (SPLIT["val"] if validate else 0)
        seconds += gpu.passes(sampling_parts(config)["encode"], 2 * pairs, 16)
    return Job(f"{label} ({config.steps} steps × {config.batch_size})", seconds, reused)


def inference(gpu: T4, label: str, passes: list[tuple[str, int, int, dict]]) -> Job:
    """Predictions: (method, images, batch, overrides) for each pass, in fp32."""
    return Job(label, sum(gpu.passes(predict_work(load_config(method, PROFILE, **overrides)), images, batch)
                          for method, images, batch, overrides in passes))


def sampling(gpu: T4, images: int, steps: int, batch: int, decodes: int = 1) -> float:
    """Seconds to sample ``images`` with BS-LDM in ``steps`` steps, ``batch`` at a time, in fp32."""
    parts, batch = sampling_parts(load_config("bs_ldm", PROFILE)), min(batch, images)
    one_batch = (gpu.seconds(parts["encode"].times(batch), True) + decodes * gpu.seconds(
        parts["decode"].times(batch), True) + steps * gpu.seconds(parts["step"].times(batch), True))
    return math.ceil(images / batch) * one_batch



def stages(gpu: T4) -> list[Job]:
    """BS-LDM's two stages as notebooks 06 and 07 train them, found by 08 and 09 (07 finds stage 1)."""
    return [training(gpu, "ML-VQGAN (06)", "ml_vqgan", reused=True),
            training(gpu, "BS-LDM stage 2 (07)", "bs_ldm", validate=True, reused=True)]


def notebook_03(gpu: T4, test: int) -> list[Job]:
    """Six supervised models under the benchmark's run names; the test split through each and UNet++'s heads."""
    passes = [(m, test, test, {}) for m in [*SUPERVISED, "unet_plus_plus"]]
    return [*(training(gpu, m, m) for m in SUPERVISED), inference(gpu, "test split", passes)]


def notebook_04(gpu: T4, test: int) -> list[Job]:
    """pix2pix, MCA-Net and the greedy pix2pix (the same network), each validated; test images one at a time."""
    passes = [(m, test, 1, {}) for m in ("pix2pix", "mca_net", "pix2pix")]
    passes += [(m, test, test, {}) for m in ("pix2pix", "mca_net")]  # bone-free inputs
    return [training(gpu, "pix2pix", "pix2pix", validate=True), training(gpu, "MCA-Net", "mca_net", validate=True),
            training(gpu, "pix2pix, adversarial ×100", "pix2pix", validate=True,
                     method_args={"adversarial_weight": 1.0}),
            inference(gpu, "test split", passes)]


def notebook_05(gpu: T4, test: int) -> list[Job]:
    """The student, its teacher, the student alone; five domain-adaptation runs (two on the real pairs)."""
    narrow = {"method_args": {"width": 8}}
    runs = [("source only", 0.0), ("image-level", 0.0), ("DANN", 0.1), ("source only, real", 0.0),
            ("image-level, real", 0.0)]
    passes = [("unet", 2 * test, 1, {}), ("unet", test, 1, narrow), ("distillation", 2 * test, 1, {}),
              ("domain_adaptation", 3 * (test + STAND_IN_TEST) + 2 * REAL_PAIRS, 1, {})]
    return [training(gpu, "distillation student", "distillation", validate=True),
            training(gpu, "its U-Net teacher", "unet", validate=True),
            training(gpu, "student alone", "unet", validate=True, **narrow),
            *(training(gpu, f"DANN U-Net, {label}", "domain_adaptation", validate=True,
                       method_args={"domain_weight": weight}) for label, weight in runs),
            inference(gpu, "test splits, one image at a time", passes)]


def notebook_08(gpu: T4, constants: dict) -> list[Job]:
    """Sampling studies on the trained model, then three ablation runs of ``ABLATION_STEPS``."""
    n, counts = constants["NUM_EVAL"], constants["STEP_COUNTS"]
    studies = (sampling(gpu, 1, 20, 1, decodes=7) + 4 * sampling(gpu, n, 50, n) + sampling(gpu, 2, 1000, 2)
               + 4 * sum(sampling(gpu, n, steps, n) for steps in counts))  # 2 samplers and 2 spacings
    return [*stages(gpu), Job(f"sampling {n} images: thresholds, samplers, spacings, DDPM 1000", studies),
            *(training(gpu, f"ablation {label}", "bs_ldm", steps=constants["ABLATION_STEPS"])
              for label in ("BS-LDM", "without offset noise", "official condition")),
            Job(f"ablation: 5 samplings of {n} images, DDIM 50", 5 * sampling(gpu, n, 50, n))]


#: notebooks/09_benchmark.py's SHORTENED: in colab, a method without a finished run trains this share of its steps
NOTEBOOK_09_SHORTENED = 1 / 4


def notebook_09(gpu: T4) -> list[Job]:
    """Every method: the runs of 03, 04 and 06-08 found; any other trained at a quarter of its steps; then tested."""
    images = DEFAULT_TEST_IMAGES[PROFILE] + 8 + 2 * REAL_PAIRS  # a warm-up batch, and the real pairs once
    learned = ["distillation", "domain_adaptation", "mca_net", "pix2pix", *SUPERVISED]

    def short(label: str, method: str, **options) -> Job:
        steps = max(1, round(load_config(method, PROFILE).steps * NOTEBOOK_09_SHORTENED))
        return training(gpu, label, method, steps=steps, **options)

    return [*(short(f"{m} (03)", m, reused=True) for m in SUPERVISED),
            short("pix2pix (04)", "pix2pix", reused=True), short("MCA-Net (04)", "mca_net", reused=True),
            short("ML-VQGAN (06)", "ml_vqgan", reused=True), short("BS-LDM stage 2 (07)", "bs_ldm", reused=True),
            short("distillation student", "distillation"), short("its U-Net teacher", "unet", validate=True),
            short("DANN U-Net", "domain_adaptation"),
            inference(gpu, "test images, 8 at a time", [(m, images, 8, {}) for m in learned]),
            Job("BS-LDM sampling, DDIM 50", sampling(gpu, images - REAL_PAIRS, 50, 8)
                + sampling(gpu, REAL_PAIRS, 50, 8))]


def notebook_jobs(gpu: T4, constants: dict) -> dict[str, list[Job]]:
    """What each notebook's ``colab`` profile computes on the GPU (00–02 compute nothing that counts)."""
    test = SPLIT["test"]
    return {"00_survey": [], "01_physics": [], "02_datasets": [], "03_autoencoders_cnns": notebook_03(gpu, test),
            "04_gans": notebook_04(gpu, test), "05_distillation_adaptation": notebook_05(gpu, test),
            "06_ml_vqgan": [training(gpu, "ML-VQGAN", "ml_vqgan")],
            "07_bs_ldm_training": [stages(gpu)[0], training(gpu, "BS-LDM stage 2", "bs_ldm", validate=True),
                                   Job("sampling 4 images, DDIM 50", sampling(gpu, 4, 50, 4))],
            "08_bs_ldm_sampling": notebook_08(gpu, constants), "09_benchmark": notebook_09(gpu)}


def report(gpu: T4, jobs: dict[str, list[Job]], overhead: float, download: float) -> str:
    rows = ["| notebook | minutes on a T4 (in order) | alone | main contributors (minutes) |", "|---|---|---|---|"]
    for name, work in jobs.items():
        extra = overhead + (download if name == "02_datasets" else 0)
        total = extra + sum(job.seconds for job in work if not job.reused) / 60
        alone = extra + sum(job.seconds for job in work) / 60
        top = sorted((j for j in work if not j.reused), key=lambda j: -j.seconds)[:3]
        text = "; ".join(f"{j.label} {j.seconds / 60:.1f}" for j in top) or "start-up only"
        total_text, alone_text = (f"**{m:.0f} (over 60)**" if m > 60 else f"{m:.0f}" for m in (total, alone))
        rows.append(f"| {name} | {total_text} | {alone_text} | {text} |")
    return "\n".join(rows)


def sanity(gpu: T4) -> str:
    """The count beside ``results/bs_ldm_gpu.md``'s H200: a DDIM step, and a stage-2 step encoding every pair."""
    parts = sampling_parts(load_config("bs_ldm", PROFILE))
    step = step_work(load_config("bs_ldm", PROFILE, method_args={"cache_latents": False}))
    cached, measured_ms = step_work(load_config("bs_ldm", PROFILE)), 16 / H200_STAGE2_IMAGES_PER_S * 1e3
    return (f"- DDIM step of the colab UNet: {parts['step'].flops / 1e9:.2f} GFLOP an image, {parts['step'].ops} "
            f"operators → {parts['step'].ops * gpu.op_us / 1e3:.1f} ms (H200: 20–24 ms at batch 1 and 64)\n"
            f"- stage-2 step encoding every pair, batch 16: {step.flops / 1e9:.0f} GFLOP, {step.ops} operators → "
            f"{step.ops * gpu.op_us / 1e3:.0f} ms (H200: {measured_ms:.1f} ms, so {step.flops / measured_ms / 1e9:.1f}"
            f" TFLOPS)\n- on cached latents: {cached.flops / 1e9:.0f} GFLOP ({cached.flops / gpu.tflops / 1e9:.0f} ms"
            f" at {gpu.tflops:g} TFLOPS), {cached.ops} operators ({cached.ops * gpu.op_us / 1e3:.0f} ms); encoding "
            f"a pair costs {2 * parts['encode'].flops / cached.flops * 16:.1f}× the UNet's step on it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflops", type=float, default=8.0, help="sustained fp16 TFLOPS of a T4")
    parser.add_argument("--fp32-tflops", type=float, default=3.5, help="sustained fp32 TFLOPS (predictions)")
    parser.add_argument("--op-us", type=float, default=26.0, help="microseconds per operator launched")
    parser.add_argument("--overhead", type=float, default=2.0, help="minutes of start-up per notebook")
    parser.add_argument("--download", type=float, default=5.0, help="minutes to download SZCH-X-Rays (02)")
    parser.add_argument("--num-eval", type=int, default=NOTEBOOK_08["NUM_EVAL"], help="notebook 08's NUM_EVAL")
    parser.add_argument("--step-counts", type=int, nargs="+", default=NOTEBOOK_08["STEP_COUNTS"],
                        help="notebook 08's STEP_COUNTS")
    parser.add_argument("--ablation-steps", type=int, default=NOTEBOOK_08["ABLATION_STEPS"],
                        help="notebook 08's ABLATION_STEPS")
    args = parser.parse_args()
    started = time.perf_counter()
    gpu = T4(args.tflops, args.fp32_tflops, args.op_us)
    constants = {"NUM_EVAL": args.num_eval, "STEP_COUNTS": args.step_counts, "ABLATION_STEPS": args.ablation_steps}
    print(f"T4 at {gpu.tflops:g} TFLOPS fp16, {gpu.fp32_tflops:g} fp32, {gpu.op_us:g} µs per operator; "
          f"notebook 08: {constants}\n")
    print(report(gpu, notebook_jobs(gpu, constants), args.overhead, args.download))
    print("\nSanity checks:\n" + sanity(gpu))
    print(f"\ncounted in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
