r"""A synthetic dual-energy chest phantom: radiograph, exact soft tissue, bone and masks.

Every notebook of the course runs on it, on any machine, offline. A seed
draws a plausible posterior-anterior chest (body size, lung shape, heart
size, rib spacing, inspiration, a slight rotation), and the phantom is
rendered at any size from 64 to 2048 pixels from the same continuous
description.

Anatomy, as path lengths
------------------------
For each pixel the phantom computes how many centimetres of soft tissue
:math:`T_s` and of bone :math:`T_b` an X-ray crosses. Soft tissue: the body
(an elliptic chord, :data:`ABDOMEN_EXTRA` thicker below the diaphragm), minus the air in the lungs
(lung parenchyma has about a quarter of soft tissue's density), plus the
branching vessel tree and optional nodules. Bone: the spine with its
vertebrae, ten posterior ribs per side (:data:`RIB_SPACING` apart) that arch from the spine and fall
laterally, the fainter anterior ribs that run down towards the sternum, the
clavicles and the scapulae. Ribs and clavicles are hollow tubes, so the chord
through their cortical shell is longest at their edges: the bright rims of
real ribs.

Physics
-------
Beer–Lambert: a pencil beam of energy :math:`E` keeps
:math:`I_E = I_0\,e^{-(\mu_s(E)\,T_s + \mu_b(E)\,T_b)}`, so the log image
:math:`L_E = \mu_s(E)T_s + \mu_b(E)T_b` is linear in the path lengths.
Bone attenuates much more than soft tissue at low energy (photoelectric
absorption grows with the atomic number), so two energies separate them.
Dual-energy subtraction cancels bone with the weight
:math:`w = \mu_b(E_h)/\mu_b(E_l)`:

.. math:: L_{E_h} - w\,L_{E_l} = \big(\mu_s(E_h) - w\,\mu_s(E_l)\big)\,T_s ,

an image of soft tissue alone. The radiograph shown (``cxr``) is the log
image at a diagnostic energy, the target ``soft`` is its soft-tissue part
and ``bone`` its bone part, all on one scale, so ``cxr = soft + bone`` exactly
before the detector's blur and quantum noise are added to the radiograph.
Intensities are in conventional polarity (bone bright); ``negative=True``
renders film-like negatives.

Rendering fast
--------------
Anatomy is drawn upright, in the patient's own frame, where every outline is
a function of one coordinate (a rib's centreline of ``x``, a vertebra's
height of ``y``): the functions below take a row of ``x`` and a column of
``y`` and numpy broadcasting builds the images, so most work is done on
vectors. One bilinear resampling then turns and shifts the patient into the
image. Soft tissue has no detail finer than two pixels above 512 px (the
vessel tree is drawn at 256² at most), so it is drawn at half resolution
and the same resampling brings it to full size; bone keeps full resolution
for its sharp cortical edges.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

#: Linear attenuation coefficients (1/cm) of soft tissue (ICRU-44, 1.06 g/cm³) and cortical bone
#: (ICRU-44, 1.92 g/cm³), from the NIST XCOM mass attenuation coefficients.
ATTENUATION = {  # keV: (soft tissue, bone)
    40: (0.285, 1.278),
    60: (0.217, 0.604),
    80: (0.193, 0.428),
}
DISPLAY_ENERGY = 60  # keV: the radiograph and its soft/bone parts
DUAL_ENERGIES = (40, 80)  # keV: the low and high exposures of dual-energy subtraction
LUNG_DENSITY = 0.26  # lung parenchyma relative to soft tissue
FIELD_CM = 43.0  # detector side: a 43 cm cassette
DISPLAY_SCALE = 6.5  # log-attenuation mapped to intensity 1
ABDOMEN_EXTRA = 0.12  # the body's extra soft-tissue depth below the diaphragm, as a share of the chest's
#: Range of the ribs' vertical spacing (image units, the image 2 tall). The ribs of the real development
#: pairs lie further apart (``rib period`` in :mod:`bs_lib.realism`: 0.074 of the height against 0.058);
#: ``benchmarks/phantom_variant.py --rib-spacing 0.13 0.165`` trains on a phantom that matches them.
RIB_SPACING = (0.105, 0.125)
#: Range of how far the posterior ribs fall from the spine to the chest wall (image units). Real ribs run
#: more steeply across the lateral lungs (``rib tilt`` in :mod:`bs_lib.realism`: 42° against 12°);
#: ``--rib-arch 0.55 0.8`` (with ``--rib-spacing 0.13 0.165``) gives 36°.
RIB_ARCH = (0.18, 0.26)
SPLIT_SEEDS = {"train": 0, "val": 1_000_000, "test": 2_000_000}


@contextmanager
def variant(*, abdomen_extra: float | None = None, rib_spacing: tuple[float, float] | None = None,
            rib_arch: tuple[float, float] | None = None):
    """Inside the block every phantom is drawn with these settings (``None``: the default's); then the defaults."""
    global ABDOMEN_EXTRA, RIB_SPACING, RIB_ARCH
    defaults = ABDOMEN_EXTRA, RIB_SPACING, RIB_ARCH
    ABDOMEN_EXTRA = defaults[0] if abdomen_extra is None else abdomen_extra
    RIB_SPACING = defaults[1] if rib_spacing is None else tuple(rib_spacing)
    RIB_ARCH = defaults[2] if rib_arch is None else tuple(rib_arch)
    try:
        yield
    finally:
        ABDOMEN_EXTRA, RIB_SPACING, RIB_ARCH = defaults


def variant_words(rib_spacing: tuple[float, float] | None = None, rib_arch: tuple[float, float] | None = None) -> str:
    """How a :func:`variant`'s ribs differ, for a report: ``"ribs 0.13–0.165 apart, falling 0.55–0.8"`` ("": none)."""
    return ", ".join(text.format(*value) for text, value in (("ribs {:g}–{:g} apart", rib_spacing),
                                                             ("falling {:g}–{:g}", rib_arch)) if value is not None)


@dataclass(frozen=True)
class Anatomy:
    """The random draw of one chest (units: the image spans [-1, 1] in x and y, y downwards)."""

    seed: int
    body_half_width: float
    depth_cm: float
    rotation_deg: float
    shift: float
    inspiration: float
    lung_width: float
    lung_height: float
    heart_scale: float
    rib_spacing: float
    rib_start: float
    rib_arch: float
    nodules: tuple = field(default_factory=tuple)  # (x, y, radius, contrast) in image units

    @classmethod
    def draw(cls, seed: int, num_nodules: int = 0, nodule_radius: float = 0.03,
             nodule_contrast: float = 1.0) -> Anatomy:
        rng = np.random.default_rng(seed)
        anatomy = cls(
            seed=seed,
            body_half_width=rng.uniform(0.82, 0.93),
            depth_cm=rng.uniform(19.0, 25.0),
            rotation_deg=rng.normal(0.0, 2.0),
            shift=rng.normal(0.0, 0.02),
            inspiration=rng.uniform(0.9, 1.1),
            lung_width=rng.uniform(0.31, 0.37),
            lung_height=rng.uniform(0.58, 0.66),
            heart_scale=rng.uniform(0.85, 1.2),
            rib_spacing=rng.uniform(*RIB_SPACING),
            rib_start=rng.uniform(-0.78, -0.72),
            rib_arch=rng.uniform(*RIB_ARCH),
        )
        nodules = []
        for _ in range(num_nodules):  # inside a lung, half of them behind a rib on average
            side = rng.choice([-1, 1])
            nodules.append((float(side * rng.uniform(0.25, 0.6)), float(rng.uniform(-0.5, 0.2)),
                            float(nodule_radius * rng.uniform(0.8, 1.2)), float(nodule_contrast)))
        return cls(**{**anatomy.__dict__, "nodules": tuple(nodules)})


# --------------------------------------------------------------------------- geometry helpers


def _axes(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in image units in the patient's frame: a row of ``x`` (1, W) and a column of ``y`` (H, 1)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return axis[None, :], axis[:, None]


def _patient_coordinates(size: int, anatomy: Anatomy) -> np.ndarray:
    r"""Where each image pixel lies in the patient's frame, (H, W, 2) as (x, y).

    The patient is shifted by :math:`s` and turned by :math:`\theta`:
    :math:`x_p = \cos\theta\,(x - s) + \sin\theta\,y`,
    :math:`y_p = -\sin\theta\,(x - s) + \cos\theta\,y`.
    """
    x, y = _axes(size)
    angle = math.radians(anatomy.rotation_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    shifted = x - anatomy.shift
    return np.stack(np.broadcast_arrays(cos * shifted + sin * y, -sin * shifted + cos * y), axis=-1)


def _to_image(fields: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """Resample patient-frame fields (C, h, w) at image ``coordinates`` (H, W, 2): bilinear, edges repeated.

    The output takes the size of ``coordinates``, so a field drawn at half
    resolution comes back at full size in the same step.
    """
    import torch

    resampled = torch.nn.functional.grid_sample(
        torch.from_numpy(fields)[None], torch.from_numpy(coordinates)[None], mode="bilinear",
        padding_mode="border", align_corners=False)
    return resampled[0].numpy()


def _to_pixels(x: float, y: float, anatomy: Anatomy, size: int) -> tuple[float, float]:
    """Image pixel (column, row) of a patient-frame point: the inverse of :func:`_patient_coordinates`."""
    angle = math.radians(anatomy.rotation_deg)
    image_x = math.cos(angle) * x - math.sin(angle) * y + anatomy.shift
    image_y = math.sin(angle) * x + math.cos(angle) * y
    return (image_x + 1) * size / 2, (image_y + 1) * size / 2


def _chord(distance: np.ndarray, radius: float) -> np.ndarray:
    """Length of a chord at ``distance`` from the centre of a circle (a sphere's or cylinder's thickness)."""
    return 2 * np.sqrt(np.clip(radius**2 - distance**2, 0, None))


def _tube(distance: np.ndarray, radius: float, marrow: float = 0.5) -> np.ndarray:
    """Bone path through a tube of cortical shell around less dense marrow: bright edges, darker middle."""
    squared = distance * distance
    outer, inner = radius**2 - squared, (0.7 * radius) ** 2 - squared
    for half_chord in (outer, inner):  # in place: these are the phantom's largest arrays
        np.sqrt(np.maximum(half_chord, 0, out=half_chord), out=half_chord)
    inner *= marrow
    outer -= inner
    outer *= 2
    return outer


def _on_rows(x, y, top: float, bottom: float, draw) -> np.ndarray:
    """An image that is ``draw(y_rows)`` on the rows with ``top < y <= bottom`` and zero elsewhere.

    Bones lie in horizontal bands: drawing only the band's rows skips most
    of the image.
    """
    first, last = np.searchsorted(y[:, 0], [top, bottom], side="right")
    image = np.zeros((y.shape[0], x.shape[1]), dtype=np.float32)
    image[first:last] = draw(y[first:last])
    return image


def _cm(units: float) -> float:
    return units * FIELD_CM / 2


# --------------------------------------------------------------------------- anatomy
# Every function takes the patient-frame row ``x`` (1, W) and column ``y`` (H, 1).


def _lungs(x, y, a: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Lung mask and the air depth (cm) through it: two rounded lungs cut by the diaphragm and the heart."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    depth, mask = np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=bool)
    dome_top = 0.30 * a.inspiration + 0.08
    for side in (-1, 1):
        cx, cy = side * 0.43, -0.12
        rx, ry = a.lung_width, a.lung_height * a.inspiration
        u = np.abs(x - cx) / rx
        r = u * u * np.sqrt(np.sqrt(u)) + ((y - cy) / ry) ** 2  # |u|^2.5: flatter sides than an ellipse
        dome = dome_top + 0.16 * ((x - cx) / rx) ** 2 + (0.05 if side > 0 else 0.0)  # left dome lower
        inside = (r < 1) & (y < dome) & (np.abs(x) > 0.1)
        air = 15.0 * np.sqrt(np.clip(1 - r, 0, 1)) * np.clip((dome - y) / 0.08, 0, 1)
        if side > 0:  # the heart bulges into the left lung (image right); lung thins out over it
            heart = _heart_radius(x, y, a)
            inside = inside & (heart > 1)
            air = air * np.clip((heart - 1) / 0.35, 0, 1)
        depth += air * inside  # the two lungs never overlap
        mask |= inside
    return mask, depth


def _heart_radius(x, y, a: Anatomy) -> np.ndarray:
    """Elliptic radius of the heart's silhouette (< 1 inside)."""
    return np.sqrt(((x - 0.12) / (0.27 * a.heart_scale)) ** 2 + ((y - 0.2) / (0.22 * a.heart_scale)) ** 2)


def _body(x, y, a: Anatomy) -> np.ndarray:
    """Soft-tissue chord (cm) through the body, thicker below the diaphragm and through the shoulders."""
    half = a.body_half_width * np.where(y < -0.75, 1 - 0.5 * np.clip((-0.75 - y) / 0.25, 0, 1), 1.0)
    chord = a.depth_cm * np.sqrt(np.clip(1 - (x / half) ** 2, 0, None))
    return chord * (1 + ABDOMEN_EXTRA * np.clip((y - 0.35) / 0.3, 0, 1))


def _rib_family(x, y, a: Anatomy, anterior: bool) -> np.ndarray:
    """All ribs of one kind on both sides in one pass: a periodic band around a shared curved centreline."""
    lateral = a.lung_width * 2 + 0.12
    if anterior:  # from the lateral wall down and inwards to the costal cartilage
        t = np.clip((lateral - np.abs(x)) / (lateral - 0.22), 0, 1)
        centre = a.rib_start + 0.16 + 0.30 * t
        slope = 0.30 / (lateral - 0.22)
        radius, visible = 0.02, (np.abs(x) > 0.22) & (np.abs(x) < lateral)
        weight = 0.7
    else:  # from the spine, arching up, then falling towards the lateral wall
        t = np.clip((np.abs(x) - 0.06) / (lateral - 0.06), 0, 1)
        centre = a.rib_start - 0.05 * t + a.rib_arch * t**2 + 0.25 * t**6
        slope = (0.05 + 2 * a.rib_arch * t + 1.5 * t**5) / (lateral - 0.06)
        radius, visible = 0.026, (np.abs(x) > 0.05) & (np.abs(x) < lateral + 0.02)  # ≈ 1.1 cm tall
        weight = 1.0
    across = np.float32(a.rib_spacing * _cm(1)) / np.sqrt(1 + slope * slope, dtype=np.float32)  # cm per phase unit

    def ribs(rows_y):
        phase = (rows_y - centre) / a.rib_spacing
        index = np.round(phase)  # which rib, 0 to 9
        shown = visible & (index >= 0) & (index < 10)
        return weight * _tube((phase - index) * across, _cm(radius)) * shown

    return _on_rows(x, y, centre.min() - a.rib_spacing / 2, centre.max() + 9.5 * a.rib_spacing, ribs)


def _spine(x, y, a: Anatomy) -> np.ndarray:
    """Vertebral bodies stacked down the midline, with darker discs between them."""
    body = _chord(_cm(1) * x, _cm(0.065)) * 0.55
    discs = 0.75 + 0.25 * np.cos(np.pi * (y - a.rib_start) / a.rib_spacing) ** 2
    return (body * discs * (y > -1.0)).astype(np.float32)


def _clavicles(x, y, a: Anatomy) -> np.ndarray:
    t = np.clip((np.abs(x) - 0.08) / 0.55, 0, 1)
    centre = a.rib_start - 0.04 - 0.10 * t + 0.05 * np.sin(np.pi * t)
    visible = (np.abs(x) > 0.08) & (np.abs(x) < 0.66)
    radius = 0.026
    return _on_rows(x, y, centre.min() - radius, centre.max() + radius,
                    lambda rows_y: _tube(_cm(1) * (rows_y - centre), _cm(radius)) * visible)


def _scapulae(x, y, a: Anatomy) -> np.ndarray:
    """Thin plates over the upper lateral lung fields."""
    u = (np.abs(x) - (a.body_half_width - 0.22)) / 0.16

    def plates(rows_y):
        v = (rows_y + 0.55) / 0.35
        return 0.35 * (1 - np.abs(u)) * ((np.abs(u) < 1) & (np.abs(u) + 0.6 * v < 1))

    return _on_rows(x, y, -0.9, -0.2, plates)  # -1 < v < 1


def _vessels(a: Anatomy, lungs: np.ndarray) -> np.ndarray:
    """A branching tree from each hilum, its branches narrowing at every division.

    Three trunks leave each hilum; every branch splits in two, a generation
    at a time (all branches of a generation in one vectorised step). Each
    generation is drawn as points along its centrelines, then blurred by a
    Gaussian as wide as its vessels: a cylinder's chord, approximated, in one
    filter per vessel width. Drawn at 256² at most, then resized to ``lungs``.
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(a.seed + 7919)
    size = min(lungs.shape[-1], 256)
    half, generations = size / 2, 5
    sides = np.repeat([-1.0, 1.0], 3)
    x0, y0 = 0.16 * sides, np.zeros(6)
    angle = np.pi / 2 + 1.1 * sides + rng.normal(0, 0.15, 6)
    length = 0.22
    thickness_by_sigma: dict[float, np.ndarray] = {}
    for depth in range(generations):
        x1 = x0 + length * np.cos(angle)
        y1 = y0 - length * np.sin(angle) * rng.choice([-1, 1], len(angle))
        t = np.linspace(0, 1, max(int(length * half), 2))
        columns = ((x0[:, None] + t * (x1 - x0)[:, None] + 1) * half).astype(int).ravel()
        rows = ((y0[:, None] + t * (y1 - y0)[:, None] + 1) * half).astype(int).ravel()
        keep = (rows >= 0) & (rows < size) & (columns >= 0) & (columns < size)
        points = np.bincount(rows[keep] * size + columns[keep], minlength=size * size).reshape(size, size)
        radius = 0.011 * 0.7**depth  # image units
        sigma = max(radius * half / math.sqrt(2), 0.5)
        peak = 4 * _cm(radius)  # a vessel and its sheath seen end-on through the lung: several chords deep
        weight = peak * math.sqrt(2 * math.pi) * sigma * length * half / len(t)
        thickness_by_sigma[sigma] = thickness_by_sigma.get(sigma, 0) + weight * points.astype(np.float32)
        x0, y0, length = np.repeat(x1, 2), np.repeat(y1, 2), length * 0.72
        angle = np.repeat(angle, 2) + np.tile([-0.45, 0.45], len(angle)) + rng.normal(0, 0.2, 2 * len(angle))
    thickness = sum(gaussian_filter(points, sigma, truncate=3) for sigma, points in thickness_by_sigma.items())
    if size != lungs.shape[-1]:
        thickness = _resize(thickness, lungs.shape[-1])
    return thickness * lungs


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square (H, W) image to ``size`` pixels, pixel centres aligned."""
    import torch

    resized = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(image))[None, None],
                                              size=(size, size), mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()


def _nodules(x, y, a: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    shape = np.broadcast_shapes(x.shape, y.shape)
    thickness, mask = np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=bool)
    for nx, ny, radius, contrast in a.nodules:
        distance = np.hypot(x - nx, y - ny)
        thickness += contrast * _chord(_cm(1) * distance, _cm(radius))
        mask |= distance < radius
    return thickness, mask


# --------------------------------------------------------------------------- rendering


def _soft_tissue(a: Anatomy, size: int) -> np.ndarray:
    """Patient-frame soft-tissue path (cm), lung mask and nodule mask, stacked (3, size, size)."""
    x, y = _axes(size)
    lungs, air = _lungs(x, y, a)
    nodule_cm, nodule_mask = _nodules(x, y, a)
    soft_cm = _body(x, y, a) - (1 - LUNG_DENSITY) * air + _vessels(a, lungs) + nodule_cm
    body = np.abs(x) < a.body_half_width
    return np.stack([np.clip(soft_cm, 0, None) * body, lungs, nodule_mask]).astype(np.float32)


def _bone(a: Anatomy, size: int) -> np.ndarray:
    """Patient-frame bone path (cm), rib mask and clavicle mask, stacked (3, size, size)."""
    x, y = _axes(size)
    posterior, anterior = _rib_family(x, y, a, False), _rib_family(x, y, a, True)
    clavicles = _clavicles(x, y, a)
    body = np.abs(x) < a.body_half_width
    bone_cm = (posterior + anterior + clavicles + _spine(x, y, a) + _scapulae(x, y, a)) * body
    return np.stack([bone_cm, (posterior + anterior > 0) & body, clavicles > 0]).astype(np.float32)


#: From this size up, soft tissue is drawn at half resolution (it has no finer detail) and resampled.
HALF_RESOLUTION_SOFT_FROM = 512


def path_lengths(seed: int, size: int, num_nodules: int = 0, nodule_radius: float = 0.03,
                 nodule_contrast: float = 1.0) -> dict:
    """Soft-tissue and bone path lengths (cm) per image pixel, the masks, and the anatomy drawn for ``seed``."""
    if not 64 <= size <= 2048:
        raise ValueError(f"The phantom renders sizes from 64 to 2048 pixels, not {size}.")
    anatomy = Anatomy.draw(seed, num_nodules, nodule_radius, nodule_contrast)
    soft_size = size // 2 if size >= HALF_RESOLUTION_SOFT_FROM else size
    coordinates = _patient_coordinates(size, anatomy)
    soft_cm, lungs, nodules = _to_image(_soft_tissue(anatomy, soft_size), coordinates)
    bone_cm, ribs, clavicles = _to_image(_bone(anatomy, size), coordinates)
    masks = {"lungs": lungs > 0.5, "ribs": ribs > 0.5, "clavicles": clavicles > 0.5, "nodules": nodules > 0.5}
    return {"soft_cm": soft_cm, "bone_cm": bone_cm, "masks": masks, "anatomy": anatomy}


def log_image(soft_cm: np.ndarray, bone_cm: np.ndarray, energy_kev: int) -> np.ndarray:
    r""":math:`L_E = \mu_s(E)\,T_s + \mu_b(E)\,T_b`, the negative log of the transmitted fraction."""
    mu_soft, mu_bone = ATTENUATION[energy_kev]
    return mu_soft * soft_cm + mu_bone * bone_cm


def dual_energy_subtraction(low: np.ndarray, high: np.ndarray, energies=DUAL_ENERGIES) -> dict:
    r"""Soft-tissue and bone images from two log images by weighted subtraction.

    :math:`S = L_h - w_b L_l` with :math:`w_b = \mu_b(E_h)/\mu_b(E_l)` cancels bone;
    :math:`B = L_l - w_s L_h` with :math:`w_s = \mu_s(E_l)/\mu_s(E_h)` cancels soft tissue.
    Returned with their weights, in attenuation units (divide by the
    remaining coefficient to get centimetres).
    """
    (soft_low, bone_low), (soft_high, bone_high) = ATTENUATION[energies[0]], ATTENUATION[energies[1]]
    w_bone, w_soft = bone_high / bone_low, soft_low / soft_high
    return {"soft": high - w_bone * low, "bone": low - w_soft * high, "w_bone": w_bone, "w_soft": w_soft,
            "soft_per_cm": soft_high - w_bone * soft_low, "bone_per_cm": bone_low - w_soft * bone_high}


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian detector blur of width ``sigma`` pixels, separable: along rows, then along columns.

    The same filter as ``scipy.ndimage.gaussian_filter``; the column pass
    sums shifted copies of whole rows, which is several times faster than
    scipy's filtering of strided columns.
    """
    from scipy.ndimage import gaussian_filter1d

    blurred_rows = gaussian_filter1d(image, sigma, axis=1)
    radius = int(4 * sigma + 0.5)  # scipy's default truncation at four standard deviations
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    padded = np.pad(blurred_rows, ((radius, radius), (0, 0)), mode="symmetric")  # scipy's "reflect"
    height = image.shape[0]
    blurred = kernel[0] * padded[:height]
    for shift in range(1, 2 * radius + 1):
        blurred += kernel[shift] * padded[shift:shift + height]
    return blurred


#: Expected counts above which Poisson noise is drawn by its normal approximation.
NORMAL_APPROXIMATION_FROM = 50


def _count_photons(log_image: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    r"""The log image after counting quanta: :math:`-\log(k / N_0)` with :math:`k \sim \mathrm{Poisson}(N_0 e^{-L})`.

    Where the expected count :math:`\lambda` reaches 50 the count is drawn as
    :math:`\mathcal{N}(\lambda, \lambda)`, Poisson's own mean and variance
    (its skewness :math:`1/\sqrt{\lambda}` is below 0.15 there), several
    times faster than exact Poisson draws; below, the draw is exact Poisson.
    """
    expected = photons * np.exp(-log_image)
    counts = expected + np.sqrt(expected) * rng.standard_normal(expected.shape, dtype=np.float32)
    few = expected < NORMAL_APPROXIMATION_FROM
    counts[few] = rng.poisson(expected[few])
    return -np.log(np.maximum(counts, 0.5) / photons)


def _nodule_in_pixels(nodule: tuple, anatomy: Anatomy, size: int) -> dict:
    """A nodule's centre and radius in image pixels, and its contrast."""
    x, y, radius, contrast = nodule
    column, row = _to_pixels(x, y, anatomy, size)
    return {"x": column, "y": row, "radius": radius * size / 2, "contrast": contrast}


def render(seed: int, size: int = 256, *, num_nodules: int = 0, nodule_radius: float = 0.03,
           nodule_contrast: float = 1.0, dose: float | None = 2e4, blur_mm: float = 0.35,
           negative: bool = False) -> dict:
    """One phantom chest as a sample dict of numpy float32 (1, H, W) images in [0, 1].

    ``cxr`` is the radiograph at the display energy with detector blur and
    Poisson noise for ``dose`` photons per 0.42 mm pixel (``None``: noiseless);
    ``soft`` and ``bone`` are its exact components (blurred, noiseless), so
    ``cxr ≈ soft + bone``. ``masks`` hold ``lungs``, ``ribs``, ``clavicles`` and
    ``nodules``; ``meta`` the seed, nodule positions (pixels) and physics.
    """
    paths = path_lengths(seed, size, num_nodules, nodule_radius, nodule_contrast)
    mu_soft, mu_bone = ATTENUATION[DISPLAY_ENERGY]
    soft_log, bone_log = mu_soft * paths["soft_cm"], mu_bone * paths["bone_cm"]
    pixel_mm = FIELD_CM * 10 / size
    sigma = blur_mm / pixel_mm
    if sigma > 0.25:
        soft_log, bone_log = _blur(soft_log, sigma), _blur(bone_log, sigma)
    total = soft_log + bone_log
    if dose is not None:  # the dose is per 0.42 mm pixel: scale it to this pixel's area
        total = _count_photons(total, dose * (pixel_mm / 0.42) ** 2, np.random.default_rng(seed + 104729))
    images = {name: np.clip(value / DISPLAY_SCALE, 0, 1).astype(np.float32)[None]
              for name, value in (("cxr", total), ("soft", soft_log), ("bone", bone_log))}
    if negative:
        images = {name: 1 - image for name, image in images.items()}
    anatomy = paths["anatomy"]
    meta = {"seed": seed, "size": size, "dose": dose, "blur_mm": blur_mm, "negative": negative,
            "display_energy_kev": DISPLAY_ENERGY,
            "nodules": [_nodule_in_pixels(nodule, anatomy, size) for nodule in anatomy.nodules]}
    return {**images, "masks": {k: v[None] for k, v in paths["masks"].items()}, "id": f"phantom-{seed}",
            "patient": f"phantom-{seed}", "meta": meta}
