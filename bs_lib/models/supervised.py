r"""Supervised image-to-image training, shared by the autoencoder and CNN families.

Autoencoders, ResNet-BS, U-Net and UNet++ differ in their networks, not in how
they learn: a network :math:`f_\theta` maps the radiograph :math:`x` to an
estimate :math:`\hat s` of the soft-tissue image, and a reconstruction loss
:math:`\ell` (:mod:`bs_lib.losses`: ``l1``, ``mse`` or ``ms_ssim_l1``)
compares it with the dual-energy target :math:`s`:

.. math:: \min_\theta\ \mathbb E_{(x,s)}\Big[\textstyle\sum_k w_k\,\ell(\hat s_k, s)
          + \sum_j \lambda_j\,R_j\Big].

The sum over :math:`k` covers the network's outputs: one for most networks,
one per decoder depth for UNet++ with deep supervision (equal weights
:math:`w_k` summing to one). The :math:`R_j` are penalties some networks add:
the KL divergence of a VAE, the codebook/commitment loss of a VQ-VAE.

Direct or residual estimate
---------------------------
With ``residual=False`` the network outputs :math:`\hat s` itself. With
``residual=True`` it outputs the *bone* image :math:`\hat b` and
:math:`\hat s = x - \hat b`: a network that outputs zeros is the identity
baseline, and everything it learns is an improvement on it. A bottlenecked
autoencoder gains most, because the sparse bone image is easier to push
through a bottleneck than the whole chest.

The network contract
--------------------
``network(x)`` returns the final output (N, 1, H, W). A network with several
outputs or penalties also implements ``training_outputs(x) ->``
:class:`TrainingOutputs`, and may declare ``size_multiple`` (the side length
must be a multiple of it, e.g. 16 for a U-Net that halves the image four
times) and ``penalty_weights`` (the :math:`\lambda_j`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from bs_lib.engine.config import TrainConfig
from bs_lib.engine.objective import Objective, register_method
from bs_lib.engine.objective import count_parameters as count_parameters  # notebook 03 imports it from here
from bs_lib.losses import get_reconstruction_loss

OBJECTIVE_ARGS = ("loss", "residual", "head_weights")


@dataclass
class TrainingOutputs:
    """What a network gives the objective while training.

    ``predictions``: one or more full-size outputs, the final one last.
    ``penalties``: unweighted regularisers by name (``"kl"``, ``"quantisation"``).
    """

    predictions: list[torch.Tensor]
    penalties: dict[str, torch.Tensor] = field(default_factory=dict)


def check_positive(name: str, value: int) -> int:
    """A network's size argument (a width, a depth) must be a positive integer."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def check_radiographs(cxr: torch.Tensor, size_multiple: int, who: str) -> None:
    """A batch of radiographs must be (N, 1, H, W), floating point, with sides a multiple of ``size_multiple``."""
    if not isinstance(cxr, torch.Tensor):
        raise TypeError(f"{who} expects a tensor of radiographs, got {type(cxr).__name__}.")
    if cxr.ndim != 4 or cxr.shape[1] != 1:
        raise ValueError(f"{who} expects radiographs shaped (N, 1, H, W), got {tuple(cxr.shape)}; "
                         f"add the batch dimension with .unsqueeze(0).")
    if not cxr.is_floating_point():
        raise TypeError(f"{who} expects floating-point radiographs in [0, 1], got {cxr.dtype}.")
    height, width = cxr.shape[-2:]
    if height % size_multiple or width % size_multiple:
        raise ValueError(f"{who} needs image sides that are multiples of {size_multiple} (it halves the image "
                         f"{size_multiple.bit_length() - 1} times), got {height}×{width}. Resize or crop the images.")


class SupervisedObjective(Objective):
    """One network, one reconstruction loss (+ the network's penalties), one optimiser group ``model``.

    ``loss``: ``l1`` | ``mse`` | ``ms_ssim_l1``. ``residual``: the network
    estimates the bone image and :math:`\\hat s = x - \\hat b`. ``head_weights``:
    weights of the outputs of a deep-supervised network (default: equal).
    """

    def __init__(self, network: nn.Module, loss: str = "l1", residual: bool = False,
                 head_weights: list[float] | None = None) -> None:
        super().__init__()
        self.network = network
        self.loss_name = loss
        self.reconstruction_loss = get_reconstruction_loss(loss)
        self.residual = bool(residual)
        self.head_weights = list(head_weights) if head_weights is not None else None
        self.size_multiple = int(getattr(network, "size_multiple", 1))
        self.penalty_weights = dict(getattr(network, "penalty_weights", {}))

    def training_outputs(self, cxr: torch.Tensor) -> TrainingOutputs:
        if hasattr(self.network, "training_outputs"):
            return self.network.training_outputs(cxr)
        return TrainingOutputs([self.network(cxr)])

    def soft_tissue(self, output: torch.Tensor, cxr: torch.Tensor) -> torch.Tensor:
        """The network's output read as a soft-tissue estimate (unclipped, so gradients flow everywhere)."""
        return cxr - output if self.residual else output

    def _weights(self, heads: int) -> list[float]:
        if self.head_weights is None:
            return [1.0 / heads] * heads
        if len(self.head_weights) != heads:
            raise ValueError(f"head_weights has {len(self.head_weights)} entries but the network has {heads} "
                             f"outputs; give one weight per output (finest-to-final order) or leave it out.")
        return self.head_weights

    def losses(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        cxr, soft = batch["cxr"], batch["soft"]
        check_radiographs(cxr, self.size_multiple, type(self.network).__name__)
        outputs = self.training_outputs(cxr)
        estimates = [self.soft_tissue(output, cxr) for output in outputs.predictions]
        reconstruction = sum(weight * self.reconstruction_loss(estimate.float(), soft.float())
                             for weight, estimate in zip(self._weights(len(estimates)), estimates, strict=True))
        total = reconstruction
        logs = {f"log/{self.loss_name}": reconstruction.detach(),
                "log/l1_final": (estimates[-1].detach().float() - soft).abs().mean()}
        for name, penalty in outputs.penalties.items():
            total = total + self.penalty_weights.get(name, 1.0) * penalty
            logs[f"log/{name}"] = penalty.detach()
        return {"model": total, **logs}

    @torch.no_grad()
    def predict(self, cxr: torch.Tensor) -> torch.Tensor:
        """Soft-tissue estimate in [0, 1] from the final output."""
        check_radiographs(cxr, self.size_multiple, type(self.network).__name__)
        return self.soft_tissue(self.network(cxr), cxr).clamp(0.0, 1.0)


def _call_with_method_args(build_network: Callable[..., nn.Module], args: dict, method: str) -> nn.Module:
    accepted = [name for name in inspect.signature(build_network).parameters]
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        raise ValueError(f"Method {method!r}: unknown method_args {unknown}. It takes {', '.join(OBJECTIVE_ARGS)} "
                         f"(the objective) and {', '.join(accepted)} (the network).")
    return build_network(**args)


def register_supervised(method: str, build_network: Callable[..., nn.Module], *, family: str,
                        label: str) -> Callable[[TrainConfig], Objective]:
    """Register ``method`` (its ``family`` and ``label``) as a :class:`SupervisedObjective` around
    ``build_network(**method_args)``.

    ``method_args`` keys among ``loss``, ``residual``, ``head_weights`` go to
    the objective, the rest to the network builder; an unknown key is an error
    that lists the valid ones.
    """

    def build(config: TrainConfig) -> SupervisedObjective:
        args = dict(config.method_args)
        objective_args = {key: args.pop(key) for key in OBJECTIVE_ARGS if key in args}
        return SupervisedObjective(_call_with_method_args(build_network, args, method), **objective_args)

    build.__name__ = f"build_{method}"
    build.__doc__ = f"``{method}``: :class:`SupervisedObjective` around :func:`{build_network.__name__}`."
    return register_method(method, family=family, label=label)(build)
