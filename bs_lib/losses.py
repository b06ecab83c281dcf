r"""The losses the learned methods of the course train with.

Every bone-suppression network is trained by comparing its estimate
:math:`\hat s` of the soft-tissue image with the dual-energy target :math:`s`.
*How* the two are compared decides what the network learns to care about.

Pixel losses
------------
:func:`l1` and :func:`mse` average a per-pixel error,

.. math:: \mathcal L_1 = \tfrac1P\sum_p |\hat s_p - s_p|, \qquad
          \mathcal L_2 = \tfrac1P\sum_p (\hat s_p - s_p)^2 .

:math:`\mathcal L_2` punishes large errors hard and forgives small ones, so
networks trained with it blur; :math:`\mathcal L_1` keeps edges sharper and is
the usual choice for image-to-image networks.

MS-SSIM + L1 (Zhao et al., 2017)
--------------------------------
Neither pixel loss sees *structure*: a faint rib edge left in the lung costs
little. SSIM compares local means, contrasts and correlations inside a Gaussian
window; MS-SSIM does so at several scales. Zhao et al. mix it with L1,

.. math:: \mathcal L = \alpha\,(1 - \text{MS-SSIM}(\hat s, s)) + (1-\alpha)\,\mathcal L_1,
          \qquad \alpha = 0.84,

and several bone-suppression papers train with this hybrid (the public
Gusarev-style TensorFlow code with an MSE term in place of L1).
:func:`ms_ssim` is written here in plain differentiable torch (the metric in
:mod:`bs_lib.metrics` is the one to *report*; this one is built to be
*differentiated*). Zhao et al. weight their L1 term by the same Gaussian
window; the plain mean used here is the common simplification.

Adversarial losses
------------------
A discriminator :math:`D` scores images (or patches) as real or fake; the
generator :math:`G` is trained to fool it. Two classical forms are given, each
as a pair (generator loss, discriminator loss); scores are raw (no sigmoid):

* least squares (LSGAN, Mao et al. 2017): :func:`lsgan_generator`,
  :func:`lsgan_discriminator`;
* binary cross-entropy (the original GAN, non-saturating generator loss):
  :func:`bce_generator`, :func:`bce_discriminator`.

Scores may be one tensor or the list a MONAI ``PatchDiscriminator`` returns
(its intermediate feature maps, then the scores): the last element is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

#: MS-SSIM scale weights of Wang, Simoncelli & Bovik (2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_K1, SSIM_K2 = 0.01, 0.03
DEFAULT_ALPHA = 0.84


# --------------------------------------------------------------------------- input checks


def _check_pair(prediction: torch.Tensor, target: torch.Tensor, name: str) -> None:
    """Both tensors, same shape, floating point: no silent broadcasting of a (1,H,W) against (N,1,H,W)."""
    for label, tensor in (("prediction", prediction), ("target", target)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}: {label} must be a torch.Tensor, got {type(tensor).__name__}.")
        if not tensor.is_floating_point():
            raise TypeError(f"{name}: {label} must be a floating-point tensor, got {tensor.dtype}; "
                            f"convert images with .float() (values in [0, 1]).")
    if prediction.shape != target.shape:
        raise ValueError(f"{name}: prediction has shape {tuple(prediction.shape)} but target has shape "
                         f"{tuple(target.shape)}; they must match exactly (N, C, H, W).")


# --------------------------------------------------------------------------- pixel losses


def l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Mean absolute error :math:`\frac1P\sum_p|\hat s_p - s_p|`."""
    _check_pair(prediction, target, "l1")
    return (prediction - target).abs().mean()


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Mean squared error :math:`\frac1P\sum_p(\hat s_p - s_p)^2`."""
    _check_pair(prediction, target, "mse")
    return (prediction - target).square().mean()


# --------------------------------------------------------------------------- MS-SSIM


def gaussian_window(size: int = 11, sigma: float = 1.5, *, device=None, dtype=torch.float32) -> torch.Tensor:
    r"""A normalised 1-D Gaussian window of odd length :math:`n`.

    :math:`g_i \propto \exp(-i^2 / 2\sigma^2)` for :math:`i = -\lfloor n/2\rfloor … \lfloor n/2\rfloor`.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"The Gaussian window size must be a positive odd number, got {size}.")
    offsets = torch.arange(size, device=device, dtype=dtype) - size // 2
    window = torch.exp(-offsets.square() / (2 * sigma**2))
    return window / window.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter per channel, 'valid' (no padding: every output sees a full window)."""
    channels = x.shape[1]
    horizontal = window.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.conv2d(x, horizontal, groups=channels), vertical, groups=channels)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor,
                data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean luminance×contrast-structure (SSIM) and contrast-structure (cs) per image and channel.

    With Gaussian-weighted local means :math:`\mu`, variances :math:`\sigma^2`
    and covariance :math:`\sigma_{xy}`, :math:`C_1 = (0.01L)^2`, :math:`C_2 = (0.03L)^2`:

    .. math:: l = \frac{2\mu_x\mu_y + C_1}{\mu_x^2+\mu_y^2+C_1},\qquad
              cs = \frac{2\sigma_{xy} + C_2}{\sigma_x^2+\sigma_y^2+C_2},\qquad
              \text{SSIM} = l\cdot cs .
    """
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    var_x = _blur(x * x, window) - mu_x.square()
    var_y = _blur(y * y, window) - mu_y.square()
    cov_xy = _blur(x * y, window) - mu_x * mu_y
    contrast_structure = (2 * cov_xy + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x.square() + mu_y.square() + c1)
    return (luminance * contrast_structure).mean(dim=(-2, -1)), contrast_structure.mean(dim=(-2, -1))


def ms_ssim_scales(height: int, width: int, window_size: int = 11, max_scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """How many scales fit: the coarsest image (side halved each scale) must still hold one window.

    The standard five scales need sides of at least ``window_size · 2⁴`` = 176
    pixels; a 64² image gets three scales (64, 32, 16), a 128² image four.
    """
    smallest = min(height, width)
    if smallest < window_size:
        raise ValueError(f"MS-SSIM needs images of at least {window_size}×{window_size} pixels for its "
                         f"{window_size}-pixel window, got {height}×{width}. Use larger images or pass a smaller "
                         f"odd window_size.")
    scales = 1
    while scales < max_scales and smallest // 2**scales >= window_size:
        scales += 1
    return scales


def ms_ssim(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, window_size: int = 11,
            sigma: float = 1.5, max_scales: int = len(MS_SSIM_WEIGHTS)) -> torch.Tensor:
    r"""Multi-scale SSIM (Wang et al. 2003), differentiable, averaged over the batch and channels.

    .. math:: \text{MS-SSIM} = l_M^{\,w_M}\prod_{j=1}^{M} cs_j^{\,w_j}

    Scale :math:`j+1` is scale :math:`j` average-pooled by 2. :math:`M` is the
    number of scales that fit (:func:`ms_ssim_scales`, at most five) and the
    first :math:`M` standard weights are renormalised to sum to one, so the
    value stays in the same range when small images use fewer scales.
    Negative :math:`cs` (anti-correlated patches) are clamped to a small
    positive value before the fractional powers, which would otherwise be
    undefined. Identical images give exactly 1.

    ``prediction`` and ``target``: (N, C, H, W) floating tensors with values in
    ``[0, data_range]``.
    """
    _check_pair(prediction, target, "ms_ssim")
    if prediction.ndim != 4:
        raise ValueError(f"ms_ssim expects (N, C, H, W) images, got shape {tuple(prediction.shape)}; "
                         f"add the batch dimension with .unsqueeze(0).")
    scales = ms_ssim_scales(*prediction.shape[-2:], window_size=window_size, max_scales=max_scales)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], device=prediction.device, dtype=prediction.dtype)
    weights = weights / weights.sum()
    window = gaussian_window(window_size, sigma, device=prediction.device, dtype=prediction.dtype)
    x, y = prediction, target
    factors = []
    for scale in range(scales):
        ssim_value, contrast_structure = _ssim_terms(x, y, window, data_range)
        last = scale == scales - 1
        factors.append((ssim_value if last else contrast_structure).clamp(min=1e-6) ** weights[scale])
        if not last:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.stack(factors).prod(dim=0).mean()


def ms_ssim_l1(prediction: torch.Tensor, target: torch.Tensor, alpha: float = DEFAULT_ALPHA,
               data_range: float = 1.0) -> torch.Tensor:
    r"""The hybrid of Zhao et al.: :math:`\alpha(1 - \text{MS-SSIM}) + (1-\alpha)\,\mathcal L_1`, α = 0.84.

    MS-SSIM keeps structure and local contrast (rib edges), L1 keeps the
    overall brightness that SSIM is nearly blind to.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"ms_ssim_l1: alpha must lie in [0, 1], got {alpha} (Zhao et al. use 0.84).")
    _check_pair(prediction, target, "ms_ssim_l1")
    structure = 1.0 - ms_ssim(prediction, target, data_range=data_range)
    return alpha * structure + (1.0 - alpha) * l1(prediction, target)


# --------------------------------------------------------------------------- adversarial losses


def _scores(scores: torch.Tensor | Sequence[torch.Tensor], name: str) -> torch.Tensor:
    """A discriminator's scores: the tensor itself, or the last entry of MONAI's list of outputs."""
    if isinstance(scores, list | tuple):
        if not scores:
            raise ValueError(f"{name}: the discriminator returned an empty list of outputs.")
        scores = scores[-1]
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{name}: scores must be a tensor or a list of tensors (MONAI PatchDiscriminator), "
                        f"got {type(scores).__name__}.")
    return scores


def lsgan_generator(fake_scores: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    r"""Least-squares generator loss :math:`\mathbb E\,[(D(G(x)) - 1)^2]`: push fakes' scores to "real" (1)."""
    return (_scores(fake_scores, "lsgan_generator") - 1).square().mean()


def lsgan_discriminator(real_scores: torch.Tensor | Sequence[torch.Tensor],
                        fake_scores: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    r"""Least-squares discriminator loss :math:`\tfrac12\big(\mathbb E[(D(y)-1)^2] + \mathbb E[D(G(x))^2]\big)`.

    Give it *detached* fakes, so the discriminator's step never reaches the generator.
    """
    real = _scores(real_scores, "lsgan_discriminator")
    fake = _scores(fake_scores, "lsgan_discriminator")
    return 0.5 * ((real - 1).square().mean() + fake.square().mean())


def bce_generator(fake_scores: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    r"""Non-saturating generator loss :math:`-\mathbb E\,[\log\sigma(D(G(x)))]` on raw scores (logits)."""
    fake = _scores(fake_scores, "bce_generator")
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def bce_discriminator(real_scores: torch.Tensor | Sequence[torch.Tensor],
                      fake_scores: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    r"""Cross-entropy discriminator loss on raw scores (logits):

    .. math:: -\tfrac12\big(\mathbb E[\log\sigma(D(y))] + \mathbb E[\log(1-\sigma(D(G(x))))]\big).

    Halved as in pix2pix, so the discriminator learns at half the generator's pace.
    """
    real = _scores(real_scores, "bce_discriminator")
    fake = _scores(fake_scores, "bce_discriminator")
    return 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                  + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


# --------------------------------------------------------------------------- by name

#: Reconstruction losses a config can name (``method_args.loss``).
RECONSTRUCTION_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": l1,
    "mse": mse,
    "ms_ssim_l1": ms_ssim_l1,
}


def get_reconstruction_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The reconstruction loss called ``name`` (``l1``, ``mse`` or ``ms_ssim_l1``)."""
    if name not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"Unknown reconstruction loss {name!r}: choose one of {', '.join(RECONSTRUCTION_LOSSES)}.")
    return RECONSTRUCTION_LOSSES[name]
