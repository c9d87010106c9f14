"""Embedded natural patches, ADM centre crop, image folders, ADM npz I/O, the real-data generator."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from harness.core.errors import InputFileError
from harness.data import embedded
from harness.data.imagenet import ImageFolderDataset, center_crop_arr
from harness.data.npz import (
    iter_npz_batches,
    iter_shard_batches,
    load_labels_npz,
    load_samples_npz,
    pack_png_folder,
    save_samples_npz,
)
from harness.data.real_data import RealDataGenerator


# ---------------------------------------------------------------------------------------------- embedded
def test_natural_patches_deterministic_and_interleaved():
    a, la = embedded.natural_patches("train", 32, per_class=8, seed=0)
    b, lb = embedded.natural_patches("train", 32, per_class=8, seed=0)
    c, _ = embedded.natural_patches("train", 32, per_class=8, seed=1)
    assert len(embedded.CLASSES) >= 10 and embedded.num_classes() == len(embedded.CLASSES)
    assert a.dtype == np.uint8 and a.shape == (8 * embedded.NUM_CLASSES, 32, 32, 3)
    assert la.dtype == np.int64 and np.array_equal(la, np.arange(len(la)) % embedded.NUM_CLASSES)
    assert a.tobytes() == b.tobytes() and np.array_equal(la, lb)
    assert a.tobytes() != c.tobytes()
    # fewer crops per class are a prefix of more (per-class random streams)
    more, _ = embedded.natural_patches("train", 32, per_class=12, seed=0)
    assert np.array_equal(more[: len(a)], a)


@pytest.mark.parametrize("size", [32, 64, 256])
def test_natural_patches_sizes(size):
    x, y = embedded.natural_patches("val", size, per_class=1)
    assert x.shape == (embedded.NUM_CLASSES, size, size, 3) and x.std() > 5  # real texture, not blank


def test_train_val_crops_disjoint():
    for c, name in enumerate(embedded.CLASSES):
        h, w = embedded.load_photo(name).shape[:2]
        train = embedded.crop_boxes(c, "train", 500)
        val = embedded.crop_boxes(c, "val", 500)
        for boxes in (train, val):
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        # every train crop ends (exclusive) strictly left of where any val crop starts, with a gap
        assert train[:, 2].max() < val[:, 0].min(), name


def test_patch_is_bicubic_resize_of_its_box():
    x, _ = embedded.natural_patches("val", 64, per_class=3, seed=5)
    c, j = 2, 1
    box = embedded.crop_boxes(c, "val", 3, seed=5)[j]
    photo = embedded.load_photo(embedded.CLASSES[c])
    ref = Image.fromarray(photo[box[1] : box[3], box[0] : box[2]]).resize((64, 64), Image.BICUBIC)
    assert np.array_equal(x[j * embedded.NUM_CLASSES + c], np.asarray(ref))


# ---------------------------------------------------------------------------------------------- ImageNet
def test_center_crop_arr_box_halvings_then_centre():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (256, 512, 3), dtype=np.uint8)  # H=256, W=512
    big = small.repeat(4, axis=0).repeat(4, axis=1)  # 1024 x 2048: two exact BOX halvings
    out = center_crop_arr(Image.fromarray(big), 256)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert np.array_equal(out, small[:, 128:384])  # bicubic at scale 1 is identity


def test_center_crop_arr_bicubic_step_shape():
    img = Image.fromarray(np.full((300, 500, 3), 77, np.uint8))
    out = center_crop_arr(img, 256)
    assert out.shape == (256, 256, 3) and (out == 77).all()


def _png(path, color, size=(40, 30)):
    Image.fromarray(np.full((size[1], size[0], 3), color, np.uint8)).save(path)


def test_image_folder_synsets_and_label_file(tmp_path):
    for syn, color in (("n02", 20), ("n01", 10)):
        (tmp_path / "val" / syn).mkdir(parents=True)
        _png(tmp_path / "val" / syn / "a.png", color)
        _png(tmp_path / "val" / syn / "b.png", color)
    ds = ImageFolderDataset(tmp_path, "val", image_size=16)
    assert ds.classes == ["n01", "n02"] and list(ds.labels) == [0, 0, 1, 1]
    img, label = ds[3]
    assert img.shape == (16, 16, 3) and label == 1 and (img == 20).all()

    flat = tmp_path / "flat"
    (flat / "val").mkdir(parents=True)
    _png(flat / "val" / "x1.png", 5)
    _png(flat / "val" / "x2.png", 6)
    (flat / "labels.txt").write_text("x1.png 7\nx2.png 3\n")
    ds = ImageFolderDataset(flat, "val", image_size=16, label_file=flat / "labels.txt")
    assert list(ds.labels) == [7, 3]


def test_image_folder_errors_name_the_file(tmp_path):
    with pytest.raises(InputFileError, match="dataset folder not found"):
        ImageFolderDataset(tmp_path / "nope")
    (tmp_path / "val" / "n01").mkdir(parents=True)
    bad = tmp_path / "val" / "n01" / "broken.JPEG"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    ds = ImageFolderDataset(tmp_path, "val", image_size=16)
    with pytest.raises(InputFileError, match="broken.JPEG"):
        ds[0]


# ---------------------------------------------------------------------------------------------- npz
def test_save_load_roundtrip_deterministic_numpy_compatible(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    y = np.arange(7) % 3
    p1, p2 = save_samples_npz(tmp_path / "a.npz", x, y), save_samples_npz(tmp_path / "b.npz", x, y)
    assert p1.read_bytes() == p2.read_bytes()
    with np.load(p1) as z:  # plain numpy reads it (ADM evaluator does np.load(...)["arr_0"])
        assert np.array_equal(z["arr_0"], x) and np.array_equal(z["labels"], y)
    assert np.array_equal(load_samples_npz(p1), x) and np.array_equal(load_labels_npz(p1), y)
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b.npz"]  # no temp files left


@pytest.mark.parametrize("writer", [np.savez, np.savez_compressed])
def test_iter_npz_batches_streams_numpy_files(tmp_path, writer):
    x = np.random.default_rng(2).integers(0, 256, (11, 4, 4, 3), dtype=np.uint8)
    writer(tmp_path / "s.npz", arr_0=x)
    batches = list(iter_npz_batches(tmp_path / "s.npz", 4))
    assert [len(b) for b in batches] == [4, 4, 3]
    assert np.array_equal(np.concatenate(batches), x)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"images": np.zeros((2, 4, 4, 3), np.uint8)}, "no array 'arr_0'"),
        ({"arr_0": np.zeros((2, 4, 4, 3), np.float32)}, "must be uint8"),
        ({"arr_0": np.zeros((2, 4, 4), np.uint8)}, r"shape \[N,H,W,3\]"),
        ({"arr_0": np.zeros((2, 4, 4, 1), np.uint8)}, r"shape \[N,H,W,3\]"),
    ],
)
def test_bad_npz_one_line_error_naming_file(tmp_path, arrays, match):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    for fn in (load_samples_npz, lambda q: next(iter_npz_batches(q, 2))):
        with pytest.raises(InputFileError, match=match) as e:
            fn(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_not_a_zip_is_named(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"hello")
    with pytest.raises(InputFileError, match="junk.npz"):
        load_samples_npz(p)


def test_pack_png_folder_sorted_and_corrupt(tmp_path):
    d = tmp_path / "pngs"
    d.mkdir()
    for i, name in enumerate(["b.png", "a.png", "c.png"]):
        _png(d / name, 10 * (i + 1), size=(6, 5))
    assert pack_png_folder(d, tmp_path / "out.npz") == 3
    x = load_samples_npz(tmp_path / "out.npz")
    assert x.shape == (3, 5, 6, 3) and [int(v[0, 0, 0]) for v in x] == [20, 10, 30]  # a, b, c
    (d / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(InputFileError, match="d.png") as e:
        pack_png_folder(d, tmp_path / "out2.npz")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out2.npz").exists() and not list(tmp_path.glob(".*.tmp"))


def test_iter_shard_batches_rebatches_in_chunk_order(tmp_path):
    from harness.sampling.shards import write_shard

    x = np.random.default_rng(3).integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    for k, (a, b) in enumerate([(0, 4), (4, 8), (8, 10)]):
        write_shard(tmp_path, k, x[a:b], np.zeros(b - a), np.arange(a, b))
    batches = list(iter_shard_batches(tmp_path, 3))
    assert [len(b) for b in batches] == [3, 3, 3, 1] and np.array_equal(np.concatenate(batches), x)


# ---------------------------------------------------------------------------------------------- real data
def test_real_data_generator_returns_val_images_of_the_class():
    g = RealDataGenerator(per_class=10)
    pool, pool_labels = embedded.natural_patches("val", 32, per_class=10, seed=1)
    labels = torch.tensor([0, 5, 5, 10, 3])
    out1 = g.generate(labels, torch.Generator().manual_seed(7))
    out2 = g.generate(labels, torch.Generator().manual_seed(7))
    out3 = g.generate(labels, torch.Generator().manual_seed(8))
    assert out1.dtype == torch.uint8 and out1.shape == (5, 32, 32, 3)
    assert torch.equal(out1, out2) and not torch.equal(out1, out3)
    for img, c in zip(out1.numpy(), labels.tolist()):
        matches = [i for i in range(len(pool)) if np.array_equal(pool[i], img)]
        assert matches and all(pool_labels[i] == c for i in matches)
    with pytest.raises(ValueError, match="labels must lie"):
        g.generate(torch.tensor([11]), torch.Generator())
