r"""The distillation family: a large, accurate teacher taught to a small, fast student.

A hospital workstation or a portable X-ray unit may not afford a large
network per image. Knowledge distillation (Hinton et al., 2015) trains a
small *student* to imitate a large, already trained *teacher*. The teacher's
output is a richer training signal than the dual-energy target alone: it is
smooth, defined for every radiograph (also ones without a target), and it is
a function the student can actually reach.

The loss
--------
With teacher :math:`T` (frozen), student :math:`S`, radiograph :math:`x` and
target :math:`s`:

.. math::
    \mathcal L_S = \alpha\,\ell\big(S(x), s\big)
                 + \beta\,\mathcal L_1\big(S(x), T(x)\big)
                 + \gamma \sum_{l} \frac{\lVert A_l(f^S_l) - f^T_l\rVert_2^2}{\lVert f^T_l\rVert_2^2}

* the *target* term (weight α) is ordinary supervised training;
* the *output* term (β) asks the student to reproduce the teacher's soft-tissue
  estimate (for regression, the counterpart of Hinton's softened class
  probabilities);
* the *feature* term (γ, FitNets, Romero et al. 2015) asks the student's
  intermediate features :math:`f^S_l`, mapped by a learned 1×1 convolution
  :math:`A_l` to the teacher's channel count, to match the teacher's
  :math:`f^T_l` at the same layer, normalised by the teacher's feature energy
  so that the term does not depend on the features' scale.

The student is the teacher's own design (a MONAI ``BasicUNet`` from
:func:`bs_lib.models.cnn.build_unet`) at a smaller width, so layers
correspond by name (``down_4``, the bottleneck; ``upcat_2``, a decoder level).
Only the student (and the adapters, which are dropped at inference) are
trained; the teacher is frozen with :meth:`~bs_lib.engine.Objective.freeze`.

The teacher comes first
-----------------------
``method_args.teacher`` names the teacher's training run: its method and
profile (its config ``bs_lib/configs/<method>.yaml``), the run's name, and
where its checkpoint lies (default ``<output_dir>/<name>``). The student is
built from that checkpoint and never trains it: when it is missing and
``train_if_missing`` is true, the method tells the engine so at registration
(:func:`teacher_runs`), and the engine trains the teacher first, with its own
config (:func:`bs_lib.engine.train_needed_runs`, called by
:func:`~bs_lib.engine.train_or_reuse` and the command line). By hand::

    from bs_lib.configs import load_config
    from bs_lib.engine import Trainer, build_datasets, build_objective
    config = load_config("unet", "smoke", name="unet-teacher-smoke")
    Trainer(build_objective(config), config, *build_datasets(config)).fit()

The teacher is rebuilt from the config stored *in its checkpoint*
(:func:`bs_lib.engine.load_trained`), so it is exactly the network that was
trained. :func:`speed_report` measures what the student buys: inference time
per image and parameters of both networks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bs_lib.engine.checkpoint import CheckpointError, load_trained, resolve_checkpoint
from bs_lib.engine.config import TrainConfig
from bs_lib.engine.objective import Objective, count_parameters, register_method
from bs_lib.engine.recipes import load_config
from bs_lib.losses import get_reconstruction_loss, l1
from bs_lib.models.cnn import build_unet
from bs_lib.models.gan import zero_last_layer
from bs_lib.models.supervised import check_radiographs

DEFAULT_FEATURE_LAYERS = ("down_4", "upcat_2")


class FeatureTap:
    """Keeps the latest output of named sub-modules (forward hooks), for feature distillation."""

    def __init__(self, network: nn.Module, layers: tuple[str, ...] | list[str]):
        modules = dict(network.named_modules())
        missing = [name for name in layers if name not in modules]
        if missing:
            children = ", ".join(name for name, _ in network.named_children())
            raise ValueError(f"{type(network).__name__} has no layer(s) {missing}; top-level layers: {children}.")
        self.features: dict[str, torch.Tensor] = {}
        for name in layers:
            modules[name].register_forward_hook(self._keeper(name))

    def _keeper(self, name: str) -> Callable:
        def keep(module, inputs, output):
            self.features[name] = output

        return keep


def teacher_network(teacher: Objective) -> nn.Module:
    """The image-to-image network inside a teacher objective (its ``network`` attribute)."""
    network = getattr(teacher, "network", None)
    if not isinstance(network, nn.Module):
        raise TypeError(f"The teacher {type(teacher).__name__} has no 'network' attribute; feature distillation "
                        f"needs a supervised teacher (unet, resnet_bs, ...). Set feature_weight: 0 for others.")
    return network


class Distillation(Objective):
    """A frozen teacher objective, a small student U-Net, 1×1 adapters for feature matching.

    ``target_weight`` (α), ``output_weight`` (β), ``feature_weight`` (γ) weigh
    the three terms of the module docstring; ``loss`` is the target term's
    reconstruction loss. The student is residual (it estimates the bone image)
    and starts as the identity baseline.
    """

    def __init__(self, teacher: Objective, width: int = 8, loss: str = "l1", target_weight: float = 1.0,
                 output_weight: float = 1.0, feature_weight: float = 0.1,
                 feature_layers: tuple[str, ...] | list[str] = DEFAULT_FEATURE_LAYERS):
        super().__init__()
        for name, weight in (("target_weight", target_weight), ("output_weight", output_weight),
                             ("feature_weight", feature_weight)):
            if weight < 0:
                raise ValueError(f"{name} must be 0 or more, got {weight}.")
        self.teacher = self.freeze(teacher)
        self.student = zero_last_layer(build_unet(width))
        self.size_multiple = int(getattr(self.student, "size_multiple", 1))
        self.reconstruction_loss = get_reconstruction_loss(loss)
        self.target_weight, self.output_weight, self.feature_weight = target_weight, output_weight, feature_weight
        self.feature_layers = list(feature_layers) if feature_weight > 0 else []
        self.adapters = nn.ModuleDict()
        if self.feature_layers:
            self.teacher_tap = FeatureTap(teacher_network(teacher), self.feature_layers)
            self.student_tap = FeatureTap(self.student, self.feature_layers)
            for name, (student_channels, teacher_channels) in self._channels().items():
                self.adapters[name] = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)

    def _channels(self) -> dict[str, tuple[int, int]]:
        probe = torch.zeros(1, 1, self.size_multiple, self.size_multiple)
        with torch.no_grad():
            was_training = self.student.training
            self.student.eval()
            self.student(probe)
            self.teacher.predict(probe)
            self.student.train(was_training)
        return {name: (self.student_tap.features[name].shape[1], self.teacher_tap.features[name].shape[1])
                for name in self.feature_layers}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"model": [*self.student.parameters(), *self.adapters.parameters()]}

    def student_estimate(self, cxr: torch.Tensor) -> torch.Tensor:
        """The student's soft-tissue estimate (unclipped): radiograph minus its bone estimate."""
        return cxr - self.student(cxr)

    def losses(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        cxr, soft = batch["cxr"], batch["soft"]
        check_radiographs(cxr, self.size_multiple, "Distillation")
        with torch.no_grad():
            teacher_estimate = self.teacher.predict(cxr).float()
        estimate = self.student_estimate(cxr)
        target_term = self.reconstruction_loss(estimate.float(), soft.float())
        output_term = l1(estimate.float(), teacher_estimate)
        total = self.target_weight * target_term + self.output_weight * output_term
        logs = {"log/target": target_term.detach(), "log/teacher": output_term.detach()}
        if self.feature_layers:
            feature_term = sum(self._feature_distance(name) for name in self.feature_layers) / len(self.feature_layers)
            total = total + self.feature_weight * feature_term
            logs["log/features"] = feature_term.detach()
        return {"model": total, **logs}

    def _feature_distance(self, name: str) -> torch.Tensor:
        teacher = self.teacher_tap.features[name].detach().float()
        student = self.adapters[name](self.student_tap.features[name]).float()
        return (student - teacher).square().mean() / teacher.square().mean().clamp(min=1e-8)

    @torch.no_grad()
    def predict(self, cxr: torch.Tensor) -> torch.Tensor:
        """The student's estimate in [0, 1]: the fast network is the deliverable."""
        check_radiographs(cxr, self.size_multiple, "Distillation")
        return self.student_estimate(cxr).clamp(0, 1)

    @torch.no_grad()
    def predict_teacher(self, cxr: torch.Tensor) -> torch.Tensor:
        return self.teacher.predict(cxr)


# --------------------------------------------------------------------------- the teacher


def teacher_run_dir(teacher: dict, output_dir: str) -> Path:
    """Where the teacher's run lives: ``teacher.checkpoint``, else ``<output_dir>/<teacher.name>``."""
    if teacher.get("checkpoint"):
        return Path(teacher["checkpoint"])
    return Path(output_dir) / teacher_config(teacher, output_dir).name


def teacher_config(teacher: dict, output_dir: str) -> TrainConfig:
    """The teacher's training config: ``bs_lib/configs/<method>.yaml`` at ``profile``, with ``overrides``."""
    method, profile = teacher.get("method", "unet"), teacher.get("profile", "smoke")
    overrides = {"output_dir": output_dir, **(teacher.get("overrides") or {})}
    overrides.setdefault("name", f"{method}-teacher-{profile}")
    return load_config(method, profile, **overrides)


def existing_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint folder at ``run_dir`` (a checkpoint, or a run's latest), or None."""
    try:
        return resolve_checkpoint(run_dir)
    except CheckpointError:
        return None


def teacher_runs(config: TrainConfig) -> list[TrainConfig]:
    """The run a student needs trained first: its teacher's, when no checkpoint is there and ``train_if_missing``."""
    teacher = config.method_args.get("teacher")
    if not isinstance(teacher, dict) or not teacher.get("train_if_missing", False):
        return []
    run_dir = teacher_run_dir(teacher, config.output_dir)
    if existing_checkpoint(run_dir) is not None:
        return []
    needed = teacher_config(teacher, config.output_dir)
    needed.output_dir, needed.name = str(run_dir.parent), run_dir.name
    return [needed]


def trained_teacher(teacher: dict, output_dir: str) -> Objective:
    """The trained teacher, rebuilt from its checkpoint; a missing one is an error that says how to train it."""
    run_dir = teacher_run_dir(teacher, output_dir)
    found = existing_checkpoint(run_dir)
    if found is None:
        method, profile = teacher.get("method", "unet"), teacher.get("profile", "smoke")
        how = ("train_if_missing is set: call bs_lib.engine.train_needed_runs(config) before building the student "
               "(train_or_reuse and the command line do)" if teacher.get("train_if_missing", False)
               else "or set method_args.teacher.train_if_missing: true")
        raise CheckpointError(
            f"No teacher checkpoint in {run_dir}. Train the teacher first, e.g. "
            f"config = load_config({method!r}, {profile!r}, name={run_dir.name!r}, "
            f"output_dir={str(run_dir.parent)!r}); Trainer(build_objective(config), config, "
            f"*build_datasets(config)).fit() — {how}.")
    objective, _ = load_trained(found, device="cpu")
    return objective


@register_method("distillation", family="distillation", label="distilled U-Net (student)", needs=teacher_runs)
def build_distillation(config: TrainConfig) -> Distillation:
    """``method_args``: ``teacher`` (method, profile, overrides, checkpoint, train_if_missing), and the
    student's ``width``, ``loss``, ``target_weight``, ``output_weight``, ``feature_weight``, ``feature_layers``."""
    args = dict(config.method_args)
    teacher_spec = args.pop("teacher", None)
    allowed = {"width", "loss", "target_weight", "output_weight", "feature_weight", "feature_layers"}
    unknown = set(args) - allowed
    if unknown:
        raise ValueError(f"distillation: unknown method_args {sorted(unknown)}; valid keys are teacher, "
                         f"{', '.join(sorted(allowed))}.")
    if not isinstance(teacher_spec, dict):
        raise ValueError("distillation: method_args.teacher must name the teacher's run, e.g. "
                         "{method: unet, profile: smoke, train_if_missing: true}.")
    return Distillation(trained_teacher(teacher_spec, config.output_dir), **args)


# --------------------------------------------------------------------------- speed


@torch.no_grad()
def seconds_per_image(predict: Callable[[torch.Tensor], torch.Tensor], image_size: int, batch_size: int = 4,
                      repeats: int = 5, device: torch.device | str = "cpu") -> float:
    """Inference time per image: the fastest of ``repeats`` timed batches, after one warm-up batch.

    The minimum, not the mean, because other programs on the machine only ever
    make a run slower.
    """
    cxr = torch.rand(batch_size, 1, image_size, image_size, device=device)
    predict(cxr)
    times = []
    for _ in range(repeats):
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        predict(cxr)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times) / batch_size


@torch.no_grad()
def gflops_per_image(predict: Callable[[torch.Tensor], torch.Tensor], image_size: int,
                     device: torch.device | str = "cpu") -> float:
    """Floating-point operations of one prediction, in billions: counted, so the same on every machine."""
    with FlopCounterMode(display=False) as counter:
        predict(torch.rand(1, 1, image_size, image_size, device=device))
    return counter.get_total_flops() / 1e9


def speed_report(distillation: Distillation, image_size: int, batch_size: int = 4, repeats: int = 5) -> dict:
    """Parameters, operations and inference time per image of teacher and student, and the student's speed-up.

    The operation counts are exact; the times (and so the speed-up) are measurements of this
    machine at this moment, which a busy core can turn around for small images.
    """
    device = next(distillation.student.parameters()).device
    was_training = distillation.training
    distillation.eval()
    try:
        teacher_s = seconds_per_image(distillation.predict_teacher, image_size, batch_size, repeats, device)
        student_s = seconds_per_image(distillation.predict, image_size, batch_size, repeats, device)
        teacher_gflops = gflops_per_image(distillation.predict_teacher, image_size, device)
        student_gflops = gflops_per_image(distillation.predict, image_size, device)
    finally:
        distillation.train(was_training)
    return {"teacher_parameters": count_parameters(distillation.teacher),
            "student_parameters": count_parameters(distillation.student),
            "teacher_gflops_per_image": teacher_gflops, "student_gflops_per_image": student_gflops,
            "teacher_ms_per_image": 1000 * teacher_s, "student_ms_per_image": 1000 * student_s,
            "speedup": teacher_s / student_s}
