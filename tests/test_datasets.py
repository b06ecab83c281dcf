"""bs_lib.datasets: one sample shape, layouts discovered, missing data explained, splits that cannot leak."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bs_lib import datasets as ds
from bs_lib.datasets import (
    BSEJSRT,
    JSRT,
    DatasetNotFoundError,
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
