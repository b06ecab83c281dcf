r"""One training loop for every method of the course, on Hugging Face ``accelerate``.

Autoencoders, U-Nets, GANs, distillation, domain adaptation and both stages of
BS-LDM look different on paper, but their training loops are the same loop:
draw a batch, compute some losses, turn each loss into a gradient for *its own*
networks, take an optimiser step, now and then validate and save. This package
is that loop, written once. A method only says *what* to optimise, by
subclassing :class:`Objective`; the :class:`Trainer` does the rest. The engine
never imports a method: methods register themselves (:mod:`bs_lib.models`
registers the course's), and the engine builds them by name.

============== =================================================================
``objective``  the interface a method implements, and the registry of methods
``config``     :class:`TrainConfig`, the run description, with its YAML round trip
``recipes``    the course's runs: one YAML file per method, one section per profile
``data``       the endless, seeded, resumable batch order
``optim``      AdamW per group, learning-rate schedules, EMA
``checkpoint`` writing and reading checkpoints, random states, :func:`load_trained`
``distributed`` devices, precision, several processes
``trainer``    the :class:`Trainer`, and training only what is not trained yet
============== =================================================================

The interface a method implements
---------------------------------
.. code-block:: python

    class Objective(torch.nn.Module):
        def parameter_groups(self) -> dict[str, list[Parameter]]   # default {"model": trainable params}
        def losses(self, batch: dict, step: int) -> dict[str, Tensor]
        def predict(self, cxr: Tensor) -> Tensor                  # (N,1,H,W) in [0,1] -> soft tissue in [0,1]
        def validate(self, batches) -> dict[str, float]            # optional; default: L1/MSE of predict
        def prepare_dataset(self, dataset, device)                 # optional; default: the dataset itself

An :class:`Objective` owns every network of a method (a frozen teacher or a
frozen autoencoder too: wrap it in :meth:`Objective.freeze`). ``losses`` returns
one scalar per parameter group, under the group's name; extra entries named
``"log/<name>"`` are only logged. A group may be left out at a step, e.g. a
discriminator that joins after N steps. Register a method with
``@register_method("unet", family="CNN", label="U-Net")`` on a function
``TrainConfig -> Objective``; :func:`method_info` tells the rest of the course
its family and label.

One optimiser step, and why the groups never disturb each other
---------------------------------------------------------------
With ``grad_accum`` = :math:`K` micro-batches :math:`b_1 … b_K`, the gradient
of group :math:`g` (parameters :math:`\theta_g`) is

.. math:: \nabla_{\theta_g} \frac{1}{K}\sum_{k=1}^{K} L_g(b_k),

and nothing else. A GAN's generator loss :math:`L_G = \ell(D(G(x)))` also
reaches the discriminator's parameters; in a hand-written loop those stray
gradients must be zeroed right before the discriminator's own backward pass.
Here every backward pass is restricted to the group's own parameters
(``loss.backward(inputs=θ_g)``), which has the same effect as "zero each
group's grads right before its backward" and keeps working under gradient
accumulation, where zeroing would also erase the earlier micro-batches.

Groups are updated in the order of the dict that ``losses`` returns (GAN
convention: generator first, then the discriminator, whose loss was computed
on *detached* fakes). All losses of a step come from one forward pass with the
pre-update weights, so each group's update uses gradients at the same point,
as in the textbook alternating GAN update. Two rules follow for ``losses``:
the losses of different groups must not share graph nodes except through
``detach()`` (each graph is freed after its backward), and which groups appear
may depend on ``step`` but not on the data (all processes must agree).

After the gradients: (multi-process) average them across processes, unscale
(fp16), clip to ``max_grad_norm``, ``optimizer.step()``, zero with
``set_to_none``; then every group's LR scheduler steps, and the EMA follows.

Exponential moving average
--------------------------
With ``ema_decay`` = β, shadow weights follow :math:`\bar\theta \leftarrow
\beta\,\bar\theta + (1-\beta)\,\theta` after every step (BS-LDM: β = 0.995).
``trainer.ema_scope()`` swaps them in temporarily (validation uses them when
``val_use_ema``), ``trainer.predict(cxr, use_ema=True)`` predicts with them, and
:func:`load_trained` (``use_ema=True``) loads them for inference.

Learning-rate schedules
-----------------------
One AdamW optimiser per group (``lr``/``betas``/``weight_decay``, overridable per
group in ``groups``; ``weight_decay=0`` is Adam), one scheduler per optimiser,
all functions of the global step :math:`s` times an optional linear warm-up
:math:`\min(1, (s+1)/W)`:

* ``constant``: 1;
* ``cosine``: :math:`r + (1-r)\,\tfrac12\,(1+\cos(\pi p))`, :math:`p` the
  progress after warm-up, :math:`r` = ``min_lr_ratio`` (default 0);
* ``step``: :math:`\gamma^{\lfloor s/\text{step\_size}\rfloor}`;
* ``multistep``: :math:`\gamma^{\#\{m \in \text{milestones}:\, m \le s\}}`
  (BS-LDM's decay by 0.1 at fixed milestones).

Every scheduler steps at every global step, also while its group is skipped.

Checkpoints and exact resume
----------------------------
``<output_dir>/<name>/checkpoints/step-000100/`` holds ``model.safetensors``
(the whole Objective state), ``ema.safetensors``, ``optimizers.pt`` and
``schedulers.pt`` (state dicts only, read back with ``weights_only=True``) and
``state.json``: the step, the config, the data position, the history, the
random states of Python, NumPy and torch of every process, and library
versions. A checkpoint is written to a hidden temporary folder and renamed
into place, so a killed run never leaves half a checkpoint. Resuming restores
all of it, and the data order is a pure function of (seed, epoch), so a run
that is killed and resumed ends with exactly the weights of an uninterrupted
run on the same machine (CPU; GPU kernels may be non-deterministic).
Validation runs inside a saved-and-restored random state, so it never changes
the training trajectory. Randomness *inside* DataLoader worker processes is
not part of a checkpoint: datasets that augment should seed from the index.

A finished run is never trained twice: :func:`finished_run` finds the
checkpoint of a run that trained *exactly this config* to its last step,
:func:`train_or_reuse` and :func:`fit_or_reuse` reuse it (or resume an
interrupted one), and :func:`load_trained` rebuilds any method from its
checkpoint alone, because ``state.json`` holds the config it was built from.

Devices, precision and several processes
----------------------------------------
``accelerate`` chooses the device and, under ``accelerate launch
--multi_gpu --num_processes 2`` (or ``torchrun --nproc_per_node 2``), starts
the process group: NCCL on GPUs, gloo on a machine without CUDA, where the
flag's name misleads but it is what starts several processes (``--cpu
--num_processes 2`` starts only one unless MPI is configured).
``batch_size`` is per process. Each process reads its own share of every
epoch's permutation, and gradients are averaged with an explicit all-reduce
before each optimiser step, rather than through a DDP wrapper: an Objective is
called through ``losses``, not ``forward``, and holds several networks with
separate optimisers, which DDP wrappers handle badly. Logging, progress bars
and checkpoint writing happen on the main process only; float buffers (e.g.
BatchNorm statistics) are averaged across processes before validation and
checkpoints. Mixed precision is ``torch.autocast`` with bf16 (no scaling
needed) or fp16 (one gradient scaler per group); ``auto`` (the colab and full
configs) picks bf16 on GPUs with bf16 hardware (compute capability 8.0+), fp16
on older ones such as Colab's T4, whose convolutions have no bf16 kernels, and
float32 on CPUs (see :func:`resolve_precision`).

``accelerate`` refuses a second ``Accelerator`` with another precision in one
process. The engine never asks for one: it does its own autocast and loss
scaling, and takes from accelerate only the process state (which device,
which process, how many), so a notebook can train first in fp32, then in bf16,
without restarting its kernel.

Runs are described by :class:`TrainConfig` (a dataclass with a YAML round trip)
that notebooks, papermill and the command line share::

    python -m bs_lib train run.yaml --set steps=200 --set lr=2e-4
    accelerate launch --multi_gpu --num_processes 2 -m bs_lib train run.yaml --resume
"""

from bs_lib.engine.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_trained,
    load_weights,
    preserved_rng_state,
    read_state,
    resolve_checkpoint,
)
from bs_lib.engine.config import ConfigError, TrainConfig
from bs_lib.engine.data import build_datasets
from bs_lib.engine.distributed import resolve_precision
from bs_lib.engine.objective import (
    MethodInfo,
    Objective,
    accepts_generator,
    build_objective,
    count_parameters,
    method_info,
    register_method,
    registered_methods,
)
from bs_lib.engine.recipes import available_methods, config_dict, load_config, rescheduled, resolve_run_config
from bs_lib.engine.trainer import (
    Callback,
    Trainer,
    TrainResult,
    discard_stale_run,
    finished_run,
    fit_or_reuse,
    train_needed_runs,
    train_or_reuse,
)

__all__ = [
    "Callback", "CheckpointError", "ConfigError", "MethodInfo", "Objective", "TrainConfig", "TrainResult",
    "Trainer", "accepts_generator", "available_methods", "build_datasets", "build_objective", "config_dict",
    "count_parameters", "discard_stale_run", "finished_run", "fit_or_reuse", "latest_checkpoint",
    "list_checkpoints", "load_config", "load_trained", "load_weights", "method_info", "preserved_rng_state",
    "read_state", "register_method", "registered_methods", "rescheduled", "resolve_checkpoint",
    "resolve_precision", "resolve_run_config", "train_needed_runs", "train_or_reuse",
]
