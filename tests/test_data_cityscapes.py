"""Cityscapes preparation on a tiny fake gtFine zip (mapping, nearest resize, sorted splits, errors); the stand-in."""
import io
import random
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from catlib.data.cityscapes import (CITYSCAPES_CATEGORIES, CITYSCAPES_LABELS, CITYSCAPES_PALETTE,
                                    CITYSCAPES_SPLIT_SIZES, CityscapesMaps, colourise, label_ids_to_categories,
                                    load_cityscapes, prepare_cityscapes, resize_labels, synthetic_cityscapes,
                                    synthetic_street_maps)

SIZE = (4, 8)            # maps made here are 16 x 32: a factor 4, so pixel (i, j) comes from (4i + 2, 4j + 2)
SPLIT_SIZES = (3, 2, 2)  # 5 official train maps cut at 3, and 2 val maps
# background label id of each map in sorted order, and its category
TRAIN = [("aachen", "aachen_000000_000019", 7), ("aachen", "aachen_000001_000019", 11),
         ("aachen", "aachen_000002_000019", 17), ("bochum", "bochum_000000_000313", 21),
         ("bochum", "bochum_000000_001097", 23)]
VAL = [("frankfurt", "frankfurt_000000_000294", 24), ("frankfurt", "frankfurt_000000_000576", 26)]
CATEGORY = {7: 1, 11: 2, 17: 3, 21: 4, 23: 5, 24: 6, 26: 7}


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def label_map(background: int) -> np.ndarray:
    """16 x 32 ids: the background, a 4 x 4 'car' (26) on the sampled pixel (6, 6), and a 'pole' (17) on an
    unsampled pixel (1, 1) that nearest neighbour must skip."""
    x = np.full((16, 32), background, dtype=np.uint8)
    x[4:8, 4:8] = 26
    x[1, 1] = 17
    return x


def make_zip(path, extra: dict[str, bytes] | None = None, train=TRAIN, val=VAL) -> None:
    entries = {"license.txt": b"Cityscapes licence", "README": b"gtFine"}
    for split, rows in (("train", train), ("val", val)):
        for city, stem, background in rows:
            base = f"gtFine/{split}/{city}/{stem}_gtFine"
            entries[f"{base}_labelIds.png"] = png(label_map(background))
            entries[f"{base}_color.png"] = png(np.zeros((16, 32, 3), dtype=np.uint8))
            entries[f"{base}_instanceIds.png"] = png(label_map(0))
            entries[f"{base}_polygons.json"] = b"{}"
    entries["gtFine/test/berlin/berlin_000000_000019_gtFine_labelIds.png"] = png(label_map(0))  # ignored
    entries.update(extra or {})
    names = list(entries)
    random.Random(0).shuffle(names)   # the archive's order must not matter
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.writestr(name, entries[name])


def expected_map(background: int) -> np.ndarray:
    x = np.full(SIZE, CATEGORY[background])
    x[1, 1] = 7   # the car covers the sampled pixel (6, 6)
    return x


# --------------------------------------------------------------------------- labels, resize, colours
def test_label_table_follows_cityscapes_scripts():
    cats = label_ids_to_categories(torch.arange(34)).tolist()
    assert cats == [0] * 7 + [1] * 4 + [2] * 6 + [3] * 4 + [4] * 2 + [5] + [6] * 2 + [7] * 8
    assert label_ids_to_categories(torch.tensor([-1])).tolist() == [7]   # license plate -> vehicle
    assert len(CITYSCAPES_LABELS) == 35 and {i for _, i, _ in CITYSCAPES_LABELS} == set(range(-1, 34))
    assert CITYSCAPES_CATEGORIES == ("void", "flat", "construction", "object", "nature", "sky", "human", "vehicle")
    assert label_ids_to_categories(np.array([[26, 24]], dtype=np.uint8)).tolist() == [[7, 6]]
    with pytest.raises(ValueError, match=r"label ids in \[0, 33\] or -1, got 34 at position \(1,\)"):
        label_ids_to_categories(torch.tensor([7, 34]))
    with pytest.raises(ValueError, match="integer tensor"):
        label_ids_to_categories(torch.tensor([7.0]))


def test_nearest_resize_picks_known_pixels_and_commutes_with_the_mapping():
    src = torch.arange(16 * 32).view(16, 32)
    out = resize_labels(src, SIZE)
    assert out.shape == SIZE and out.dtype == torch.long
    assert torch.equal(out, src[2::4, 2::4])
    full = torch.arange(1024 * 2048, dtype=torch.int64).view(1024, 2048) % 1000
    assert torch.equal(resize_labels(full), full[16::32, 16::32])   # the real 1024 x 2048 -> 32 x 64
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 34, (16, 32), dtype=np.uint8))
    mapped_first = resize_labels(label_ids_to_categories(ids), SIZE)
    assert torch.equal(label_ids_to_categories(resize_labels(ids, SIZE)), mapped_first)
    with pytest.raises(ValueError, match="one integer map"):
        resize_labels(torch.zeros(2, 4, 4, dtype=torch.long))


def test_palette_and_colourise():
    # the colour of each category's first label in cityscapesScripts labels.py (the official coarse_COLORS)
    assert CITYSCAPES_PALETTE.tolist() == [[0, 0, 0], [128, 64, 128], [70, 70, 70], [153, 153, 153],
                                           [107, 142, 35], [70, 130, 180], [220, 20, 60], [0, 0, 142]]
    x = torch.arange(8).repeat(2, 4, 1)   # [2, 4, 8]
    rgb = colourise(x)
    assert rgb.shape == (2, 4, 8, 3) and rgb.dtype == torch.uint8
    assert torch.equal(rgb[1, 3], CITYSCAPES_PALETTE)
    with pytest.raises(ValueError, match=r"category indices in \[0, 8\), got 8 at position \(0, 1\)"):
        colourise(torch.tensor([[0, 8]]))
    with pytest.raises(ValueError, match="integer tensor"):
        colourise(torch.zeros(2, 2))


# --------------------------------------------------------------------------- preparation from a fake gtFine zip
def test_prepare_from_zip_maps_resizes_and_splits_in_sorted_order(tmp_path):
    make_zip(tmp_path / "data" / "cityscapes" / "gtFine_trainvaltest.zip")
    cache = prepare_cityscapes(data_dir=tmp_path / "data", size=SIZE, split_sizes=SPLIT_SIZES)
    assert cache == tmp_path / "data" / "cityscapes" / "cityscapes_4x8.pt"
    maps = load_cityscapes(tmp_path / "data", size=SIZE, split_sizes=SPLIT_SIZES)
    assert isinstance(maps, CityscapesMaps) and not maps.stand_in and "real" in maps.source
    assert {k: tuple(v.shape) for k, v in maps.splits.items()} == {"train": (3, 4, 8), "valid": (2, 4, 8),
                                                                   "test": (2, 4, 8)}
    assert all(v.dtype == torch.long for v in maps.splits.values()) and maps.data_shape == SIZE
    # train = first maps of the sorted official train set, valid = the rest, test = official val
    for split, rows in (("train", TRAIN[:3]), ("valid", TRAIN[3:]), ("test", VAL)):
        for x, (_, stem, background) in zip(maps[split], rows):
            assert x.tolist() == expected_map(background).tolist()
        assert maps.files[split] == [f"{stem}_gtFine_labelIds.png" for _, stem, _ in rows]
    assert torch.load(cache, weights_only=True)["splits"]["train"].dtype == torch.uint8


def test_prepare_from_folder_matches_zip(tmp_path):
    archive = tmp_path / "gtFine_trainvaltest.zip"
    make_zip(archive)
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "unpacked")
    a = load_cityscapes(tmp_path / "a", size=SIZE, split_sizes=SPLIT_SIZES, source=archive)
    b = load_cityscapes(tmp_path / "b", size=SIZE, split_sizes=SPLIT_SIZES, source=tmp_path / "unpacked")
    c = load_cityscapes(tmp_path / "c", size=SIZE, split_sizes=SPLIT_SIZES, source=tmp_path / "unpacked" / "gtFine")
    for k in ("train", "valid", "test"):
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k])
    assert a.files == b.files


def test_load_uses_the_cache_and_checks_it(tmp_path):
    archive = tmp_path / "cityscapes" / "gtFine_trainvaltest.zip"
    make_zip(archive)
    first = load_cityscapes(tmp_path, size=SIZE, split_sizes=SPLIT_SIZES)   # prepares on first use
    archive.unlink()
    again = load_cityscapes(tmp_path, size=SIZE, split_sizes=SPLIT_SIZES)   # from the cache
    assert torch.equal(first.train, again.train)
    cache = tmp_path / "cityscapes" / "cityscapes_4x8.pt"
    with pytest.raises(ValueError, match=rf"{cache} holds \(3, 2, 2\) maps for \(train, valid, test\), expected "
                                         rf"\(2, 3, 2\); delete {cache}"):
        load_cityscapes(tmp_path, size=SIZE, split_sizes=(2, 3, 2))
    cache.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="is damaged or not a catlib Cityscapes cache"):
        load_cityscapes(tmp_path, size=SIZE, split_sizes=SPLIT_SIZES)


def test_missing_data_says_where_to_put_the_zip(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cityscapes(tmp_path)
    msg = str(err.value)
    assert f"{tmp_path}/cityscapes/gtFine_trainvaltest.zip" in msg and "www.cityscapes-dataset.com" in msg
    assert "licence" in msg and "synthetic_cityscapes" in msg
    with pytest.raises(FileNotFoundError, match="source .*nowhere.zip does not exist"):
        prepare_cityscapes(tmp_path / "nowhere.zip", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no gtFine/ folder"):
        prepare_cityscapes(tmp_path / "empty", tmp_path)


def test_wrong_counts_and_damaged_zip(tmp_path):
    archive = tmp_path / "gtFine_trainvaltest.zip"
    make_zip(archive)
    with pytest.raises(ValueError, match=r"holds 5 train and 2 val label-id maps, expected 2975 and 500 \(a partial "
                                         r"download or extraction\?\)"):
        prepare_cityscapes(archive, tmp_path, size=SIZE)   # default split sizes
    with pytest.raises(ValueError, match="expected 6 and 2"):
        prepare_cityscapes(archive, tmp_path, size=SIZE, split_sizes=(3, 3, 2))
    assert CITYSCAPES_SPLIT_SIZES == (2500, 475, 500)
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(ValueError, match="is not a readable zip archive .*partial download"):
        prepare_cityscapes(archive, tmp_path, size=SIZE, split_sizes=SPLIT_SIZES)
    other = tmp_path / "leftImg8bit.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png", b"")
    with pytest.raises(ValueError, match="holds no gtFine/train/<city>/\\*_gtFine_labelIds.png"):
        prepare_cityscapes(other, tmp_path, size=SIZE, split_sizes=SPLIT_SIZES)


def test_bad_label_ids_and_colour_images(tmp_path):
    bad = label_map(7)
    bad[5, 7] = 34
    name = "gtFine/val/frankfurt/frankfurt_000000_000576_gtFine_labelIds.png"
    make_zip(tmp_path / "bad.zip", extra={name: png(bad)})
    with pytest.raises(ValueError, match=rf"{name} holds label id 34 at pixel \(row 5, column 7\); expected "
                                         r"Cityscapes label ids 0..33"):
        prepare_cityscapes(tmp_path / "bad.zip", tmp_path, size=SIZE, split_sizes=SPLIT_SIZES)
    make_zip(tmp_path / "rgb.zip", extra={name: png(np.zeros((16, 32, 3), dtype=np.uint8))})
    with pytest.raises(ValueError, match="has image mode 'RGB'; expected a one-channel label-id image"):
        prepare_cityscapes(tmp_path / "rgb.zip", tmp_path, size=SIZE, split_sizes=SPLIT_SIZES)
    make_zip(tmp_path / "broken.zip", extra={name: b"\x89PNG broken"})
    with pytest.raises(ValueError, match="is not a readable PNG"):
        prepare_cityscapes(tmp_path / "broken.zip", tmp_path, size=SIZE, split_sizes=SPLIT_SIZES)


# --------------------------------------------------------------------------- the stand-in
def test_synthetic_street_maps():
    x = synthetic_street_maps(20, seed=0)
    assert x.shape == (20, 32, 64) and x.dtype == torch.long
    assert int(x.min()) >= 0 and int(x.max()) < 8
    assert set(torch.unique(x).tolist()) == set(range(8))   # every category appears
    assert float((x[:, 0] == 5).float().mean()) > 0.5        # sky on top
    assert float((x[:, -1] == 0).float().mean()) > 0.9       # the bonnet (void) at the bottom
    assert float((x[:, 20] == 1).float().mean()) > 0.5       # road below the horizon
    assert torch.equal(x, synthetic_street_maps(20, seed=0)) and not torch.equal(x, synthetic_street_maps(20, seed=1))
    assert synthetic_street_maps(2, seed=0, size=(16, 32)).shape == (2, 16, 32)
    for size in [(8, 8), (8, 16), (13, 8), (9, 40)]:  # the smallest sizes allowed work too
        small = synthetic_street_maps(10, seed=3, size=size)
        assert small.shape == (10, *size) and 0 <= int(small.min()) and int(small.max()) < 8
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        synthetic_street_maps(0)


def test_synthetic_cityscapes_is_labelled():
    m = synthetic_cityscapes((6, 2, 3), seed=0)
    assert m.stand_in and m.source.startswith("synthetic stand-in (not Cityscapes)") and "stand-in" in repr(m)
    assert {k: v.shape[0] for k, v in m.splits.items()} == {"train": 6, "valid": 2, "test": 3}
    assert m.num_classes == 8 and m.categories == CITYSCAPES_CATEGORIES and m.path is None
    assert torch.equal(synthetic_cityscapes((9, 2, 3), seed=0).test, m.test)   # each split has its own stream
    assert colourise(m.train).shape == (6, 32, 64, 3)
    with pytest.raises(ValueError, match="split_sizes must be three counts"):
        synthetic_cityscapes((1, 2))
    with pytest.raises(ValueError, match=r"splits\['train'\] must hold category indices"):
        CityscapesMaps({"train": torch.full((1, 2, 2), 9), "valid": torch.zeros(1, 2, 2, dtype=torch.long),
                        "test": torch.zeros(1, 2, 2, dtype=torch.long)}, "x")
