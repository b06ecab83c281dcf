r"""How far is the phantom from real radiographs? A few numbers that a change to the phantom must move.

A model learns what its training images show. Before asking why a
phantom-trained network fails on a real chest, measure how the two kinds of
image differ, with the same code on both (:func:`measure`), each number a
property a reader can see:

``grey``
    Where the intensities sit: the 5th, 50th and 95th percentiles of the
    radiograph, and the share of near-black pixels (air outside the body,
    collimation) — clinical processing spreads a radiograph over the whole
    display range, a raw log image does not.
``spectrum``
    The slope :math:`\beta` of the radially averaged power spectrum,
    :math:`P(k) \propto k^{-\beta}`, fitted between 0.02 and 0.25 cycles per
    pixel: anatomy is close to a power law, and edge enhancement (unsharp
    masking, multi-scale processing) flattens it.
``noise``
    The standard deviation of white noise, from the median absolute
    deviation of a Laplacian (smooth anatomy cancels, edges are outliers).
``bone``
    The bone layer :math:`b = c - s` of a pair: its structure (standard
    deviation after removing its mean), the share of it above 0.05 cycles
    per pixel (ribs are thin bands), and the mean :math:`\bar b` (how much
    darker the soft-tissue image is).
``rib period``
    How far apart the ribs lie, as a fraction of the image height: the
    period of the bone layer's rib-scale part down the lateral lungs
    (:func:`rib_period`). The geometry of the chain (zoom) rescales it; a
    network that has only seen ribs at one spacing takes other spacings for
    something else.
``rib tilt``
    How steeply the ribs run across the lateral lungs, in degrees from the
    horizontal: the orientation of the rib-scale bone's edges (a structure
    tensor), weighted by how strongly oriented they are (:func:`rib_tilt`).
    Real ribs curve down the chest wall; ribs that run flat are a phantom's.
``bright is bone``
    How much more bone lies under the brightest tenth of the radiograph than
    under the average pixel: :math:`\bar b_{\text{top }10\,\%} - \bar b`.
    Positive where the densest pixels are bone (the phantom's spine and
    clavicles), near zero where dense soft tissue (abdomen, heart) is as
    bright as bone. A network that sees little context learns this shortcut
    on the phantom and removes the abdomen on a real chest.
``texture``
    Lung parenchyma: the standard deviation of the soft-tissue image's
    high-pass part (σ = 2 px) inside the lungs (the phantom's mask; the
    darkest third of the body on a real image, a documented proxy).

:func:`compare` puts several sources side by side, one row per measure.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, laplace, sobel

from bs_lib.bone_layer import highpass

MEASURES = ("p05", "p50", "p95", "black share", "spectrum slope", "noise", "bone structure",
            "bone high-frequency share", "bone mean", "rib period", "rib tilt", "bright is bone", "lung texture")
#: Where :func:`rib_period` looks, as fractions of the image: the rows of the lungs and a band down each
#: lateral lung, clear of the spine and the heart (a centred PA chest).
LATERAL_LUNGS = {"rows": (0.23, 0.78), "columns": ((0.19, 0.39), (0.61, 0.81))}


def radial_spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean :math:`|\\hat f(k)|^2` over rings of equal frequency (cycles per pixel), the mean removed first."""
    image = np.asarray(image, dtype=np.float64)
    power = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean()))) ** 2
    rows, columns = np.indices(image.shape)
    ring = np.hypot(rows - image.shape[0] // 2, columns - image.shape[1] // 2).astype(int)
    spectrum = np.bincount(ring.ravel(), power.ravel()) / np.maximum(np.bincount(ring.ravel()), 1)
    half = min(image.shape) // 2
    return np.arange(1, half) / min(image.shape), spectrum[1:half]


def spectrum_slope(image: np.ndarray, low: float = 0.02, high: float = 0.25) -> float:
    """:math:`\\beta` of :math:`P(k) \\propto k^{-\\beta}`: a least-squares line in log-log, ``low`` to ``high``."""
    frequency, spectrum = radial_spectrum(image)
    band = (frequency >= low) & (frequency <= high) & (spectrum > 0)
    return float(-np.polyfit(np.log(frequency[band]), np.log(spectrum[band]), 1)[0])


def noise_level(image: np.ndarray) -> float:
    """White-noise σ: the Laplacian scaled by :math:`1/\\sqrt{20}` keeps it; the MAD (× 1.4826) ignores edges."""
    residual = laplace(np.asarray(image, dtype=np.float64)) / np.sqrt(20.0)
    return float(1.4826 * np.median(np.abs(residual - np.median(residual))))


def high_frequency_share(image: np.ndarray, cutoff: float = 0.05) -> float:
    """Share of the (ring-area weighted) power above ``cutoff`` cycles per pixel."""
    frequency, spectrum = radial_spectrum(image)
    weights = frequency * spectrum
    return float(weights[frequency > cutoff].sum() / weights.sum())


def lateral_lungs(image: np.ndarray) -> np.ndarray:
    """The rows and columns of :data:`LATERAL_LUNGS` cut from ``image``: the two lateral bands side by side."""
    height, width = image.shape
    top, bottom = (round(f * height) for f in LATERAL_LUNGS["rows"])
    columns = np.concatenate([np.arange(round(a * width), round(b * width)) for a, b in LATERAL_LUNGS["columns"]])
    return image[top:bottom, columns]


def rib_period(bone: np.ndarray) -> float:
    """The ribs' vertical period as a fraction of the image height.

    The bone layer's rib-scale part (:func:`bs_lib.bone_layer.highpass`), in
    the bands of :data:`LATERAL_LUNGS`; each column's autocorrelation, averaged;
    the period is its first peak after its first trough.
    """
    bone = np.asarray(bone, dtype=np.float64)
    height = bone.shape[0]
    bands = lateral_lungs(highpass(bone))
    bands = bands - bands.mean(axis=0)
    energy = np.maximum((bands**2).sum(axis=0), 1e-12)
    correlation = np.mean([np.correlate(c, c, "full")[len(c) - 1:] / e for c, e in zip(bands.T, energy, strict=True)],
                          axis=0)
    reach = max(3, height // 4)
    trough = int(np.argmin(correlation[:reach]))
    return (trough + int(np.argmax(correlation[trough:reach]))) / height


def rib_tilt(bone: np.ndarray) -> float:
    r"""The ribs' mean angle to the horizontal (degrees, 0–90) in the bands of :data:`LATERAL_LUNGS`.

    The structure tensor :math:`J = G_\sigma * (\nabla f\,\nabla f^\top)` of the rib-scale part
    :math:`f` (σ = 1/64 of the height) gives at every pixel the direction across its edges,
    :math:`\theta = \tfrac12\,\mathrm{atan2}(2J_{xy}, J_{yy} - J_{xx})` from the vertical, which is
    the edge's angle to the horizontal; :math:`|\theta|` is averaged with the weight
    :math:`\sqrt{(J_{yy} - J_{xx})^2 + 4J_{xy}^2}` (oriented energy), so that flat areas and
    noise count little. White noise alone reads about 45° (45–50).
    """
    bone = np.asarray(bone, dtype=np.float64)
    fine = highpass(bone)
    gy, gx = sobel(fine, axis=0), sobel(fine, axis=1)
    jxx, jyy, jxy = (gaussian_filter(product, bone.shape[0] / 64) for product in (gx * gx, gy * gy, gx * gy))
    angle = lateral_lungs(np.abs(0.5 * np.arctan2(2 * jxy, jyy - jxx)))
    energy = lateral_lungs(np.hypot(jyy - jxx, 2 * jxy))
    return float(np.degrees((angle * energy).sum() / max(energy.sum(), 1e-12)))


def lung_region(cxr: np.ndarray, lungs: np.ndarray | None = None) -> np.ndarray:
    """The phantom's lung mask when given; else the darkest third of the body (pixels above the black share)."""
    if lungs is not None:
        return np.asarray(lungs, dtype=bool)
    body = cxr > 0.05
    return body & (cxr <= np.quantile(cxr[body], 1 / 3))


def bright_is_bone(cxr: np.ndarray, bone: np.ndarray, share: float = 0.1) -> float:
    """Mean bone layer under the brightest ``share`` of the radiograph's pixels, minus its mean over all pixels."""
    brightest = cxr >= np.quantile(cxr, 1 - share)
    return float(bone[brightest].mean() - bone.mean())


def measure(cxr: np.ndarray, soft: np.ndarray, lungs: np.ndarray | None = None) -> dict[str, float]:
    """Every measure of one radiograph / soft-tissue pair, 2-D float arrays in [0, 1] (conventional polarity)."""
    cxr, soft = np.asarray(cxr, dtype=np.float64), np.asarray(soft, dtype=np.float64)
    bone = cxr - soft
    p05, p50, p95 = np.quantile(cxr, [0.05, 0.5, 0.95])
    detail = soft - gaussian_filter(soft, 2.0)
    return {"p05": float(p05), "p50": float(p50), "p95": float(p95), "black share": float((cxr < 0.05).mean()),
            "spectrum slope": spectrum_slope(cxr), "noise": noise_level(cxr),
            "bone structure": float(bone.std()), "bone high-frequency share": high_frequency_share(bone),
            "bone mean": float(bone.mean()), "rib period": rib_period(bone), "rib tilt": rib_tilt(bone),
            "bright is bone": bright_is_bone(cxr, bone),
            "lung texture": float(detail[lung_region(cxr, lungs)].std())}


def measure_dataset(dataset, limit: int = 16, lung_masks: bool = True) -> list[dict[str, float]]:
    """:func:`measure` for the first ``limit`` samples of a course dataset, each sample read once (a randomised
    dataset draws anew on every read). Lung masks are used when present and ``lung_masks``; ``False`` gives
    every source the same proxy, for comparing sources of which only some have masks."""
    rows = []
    for index in range(min(limit, len(dataset))):
        sample = dataset[index]
        lungs = sample.get("masks", {}).get("lungs") if lung_masks else None
        rows.append(measure(np.asarray(sample["cxr"])[0], np.asarray(sample["soft"])[0],
                            None if lungs is None else np.asarray(lungs)[0]))
    return rows


def compare(sources: dict[str, list[dict[str, float]]]):
    """A table, one row per measure, one column per source: the mean over its images."""
    import pandas as pd

    return pd.DataFrame({name: pd.DataFrame(rows).mean() for name, rows in sources.items()}).loc[list(MEASURES)]
