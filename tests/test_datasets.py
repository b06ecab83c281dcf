"""bs_lib.datasets: one sample shape, layouts discovered, missing data explained, splits that cannot leak."""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bs_lib import datasets as ds
from bs_lib import download
from bs_lib.datasets import (
    BSEJSRT,
    JSRT,
    DatasetNotFoundError,
    GusarevDES,
    JSRTBoneMasks,
    JSRTBSEBaidu,
    PairedFolder,
    RealSamplePairs,
    SplitLeakageError,
    SZCHXRays,
    augmented_pairs,
    check_no_patient_overlap,
    get_dataset,
    load_split,
    make_patient_split,
    random_image_split,
    save_split,
    shared_patients,
)
from bs_lib.io import read_image


def png(path: Path, seed: int = 0, size: tuple[int, int] = (20, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.random.default_rng(seed).random(size) * 200 + 20).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def make_pairs(root: Path, cxr_dir: str, target_dir: str, stems, **kwargs) -> Path:
    for i, stem in enumerate(stems):
        png(root / cxr_dir / f"{stem}.png", seed=i, **kwargs)
        png(root / target_dir / f"{stem}.png", seed=100 + i, **kwargs)
    return root


def assert_sample_shape(sample: dict, size: int | None = None) -> None:
    for key in ("cxr", "soft"):
        image = sample[key]
        assert isinstance(image, torch.Tensor) and image.dtype == torch.float32 and image.ndim == 3
        assert image.shape[0] == 1 and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        if size:
            assert tuple(image.shape[1:]) == (size, size)
    assert isinstance(sample["id"], str) and isinstance(sample["patient"], str)
    assert isinstance(sample["masks"], dict)


# --------------------------------------------------------------------------- PairedFolder


@pytest.mark.parametrize("cxr_dir, target_dir", [("CXR", "BS"), ("authentic", "des"),
                                                 ("JSRT/JSRT", "BSE_JSRT/BSE_JSRT")])
def test_paired_folder_layouts(tmp_path, cxr_dir, target_dir):
    root = make_pairs(tmp_path, cxr_dir, target_dir, ["b2", "b10", "a1"])
    dataset = PairedFolder(root, cxr_dir, target_dir, size=8)
    assert len(dataset) == 3 and dataset.ids == ["a1", "b2", "b10"]  # natural order
    assert_sample_shape(dataset[0], size=8)
    assert "3 pairs" in repr(dataset)


def test_paired_folder_native_size_and_transform(tmp_path):
    root = make_pairs(tmp_path, "CXR", "BS", ["0"])
    dataset = PairedFolder(root, transform=lambda s: {**s, "flag": True})
    sample = dataset[0]
    assert sample["flag"] and tuple(sample["cxr"].shape) == (1, 20, 20)
    expected = np.asarray(Image.open(root / "CXR/0.png"), dtype=np.float32) / 255
    np.testing.assert_allclose(sample["cxr"][0].numpy(), expected, atol=1e-6)


def test_resized_pairs_are_read_once_and_handed_out_as_copies(tmp_path, monkeypatch):
    root = make_pairs(tmp_path, "CXR", "BS", ["0"])
    dataset = PairedFolder(root, size=8)
    first = dataset[0]
    first["cxr"].zero_()  # a caller that writes into its sample must not change the next one
    monkeypatch.setattr(dataset, "_read", lambda *paths: pytest.fail("a cached pair was read again"))
    again = dataset[0]
    assert float(again["cxr"].max()) > 0 and again["cxr"].shape == (1, 8, 8)
    native = PairedFolder(root)  # native size: nothing kept (the images may be large)
    native[0]
    assert native._cache == {}


def test_a_pair_missing_on_one_side_is_an_error_unless_skipped(tmp_path):
    root = make_pairs(tmp_path, "CXR", "BS", ["0", "1"])
    png(root / "CXR" / "2.png")
    message = r"1 radiograph\(s\) without a target in BS/ \(e.g. \['2'\]\).*unpaired='skip'"
    with pytest.raises(ValueError, match=message):
        PairedFolder(root)
    assert PairedFolder(root, unpaired="skip").ids == ["0", "1"]


def test_a_folder_with_no_pairs_says_what_it_found(tmp_path):
    png(tmp_path / "CXR" / "a.png")
    png(tmp_path / "BS" / "b.png")
    with pytest.raises(DatasetNotFoundError, match=r"no pairs: CXR/ has 1 image\(s\), BS/ has 1"):
        PairedFolder(tmp_path, unpaired="skip")
    with pytest.raises(DatasetNotFoundError, match=r"folder not found"):
        PairedFolder(tmp_path, "CXR", "soft")


def test_mismatched_pair_sizes_fail_at_read_time_or_resize_on_request(tmp_path):
    png(tmp_path / "CXR" / "0.png", size=(20, 20))
    png(tmp_path / "BS" / "0.png", size=(23, 22))  # the soft image a few pixels larger
    with pytest.raises(ValueError, match=r"0.png: size 23×22 differs from its radiograph"):
        PairedFolder(tmp_path)[0]
    with pytest.warns(UserWarning, match=r"resized"):
        sample = PairedFolder(tmp_path, resize_mismatch=True)[0]
    assert sample["cxr"].shape == sample["soft"].shape == (1, 20, 20)


# --------------------------------------------------------------------------- the real sample pairs


def readme_reference_values(folder: Path) -> dict[str, list[float]]:
    rows = re.findall(r"^\| (szch-[a-z]+/\d) \| ([^|]+)\| ([^|]+)\| ([^|]+)\| ([^|]+)\|", (folder / "README.md")
                      .read_text(), flags=re.MULTILINE)
    return {row[0]: [float(v) for v in row[1:]] for row in rows}


def test_real_pairs_load_and_the_identity_baseline_matches_the_readme(real_pairs):
    reference = readme_reference_values(real_pairs)
    assert len(reference) == 6
    dataset = RealSamplePairs(real_pairs)
    assert sorted(dataset[i]["id"] for i in range(len(dataset))) == sorted(reference)
    for group in ("szch-bsldm", "szch-bsdiff"):
        folder = PairedFolder(real_pairs / group)  # the plain PairedFolder reads them too
        assert len(folder) == 3
        for i in range(3):
            sample = folder[i]
            assert_sample_shape(sample, size=1024)
            cxr, soft = sample["cxr"].double(), sample["soft"].double()
            mse = float(((cxr - soft) ** 2).mean())
            _, expected_mse, expected_psnr, _ = reference[f"{group}/{sample['id']}"]
            assert mse == pytest.approx(expected_mse, rel=1e-5)
            assert 10 * np.log10(1.0 / mse) == pytest.approx(expected_psnr, abs=1e-3)


def test_real_pairs_identity_baseline_with_the_course_metrics(real_pairs):
    metrics = pytest.importorskip("bs_lib.metrics", reason="bs_lib.metrics is not available yet")
    reference = readme_reference_values(real_pairs)
    dataset = RealSamplePairs(real_pairs)
    for i in range(len(dataset)):
        sample = dataset[i]
        bsr, mse, psnr, psnr_uint8 = reference[sample["id"]]
        cxr, soft = sample["cxr"], sample["soft"]
        assert float(metrics.bsr(cxr, soft, cxr)) == pytest.approx(bsr, abs=1e-5)
        assert float(metrics.mse(cxr, soft)) == pytest.approx(mse, rel=1e-4)
        assert float(metrics.psnr(cxr, soft, data_range=1.0)) == pytest.approx(psnr, abs=1e-3)
        assert float(metrics.psnr_uint8_official(cxr, soft)) == pytest.approx(psnr_uint8, abs=1e-3)


# --------------------------------------------------------------------------- named datasets


def test_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"bse-jsrt: .*python -m bs_lib download bse-jsrt.*KAGGLE_KEY"):
        BSEJSRT()
    with pytest.raises(DatasetNotFoundError, match=r"szch-x-rays: .*download szch-x-rays.*diaoquesang/SZCH-X-Rays"):
        SZCHXRays()
    with pytest.raises(DatasetNotFoundError, match=r"jsrt-bse-baidu: .*aistudio.baidu.com.*234557"):
        JSRTBSEBaidu()
    with pytest.raises(DatasetNotFoundError, match=r"jsrt: no .IMG files .*db.jsrt.or.jp"):
        JSRT()


def test_bse_jsrt_kaggle_layout_leaves_the_augmented_copies_out(tmp_path):
    stems = ["JPCLN001", "JPCLN002", "JPCNN001"]
    make_pairs(tmp_path, "JSRT/JSRT", "BSE_JSRT/BSE_JSRT", stems)
    png(tmp_path / "JSRT/JSRT/JPCLN003.png")  # a radiograph without a suppressed version: skipped
    make_pairs(tmp_path, "augmented/augmented/source", "augmented/augmented/target",
               [f"{stem}_{k}" for stem in stems for k in range(4)])
    dataset = BSEJSRT(tmp_path, size=16)
    assert dataset.ids == stems
    assert_sample_shape(dataset[2], size=16)
    train_copies = augmented_pairs(tmp_path, ["JPCLN001"])
    assert [stem for stem, _, _ in train_copies] == [f"JPCLN001_{k}" for k in range(4)]


def test_augmented_copies_that_do_not_name_their_patient_are_refused(tmp_path):
    make_pairs(tmp_path, "augmented/augmented/source", "augmented/augmented/target", ["17_0", "17_1"])
    with pytest.raises(ValueError, match=r"do not name their patient.*without leaking"):
        augmented_pairs(tmp_path, ["JPCLN001"])


def test_bse_jsrt_with_an_unexpected_layout_shows_what_it_found(tmp_path):
    png(tmp_path / "images" / "a.png")
    message = r"no JSRT/ and BSE_JSRT/ image folders \(found: images/, images/a.png"
    with pytest.raises(DatasetNotFoundError, match=message):
        BSEJSRT(tmp_path)


def test_szch_official_split_files(tmp_path):
    base = make_pairs(tmp_path / "SZCH-X-Rays-741", "CXR", "BS", [str(i) for i in range(10)])
    (tmp_path / "SZCH-X-Rays_trainset.txt").write_text("\n".join(f"{i}.png" for i in range(7)))
    (tmp_path / "SZCH-X-Rays_valset.txt").write_text("7.png\n")
    (tmp_path / "SZCH-X-Rays_testset.txt").write_text("8.png\n9.png\n")
    assert len(SZCHXRays(tmp_path)) == 10
    test = SZCHXRays(tmp_path, split="test", size=8)
    assert test.ids == ["8", "9"] and len(SZCHXRays(tmp_path, split="train")) == 7
    assert load_split(tmp_path / "split-official.json")["counts"] == {"train": 7, "val": 1, "test": 2}
    assert base.is_dir()


def test_szch_without_split_lists_names_what_it_found(tmp_path):
    make_pairs(tmp_path, "CXR", "BS", ["0", "1"])
    (tmp_path / "SZCH-X-Rays_testset.txt").write_text("0.png\n")
    with pytest.raises(DatasetNotFoundError, match=r"split lists .* not all found.*SZCH-X-Rays_testset.txt"):
        SZCHXRays(tmp_path, split="train")


def test_jsrt_bone_masks_through_its_index_csv(tmp_path):
    png(tmp_path / "JSRT" / "JPCLN001.png")
    png(tmp_path / "masks" / "JPCLN001.png", seed=5)
    (tmp_path / "idx_JSRT_GOOD_MASKS_SHORT_KAGGLE.csv").write_text("JSRT/JPCLN001.png,masks/JPCLN001.png\n")
    dataset = JSRTBoneMasks(tmp_path, size=8)
    sample = dataset[0]
    assert len(dataset) == 1 and sample["id"] == "JPCLN001" and sample["masks"]["bone"].shape == (1, 8, 8)


def test_jsrt_bone_masks_without_an_index_shows_the_folder(tmp_path):
    png(tmp_path / "x" / "a.png")
    with pytest.raises(DatasetNotFoundError, match=r"no index CSV listing image pairs \(found: x/, x/a.png"):
        JSRTBoneMasks(tmp_path)


def test_baidu_layout_is_discovered(tmp_path):
    make_pairs(tmp_path / "JSRT-BSE", "images", "bse_images", ["JPCLN001", "JPCLN002"])
    png(tmp_path / "JSRT-BSE" / "extra" / "zzz.png")
    dataset = JSRTBSEBaidu(tmp_path)
    assert dataset.ids == ["JPCLN001", "JPCLN002"]
    assert dataset.pairs[0][2].parent.name == "bse_images"


def test_baidu_layout_that_cannot_be_told_apart_is_an_error(tmp_path):
    make_pairs(tmp_path, "left", "right", ["a", "b"])
    with pytest.raises(DatasetNotFoundError, match=r"neither name says which holds the suppressed images"):
        JSRTBSEBaidu(tmp_path)


def test_raw_jsrt_folder(tmp_path):
    values = np.tile(np.arange(2048, dtype=np.uint16) * 2, (2048, 1))
    values.astype(">u2").tofile(tmp_path / "JPCLN001.IMG")
    dataset = JSRT(tmp_path, size=32)
    sample = dataset[0]
    assert len(dataset) == 1 and sample["cxr"].shape == (1, 32, 32) and "soft" not in sample
    assert float(sample["cxr"][0, 0, 0]) > float(sample["cxr"][0, 0, -1])  # stored inverted: flipped


def test_get_dataset_unknown_name():
    with pytest.raises(ValueError, match=r"Unknown dataset 'nope'; choose 'phantom' or one of bse-jsrt"):
        get_dataset("nope")


def test_get_dataset_real_pairs_subset(real_pairs):
    subset = get_dataset("real-pairs", size=16, num_images=2, root=real_pairs)
    assert len(subset) == 2
    assert_sample_shape(subset[1], size=16)


def test_get_dataset_phantom_switch():
    pytest.importorskip("bs_lib.phantom", reason="bs_lib.phantom is not available yet")
    dataset = get_dataset("phantom", split="test", size=64, num_images=3, seed=0)
    assert len(dataset) == 3
    assert_sample_shape(dataset[0], size=64)


def test_an_image_cap_reaches_every_dataset_built_through_get_dataset(monkeypatch):
    from bs_lib.models.adaptation import adaptation_dataset, target_domain_pairs

    uncapped = len(get_dataset("phantom", split="test", size=64))
    monkeypatch.setenv("BS_MAX_IMAGES", "3")
    assert uncapped > 3 and len(get_dataset("phantom", split="test", size=64)) == 3
    assert len(get_dataset("phantom", split="test", size=64, num_images=2)) == 2  # fewer than the cap: as asked
    assert len(target_domain_pairs("shifted-phantom", "test", 64)) == 3  # a library factory that draws phantoms
    assert len(adaptation_dataset("train", 64, target="shifted-phantom", restyle=True)) == 6  # three, and restyled


# --------------------------------------------------------------------------- splits


def augmented_ids(patients: int = 30, copies: int = 8) -> list[str]:
    return [f"P{p:03d}_{k}" for p in range(patients) for k in range(copies)]


def patient_of(image_id: str) -> str:
    return image_id.split("_")[0]


def test_patient_split_has_no_patient_in_two_splits():
    ids = augmented_ids()
    split = make_patient_split([patient_of(i) for i in ids], seed=3)
    assert [len(split[n]) for n in ("train", "val", "test")] == [24, 3, 3]
    assert all(not found for found in shared_patients(split).values())
    assert set().union(*map(set, split.values())) == {patient_of(i) for i in ids}
    assert make_patient_split([patient_of(i) for i in ids], seed=3) == split  # seeded
    assert make_patient_split([patient_of(i) for i in ids], seed=4) != split


def test_random_image_split_of_an_augmented_set_leaks():
    ids = augmented_ids()
    random_split = random_image_split(ids, seed=0)
    leaked = shared_patients(random_split, patient_of)["train&test"]
    test_patients = {patient_of(i) for i in random_split["test"]}
    assert leaked == test_patients and len(leaked) > 10  # every test patient has copies in training
    with pytest.raises(SplitLeakageError, match=r"patients appear in more than one split"):
        check_no_patient_overlap(random_split, patient_of)


def test_split_counts_like_debonedit():
    split = make_patient_split([f"J{i}" for i in range(241)], counts=(192, 24, 25), seed=0)
    assert {k: len(v) for k, v in split.items()} == {"train": 192, "val": 24, "test": 25}
    with pytest.raises(ValueError, match=r"must give one count per split"):
        make_patient_split(["a", "b"], counts=(1, 0, 0))
    assert ds.split_counts(241, (0.8, 0.1, 0.1)) == [193, 24, 24]


def test_split_file_round_trip_and_use(tmp_path):
    root = make_pairs(tmp_path / "data", "CXR", "BS", [f"{p}_{k}" for p in "ABCDE" for k in range(2)])
    split = make_patient_split("ABCDE", counts=(3, 1, 1), seed=0)
    path = save_split(tmp_path / "splits" / "toy.json", split, dataset="toy", seed=0)
    document = load_split(path)
    assert document["splits"] == split and document["unit"] == "patient" and document["seed"] == 0
    parts = {name: PairedFolder(root, split=name, split_file=path, patient_of=patient_of) for name in split}
    assert sum(len(p) for p in parts.values()) == 10
    assert not set(parts["train"].patients) & set(parts["test"].patients)
    with pytest.raises(ValueError, match=r"needs a split_file"):
        PairedFolder(root, split="train")


def test_saving_a_leaky_split_is_refused_and_writes_nothing(tmp_path):
    with pytest.raises(SplitLeakageError, match=r"'train&test': \['B'\]"):
        save_split(tmp_path / "bad.json", {"train": ["A", "B"], "val": [], "test": ["B"]}, dataset="x", seed=0)
    assert not any(tmp_path.iterdir())


def test_bad_split_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"split file not found"):
        load_split(tmp_path / "none.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"junk.json: not a split file"):
        load_split(tmp_path / "junk.json")


# --------------------------------------------------------------------------- real pairs: finding, downloading, Gusarev


def chest(shape: tuple[int, int], seed: int = 0, negative: bool = False) -> np.ndarray:
    """A crude PA chest in conventional polarity: dark lungs either side of a bright mediastinum."""
    height, width = shape
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    image = np.full(shape, 0.55)
    for centre in (0.27, 0.73):
        image[((x - centre) / 0.17) ** 2 + ((y - 0.45) / 0.3) ** 2 < 1] = 0.2
    image[:, int(0.44 * width):int(0.56 * width)] = 0.85
    image += np.random.default_rng(seed).normal(0, 0.03, shape)
    image = 1 - image if negative else image
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def jpeg(path: Path, pixels: np.ndarray, rgb: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.stack([pixels] * 3, axis=-1) if rgb else pixels).save(path, quality=95)
    return path


GUSAREV_LAYOUT = {  # stem: (radiograph size, target size, radiograph RGB, target RGB), sizes as (H, W)
    "bone_suppression_001": ((48, 40), (48, 40), False, False),
    "bone_suppression_011": ((48, 40), (50, 41), True, False),  # the target 2 rows and 1 column larger
    "bone_suppression_031": ((51, 43), (48, 40), False, True),  # the radiograph 3 px larger both ways
    "bone_suppression_041": ((48, 40), (48, 40), True, True),
}


def gusarev_folder(root: Path, negative: bool = False) -> Path:
    for i, (stem, (cxr_size, des_size, cxr_rgb, des_rgb)) in enumerate(GUSAREV_LAYOUT.items()):
        jpeg(root / "authentic" / f"{stem}.jpg", chest(cxr_size, seed=i, negative=negative), rgb=cxr_rgb)
        jpeg(root / "des" / f"{stem}.jpg", chest(des_size, seed=50 + i, negative=negative), rgb=des_rgb)
    return root


def test_crop_to_common_size_is_centred_and_recorded():
    cxr, soft = np.zeros((1, 5, 7), np.float32), np.arange(48, dtype=np.float32).reshape(1, 8, 6)
    cropped_cxr, cropped_soft, crop = ds.crop_to_common_size(cxr, soft)
    assert cropped_cxr.shape == cropped_soft.shape == (1, 5, 6)
    assert crop["size"] == (5, 6) and crop["cxr_offset"] == (0, 0) and crop["soft_offset"] == (1, 0)
    np.testing.assert_array_equal(cropped_soft, soft[:, 1:6, :])  # copied pixels, none interpolated
    assert ds.crop_to_common_size(cxr, cxr)[2] is None


def test_gusarev_loader_greys_aligns_by_cropping_and_reports_once(tmp_path, capsys):
    root = gusarev_folder(tmp_path / "gusarev-des")
    dataset = GusarevDES(root)
    report = capsys.readouterr().out.splitlines()
    assert report == ["gusarev-des: 4 colour file(s) converted to grey (ITU-R 601 luma); 2 of 4 pairs differ in "
                      "size: both images cropped to their common size, centred, no pixel interpolated "
                      "(sample['meta']['crop'])."]
    assert dataset.ids == list(GUSAREV_LAYOUT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the colour conversion was reported once, not once per file
        samples = [dataset[i] for i in range(len(dataset))]
    assert capsys.readouterr().out == ""
    for sample in samples:
        assert_sample_shape(sample)
        assert sample["cxr"].shape == sample["soft"].shape
        assert sample["meta"]["source"] == "gusarev-des"
        assert sample["meta"]["polarity_check"] == {"cxr": "conventional", "soft": "conventional"}
    assert samples[0]["meta"]["crop"] is None and samples[0]["cxr"].shape == (1, 48, 40)
    crop = samples[1]["meta"]["crop"]
    assert crop["size"] == (48, 40) and crop["soft_offset"] == (1, 0) and crop["cxr_offset"] == (0, 0)
    assert samples[2]["meta"]["crop"]["cxr_offset"] == (1, 1)
    assert samples[1]["meta"]["cxr"]["converted_from"] == "RGB"
    soft, _ = read_image(root / "des" / "bone_suppression_011.jpg")
    np.testing.assert_array_equal(samples[1]["soft"].numpy(), soft[:, 1:49, 0:40])
    resized = get_dataset("gusarev-des", size=16, root=root)[1]
    assert_sample_shape(resized, size=16)


def test_gusarev_negative_images_are_flagged_not_flipped(tmp_path):
    dataset = GusarevDES(gusarev_folder(tmp_path, negative=True))
    with pytest.warns(UserWarning, match=r"bone_suppression_001.jpg: the mediastinum is darker than the lungs"):
        sample = dataset[0]
    assert sample["meta"]["polarity_check"] == {"cxr": "inverted?", "soft": "inverted?"}


def test_gusarev_missing_says_how_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("BS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"gusarev-des: no authentic/ and des/.*download gusarev-des"):
        GusarevDES()


def test_the_polarity_heuristic_on_synthetic_and_real_chests():
    assert ds.looks_conventional(chest((64, 64)) / 255.0)
    assert not ds.looks_conventional(chest((64, 64), negative=True) / 255.0)


def test_the_polarity_heuristic_accepts_every_real_pair(real_pairs):
    for path in sorted(real_pairs.rglob("*.png")):
        assert ds.looks_conventional(read_image(path)[0]), path


def make_real_pairs(root: Path) -> Path:
    for group in ("szch-bsldm", "szch-bsdiff"):
        make_pairs(root / group, "CXR", "BS", ["0", "1"])
    return root


@pytest.fixture
def no_real_pairs(tmp_path, monkeypatch):
    """An empty data directory, no mirror of the sample pairs, downloads switched off."""
    monkeypatch.setenv("BS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BS_REAL_PAIRS", str(tmp_path / "no-mirror"))
    monkeypatch.setenv("BS_OFFLINE", "1")
    return tmp_path / "data"


@pytest.mark.parametrize("name", ["real-pairs", "gusarev-des"])
def test_real_pairs_offline_prints_one_line_and_returns_none(no_real_pairs, capsys, name):
    assert ds.real_pairs(name, size=16) is None
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{name}: the real pairs are not on this machine, and were not downloaded: offline "
                     f"(BS_OFFLINE=1). Get them with `python -m bs_lib download {name}` (public files, no "
                     f"account needed)."]
    assert ds.real_pairs(name, download=False) is None
    assert "not downloaded (download=False)" in capsys.readouterr().out


def test_real_pairs_finds_the_downloaded_copy_and_names_the_sources(no_real_pairs, capsys):
    make_real_pairs(no_real_pairs / "real-pairs")
    dataset = ds.real_pairs(size=8)
    assert capsys.readouterr().out == "" and len(dataset) == 4
    assert [dataset[i]["id"] for i in range(4)] == ["szch-bsdiff/0", "szch-bsdiff/1", "szch-bsldm/0", "szch-bsldm/1"]
    assert [dataset[i]["meta"]["source"] for i in (0, 3)] == ["szch-bsdiff", "szch-bsldm"]
    assert len(get_dataset("real-pairs", size=8)) == 4  # get_dataset finds the downloaded copy too


def test_real_pairs_from_the_mirror(real_pairs, no_real_pairs, monkeypatch):
    monkeypatch.setenv("BS_REAL_PAIRS", str(real_pairs))
    dataset = ds.real_pairs(size=16)
    assert len(dataset) == 6 and dataset.root == real_pairs
    assert {dataset[i]["meta"]["source"] for i in range(6)} == {"szch-bsldm", "szch-bsdiff"}


def serve_registry(server, monkeypatch, tmp_path, folder: Path, name: str, host: str | None = None) -> None:
    """Serve every file below ``folder`` and make the library's registry list them as ``name``.

    ``host`` replaces the server's address in the registry's URLs (a closed port: unreachable).
    """
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        local = path.relative_to(folder).as_posix()
        server.files[f"/{name}/{local}"] = path.read_bytes()
        url = f"{host}/{name}/{local}" if host else server.url(f"{name}/{local}")
        files[local] = {"url": url, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"datasets": {name: {"source": "url", "folder": name, "files": files}}}))
    monkeypatch.setattr(download, "REGISTRY_PATH", registry)


PUBLISHED = {"real-pairs": (make_real_pairs, 8, 1),  # builder, files, lines printed (the Gusarev report adds one)
             "gusarev-des": (gusarev_folder, 8, 2)}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_real_pairs_downloads_on_first_use_then_uses_the_copy(server, no_real_pairs, tmp_path, monkeypatch, capsys,
                                                              name):
    monkeypatch.delenv("BS_OFFLINE")  # the server fixture allows loopback requests only
    build, files, lines = PUBLISHED[name]
    serve_registry(server, monkeypatch, tmp_path, build(tmp_path / "published"), name)
    dataset = ds.real_pairs(name, size=16)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{name}: downloaded into {no_real_pairs / name}" and len(out) == lines
    assert len(dataset) == 4 and len(server.requests) == files
    assert_sample_shape(dataset[1], size=16)
    assert len(ds.real_pairs(name)) == 4 and len(server.requests) == files  # no second download


@pytest.mark.parametrize("failure, reason", [("closed port", "the download source is unreachable (no network?)"),
                                             ("missing files", "the download source answered HTTP 404")])
def test_real_pairs_that_cannot_be_fetched_return_none(server, no_real_pairs, tmp_path, monkeypatch, capsys,
                                                       failure, reason):
    monkeypatch.delenv("BS_OFFLINE")
    host = "http://127.0.0.1:9" if failure == "closed port" else None  # port 9 (discard) is closed
    serve_registry(server, monkeypatch, tmp_path, make_real_pairs(tmp_path / "published"), "real-pairs", host)
    server.files.clear()
    assert ds.real_pairs() is None
    assert capsys.readouterr().out.splitlines() == [
        f"real-pairs: the real pairs are not on this machine, and were not downloaded: {reason}. Get them with "
        f"`python -m bs_lib download real-pairs` (public files, no account needed)."]
    assert not (no_real_pairs / "real-pairs").exists()


# --------------------------------------------------------------------------- every dataset honours split=


def raw_jsrt(folder: Path, stems) -> Path:
    """Raw JSRT files (2048², 12-bit, big-endian) named ``<stem>.IMG``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(stems):
        np.tile(np.arange(2048) + i, (2048, 1)).astype(">u2").tofile(folder / f"{stem}.IMG")
    return folder


def bone_masks(folder: Path, stems) -> Path:
    for i, stem in enumerate(stems):
        png(folder / "JSRT" / f"{stem}.png", seed=i)
        png(folder / "masks" / f"{stem}.png", seed=10 + i)
    rows = "".join(f"JSRT/{stem}.png,masks/{stem}.png\n" for stem in stems)
    (folder / "idx_JSRT_GOOD_MASKS_SHORT_KAGGLE.csv").write_text(rows)
    return folder


def test_every_dataset_takes_a_split():
    import inspect

    for name, factory in ds.DATASETS.items():
        assert "split" in inspect.signature(factory).parameters, f"{name} ignores split="
        assert "split_file" in inspect.signature(factory).parameters, f"{name} ignores split_file="


@pytest.mark.parametrize("name, build", [("jsrt", raw_jsrt), ("jsrt-bone-masks", bone_masks)])
def test_unpaired_jsrt_sets_honour_a_split_file(tmp_path, name, build):
    root = build(tmp_path / name, ["JPCLN001", "JPCLN002", "JPCLN003"])
    path = save_split(tmp_path / "split.json", {"train": ["JPCLN001", "JPCLN002"], "val": [], "test": ["JPCLN003"]},
                      dataset=name, seed=0)
    train = get_dataset(name, split="train", split_file=path, root=root)
    test = get_dataset(name, split="test", split_file=path, root=root)
    assert [train[i]["id"] for i in range(len(train))] == ["JPCLN001", "JPCLN002"]
    assert [test[i]["id"] for i in range(len(test))] == ["JPCLN003"]
    assert len(get_dataset(name, split="all", root=root)) == 3


@pytest.mark.parametrize("name, build", [("jsrt", raw_jsrt), ("jsrt-bone-masks", bone_masks)])
def test_a_split_without_a_split_file_is_refused_not_ignored(tmp_path, name, build):
    root = build(tmp_path / name, ["JPCLN001", "JPCLN002"])
    for split in ("train", "test"):
        with pytest.raises(ValueError, match=rf"{name}: split='{split}' needs a split_file .* or use split='all'"):
            get_dataset(name, split=split, root=root)


@pytest.mark.parametrize("name, build, pairs", [("real-pairs", make_real_pairs, 4), ("gusarev-des", gusarev_folder, 4)])
def test_the_real_test_sets_are_all_test_and_refuse_to_be_trained_on(tmp_path, name, build, pairs):
    root = build(tmp_path / name)
    for split in ("test", "all", None):  # None: the test set's own default
        assert len(get_dataset(name, split=split, root=root)) == pairs
    for split in ("train", "val"):
        with pytest.raises(ValueError, match=rf"{name} is a test set: never train on it"):
            get_dataset(name, split=split, root=root)
    with pytest.raises(ValueError, match=r"a split_file cannot pick from it"):
        get_dataset(name, split="test", split_file=tmp_path / "split.json", root=root)


def test_get_dataset_hands_the_split_to_paired_datasets(tmp_path):
    root = make_pairs(tmp_path / "BSE", "JSRT", "BSE_JSRT", ["JPCLN001", "JPCLN002"])
    path = save_split(tmp_path / "split.json", {"train": ["JPCLN001"], "val": [], "test": ["JPCLN002"]},
                      dataset="bse-jsrt", seed=0)
    assert get_dataset("bse-jsrt", split="test", split_file=path, root=root).ids == ["JPCLN002"]
    with pytest.raises(ValueError, match=r"bse-jsrt: split='train' needs a split_file"):
        get_dataset("bse-jsrt", root=root)  # the default split of a training set is "train"
