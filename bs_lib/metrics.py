r"""How bone suppression is measured — and mis-measured.

Every function compares a **prediction** :math:`p` (the soft-tissue estimate)
with the **target** :math:`g` (the true soft-tissue image), and the BSRs also
need the **radiograph** :math:`c`. Arguments always come in that order:
``(prediction, target, radiograph)``. Images are floats in [0, 1] (numpy or
torch), shaped (H, W), (1, H, W) or a batch (N, 1, H, W); a batch gives the
arithmetic mean over its images (the published tables' aggregation), or the
per-image values with ``per_image=True``. Everything is computed in float64.

The metrics
-----------
MSE
    :math:`\mathrm{mean}\big((g - p)^2\big)` on [0, 1]; tables report it in units of :math:`10^{-3}`.
PSNR
    :math:`10\log_{10}\big(R^2/\mathrm{MSE}\big)` with an explicit data range :math:`R` (1 here).
BSR, the official bone suppression ratio (BS-LDM, BS-Diff, DeBoneDiT)
    With the bone :math:`b = c - g` and the prediction shifted to the target's
    mean, :math:`p' = p + \mathrm{mean}(g - p)`,

    .. math:: \mathrm{BSR} = 1 - \frac{\sum \max(g - p', 0)^2}{\sum b^2}.

    Its flaw: the clip is **one-sided**. Residual bone makes the prediction
    *brighter* than the target (:math:`p' > g`), which the clip ignores, so the
    do-nothing prediction :math:`p = c` scores 0.66–0.89 on real pairs.
Symmetric BSR (this course)
    The same ratio without the clip, :math:`1 - \sum (g - p')^2 / \sum b^2`:
    residual bone now counts. 1 is a perfect suppression; doing nothing scores
    :math:`\mathrm{mean}(b)^2/\mathrm{mean}(b^2)`, the share of the bone's energy
    that is a uniform offset (the mean shift still forgives it): 0.32–0.78 on
    the real sample pairs, against 0.66–0.89 for the official BSR. It can be
    negative (a prediction that adds structure).
SSIM, MS-SSIM
    Structural similarity (scikit-image, Gaussian window, data range 1) and its
    multi-scale form (as many of the five scales as the image holds).
LPIPS
    Learned perceptual distance (AlexNet, v0.1); its backbone weights must be on
    the machine, otherwise :func:`lpips` returns ``None`` and says so — never a
    random backbone.
Fine-detail error outside bone (this course)
    Does a suppression leave alone what is not bone? With the fine detail
    :math:`D(x) = G_{\sigma/2} * x - G_{2\sigma} * x` (a band of Gaussians
    around :math:`\sigma`, 1/256 of the image width: vessel scale at 1024²),
    it is the RMS of :math:`D(p) - D(g)` over the half of the image where the
    true bone layer, smoothed, is lowest. Blurred lungs and added texture
    raise it; doing nothing scores the bone layer's own detail there. Its
    flaws: the region is a share of pixels, not an anatomical mask, and the
    band still holds some noise, independent between the two exposures of a
    real pair. Not part of :func:`evaluate`; see :mod:`bs_lib.bone_layer`.
The official uint8 PSNR
    :func:`psnr_uint8_official` reproduces the BS-LDM code, which computes the
    MSE on 8-bit arrays: differences and squares wrap around modulo 256 and
    errors of 16 grey levels or more are under-counted. It inflates PSNR by
    5–8 dB on real pairs; it is here to show that, not to be reported.

Every metric can be restricted to a region (the lungs) with ``mask``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

_LPIPS_MODEL = None


# --------------------------------------------------------------------------- input checks


def _as_batch(image, name: str) -> np.ndarray:
    """Any accepted input as a float64 array (N, H, W)."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().double().numpy()
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[0] == 1:
        pass
    elif array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 3:
        pass  # (N, H, W)
    else:
        raise ValueError(f"{name}: expected an image shaped (H, W), (1, H, W) or (N, 1, H, W), got {array.shape}.")
    return array


def _check(prediction, target, radiograph=None, mask=None):
    """Arrays (N, H, W) of the inputs after checking shapes, values and range."""
    named = {"prediction": prediction, "target": target}
    if radiograph is not None:
        named["radiograph"] = radiograph
    arrays = {name: _as_batch(value, name) for name, value in named.items()}
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shape mismatch: {shapes}. Resize the prediction to the target's size first.")
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or infinite values; check the model output.")
        low, high = array.min(), array.max()
        if low < -1e-6 or high > 1 + 1e-6:
            raise ValueError(f"{name} has values in [{low:.6g}, {high:.6g}], outside [0, 1]. Metrics here use "
                             f"images in [0, 1]: clip the prediction or convert from [-1, 1] with (x + 1) / 2.")
    region = None
    if mask is not None:
        region = _as_batch(mask, "mask") > 0.5
        if region.shape[1:] != arrays["target"].shape[1:]:
            raise ValueError(f"mask shape {region.shape[1:]} does not match the images {arrays['target'].shape[1:]}.")
        region = np.broadcast_to(region, arrays["target"].shape)
        if not region.reshape(len(region), -1).any(axis=1).all():
            raise ValueError("the mask is empty for at least one image; a region metric needs pixels.")
    return arrays, region


def _reduce(values: np.ndarray, per_image: bool):
    return values if per_image else float(values.mean())


def _pixels(array: np.ndarray, region: np.ndarray | None, index: int) -> np.ndarray:
    return array[index][region[index]] if region is not None else array[index].ravel()


# --------------------------------------------------------------------------- the metrics


def mse(prediction, target, mask=None, per_image: bool = False):
    """Mean squared error on [0, 1]."""
    arrays, region = _check(prediction, target, mask=mask)
    p, g = arrays["prediction"], arrays["target"]
    values = np.array([np.mean((_pixels(g, region, i) - _pixels(p, region, i)) ** 2) for i in range(len(g))])
    return _reduce(values, per_image)


def psnr(prediction, target, data_range: float = 1.0, mask=None, per_image: bool = False):
    r"""Peak signal-to-noise ratio in dB, :math:`10\log_{10}(R^2/\mathrm{MSE})`, computed in float."""
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}.")
    errors = np.atleast_1d(mse(prediction, target, mask=mask, per_image=True))
    with np.errstate(divide="ignore"):
        values = 10 * np.log10(data_range**2 / errors)
    return _reduce(values, per_image)


def _bsr(prediction, target, radiograph, mask, per_image, one_sided: bool):
    arrays, region = _check(prediction, target, radiograph, mask)
    p, g, c = arrays["prediction"], arrays["target"], arrays["radiograph"]
    values = []
    for i in range(len(g)):
        pi, gi, ci = (_pixels(a, region, i) for a in (p, g, c))
        bone_energy = np.sum((ci - gi) ** 2)
        if bone_energy == 0:
            raise ValueError("the radiograph equals the target: there is no bone to suppress, BSR is undefined.")
        shifted = pi + np.mean(gi - pi)
        residual = np.maximum(gi - shifted, 0) if one_sided else gi - shifted
        values.append(1 - np.sum(residual**2) / bone_energy)
    return _reduce(np.array(values), per_image)


def bsr(prediction, target, radiograph, mask=None, per_image: bool = False):
    """The official bone suppression ratio (one-sided clip; see the module docstring for its flaw)."""
    return _bsr(prediction, target, radiograph, mask, per_image, one_sided=True)


def bsr_symmetric(prediction, target, radiograph, mask=None, per_image: bool = False):
    """BSR without the one-sided clip: residual bone counts too. 1 is perfect (see the module docstring)."""
    return _bsr(prediction, target, radiograph, mask, per_image, one_sided=False)


def fine_detail_error(prediction, target, radiograph, sigma: float | None = None, share: float = 0.5,
                      per_image: bool = False):
    r"""RMS error of the fine detail (``G_{σ/2} * x − G_{2σ} * x``) over the ``share`` of pixels with the least bone.

    ``sigma`` defaults to 1/256 of the image width (4 pixels at 1024², vessel
    scale; pixel noise, finer than σ/2, is left out). The region is where
    :math:`G_{2\sigma} * (c - g)` is at most its ``share`` quantile; 0 means
    the target's fine detail is kept exactly there.
    """
    from scipy.ndimage import gaussian_filter

    arrays, _ = _check(prediction, target, radiograph)
    p, g, c = arrays["prediction"], arrays["target"], arrays["radiograph"]
    sigma = max(1.0, g.shape[-1] / 256) if sigma is None else sigma
    if sigma <= 0 or not 0 < share <= 1:
        raise ValueError(f"fine_detail_error needs sigma > 0 and 0 < share <= 1, got {sigma} and {share}.")

    def detail(image: np.ndarray) -> np.ndarray:
        return gaussian_filter(image, sigma / 2) - gaussian_filter(image, 2 * sigma)

    values = []
    for i in range(len(g)):
        bone = gaussian_filter(c[i] - g[i], 2 * sigma)
        outside = bone <= np.quantile(bone, share)
        values.append(np.sqrt(np.mean((detail(p[i]) - detail(g[i]))[outside] ** 2)))
    return _reduce(np.array(values), per_image)


def psnr_uint8_official(prediction, target, per_image: bool = False):
    r"""PSNR as the official BS-LDM code computes it: on uint8 arrays, with wrap-around.

    Both images are rounded to 8 bits; ``(g - p) ** 2`` is then evaluated in
    uint8 arithmetic (modulo 256), averaged, and
    :math:`20\log_{10}(255/\sqrt{\mathrm{MSE}})` is returned. Shown to explain
    inflated published numbers; report :func:`psnr` instead.
    """
    arrays, _ = _check(prediction, target)
    p = np.round(arrays["prediction"] * 255).astype(np.uint8)
    g = np.round(arrays["target"] * 255).astype(np.uint8)
    values = []
    for i in range(len(g)):
        wrapped = (g[i] - p[i]) ** 2  # uint8: both the difference and the square wrap around
        error = wrapped.mean()
        values.append(np.inf if error == 0 else 20 * np.log10(255 / np.sqrt(error)))
    return _reduce(np.array(values), per_image)


def ssim(prediction, target, mask=None, per_image: bool = False):
    """Structural similarity (scikit-image, Gaussian window σ = 1.5, data range 1), in the mask when given."""
    from skimage.metrics import structural_similarity

    arrays, region = _check(prediction, target, mask=mask)
    p, g = arrays["prediction"], arrays["target"]
    values = []
    for i in range(len(g)):
        score, local = structural_similarity(g[i], p[i], data_range=1.0, gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False, full=True)
        values.append(local[region[i]].mean() if region is not None else score)
    return _reduce(np.array(values), per_image)


def ms_ssim(prediction, target, per_image: bool = False):
    """Multi-scale SSIM (as many of the five standard scales as the image holds; at least 11 pixels)."""
    import torch

    from bs_lib.losses import ms_ssim as ms_ssim_torch

    arrays, _ = _check(prediction, target)
    p = torch.from_numpy(arrays["prediction"])[:, None]
    g = torch.from_numpy(arrays["target"])[:, None]
    values = np.array([float(ms_ssim_torch(p[i:i + 1], g[i:i + 1])) for i in range(len(g))])
    return _reduce(values, per_image)


#: The torchvision weights each LPIPS backbone loads, as file patterns in torch hub's checkpoint folder.
LPIPS_BACKBONE_WEIGHTS = {"alex": "alexnet-owt-*.pth", "vgg": "vgg16-*.pth"}


def lpips_available(backbone: str = "alex") -> bool:
    """True when the ``lpips`` package and the weights of its ``backbone`` (``"alex"`` or ``"vgg"``) are here.

    LPIPS compares deep features of a pretrained network; without its weights
    on this machine it cannot run offline, so callers ask first: the metric
    (AlexNet, :func:`lpips`) and ML-VQGAN's perceptual loss (VGG16) alike.
    """
    if backbone not in LPIPS_BACKBONE_WEIGHTS:
        raise ValueError(f"unknown LPIPS backbone {backbone!r}; choose one of {', '.join(LPIPS_BACKBONE_WEIGHTS)}")
    try:
        import lpips  # noqa: F401
        import torch
        import torchvision  # noqa: F401
    except Exception:
        return False
    return any((Path(torch.hub.get_dir()) / "checkpoints").glob(LPIPS_BACKBONE_WEIGHTS[backbone]))


def lpips(prediction, target, per_image: bool = False):
    """LPIPS (AlexNet, v0.1) on [-1, 1] inputs, or ``None`` with a warning when its weights are not local."""
    global _LPIPS_MODEL
    if not lpips_available():
        warnings.warn("LPIPS skipped: the lpips package or its AlexNet weights are not on this machine "
                      "(they are downloaded at first use where the network allows, e.g. on Colab).", stacklevel=2)
        return None
    import lpips as lpips_package
    import torch

    arrays, _ = _check(prediction, target)
    if _LPIPS_MODEL is None:
        _LPIPS_MODEL = lpips_package.LPIPS(net="alex", verbose=False).eval()
    p = torch.from_numpy(arrays["prediction"]).float()[:, None].repeat(1, 3, 1, 1) * 2 - 1
    g = torch.from_numpy(arrays["target"]).float()[:, None].repeat(1, 3, 1, 1) * 2 - 1
    with torch.no_grad():
        values = _LPIPS_MODEL(p, g).flatten().double().numpy()
    return _reduce(values, per_image)


def evaluate(prediction, target, radiograph, mask=None, per_image: bool = False) -> dict:
    """Every metric at once: ``mse``, ``psnr``, ``psnr_uint8_official``, ``ssim``, ``ms_ssim``, ``bsr``,
    ``bsr_symmetric`` (and ``lpips`` when available); with a ``mask``, also ``lung/<name>`` restricted to it."""
    scores = {
        "mse": mse(prediction, target, per_image=per_image),
        "psnr": psnr(prediction, target, per_image=per_image),
        "psnr_uint8_official": psnr_uint8_official(prediction, target, per_image=per_image),
        "ssim": ssim(prediction, target, per_image=per_image),
        "bsr": bsr(prediction, target, radiograph, per_image=per_image),
        "bsr_symmetric": bsr_symmetric(prediction, target, radiograph, per_image=per_image),
    }
    if min(_as_batch(target, "target").shape[1:]) >= 11:
        scores["ms_ssim"] = ms_ssim(prediction, target, per_image=per_image)
    if lpips_available():
        scores["lpips"] = lpips(prediction, target, per_image=per_image)
    if mask is not None:
        scores |= {
            "lung/mse": mse(prediction, target, mask=mask, per_image=per_image),
            "lung/psnr": psnr(prediction, target, mask=mask, per_image=per_image),
            "lung/ssim": ssim(prediction, target, mask=mask, per_image=per_image),
            "lung/bsr": bsr(prediction, target, radiograph, mask=mask, per_image=per_image),
            "lung/bsr_symmetric": bsr_symmetric(prediction, target, radiograph, mask=mask, per_image=per_image),
        }
    return scores
