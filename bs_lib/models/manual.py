r"""Conventional (manual) bone suppression: no training, a few lines of image processing.

Before learning, bone suppression was done with knowledge of the anatomy:
where the ribs are, how wide, how far apart. Two such methods live here, the
"+1" family of the course, so that every learned method can be compared with
what a page of classical image processing achieves.

``mask_guided_subtraction``
    Given a bone mask (ribs and clavicles, from the phantom or a segmenter),
    interpolate the soft tissue *under* the bone from the pixels around it
    by normalised convolution, call the difference the bone, fit its
    amplitude by least squares and subtract it.
``rib_band_filter``
    No mask at all: ribs are roughly horizontal bright bands repeating every
    ~1/9 of the lung height, so a vertical band-pass at that scale, smoothed
    along the ribs, estimates them.

Both take one image, (H, W) or (1, H, W), float in [0, 1], as numpy or torch,
and return the soft-tissue estimate of the same shape and type, clipped to
[0, 1]. They are not trained, so nothing is registered with the training
engine; :data:`MANUAL_METHODS` and :func:`predict` give the benchmark a
uniform way to run them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d

#: Rib period as a fraction of the image height. Ten posterior ribs cross lungs that fill ~60 % of a
#: PA radiograph's height, so the period is ~1/9-1/10 of the lung height, ~1/17 of the image's; the
#: band-pass below is tuned a little finer, 1/18, because ribs run obliquely and their vertical
#: spacing shrinks towards the lateral chest wall.
RIB_PERIOD_OF_HEIGHT = 1 / 18


# --------------------------------------------------------------------------- input handling


def _to_array(image: Any, name: str) -> tuple[np.ndarray, dict]:
    """One image as float64 (H, W), and what is needed to give the result back in the caller's form."""
    is_torch = hasattr(image, "detach")
    info = {"torch": is_torch, "shape": tuple(image.shape)}
    if is_torch:
        info["dtype"], info["device"] = image.dtype, image.device
        image = image.detach().cpu().double().numpy()
    else:
        info["dtype"] = np.asarray(image).dtype
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"{name}: expected one image shaped (H, W) or (1, H, W), got {info['shape']}. "
                         f"Call the method once per image of a batch.")
    if min(array.shape) < 8:
        raise ValueError(f"{name}: the image {array.shape} is too small for suppression (at least 8 × 8).")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return array, info


def _to_mask(mask: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    """A mask as bool (H, W), checked against the image's shape."""
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.shape != shape:
        raise ValueError(f"{name} has shape {np.asarray(mask).shape}, but the image is {shape}: "
                         f"a mask must cover the image pixel for pixel.")
    return array > 0.5 if array.dtype != bool else array


def _from_array(array: np.ndarray, info: dict):
    """The result in the caller's type, dtype and shape."""
    array = np.clip(array, 0.0, 1.0).reshape(info["shape"])
    if info["torch"]:
        import torch

        return torch.from_numpy(array).to(dtype=info["dtype"], device=info["device"])
    dtype = info["dtype"] if np.issubdtype(info["dtype"], np.floating) else np.float32
    return array.astype(dtype)


def _highpass(image: np.ndarray, sigma: float) -> np.ndarray:
    """Detail finer than ``sigma``: :math:`x - G_\\sigma * x`."""
    return image - gaussian_filter(image, sigma)


def _least_squares_amplitude(image: np.ndarray, bone: np.ndarray, sigma: float, limit: float = 1.5) -> float:
    r"""The :math:`\alpha` that leaves the least detail at the bone's scale in :math:`x - \alpha b`.

    Minimising :math:`\lVert H(x - \alpha b)\rVert^2` with the high-pass
    :math:`H = 1 - G_\sigma` gives
    :math:`\alpha = \langle Hx, Hb\rangle / \langle Hb, Hb\rangle`: the bone
    estimate is scaled until the edges it explains are gone, no further.
    Clipped to [0, ``limit``].
    """
    hx, hb = _highpass(image, sigma), _highpass(bone, sigma)
    energy = float(np.sum(hb * hb))
    if energy == 0.0:
        return 0.0
    return float(np.clip(np.sum(hx * hb) / energy, 0.0, limit))


# --------------------------------------------------------------------------- the methods


def mask_guided_subtraction(cxr, bone_mask, *, background_sigma: float | None = None,
                            edge_sigma: float = 0.7, anisotropy: float = 0.3, return_details: bool = False):
    r"""Subtract the bone that a mask outlines, with the soft tissue under it interpolated.

    With the radiograph :math:`x`, the bone mask :math:`m` and a Gaussian
    :math:`G_\sigma` (:math:`\sigma` = ``background_sigma``, by default
    2 % of the image height, about a third of the rib period):

    1. **background** by normalised convolution from the non-bone pixels,

       .. math:: \hat s = \frac{G_\sigma * \big(x\,(1 - m)\big)}{G_\sigma * (1 - m)} ,

       a local mean that only listens to soft tissue;
    2. **bone estimate** inside a slightly blurred mask
       :math:`\tilde m = G_{\sigma_e} * m` (:math:`\sigma_e` = ``edge_sigma``
       pixels, the detector's blur spreads bone over the mask's edge),

       .. math:: \hat b = \tilde m\,(x - \hat s);

    3. **amplitude** :math:`\alpha` by least squares, so that the result keeps
       the least detail at the bone's scale (no step left at the mask's edges):
       :math:`\alpha = \arg\min_\alpha \lVert H(x - \alpha\hat b)\rVert^2
       = \langle Hx, H\hat b\rangle / \lVert H\hat b\rVert^2` with the high-pass
       :math:`H = 1 - G_\sigma`;
    4. the soft-tissue estimate :math:`x - \alpha\hat b`, clipped to [0, 1].

    Soft-tissue detail under a rib (a nodule, a vessel) is part of
    :math:`x - \hat s` too and is removed with the bone: the method trades
    bone for some of what lies beneath it. Bone outside the mask (spine,
    scapulae) stays. ``return_details=True`` returns a dict with the estimate
    and ``background``, ``bone`` and ``alpha``.
    """
    image, info = _to_array(cxr, "cxr")
    mask = _to_mask(bone_mask, image.shape, "bone_mask").astype(np.float64)
    sigma = background_sigma if background_sigma is not None else 0.02 * image.shape[0]
    if sigma <= 0 or edge_sigma < 0:
        raise ValueError(f"background_sigma and edge_sigma must be positive, got {sigma} and {edge_sigma}.")
    window = (sigma, sigma * anisotropy)
    weight = gaussian_filter(1.0 - mask, window)
    background = gaussian_filter(image * (1.0 - mask), window) / np.maximum(weight, 1e-6)
    background = np.where(weight > 1e-3, background, image)  # far inside a large mask: nothing to listen to
    soft_mask = gaussian_filter(mask, edge_sigma) if edge_sigma > 0 else mask
    bone = soft_mask * np.clip(image - background, 0, None)
    alpha = _least_squares_amplitude(image, bone, sigma)
    estimate = _from_array(image - alpha * bone, info)
    if return_details:
        return {"soft": estimate, "background": background, "bone": bone, "alpha": alpha}
    return estimate


def rib_band_filter(cxr, *, period: float | None = None, lung_mask=None, smooth_x: float | None = None,
                    strength: float = 1.0, return_details: bool = False):
    r"""Remove horizontal bright bands at the rib period: a classical estimate with no bone mask.

    Ribs cross the lungs as bright, roughly horizontal bands with a period
    :math:`P` of about 1/9 of the lung height (``period`` in pixels; from
    ``lung_mask`` as its height / 9 when given, else
    :data:`RIB_PERIOD_OF_HEIGHT` of the image height). The bone estimate is

    .. math:: \hat b = \alpha\,\Big[G^{x}_{\sigma_x} * \big(G^{y}_{P/8} - G^{y}_{P/2}\big) * x\Big]_+ ,

    a difference of Gaussians along :math:`y` that passes structures about a
    rib wide and rejects slow gradients (body, heart, diaphragm), smoothed
    along :math:`x` with :math:`\sigma_x` = ``smooth_x`` (default :math:`P/6`)
    because ribs are long and most vessels are not, and its positive part
    because ribs are brighter than their surroundings. :math:`\alpha` =
    ``strength`` (default 1: the filter passes a rib's profile at nearly its
    full height). Returns :math:`x - \hat b`, clipped to [0, 1].

    A least-squares :math:`\alpha` as in :func:`mask_guided_subtraction` does
    not work here: without a mask the band also holds vessels, the spine's
    discs and the diaphragm's edge, and the fit removes them too. The filter
    cannot tell a rib from any other horizontal band, and a rib's dark
    surroundings (the negative lobes) are ignored, so expect a partial
    suppression: the point of comparison for learned methods.
    """
    image, info = _to_array(cxr, "cxr")
    if period is None:
        period = RIB_PERIOD_OF_HEIGHT * image.shape[0]
        if lung_mask is not None:
            rows = np.flatnonzero(_to_mask(lung_mask, image.shape, "lung_mask").any(axis=1))
            period = (rows[-1] - rows[0] + 1) / 9 if rows.size else period
    if period < 2:
        raise ValueError(f"rib period {period:.2f} pixels is too short to filter; use an image of 64 pixels or more.")
    smooth_x = period / 6 if smooth_x is None else smooth_x
    band = gaussian_filter1d(image, period / 8, axis=0) - gaussian_filter1d(image, period / 2, axis=0)
    bone = np.clip(gaussian_filter1d(band, smooth_x, axis=1), 0, None)
    estimate = _from_array(image - strength * bone, info)
    if return_details:
        return {"soft": estimate, "bone": bone, "alpha": float(strength), "period": period}
    return estimate


# --------------------------------------------------------------------------- a uniform entry point

MANUAL_METHODS = {"mask_guided_subtraction": mask_guided_subtraction, "rib_band_filter": rib_band_filter}
METHODS = MANUAL_METHODS  # the name the benchmark looks for


def predict(name: str, cxr, masks: dict | None = None):
    """Run the manual method ``name`` on one radiograph; ``masks`` as the phantom's sample dict gives them.

    ``mask_guided_subtraction`` reads ``masks["ribs"] | masks["clavicles"]``;
    ``rib_band_filter`` needs no mask.
    """
    if name not in MANUAL_METHODS:
        raise ValueError(f"Unknown manual method {name!r}: choose one of {', '.join(MANUAL_METHODS)}.")
    if name == "mask_guided_subtraction":
        if not masks or not {"ribs", "clavicles"} <= set(masks):
            raise ValueError("mask_guided_subtraction needs masks['ribs'] and masks['clavicles'] "
                             "(the phantom's sample dict has them).")
        ribs, clavicles = (m.detach().cpu().numpy() if hasattr(m, "detach") else np.asarray(m)
                           for m in (masks["ribs"], masks["clavicles"]))
        if ribs.shape != clavicles.shape:
            raise ValueError(f"masks['ribs'] {ribs.shape} and masks['clavicles'] {clavicles.shape} differ in shape.")
        return mask_guided_subtraction(cxr, (ribs > 0.5) | (clavicles > 0.5))
    return MANUAL_METHODS[name](cxr)
