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
(an elliptic chord, thicker below the diaphragm), minus the air in the lungs
(lung parenchyma has about a quarter of soft tissue's density), plus the
branching vessel tree and optional nodules. Bone: the spine with its
vertebrae, ten posterior ribs per side that arch from the spine and fall
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

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
SPLIT_SEEDS = {"train": 0, "val": 1_000_000, "test": 2_000_000}


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
            rib_spacing=rng.uniform(0.105, 0.125),
            rib_start=rng.uniform(-0.78, -0.72),
            rib_arch=rng.uniform(0.18, 0.26),
        )
        nodules = []
        for _ in range(num_nodules):  # inside a lung, half of them behind a rib on average
            side = rng.choice([-1, 1])
            nodules.append((float(side * rng.uniform(0.25, 0.6)), float(rng.uniform(-0.5, 0.2)),
                            float(nodule_radius * rng.uniform(0.8, 1.2)), float(nodule_contrast)))
        return cls(**{**anatomy.__dict__, "nodules": tuple(nodules)})


# --------------------------------------------------------------------------- geometry helpers


def _grid(size: int, anatomy: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in image units, turned by the patient's rotation."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(axis, axis, indexing="ij")
    angle = math.radians(anatomy.rotation_deg)
    xr = math.cos(angle) * (x - anatomy.shift) + math.sin(angle) * y
    yr = -math.sin(angle) * (x - anatomy.shift) + math.cos(angle) * y
    return xr.astype(np.float32), yr.astype(np.float32)


def _chord(distance: np.ndarray, radius: float) -> np.ndarray:
    """Length of a chord at ``distance`` from the centre of a circle (a sphere's or cylinder's thickness)."""
    return 2 * np.sqrt(np.clip(radius**2 - distance**2, 0, None))


def _tube(distance: np.ndarray, radius: float, marrow: float = 0.5) -> np.ndarray:
    """Bone path through a tube of cortical shell around less dense marrow: bright edges, darker middle."""
    inner = 0.7 * radius
    return _chord(distance, radius) - marrow * _chord(distance, inner)


def _cm(units: float) -> float:
    return units * FIELD_CM / 2


# --------------------------------------------------------------------------- anatomy


def _lungs(x, y, a: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Lung mask and the air depth (cm) through it: two rounded lungs cut by the diaphragm and the heart."""
    depth = np.zeros_like(x)
    mask = np.zeros(x.shape, dtype=bool)
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
            inside &= heart > 1
            air = air * np.clip((heart - 1) / 0.35, 0, 1)
        depth = np.where(inside, air, depth)
        mask |= inside
    return mask, depth


def _heart_radius(x, y, a: Anatomy) -> np.ndarray:
    """Elliptic radius of the heart's silhouette (< 1 inside)."""
    return np.sqrt(((x - 0.12) / (0.27 * a.heart_scale)) ** 2 + ((y - 0.2) / (0.22 * a.heart_scale)) ** 2)


def _body(x, y, a: Anatomy) -> np.ndarray:
    """Soft-tissue chord (cm) through the body, thicker below the diaphragm and through the shoulders."""
    half = a.body_half_width * np.where(y < -0.75, 1 - 0.5 * np.clip((-0.75 - y) / 0.25, 0, 1), 1.0)
    chord = a.depth_cm * np.sqrt(np.clip(1 - (x / half) ** 2, 0, None))
    return chord * (1 + 0.12 * np.clip((y - 0.35) / 0.3, 0, 1))


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
    phase = (y - centre) / a.rib_spacing
    index = np.round(phase)
    offset = (phase - index) * a.rib_spacing * np.cos(np.arctan(slope))  # perpendicular distance
    visible &= (index >= 0) & (index < 10)
    return np.where(visible, weight * _tube(_cm(1) * offset, _cm(radius)), 0.0).astype(np.float32)


def _spine(x, y, a: Anatomy) -> np.ndarray:
    """Vertebral bodies stacked down the midline, with darker discs between them."""
    body = _chord(_cm(1) * x, _cm(0.065)) * 0.55
    discs = 0.75 + 0.25 * np.cos(np.pi * (y - a.rib_start) / a.rib_spacing) ** 2
    return (body * discs * (y > -1.0)).astype(np.float32)


def _clavicles(x, y, a: Anatomy) -> np.ndarray:
    t = np.clip((np.abs(x) - 0.08) / 0.55, 0, 1)
    centre = a.rib_start - 0.04 - 0.10 * t + 0.05 * np.sin(np.pi * t)
    visible = (np.abs(x) > 0.08) & (np.abs(x) < 0.66)
    return np.where(visible, _tube(_cm(1) * (y - centre), _cm(0.026), marrow=0.5), 0.0).astype(np.float32)


def _scapulae(x, y, a: Anatomy) -> np.ndarray:
    """Thin plates over the upper lateral lung fields."""
    u = (np.abs(x) - (a.body_half_width - 0.22)) / 0.16
    v = (y + 0.55) / 0.35
    inside = (u > -1) & (u < 1) & (v > -1) & (v < 1) & (np.abs(u) + 0.6 * v < 1)
    return np.where(inside, 0.35 * (1 - np.abs(u)), 0.0).astype(np.float32)


def _vessels(x, y, a: Anatomy, lungs: np.ndarray) -> np.ndarray:
    """A branching tree from each hilum, its branches narrowing at every division.

    Each generation of branches is drawn as points along its centrelines,
    then blurred by a Gaussian as wide as its vessels: a cylinder's chord,
    approximated, in one filter per generation.
    """
    from scipy.ndimage import gaussian_filter, zoom

    rng = np.random.default_rng(a.seed + 7919)
    full = x.shape[0]
    size = min(full, 256)  # vessels are smooth: drawn at 256² at most, then upsampled
    generations = 5
    grids = np.zeros((generations, size, size), dtype=np.float32)
    angle_r, half = math.radians(a.rotation_deg), size / 2
    stack = [(side * 0.16, 0.0, math.pi / 2 + side * 1.1 + rng.normal(0, 0.15), 0.22, 0) for side in (-1, 1)
             for _ in range(3)]
    while stack:
        x0, y0, angle, length, depth = stack.pop()
        x1, y1 = x0 + length * math.cos(angle), y0 - length * math.sin(angle) * rng.choice([-1, 1])
        t = np.linspace(0, 1, max(int(length * half), 2))
        px, py = x0 + t * (x1 - x0), y0 + t * (y1 - y0)  # anatomy coordinates → pixels (undo the rotation)
        columns = ((math.cos(angle_r) * px - math.sin(angle_r) * py + a.shift + 1) * half).astype(int)
        rows = ((math.sin(angle_r) * px + math.cos(angle_r) * py + 1) * half).astype(int)
        keep = (rows >= 0) & (rows < size) & (columns >= 0) & (columns < size)
        np.add.at(grids[depth], (rows[keep], columns[keep]), length * half / len(t))
        if depth < generations - 1:
            for turn in (-0.45, 0.45):
                stack.append((x1, y1, angle + turn + rng.normal(0, 0.2), length * 0.72, depth + 1))
    thickness = np.zeros((size, size), dtype=np.float32)
    for depth in range(generations):
        radius = 0.011 * 0.7**depth  # image units
        sigma = max(radius * half / math.sqrt(2), 0.5)
        peak = 4 * _cm(radius)  # a vessel and its sheath seen end-on through the lung: several chords deep
        thickness += peak * math.sqrt(2 * math.pi) * sigma * gaussian_filter(grids[depth], sigma, truncate=3)
    if size != full:
        thickness = zoom(thickness, full / size, order=1)
    return thickness * lungs


def _nodules(x, y, a: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    thickness, mask = np.zeros_like(x), np.zeros(x.shape, dtype=bool)
    for nx, ny, radius, contrast in a.nodules:
        distance = np.hypot(x - nx, y - ny)
        thickness += contrast * _chord(_cm(1) * distance, _cm(radius))
        mask |= distance < radius
    return thickness, mask


# --------------------------------------------------------------------------- rendering


def path_lengths(seed: int, size: int, num_nodules: int = 0, nodule_radius: float = 0.03,
                 nodule_contrast: float = 1.0) -> dict:
    """Soft-tissue and bone path lengths (cm) per pixel, the masks, and the anatomy drawn for ``seed``."""
    if not 64 <= size <= 2048:
        raise ValueError(f"The phantom renders sizes from 64 to 2048 pixels, not {size}.")
    anatomy = Anatomy.draw(seed, num_nodules, nodule_radius, nodule_contrast)
    x, y = _grid(size, anatomy)
    lungs, air = _lungs(x, y, anatomy)
    nodule_cm, nodule_mask = _nodules(x, y, anatomy)
    soft_cm = _body(x, y, anatomy) - (1 - LUNG_DENSITY) * air + _vessels(x, y, anatomy, lungs) + nodule_cm
    posterior, anterior = _rib_family(x, y, anatomy, False), _rib_family(x, y, anatomy, True)
    clavicles = _clavicles(x, y, anatomy)
    bone_cm = posterior + anterior + clavicles + _spine(x, y, anatomy) + _scapulae(x, y, anatomy)
    body = np.abs(x) < anatomy.body_half_width
    masks = {"lungs": lungs, "ribs": (posterior + anterior > 0) & body, "clavicles": clavicles > 0,
             "nodules": nodule_mask}
    return {"soft_cm": np.clip(soft_cm, 0, None) * body, "bone_cm": bone_cm * body, "masks": masks,
            "anatomy": anatomy}


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
    from scipy.ndimage import gaussian_filter

    paths = path_lengths(seed, size, num_nodules, nodule_radius, nodule_contrast)
    mu_soft, mu_bone = ATTENUATION[DISPLAY_ENERGY]
    soft_log, bone_log = mu_soft * paths["soft_cm"], mu_bone * paths["bone_cm"]
    pixel_mm = FIELD_CM * 10 / size
    sigma = blur_mm / pixel_mm
    if sigma > 0.25:
        soft_log, bone_log = gaussian_filter(soft_log, sigma), gaussian_filter(bone_log, sigma)
    total = soft_log + bone_log
    if dose is not None:  # quantum noise: counts ~ Poisson(N₀ e^{-L}), scaled to this pixel size
        photons = dose * (pixel_mm / 0.42) ** 2
        rng = np.random.default_rng(seed + 104729)
        counts = rng.poisson(photons * np.exp(-total)).astype(np.float32)
        total = -np.log(np.maximum(counts, 0.5) / photons)
    images = {name: np.clip(value / DISPLAY_SCALE, 0, 1).astype(np.float32)[None]
              for name, value in (("cxr", total), ("soft", soft_log), ("bone", bone_log))}
    if negative:
        images = {name: 1 - image for name, image in images.items()}
    anatomy = paths["anatomy"]
    to_pixel = size / 2
    meta = {"seed": seed, "size": size, "dose": dose, "blur_mm": blur_mm, "negative": negative,
            "display_energy_kev": DISPLAY_ENERGY,
            "nodules": [{"x": (nx + 1) * to_pixel, "y": (ny + 1) * to_pixel, "radius": r * to_pixel,
                         "contrast": c} for nx, ny, r, c in anatomy.nodules]}
    return {**images, "masks": {k: v[None] for k, v in paths["masks"].items()}, "id": f"phantom-{seed}",
            "patient": f"phantom-{seed}", "meta": meta}


class PhantomDataset:
    """Phantom chests as a torch dataset, with a fixed train/val/test split by seed.

    ``PhantomDataset(size=64, split="train", num_images=32, seed=0)``: image
    ``i`` of a split is ``render(SPLIT_SEEDS[split] + seed * 10_000 + i, size)``,
    so splits never share a chest and every run sees the same images. Samples
    follow the course's format: float32 tensors (1, H, W) in [0, 1].
    """

    DEFAULT_SIZES: ClassVar[dict[str, int]] = {"train": 200, "val": 40, "test": 40}

    def __init__(self, size: int = 64, split: str = "train", num_images: int | None = None, seed: int = 0,
                 transform=None, **render_options):
        if split not in SPLIT_SEEDS:
            raise ValueError(f"Unknown split {split!r}: choose train, val or test.")
        self.size, self.split, self.seed, self.transform = size, split, seed, transform
        self.num_images = num_images if num_images is not None else self.DEFAULT_SIZES[split]
        self.render_options = render_options
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.num_images

    def seed_of(self, index: int) -> int:
        return SPLIT_SEEDS[self.split] + self.seed * 10_000 + index

    def __getitem__(self, index: int) -> dict:
        import torch

        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} phantom images")
        if index not in self._cache:
            sample = render(self.seed_of(index), self.size, **self.render_options)
            self._cache[index] = {
                "cxr": torch.from_numpy(sample["cxr"]), "soft": torch.from_numpy(sample["soft"]),
                "bone": torch.from_numpy(sample["bone"]),
                "masks": {k: torch.from_numpy(v) for k, v in sample["masks"].items()},
                "id": sample["id"], "patient": sample["patient"], "meta": sample["meta"],
            }
        sample = dict(self._cache[index])
        return self.transform(sample) if self.transform else sample

    def __repr__(self) -> str:
        return (f"PhantomDataset(split={self.split!r}, num_samples={len(self)}, size={self.size}, seed={self.seed}, "
                f"options={self.render_options})")
