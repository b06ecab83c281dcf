"""Suppress bones in your own radiographs with a trained checkpoint.

``python -m bs_lib sample CHECKPOINT INPUT [INPUT ...] --output DIR``

* ``CHECKPOINT`` is a run folder (its latest checkpoint is used) or a
  checkpoint folder written by :mod:`bs_lib.engine`, of any method of the
  course (BS-LDM, a U-Net, ...): its ``state.json`` says how to rebuild it.
* ``INPUT`` is a file or a folder of PNG, JPEG, TIFF, DICOM or raw JSRT images
  of any size. Each is read with :func:`bs_lib.io.read_image` (bone bright),
  resized to the model's working size (bilinear, aspect ratio not kept, as
  BS-LDM does) and suppressed. The *bone layer* the model removed (radiograph
  minus estimate), with its negative values set to 0 (bone only brightens)
  and, for a checkpoint trained on the phantom only, without its structure
  coarser than the rib pattern (``--bone-rules`` chooses), is resized back to the input's size and
  subtracted from the full-size radiograph, so every detail finer than the
  working size is kept (:func:`bs_lib.bone_layer.transfer`). The result is written as PNG with the
  input's bit depth (8 or 16 bits) and polarity: an image read as a negative
  (``--negative``) is written as a negative.
* ``--ensemble CHECKPOINT [CHECKPOINT ...]`` adds more checkpoints: each
  takes its own bone layer (its own working size and rules), and the mean of
  the layers is subtracted (:func:`bs_lib.bone_layer.average`). Models trained
  with other seeds or architectures agree on the bone more than on anything
  else they remove (``benchmarks/ensemble.py``).
* A before/after figure (radiograph, soft tissue, removed bone) is written
  beside each result unless ``--no-figures``.
* A diffusion checkpoint samples as its config says (the ``full`` config:
  the official 1 000 DDPM steps) unless ``--sampler``, ``--sampling-steps``,
  ``--spacing`` or ``--threshold`` say otherwise, e.g. ``--sampler ddim --sampling-steps 20``, which
  (on trailing timesteps, the default) scores as well as the 1 000 steps on the course's
  benchmark (``benchmarks/results/bs_ldm_samplers_smoke_128.md``) in a fiftieth of the time.
  ``--residual`` returns the radiograph minus the bone layer between two decodings instead of the
  decoded image, keeping what the autoencoder cannot reconstruct (:mod:`bs_lib.models.ldm`; the
  default for a diffusion checkpoint trained on the phantom only, ``--no-residual`` turns it off);
  ``--samples K`` averages ``K`` sampled soft-tissue images (less sampled texture, ``K`` times the time).

The command says what the checkpoint learned from (``state.json`` records its
config) and warns when its training pairs were the synthetic phantom: such
models have measured *worse than doing nothing* on real radiographs from
another scanner, and better on the course's real development pairs
(:data:`PHANTOM_ONLY_WARNING`).

Nothing is overwritten unless ``--overwrite`` is given. An input that cannot be
read (empty, truncated, not an image) is skipped and reported at the end, with
why; the others are still suppressed, and the exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import bs_lib.models  # noqa: F401  (registers every method a checkpoint may hold)
from bs_lib import bone_layer, io
from bs_lib.diffusion import SAMPLERS, SPACINGS, THRESHOLDS
from bs_lib.engine import accepts_generator, load_trained

SUPPORTED = set(io.SUPPORTED_SUFFIXES)


load_suppressor = load_trained  # (checkpoint, device=None, use_ema=True) -> (objective, config), in eval mode

PHANTOM_ONLY_WARNING = (
    "This checkpoint learned bone suppression from synthetic phantom pairs only. Models trained that way were "
    "measured on real dual-energy pairs from another scanner at 2.7 to 4.8 dB PSNR *worse* than the "
    "unprocessed radiograph, adding structure that is not bone; on the course's six real development pairs "
    "(one hospital, 256²) they gained +0.4 to +4.0 dB, and ResNet-BS, the VAE and BS-LDM lowered the "
    "symmetric bone suppression ratio (README, 'Training on the phantom for real radiographs'; "
    "benchmarks/results/real_pairs_256_seeds.md). The highpass bone-layer rule applied by default here "
    "lifts nine of ten such models above doing nothing on both measures there (do_no_harm_256.md); the "
    "external scanner was measured without it. Where a radiograph shows less bone (the same pairs with their "
    "bone layer scaled by 0.4, doing nothing already at 30.6 dB), none of the ten passes even with the rule: "
    "the models also remove vessel and organ edges (do_no_harm_256_weak_bone.md); trained through the "
    "faint-bone chain (data_args.randomise: faint-bone) they lose 3.8 points there instead of 12.9, and gain "
    "half as much on the pairs as recorded (do_no_harm_256_faint_bone*.md). Averaging the bone layers of "
    "several such checkpoints does less harm (--ensemble; one per family, ten in all, gained +3.70 dB and "
    "+12.7 points there, and +3.70 dB and +7.0 points at bone x0.4; benchmarks/results/ensemble_256.md). "
    "Read its output as a "
    "demonstration, not as a soft-tissue image; for real use train on real pairs (data: szch-x-rays).")


#: Bone-layer rules ``sample`` applies unless told otherwise: bone only brightens a radiograph. On the real
#: development pairs at 1024² it raised PSNR by 0.12 dB on average over ten families
#: (benchmarks/results/do_no_harm_128.md).
DEFAULT_BONE_RULES = ("nonnegative",)
#: ... and for a checkpoint trained on the phantom only, whose bone layer takes in the body's large-scale
#: brightness on a real chest ("bright is bone" on the phantom): ``highpass`` first. On the real development
#: pairs at 1024² (ten models, three seeds at 256²) that adds +0.47 dB and +5.7 points of symmetric BSR to
#: ``nonnegative`` alone, and nine of ten models instead of eight do not lower it; on the phantom itself it costs
#: 3.1 dB and 10.9 points (benchmarks/results/do_no_harm_256.md). ``gain`` is not added: there it moved the mean
#: symmetric BSR at bone x0.4 by +0.6 points only (do_no_harm_256_weak_bone.md).
PHANTOM_BONE_RULES = ("highpass", "nonnegative")
#: ... and a diffusion checkpoint (BS-LDM) trained on the phantom only returns the radiograph minus the bone
#: layer between two decodings (``residual``), not its decoding: its autoencoder, trained on the phantom,
#: reconstructs a real chest poorly. With the rules above, on the real development pairs the residual output
#: gains +6.4 [+4.0, +9.1] points of symmetric BSR at 128² (three seeds; decoded: +2.9 [-2.0, +6.8]) and
#: +8.8 [+5.3, +12.3] at 256² (decoded: -1.5) (benchmarks/results/bs_ldm_real_{128,256}.md).
PHANTOM_RESIDUAL = True


class PhantomOnlyWarning(UserWarning):
    """A checkpoint whose training pairs were the synthetic phantom is applied to someone's radiographs."""


def training_data(config) -> tuple[str, bool]:
    """What a checkpoint learned from, in words, and whether its supervised pairs were the phantom's.

    Read from the config that ``state.json`` keeps: ``data`` (a dataset name or
    ``module:function``), ``data_args.randomise`` (random imaging chains) and,
    for domain adaptation, ``data_args.source`` / ``target`` (the unlabelled domain).
    """
    args = dict(config.data_args or {})
    source = args.get("source", config.data) if config.method == "domain_adaptation" else config.data
    words = "synthetic phantom pairs" if source == "phantom" else f"{source} pairs"
    if ":" in str(source):
        words = f"pairs from {source} (a custom dataset)"
    if config.method == "domain_adaptation" and args.get("target"):
        words += f", adapted to unlabelled {args['target']} radiographs"
    if args.get("randomise"):
        chain = args["randomise"]
        words += ", seen through random imaging chains" + (f" ({chain})" if isinstance(chain, str) else "")
    return words, source == "phantom"


@torch.no_grad()
def suppress_image(objective: torch.nn.Module, image: np.ndarray, working_size: int, seed: int = 0,
                   bone_rules: Iterable[str] = DEFAULT_BONE_RULES, **sampling: object) -> np.ndarray:
    """(1, H, W) radiograph in [0, 1] → (1, H, W) soft-tissue estimate, at the input's size.

    The model works at ``working_size``; its bone layer, after ``bone_rules``
    (:data:`bs_lib.bone_layer.RULES`; ``sample`` passes :data:`PHANTOM_BONE_RULES`
    for a phantom-only checkpoint), is brought back to the input's size and
    subtracted (:func:`removed_layer`). ``sampling`` (diffusion models
    only): ``sampler``, ``sampling_steps``, ``spacing``, ``threshold``, ``residual``, ``samples``.
    """
    return bone_layer.subtract(image, removed_layer(objective, image, working_size, seed, bone_rules, **sampling))


@torch.no_grad()
def removed_layer(objective: torch.nn.Module, image: np.ndarray, working_size: int, seed: int = 0,
                  bone_rules: Iterable[str] = DEFAULT_BONE_RULES, **sampling: object) -> np.ndarray:
    """The bone layer the model removes from ``image`` at ``working_size``, after ``bone_rules``, at the input's size.

    (:func:`bs_lib.bone_layer.full_size_layer`; :func:`suppress_image` subtracts it.)
    """
    device = next(objective.parameters()).device
    small = io.resize(image, (working_size, working_size))
    cxr = torch.as_tensor(small, device=device)[None]
    if accepts_generator(objective.predict):  # a diffusion model: it draws noise
        soft = objective.predict(cxr, torch.Generator(device=device).manual_seed(seed), **sampling)
    else:
        soft = objective.predict(cxr)
    soft = soft[0].float().clamp(0, 1).cpu().numpy()
    return bone_layer.full_size_layer(image, small, soft, bone_rules)


def write_png(path: Path, image: np.ndarray, bit_depth: int | None) -> None:
    """A (1, H, W) image in [0, 1] as an 8- or 16-bit greyscale PNG."""
    from PIL import Image

    if bit_depth and bit_depth > 8:
        pixels = np.round(image[0] * 65535).astype(np.uint16)  # Pillow writes uint16 as 16-bit greyscale
    else:
        pixels = np.round(image[0] * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def before_after_figure(radiograph: np.ndarray, soft: np.ndarray, title: str = ""):
    """Radiograph, bone-suppressed image and the removed bone, side by side."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(12, 4.4), constrained_layout=True)
    removed = radiograph[0] - soft[0]
    reach = float(np.abs(removed).max()) or 1.0
    panels = [(radiograph[0], "radiograph", "gray", (0, 1)), (soft[0], "bone suppressed", "gray", (0, 1)),
              (removed, "removed (radiograph − suppressed)", "coolwarm", (-reach, reach))]
    for axis, (image, label, cmap, (low, high)) in zip(axes, panels, strict=True):
        shown = axis.imshow(image, cmap=cmap, vmin=low, vmax=high)
        axis.set_title(label)
        axis.axis("off")
    figure.colorbar(shown, ax=axes[2], shrink=0.8)
    if title:
        figure.suptitle(title)
    return figure


def collect_inputs(inputs: list[Path]) -> list[Path]:
    """Files given, plus the supported images directly inside folders given; clear errors otherwise."""
    files = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in SUPPORTED)
            if not found:
                raise FileNotFoundError(f"{item} contains no image ({', '.join(sorted(SUPPORTED))}).")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item} does not exist.")
    return files


@dataclass
class SuppressionReport:
    """What :func:`suppress_files` did: the images it wrote and the inputs it could not read, with why."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    trained_on: str = ""  # what the checkpoint learned from (training_data)
    bone_rules: tuple[str, ...] = ()  # the bone-layer rules applied
    output: str = ""  # a diffusion checkpoint's output: "residual" or "decoded" ("" for the others)
    ensemble: list[Member] = field(default_factory=list)  # the --ensemble checkpoints, whose layers were averaged in


@dataclass
class Member:
    """One checkpoint of a suppression, and how its bone layer is taken (see :func:`load_member`)."""

    checkpoint: Path
    objective: torch.nn.Module = field(repr=False)
    method: str
    working_size: int
    trained_on: str
    phantom_only: bool
    bone_rules: tuple[str, ...]
    sampling: dict = field(default_factory=dict)
    output: str = ""  # a diffusion checkpoint's output: "residual" or "decoded" ("" for the others)

    def layer(self, image: np.ndarray, seed: int) -> np.ndarray:
        return removed_layer(self.objective, image, self.working_size, seed, self.bone_rules, **self.sampling)


def diffusion_output(objective: torch.nn.Module, sampling: Mapping[str, object]) -> str:
    """A diffusion checkpoint's output under ``sampling``, ``"residual"`` or ``"decoded"`` (``""`` for others)."""
    if not accepts_generator(objective.predict):
        return ""
    settings = getattr(objective, "settings", None)
    return "residual" if sampling.get("residual", getattr(settings, "residual", False)) else "decoded"


def check_sampling(sampling: Mapping[str, object] | None) -> dict:
    """The sampler settings that were given (``None`` dropped), refusing impossible step or sample counts."""
    sampling = {key: value for key, value in (sampling or {}).items() if value is not None}
    if sampling.get("sampling_steps") is not None and sampling["sampling_steps"] < 1:
        raise ValueError(f"--sampling-steps must be at least 1, got {sampling['sampling_steps']}.")
    if sampling.get("samples") is not None and sampling["samples"] < 1:
        raise ValueError(f"--samples must be at least 1, got {sampling['samples']}.")
    return sampling


def load_member(checkpoint: str | Path, device, working_size: int | None, sampling: Mapping[str, object],
                bone_rules: tuple[str, ...] | None) -> Member:
    """A checkpoint, loaded, with its working size, bone-layer rules and diffusion output (:func:`suppress_files`)."""
    objective, config = load_suppressor(checkpoint, device)
    trained_on, phantom_only = training_data(config)
    if bone_rules is None:
        bone_rules = PHANTOM_BONE_RULES if phantom_only else DEFAULT_BONE_RULES
    sampling = dict(sampling) if accepts_generator(objective.predict) else {}
    if phantom_only and accepts_generator(objective.predict):
        sampling.setdefault("residual", PHANTOM_RESIDUAL)
    return Member(Path(checkpoint), objective, config.method, working_size or config.image_size, trained_on,
                  phantom_only, bone_rules, sampling, diffusion_output(objective, sampling))


def suppress_files(checkpoint: str | Path, inputs: Iterable[str | Path], output_dir: str | Path, *,
                   negative: bool = False, working_size: int | None = None, seed: int = 0, figures: bool = True,
                   overwrite: bool = False, device: str | torch.device | None = None,
                   sampling: Mapping[str, object] | None = None,
                   bone_rules: Iterable[str] | None = None,
                   ensemble: Iterable[str | Path] = ()) -> SuppressionReport:
    """Suppress every input image and write ``<name>_suppressed.png`` (+ ``<name>_before_after.png``).

    Each input is read on its own: one that cannot be read (empty, truncated,
    not an image: :class:`bs_lib.io.ImageReadError` or an ``OSError``) is
    skipped and listed in the report's ``failed`` with the reason, and the
    others are still suppressed. Everything else stops the run: a missing
    input, an output that exists (unless ``overwrite``), a bad checkpoint or
    sampler setting (all checked before anything is written), or an error
    while suppressing or writing.

    ``sampling`` overrides a diffusion checkpoint's sampler settings and
    ``bone_rules`` chooses the bone-layer rules (see :func:`suppress_image`);
    ``None`` chooses by what the checkpoint learned from:
    :data:`PHANTOM_BONE_RULES` for the phantom only, else :data:`DEFAULT_BONE_RULES`;
    a diffusion checkpoint trained on the phantom only also returns the
    residual output (:data:`PHANTOM_RESIDUAL`) unless ``sampling`` says otherwise.
    ``ensemble``: more checkpoints, each loaded and set up the same way; the
    mean of all their bone layers is subtracted (:func:`bs_lib.bone_layer.average`).
    """
    from bs_lib.config import progress

    bone_rules = None if bone_rules is None else bone_layer.check_rules(bone_rules)
    files = collect_inputs([Path(p) for p in inputs])
    output_dir = Path(output_dir)
    targets = [output_dir / f"{f.stem}_suppressed.png" for f in files]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists ({len(existing)} outputs in all); pass --overwrite to replace.")
    sampling = check_sampling(sampling)
    members = [load_member(c, device, working_size, sampling, bone_rules) for c in [checkpoint, *ensemble]]
    if sampling and not any(member.output for member in members):
        raise ValueError(f"--sampler, --sampling-steps, --spacing, --threshold, --residual and --samples apply to "
                         f"diffusion checkpoints (BS-LDM); {checkpoint} is a {members[0].method!r} model, "
                         f"which predicts in one pass: drop them.")
    phantom_only = sum(member.phantom_only for member in members)
    if phantom_only:
        who = "This checkpoint" if len(members) == 1 else f"{phantom_only} of the {len(members)} checkpoints averaged"
        warnings.warn(PHANTOM_ONLY_WARNING.replace("This checkpoint", who, 1), PhantomOnlyWarning, stacklevel=2)
    first = members[0]
    report = SuppressionReport(trained_on=first.trained_on, bone_rules=first.bone_rules, output=first.output,
                               ensemble=members[1:])
    output_dir.mkdir(parents=True, exist_ok=True)
    for file, target in progress(list(zip(files, targets, strict=True)), desc="suppressing", unit="image"):
        try:
            image, meta = io.read_image(file, invert=True if negative else None)
        except (io.ImageReadError, OSError) as error:
            report.failed.append((file, str(error).removeprefix(f"{file}: ")))  # the report names the file
            continue
        soft = bone_layer.subtract(image, bone_layer.average([member.layer(image, seed) for member in members]))
        write_png(target, io.to_negative(soft) if negative else soft, meta.get("bit_depth"))
        if figures:
            save_before_after(output_dir / f"{file.stem}_before_after.png", image, soft, file.name)
        report.written.append(target)
    return report


def save_before_after(path: Path, radiograph: np.ndarray, soft: np.ndarray, title: str) -> None:
    """Write :func:`before_after_figure` as a PNG and free it."""
    import matplotlib.pyplot as plt

    figure = before_after_figure(radiograph, soft, title)
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="a run folder or checkpoint folder written by bs-lib train")
    parser.add_argument("inputs", type=Path, nargs="+", help="radiograph files or folders (PNG, JPEG, TIFF, DICOM)")
    parser.add_argument("--output", type=Path, required=True, help="folder for the suppressed images")
    parser.add_argument("--negative", action="store_true", help="the inputs are negatives (bone dark)")
    parser.add_argument("--size", type=int, default=None, help="working size (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (diffusion models)")
    parser.add_argument("--sampler", choices=list(SAMPLERS), default=None,
                        help=f"diffusion models: {', '.join(SAMPLERS)} (default: the checkpoint's config)")
    parser.add_argument("--sampling-steps", type=int, default=None,
                        help="diffusion models: sampling steps (default: the checkpoint's config)")
    parser.add_argument("--steps", type=int, default=None, dest="renamed_steps",
                        help=argparse.SUPPRESS)  # the old name of --sampling-steps, still understood
    parser.add_argument("--spacing", choices=SPACINGS, default=None,
                        help="diffusion models: where a shorter chain's steps lie, leading or trailing "
                             "(default: the checkpoint's config)")
    parser.add_argument("--threshold", choices=list(THRESHOLDS), default=None,
                        help="diffusion models: the x̂₀ threshold (default: the checkpoint's config, BS-LDM's tat)")
    parser.add_argument("--residual", action=argparse.BooleanOptionalAction, default=None,
                        help="diffusion models: the radiograph minus the bone layer between two decodings, "
                             "instead of the decoded image (default: on for a checkpoint trained on the phantom "
                             "only, else the checkpoint's config)")
    parser.add_argument("--samples", type=int, default=None, metavar="K",
                        help="diffusion models: average K sampled soft-tissue images, K times the sampling time "
                             "(default: the checkpoint's config, 1)")
    parser.add_argument("--bone-rules", nargs="*", choices=bone_layer.RULES, default=None,
                        help="rules for the removed bone layer before it is brought back to the input's size "
                             f"(default: {' '.join(PHANTOM_BONE_RULES)} for a checkpoint trained on the phantom "
                             f"only, else {' '.join(DEFAULT_BONE_RULES)}; give none for the model's layer as is)")
    parser.add_argument("--ensemble", type=Path, nargs="+", default=[], metavar="CHECKPOINT",
                        help="more checkpoints (run or checkpoint folders): the mean of all their bone layers is "
                             "removed, each taken at its own working size with its own rules")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--no-figures", action="store_true", help="skip the before/after figures")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "renamed_steps", None) is not None:
        print("--steps is now --sampling-steps; the old name still works for now.", file=sys.stderr)
        if args.sampling_steps is None:
            args.sampling_steps = args.renamed_steps
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PhantomOnlyWarning)
        report = suppress_files(args.checkpoint, args.inputs, args.output, negative=args.negative,
                                working_size=args.size, seed=args.seed, figures=not args.no_figures,
                                overwrite=args.overwrite, device=args.device,
                                sampling={"sampler": args.sampler, "sampling_steps": args.sampling_steps,
                                          "spacing": args.spacing, "threshold": args.threshold,
                                          "residual": args.residual, "samples": args.samples},
                                bone_rules=args.bone_rules, ensemble=args.ensemble)
    print(f"wrote {len(report.written)} suppressed image(s) to {args.output}")
    print(f"the checkpoint learned from: {report.trained_on}")
    rules = ", ".join(report.bone_rules) or "none (the model's bone layer as is)"
    print(f"bone-layer rules: {rules}")
    if report.output:
        print(f"diffusion output: {report.output}" + (" (the radiograph minus the bone layer between two decodings)"
                                                       if report.output == "residual" else " (the decoded image)"))
    if report.ensemble:
        print(f"averaged with the bone layers of {len(report.ensemble)} more checkpoint(s):")
        for member in report.ensemble:
            print(f"  {member.checkpoint}: {member.method} at {member.working_size}², learned from "
                  f"{member.trained_on}; rules: {', '.join(member.bone_rules) or 'none'}")
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if not report.failed:
        return 0
    print(f"could not read {len(report.failed)} input(s), skipped:", file=sys.stderr)
    for file, reason in report.failed:
        print(f"  {file}: {reason}", file=sys.stderr)
    return 1
