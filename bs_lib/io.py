"""Reading chest radiographs from any of the formats real datasets use.

Every reader in this module returns the same thing: a float32 array shaped
``(1, H, W)`` with values in [0, 1] in **conventional polarity** (bone bright,
air dark), plus a metadata dict that records every decision taken on the way.
The differences between sources are where bone-suppression experiments go
wrong silently, so they are handled here, once:

Bit depth
    An integer image with ``b`` bits is scaled by its full range,
    ``x / (2**b − 1)``: 8-bit PNG by 255, 16-bit PNG/TIFF by 65535, raw JSRT
    (12 bits) by 4095, DICOM by its ``BitsStored``. A fixed scale keeps the
    relation between images of one dataset; ``normalize="minmax"`` stretches
    each image to [0, 1] instead, ``x' = (x − min) / (max − min)``.
Polarity
    DICOM ``MONOCHROME1`` stores high values as *dark*, and raw JSRT ``.IMG``
    files are stored inverted too; both are flipped, ``x' = 1 − x``, so that
    bones are bright. ``invert=True/False`` overrides the decision.
DICOM value chain
    stored value → modality LUT (``RescaleSlope · x + RescaleIntercept``) →
    VOI LUT or window (centre ``c``, width ``w``: ``y = (x − (c − ½)) / (w − 1) + ½``
    clipped to [0, 1]) → photometric inversion.
Colour
    RGB images are converted to grey (ITU-R 601 luma, ``0.299 R + 0.587 G +
    0.114 B``) with a warning: a radiograph has one channel, and three means
    somebody exported it through a photo tool.

Anything unreadable raises :class:`ImageReadError` (a ``ValueError``) whose
message names the file, says what is wrong and what to do; a missing file
raises ``FileNotFoundError``. Nothing is ever written.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

#: Raw JSRT ``.IMG``: 2048 × 2048 header-less big-endian unsigned 16-bit words, 12 bits used.
JSRT_SHAPE = (2048, 2048)
JSRT_BITS = 12

PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
RAW_SUFFIXES = (".img",)
SUPPORTED_SUFFIXES = PIL_SUFFIXES + TIFF_SUFFIXES + DICOM_SUFFIXES + RAW_SUFFIXES


class ImageReadError(ValueError):
    """An image file exists but cannot be turned into a usable radiograph."""


class PairMismatchError(ImageReadError):
    """The two images of a radiograph / target pair do not have the same size."""


# --------------------------------------------------------------------------- public API


def read_image(
    path: str | Path,
    *,
    normalize: str = "bits",
    invert: bool | None = None,
    apply_window: bool = True,
    raw_shape: tuple[int, int] = JSRT_SHAPE,
    raw_bits: int = JSRT_BITS,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one radiograph as a float32 ``(1, H, W)`` array in [0, 1], bone bright.

    Parameters
    ----------
    path:
        a PNG/JPEG/BMP, TIFF, DICOM (``.dcm`` or any file with the ``DICM``
        marker) or raw JSRT ``.IMG`` file.
    normalize:
        ``"bits"`` (default) divides by the full range of the stored bit depth;
        ``"minmax"`` stretches each image to [0, 1].
    invert:
        ``None`` follows the file (MONOCHROME1 and raw JSRT are inverted);
        ``True``/``False`` forces the choice.
    apply_window:
        apply a DICOM VOI LUT or window when the file has one.
    raw_shape, raw_bits:
        geometry of header-less ``.IMG`` files (JSRT by default).

    Returns
    -------
    image, metadata
        ``metadata`` holds ``path``, ``format``, ``bit_depth``, ``original_shape``,
        ``original_dtype``, ``photometric_interpretation``, ``inverted``,
        ``normalization`` and format-specific keys (window, rescale, ...).
    """
    path = Path(path)
    _check_file(path)
    if normalize not in ("bits", "minmax"):
        raise ValueError(f"normalize must be 'bits' or 'minmax', got {normalize!r}")
    reader = _reader_for(path)
    values, meta = reader(path, apply_window=apply_window, raw_shape=raw_shape, raw_bits=raw_bits)
    meta = {"path": str(path), **meta}
    _check_values(path, values)
    if normalize == "minmax" or meta.get("scale") is None:
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low)
        meta["normalization"] = f"min-max ({low:g} .. {high:g})"
    else:
        low, high = meta["scale"]
        scaled = np.clip((values - low) / (high - low), 0.0, 1.0)
        meta["normalization"] = f"fixed range {low:g} .. {high:g}"
    meta.pop("scale", None)
    should_invert = meta.pop("stored_inverted", False) if invert is None else invert
    if should_invert:
        scaled = 1.0 - scaled
    meta["inverted"] = bool(should_invert)
    meta["polarity"] = "conventional (bone bright)" if invert is None else "as requested by invert="
    image = scaled.astype(np.float32)[None]
    _check_not_constant(path, image)
    return image, meta


def read_pair(
    cxr_path: str | Path,
    target_path: str | Path,
    resize_mismatch: bool = False,
    **read_options: Any,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a radiograph and its target (e.g. soft-tissue image) that must share one grid.

    A pair whose two images differ in size raises :class:`PairMismatchError`:
    in real collections the soft-tissue image is sometimes a few pixels larger
    than its radiograph, and silently comparing them misaligns every rib.
    ``resize_mismatch=True`` resamples the target onto the radiograph's grid
    (bilinear) with a warning instead.
    """
    cxr, cxr_meta = read_image(cxr_path, **read_options)
    target, target_meta = read_image(target_path, **read_options)
    meta: dict[str, Any] = {"cxr": cxr_meta, "target": target_meta, "resized_target": False}
    if cxr.shape != target.shape:
        if not resize_mismatch:
            raise PairMismatchError(
                f"{target_path}: size {target.shape[1]}×{target.shape[2]} differs from its radiograph "
                f"{cxr_path} ({cxr.shape[1]}×{cxr.shape[2]}). Check that the two files belong together; "
                f"pass resize_mismatch=True to resample the target onto the radiograph's grid."
            )
        warnings.warn(
            f"{target_path}: resized from {target.shape[1]}×{target.shape[2]} to the radiograph's "
            f"{cxr.shape[1]}×{cxr.shape[2]} (resize_mismatch=True).",
            stacklevel=2,
        )
        target = resize(target, cxr.shape[1:])
        meta["resized_target"] = True
    return cxr, target, meta


# --------------------------------------------------------------------------- explicit conversions


def resize(image: np.ndarray, shape: tuple[int, int], clip: bool = True) -> np.ndarray:
    """Resample a ``(1, H, W)`` float image to ``shape`` with antialiased bilinear interpolation.

    The result is clipped to [0, 1] unless ``clip=False`` (a signed image, such as a bone layer).
    """
    import torch
    import torch.nn.functional as F

    tensor = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)[None]
    antialias = shape[0] < image.shape[1] or shape[1] < image.shape[2]
    out = F.interpolate(tensor, size=tuple(shape), mode="bilinear", align_corners=False, antialias=antialias)
    return (out[0].clamp(0.0, 1.0) if clip else out[0]).numpy()


def to_negative(image):
    """The negative image, ``1 − x``: bone dark, the way film and MONOCHROME1 show it."""
    return 1.0 - image


def to_symmetric(image):
    """Map [0, 1] to [−1, 1], ``2x − 1``, the range most diffusion models work in."""
    return image * 2.0 - 1.0


def from_symmetric(image):
    """Map [−1, 1] back to [0, 1], ``(x + 1) / 2``."""
    return (image + 1.0) / 2.0


# --------------------------------------------------------------------------- checks


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file. Check the path (and the data directory).")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file.")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: the file is empty (0 bytes); download or export it again.")


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


def _reader_for(path: Path):
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES or (suffix not in SUPPORTED_SUFFIXES and _is_dicom(path)):
        return _read_dicom
    if suffix in PIL_SUFFIXES:
        return _read_with_pillow
    if suffix in TIFF_SUFFIXES:
        return _read_tiff
    if suffix in RAW_SUFFIXES:
        return _read_raw_jsrt
    raise ImageReadError(
        f"{path}: unsupported format {suffix or '(no suffix)'!r}; supported: "
        f"{', '.join(SUPPORTED_SUFFIXES)} and DICOM files without a suffix."
    )


def _check_values(path: Path, values: np.ndarray) -> None:
    if values.size == 0:
        raise ImageReadError(f"{path}: the image has no pixels (shape {values.shape}).")
    if values.ndim != 2:
        raise ImageReadError(
            f"{path}: expected one 2-D image, got an array of shape {values.shape} "
            f"(a volume or a multi-frame file); extract a single frame first."
        )
    if not np.all(np.isfinite(values)):
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        raise ImageReadError(f"{path}: {bad} pixel(s) are NaN or infinite; the file is corrupt or unscaled.")
    if float(values.max()) - float(values.min()) <= 0.0:
        raise ImageReadError(
            f"{path}: the image is constant (every pixel {float(values.flat[0]):g}); it holds no anatomy. "
            f"Re-export it or drop it from the dataset."
        )


def _check_not_constant(path: Path, image: np.ndarray) -> None:
    if float(image.max()) - float(image.min()) <= 0.0:
        raise ImageReadError(
            f"{path}: every pixel is {float(image.flat[0]):g} after scaling (window or bit depth wrong?); "
            f"try normalize='minmax' or apply_window=False."
        )


# --------------------------------------------------------------------------- readers


def _to_grey(path: Path, rgb: np.ndarray) -> np.ndarray:
    warnings.warn(f"{path}: colour image converted to grey (ITU-R 601 luma).", stacklevel=4)
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float64)
    return rgb[..., :3].astype(np.float64) @ weights


def _read_with_pillow(path: Path, **_: Any) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image, UnidentifiedImageError

    kind = path.suffix.lower().lstrip(".").upper().replace("JPG", "JPEG")
    try:
        with Image.open(path) as image:
            image.load()  # decode everything now: a truncated file fails here, not later
            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                mode = image.mode
            array = np.array(image)
    except UnidentifiedImageError as error:
        raise ImageReadError(f"{path}: not a readable {kind} image (unknown or corrupt data).") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{path}: truncated or corrupt {kind} image ({error}).") from error
    return _from_pixel_array(path, array, mode, kind)


def _from_pixel_array(path: Path, array: np.ndarray, mode: str, kind: str) -> tuple[np.ndarray, dict]:
    meta: dict[str, Any] = {
        "format": kind,
        "original_shape": tuple(array.shape),
        "original_dtype": str(array.dtype),
        "photometric_interpretation": "MONOCHROME2",
        "mode": mode,
    }
    if array.ndim == 3:
        channels = array.shape[2]
        if channels == 4 or mode in ("RGBA", "LA"):
            alpha = array[..., -1]
            if alpha.min() < alpha.max() or alpha.min() == 0:
                raise ImageReadError(
                    f"{path}: {channels}-channel image ({mode}) with a transparency channel that is not "
                    f"opaque; a radiograph has one grey channel. Re-export it as grayscale."
                )
            array = array[..., :-1]
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        elif array.ndim == 3 and array.shape[2] == 3:
            array = _to_grey(path, array)
            meta["converted_from"] = "RGB"
        elif array.ndim == 3:
            raise ImageReadError(
                f"{path}: unsupported colour mode {mode!r} with {array.shape[2]} channels; "
                f"export the radiograph as a grayscale image."
            )
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        raise ImageReadError(f"{path}: unsupported colour mode {mode!r}; export the radiograph as grayscale.")
    bits = _integer_bits(meta["original_dtype"], mode)
    meta["bit_depth"] = bits
    values = array.astype(np.float64)
    meta["scale"] = (0.0, float(2**bits - 1)) if bits else _float_scale(values)
    return values, meta


def _integer_bits(dtype: str, mode: str) -> int | None:
    if mode == "1":
        return 1
    return {"uint8": 8, "uint16": 16, ">u2": 16, "int32": 16 if mode.startswith("I;16") else 32}.get(dtype)


def _float_scale(values: np.ndarray) -> tuple[float, float] | None:
    """A float image already in [0, 1] keeps its values; anything else is min-max scaled."""
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
        return (0.0, 1.0)
    return None


def _read_tiff(path: Path, **_: Any) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        import tifffile
    except ImportError:  # Pillow reads the common TIFF flavours too
        return _read_with_pillow(path)
    try:
        array = tifffile.imread(path)
    except Exception as error:
        raise ImageReadError(f"{path}: truncated or corrupt TIFF image ({error}).") from error
    array = np.asarray(array)
    channels = array.shape[-1] if array.ndim == 3 else 1
    mode = {3: "RGB", 4: "RGBA"}.get(channels, "L")
    if array.ndim == 3 and array.shape[-1] not in (3, 4):
        raise ImageReadError(
            f"{path}: expected one 2-D image, got an array of shape {array.shape} "
            f"(a volume or a multi-page file); extract a single page first."
        )
    values, meta = _from_pixel_array(path, array, mode, "TIFF")
    if array.dtype.kind == "f":
        meta["bit_depth"] = None
    return values, meta


def _read_raw_jsrt(
    path: Path, *, raw_shape: tuple[int, int], raw_bits: int, **_: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    expected = raw_shape[0] * raw_shape[1] * 2
    size = path.stat().st_size
    if size != expected:
        raise ImageReadError(
            f"{path}: {size} bytes, but a raw {raw_shape[0]}×{raw_shape[1]} 16-bit image has {expected}. "
            f"The file is truncated or is not a JSRT .IMG file (pass raw_shape= for other geometries)."
        )
    array = np.fromfile(path, dtype=">u2").reshape(raw_shape)
    top = int(array.max())
    if top >= 2**raw_bits:
        raise ImageReadError(
            f"{path}: values up to {top} do not fit in {raw_bits} bits; the byte order or bit depth is wrong "
            f"(JSRT stores big-endian 12-bit values)."
        )
    meta = {
        "format": "raw JSRT",
        "original_shape": tuple(array.shape),
        "original_dtype": ">u2",
        "bit_depth": raw_bits,
        "photometric_interpretation": "MONOCHROME1 (raw JSRT is stored inverted)",
        "scale": (0.0, float(2**raw_bits - 1)),
        "stored_inverted": True,
    }
    return array.astype(np.float64), meta


def _read_dicom(path: Path, *, apply_window: bool, **_: Any) -> tuple[np.ndarray, dict[str, Any]]:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as error:
        raise ImageReadError(f"{path}: not a readable DICOM file ({error}).") from error
    if "PixelData" not in dataset:
        raise ImageReadError(f"{path}: the DICOM file has no pixel data (a report or structured object?).")
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(f"{path}: a multi-frame DICOM ({frames} frames); extract one frame first.")
    try:
        stored = dataset.pixel_array
    except Exception as error:
        raise ImageReadError(f"{path}: the DICOM pixel data cannot be decoded ({error}).") from error
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    bits = int(getattr(dataset, "BitsStored", 16))
    slope = float(getattr(dataset, "RescaleSlope", 1) or 1)
    intercept = float(getattr(dataset, "RescaleIntercept", 0) or 0)
    meta: dict[str, Any] = {
        "format": "DICOM",
        "original_shape": tuple(stored.shape),
        "original_dtype": str(stored.dtype),
        "bit_depth": bits,
        "photometric_interpretation": photometric,
        "rescale": (slope, intercept),
        "modality": str(getattr(dataset, "Modality", "")),
    }
    if stored.ndim == 3 and stored.shape[-1] == 3 and frames == 1:
        values, colour_meta = _from_pixel_array(path, stored, "RGB", "DICOM")
        return values, {**meta, **colour_meta, "bit_depth": bits}
    values = apply_modality_lut(stored, dataset).astype(np.float64)
    signed = int(getattr(dataset, "PixelRepresentation", 0)) == 1
    stored_low, stored_high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    low, high = sorted((stored_low * slope + intercept, stored_high * slope + intercept))
    meta["scale"] = (low, high)
    has_lut = "VOILUTSequence" in dataset
    has_window = "WindowCenter" in dataset and "WindowWidth" in dataset
    meta["window"] = None
    if apply_window and has_lut:
        values = apply_voi_lut(values, dataset).astype(np.float64)
        lut_bits = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
        meta["scale"] = (0.0, float(2**lut_bits - 1))
        meta["window"] = "VOI LUT sequence"
    elif apply_window and has_window:
        centre, width = _first(dataset.WindowCenter), _first(dataset.WindowWidth)
        if width >= 1:
            values = np.clip((values - (centre - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
            meta["scale"] = (0.0, 1.0)
            meta["window"] = (centre, width)
    meta["stored_inverted"] = photometric == "MONOCHROME1"
    return values, meta


def _first(value) -> float:
    """DICOM window tags may hold several values; the first is the default view."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)
