"""bs_lib.io: every format reads to float32 (1, H, W) in [0, 1], bone bright; bad files fail clearly."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bs_lib.io import (
    ImageReadError,
    PairMismatchError,
    from_symmetric,
    read_image,
    read_pair,
    to_negative,
    to_symmetric,
)

# --------------------------------------------------------------------------- helpers that build files


def gradient(height: int = 32, width: int = 24, top: int = 255) -> np.ndarray:
    """A left-to-right ramp 0 .. top, so polarity and scaling are easy to check."""
    return np.tile(np.linspace(0, top, width), (height, 1))


def save_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def save_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", bits: int = 12,
               window: tuple[float, float] | None = None, rescale: tuple[float, float] | None = None,
               with_pixels: bool = True, frames: int = 1) -> Path:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "CR", "TEST"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if with_pixels:
        ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def save_raw_jsrt(path: Path, values: np.ndarray) -> Path:
    values.astype(">u2").tofile(path)
    return path


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# --------------------------------------------------------------------------- good inputs


def test_8bit_png_scales_by_255_and_keeps_polarity(tmp_path):
    path = save_png(tmp_path / "cxr.png", gradient().astype(np.uint8))
    image, meta = read_image(path)
    assert image.shape == (1, 32, 24) and image.dtype == np.float32
    assert image[0, 0, 0] == 0.0 and image[0, 0, -1] == 1.0
    assert meta["bit_depth"] == 8 and meta["format"] == "PNG" and meta["inverted"] is False


def test_16bit_png_scales_by_65535(tmp_path):
    array = gradient(top=4095).astype(np.uint16)  # 12-bit data in a 16-bit container
    path = save_png(tmp_path / "cxr16.png", array)
    image, meta = read_image(path)
    assert meta["bit_depth"] == 16
    assert image.max() == pytest.approx(4095 / 65535, rel=1e-5)
    stretched, meta = read_image(path, normalize="minmax")
    assert stretched.max() == 1.0 and "min-max" in meta["normalization"]


def test_rgb_is_converted_to_grey_with_a_warning(tmp_path):
    grey = gradient().astype(np.uint8)
    path = save_png(tmp_path / "rgb.png", np.stack([grey] * 3, axis=-1))
    with pytest.warns(UserWarning, match="rgb.png: colour image converted to grey"):
        image, meta = read_image(path)
    assert meta["converted_from"] == "RGB"
    np.testing.assert_allclose(image[0], grey / 255.0, atol=1e-6)


def test_jpeg_reads(tmp_path):
    path = tmp_path / "cxr.jpg"
    Image.fromarray(gradient().astype(np.uint8)).save(path, quality=95)
    image, meta = read_image(path)
    assert meta["format"] == "JPEG" and image.shape == (1, 32, 24)
    assert abs(float(image[0, :, -1].mean()) - 1.0) < 0.05


def test_float_tiff_in_unit_range_keeps_values(tmp_path):
    import tifffile

    values = (gradient(top=1.0) * 0.5 + 0.25).astype(np.float32)
    tifffile.imwrite(tmp_path / "x.tif", values)
    image, meta = read_image(tmp_path / "x.tif")
    np.testing.assert_allclose(image[0], values, atol=1e-7)
    assert meta["format"] == "TIFF"


def test_dicom_monochrome1_is_inverted_after_rescale_and_window(tmp_path):
    stored = gradient(top=4000).astype(np.uint16)
    path = save_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", window=(2000, 4001),
                      rescale=(1.0, 0.0))
    image, meta = read_image(path)
    assert meta["inverted"] is True and meta["window"] == (2000.0, 4001.0)
    # stored 0 (dark in MONOCHROME2 terms) is *bright* in MONOCHROME1
    assert image[0, 0, 0] == pytest.approx(1.0, abs=1e-3) and image[0, 0, -1] == pytest.approx(0.0, abs=1e-3)
    kept, _ = read_image(path, invert=False)
    np.testing.assert_allclose(kept, 1.0 - image, atol=1e-6)


def test_dicom_without_window_uses_bits_stored_and_rescale(tmp_path):
    stored = gradient(top=4095).astype(np.uint16)
    path = save_dicom(tmp_path / "m2.dcm", stored, bits=12, rescale=(2.0, 100.0))
    image, meta = read_image(path)
    assert meta["rescale"] == (2.0, 100.0) and meta["window"] is None
    assert image.min() == 0.0 and image.max() == pytest.approx(1.0)


def test_raw_jsrt_is_big_endian_12_bit_and_inverted(tmp_path):
    values = gradient(16, 16, top=4095).astype(np.uint16)
    path = save_raw_jsrt(tmp_path / "JPCLN001.IMG", values)
    image, meta = read_image(path, raw_shape=(16, 16))
    assert meta["format"] == "raw JSRT" and meta["bit_depth"] == 12 and meta["inverted"] is True
    np.testing.assert_allclose(image[0], 1.0 - values / 4095.0, atol=1e-6)


def test_explicit_conversions_round_trip():
    x = np.linspace(0, 1, 5, dtype=np.float32)
    np.testing.assert_allclose(to_negative(to_negative(x)), x)
    assert to_symmetric(x).min() == -1.0 and to_symmetric(x).max() == 1.0
    np.testing.assert_allclose(from_symmetric(to_symmetric(x)), x, atol=1e-7)


def test_real_chest_dicom_from_pydicom_data():
    pytest.importorskip("data_store", reason="pydicom-data is not installed")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCR.dcm")
    image, meta = read_image(path)
    assert image.shape == (1, 1955, 1841) and image.dtype == np.float32
    assert meta["photometric_interpretation"] == "MONOCHROME1" and meta["inverted"] is True
    assert meta["bit_depth"] == 15 and meta["window"] == (15000.0, 30000.0)
    assert 0.0 <= image.min() < image.max() <= 1.0
    # conventional polarity: the mediastinum (centre column) is brighter than the lungs beside it
    rows = slice(700, 1100)
    centre = image[0, rows, 880:960].mean()
    lungs = (image[0, rows, 450:600].mean() + image[0, rows, 1250:1400].mean()) / 2
    assert centre > lungs


# --------------------------------------------------------------------------- pairs


def test_pair_with_a_larger_soft_image_is_refused_then_resized_on_request(tmp_path):
    """The real-world case: the soft-tissue image is a few pixels larger than its radiograph."""
    cxr = save_png(tmp_path / "cxr.png", gradient(64, 64).astype(np.uint8))
    soft = save_png(tmp_path / "soft.png", gradient(67, 66).astype(np.uint8))
    before = snapshot(tmp_path)
    with pytest.raises(PairMismatchError, match=r"soft.png: size 67×66 differs .*cxr.png \(64×64\).*resize_mismatch"):
        read_pair(cxr, soft)
    with pytest.warns(UserWarning, match="resized from 67×66"):
        a, b, meta = read_pair(cxr, soft, resize_mismatch=True)
    assert a.shape == b.shape == (1, 64, 64) and meta["resized_target"] is True
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- the bad-input corpus


def _truncated_png(folder: Path) -> Path:
    good = save_png(folder / "good.png", (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8))
    data = good.read_bytes()
    good.unlink()
    path = folder / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def _nan_tiff(folder: Path, value: float) -> Path:
    import tifffile

    array = gradient(top=1.0).astype(np.float32)
    array[3, 4] = value
    path = folder / ("nan.tif" if np.isnan(value) else "inf.tif")
    tifffile.imwrite(path, array)
    return path


BAD_INPUTS = {
    "missing file": (lambda d: d / "absent.png", FileNotFoundError, r"absent.png: no such file"),
    "empty file": (lambda d: write(d / "empty.png", b""),
                   ImageReadError, r"empty.png: the file is empty"),
    "truncated png": (_truncated_png, ImageReadError, r"truncated.png: truncated or corrupt PNG"),
    "random bytes as png": (
        lambda d: write(d / "noise.png", np.random.default_rng(1).bytes(2048)),
        ImageReadError, r"noise.png: not a readable PNG"),
    "unsupported extension": (lambda d: write(d / "scan.xyz", b"hello"),
                              ImageReadError, r"scan.xyz: unsupported format '.xyz'"),
    "folder instead of file": (lambda d: (d / "dir.png").mkdir() or d / "dir.png",
                               ImageReadError, r"dir.png: is a folder"),
    "constant image": (lambda d: save_png(d / "flat.png", np.full((16, 16), 7, np.uint8)),
                       ImageReadError, r"flat.png: the image is constant"),
    "nan tiff": (lambda d: _nan_tiff(d, np.nan), ImageReadError, r"nan.tif: 1 pixel\(s\) are NaN or infinite"),
    "inf tiff": (lambda d: _nan_tiff(d, np.inf), ImageReadError, r"inf.tif: 1 pixel\(s\) are NaN or infinite"),
    "raw IMG of the wrong size": (
        lambda d: save_raw_jsrt(d / "JPCLN002.IMG", np.zeros((100, 100), np.uint16)),
        ImageReadError, r"JPCLN002.IMG: 20000 bytes, but a raw 2048×2048 16-bit image has 8388608"),
    "raw IMG with little-endian bytes": (
        lambda d: (gradient(16, 16, top=4095).astype("<u2").tofile(d / "le.img"), d / "le.img")[1],
        ImageReadError, r"le.img: values up to \d+ do not fit in 12 bits", {"raw_shape": (16, 16)}),
    "dicom without pixel data": (
        lambda d: save_dicom(d / "nopix.dcm", np.zeros((8, 8), np.uint16), with_pixels=False),
        ImageReadError, r"nopix.dcm: the DICOM file has no pixel data"),
    "multi-frame dicom (a volume)": (
        lambda d: save_dicom(d / "vol.dcm", gradient(8, 8, top=100).astype(np.uint16)[None].repeat(3, 0),
                             frames=3),
        ImageReadError, r"vol.dcm: a multi-frame DICOM \(3 frames\)"),
    "garbage with .dcm suffix": (lambda d: write(d / "bad.dcm", b"not dicom at all" * 10),
                                 ImageReadError, r"bad.dcm: not a readable DICOM file"),
    "3-D tiff volume": (
        lambda d: (__import__("tifffile").imwrite(d / "stack.tif", np.zeros((5, 8, 8), np.uint16)), d / "stack.tif")[1],
        ImageReadError, r"stack.tif: expected one 2-D image, got an array of shape \(5, 8, 8\)"),
    "4-channel CMYK jpeg": (
        lambda d: (Image.new("CMYK", (8, 8), (0, 10, 20, 30)).save(d / "cmyk.jpg"), d / "cmyk.jpg")[1],
        ImageReadError, r"cmyk.jpg: unsupported colour mode 'CMYK'"),
    "RGBA with real transparency": (
        lambda d: save_png(d / "alpha.png", np.dstack([gradient(8, 8).astype(np.uint8)] * 3
                                                      + [np.tile(np.arange(8, dtype=np.uint8) * 30, (8, 1))])),
        ImageReadError, r"alpha.png: 4-channel image \(RGBA\) with a transparency channel"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_clear_error_naming_the_file_and_writes_nothing(tmp_path, case):
    make, error, message, *options = BAD_INPUTS[case]
    path = make(tmp_path)
    before = snapshot(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. pydicom's notes on odd files; the error is what counts
        with pytest.raises(error, match=message):
            read_image(path, **(options[0] if options else {}))
    assert snapshot(tmp_path) == before


def test_the_corpus_is_large_enough():
    assert len(BAD_INPUTS) >= 15
