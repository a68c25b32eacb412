r"""Cityscapes segmentation maps (Cordts et al., 2016) as 8-category 32x64 images, and a street-map stand-in.

The Argmax Flows paper (section 6.2) learns the distribution of Cityscapes *segmentation maps*
without the photographs: the fine labels, downsampled to ``32 x 64`` with nearest neighbour,
reduced to the 8 categories of :data:`CITYSCAPES_CATEGORIES`. The licence forbids redistribution,
so each user downloads ``gtFine_trainvaltest.zip`` from https://www.cityscapes-dataset.com/downloads/
(after registering) and puts it in ``data/cityscapes/``; :func:`prepare_cityscapes` reads it (or
an unpacked ``gtFine/`` folder) once and caches uint8 tensors in ``data/cityscapes/``.

We follow the official preprocessing (``ehoogeboom/multinomial_diffusion``,
``segmentation_diffusion/cityscapes/cityscapes.py`` and ``data_to_npy.py``):

- inputs: ``gtFine/{train,val}/<city>/*_gtFine_labelIds.png`` (8-bit label ids 0..33; the
  license plate, id -1, is never drawn into these images);
- resize the label-id image to ``32 x 64`` with PIL nearest neighbour (torchvision
  ``Resize((32, 64), interpolation=0)`` in their code), **then** map ids to categories with the
  ``categoryId`` column of cityscapesScripts ``labels.py`` (:data:`CITYSCAPES_LABELS`). Nearest
  neighbour only picks pixels, so the order does not change the result;
- splits: ``"train"`` = the first 2500 maps of the official train set, ``"valid"`` = its other
  475, ``"test"`` = the official val set (500 maps). The official code lists files with
  ``os.listdir`` (file-system order), so its 2500 / 475 cut depends on the machine; we sort by
  city, then file name, which makes the cut reproducible but not necessarily the same maps.

The official Multinomial Diffusion run trained with "shift" augmentation (random horizontal
flip, edge padding, random crop) and applied the same random transform to its test set; we
evaluate the test set without augmentation, so numbers can differ slightly for that reason.

:func:`synthetic_street_maps` and :func:`synthetic_cityscapes` give a clearly labelled
stand-in (``stand_in=True``, ``source="synthetic stand-in (not Cityscapes): ..."``) with the same
shapes and categories, for smoke runs and for machines without the data.
"""
from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from catlib.data.splits import SPLITS, Splits
from catlib.validation import check_positive_int

__all__ = ["CITYSCAPES_CATEGORIES", "CITYSCAPES_LABELS", "CITYSCAPES_PALETTE", "CITYSCAPES_SIZE",
           "CITYSCAPES_SPLIT_SIZES", "CityscapesMaps", "label_ids_to_categories", "resize_labels",
           "prepare_cityscapes", "load_cityscapes", "colourise", "synthetic_street_maps", "synthetic_cityscapes"]

#: The 8 classes in index order (the ``categoryId`` of cityscapesScripts ``labels.py``).
CITYSCAPES_CATEGORIES = ("void", "flat", "construction", "object", "nature", "sky", "human", "vehicle")
#: ``(name, id, categoryId)`` of the 34 labels of the label-id images and the license plate (id -1),
#: from cityscapesScripts ``helpers/labels.py``.
CITYSCAPES_LABELS = (
    ("unlabeled", 0, 0), ("ego vehicle", 1, 0), ("rectification border", 2, 0), ("out of roi", 3, 0),
    ("static", 4, 0), ("dynamic", 5, 0), ("ground", 6, 0), ("road", 7, 1), ("sidewalk", 8, 1), ("parking", 9, 1),
    ("rail track", 10, 1), ("building", 11, 2), ("wall", 12, 2), ("fence", 13, 2), ("guard rail", 14, 2),
    ("bridge", 15, 2), ("tunnel", 16, 2), ("pole", 17, 3), ("polegroup", 18, 3), ("traffic light", 19, 3),
    ("traffic sign", 20, 3), ("vegetation", 21, 4), ("terrain", 22, 4), ("sky", 23, 5), ("person", 24, 6),
    ("rider", 25, 6), ("car", 26, 7), ("truck", 27, 7), ("bus", 28, 7), ("caravan", 29, 7), ("trailer", 30, 7),
    ("train", 31, 7), ("motorcycle", 32, 7), ("bicycle", 33, 7), ("license plate", -1, 7))
#: RGB colour of each category, ``uint8 [8, 3]``: the colour of the category's first label in
#: ``labels.py`` (unlabeled, road, building, pole, vegetation, sky, person, car), as the official
#: code's ``coarse_COLORS``.
CITYSCAPES_PALETTE = torch.tensor([(0, 0, 0), (128, 64, 128), (70, 70, 70), (153, 153, 153), (107, 142, 35),
                                   (70, 130, 180), (220, 20, 60), (0, 0, 142)], dtype=torch.uint8)
CITYSCAPES_SIZE = (32, 64)
#: Maps in ``(train, valid, test)``: the official train set (2975) cut at 2500, and the official val set.
CITYSCAPES_SPLIT_SIZES = (2500, 475, 500)
CITYSCAPES_URL = "https://www.cityscapes-dataset.com/downloads/"
ZIP_NAME = "gtFine_trainvaltest.zip"
_FORMAT = "catlib.cityscapes/1"
_MAX_ID = 33
_ID_TO_CATEGORY = np.array([c for _, i, c in sorted(CITYSCAPES_LABELS, key=lambda r: r[1]) if i >= 0], dtype=np.int64)
_FILE = re.compile(r"(?:^|/)gtFine/(train|val)/([^/]+)/([^/]+_gtFine_labelIds\.png)$")


def label_ids_to_categories(ids) -> Tensor:
    """Cityscapes label ids (0..33, or -1 for the license plate) to category indices in ``[0, 8)``, same shape.

    >>> label_ids_to_categories(torch.tensor([0, 7, 8, 11, 17, 21, 23, 24, 26, 33, -1])).tolist()
    [0, 1, 1, 2, 3, 4, 5, 6, 7, 7, 7]
    """
    x = torch.as_tensor(np.asarray(ids) if not torch.is_tensor(ids) else ids)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"ids must be an integer tensor of Cityscapes label ids, got dtype {x.dtype}")
    x = x.long()
    bad = (x < -1) | (x > _MAX_ID)
    if bad.any():
        pos = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"ids must be Cityscapes label ids in [0, {_MAX_ID}] or -1, got {int(x[pos])} "
                         f"at position {pos}")
    return torch.from_numpy(_ID_TO_CATEGORY)[x.clamp(min=0)].where(x >= 0, torch.tensor(7))


def _pil():
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - pillow comes with matplotlib
        raise ImportError("reading Cityscapes needs Pillow: pip install pillow") from err
    return Image


def _nearest(image, size: tuple[int, int]):
    Image = _pil()
    return image.resize((size[1], size[0]), getattr(Image, "Resampling", Image).NEAREST)


def resize_labels(label_map, size: Sequence[int] = CITYSCAPES_SIZE) -> Tensor:
    """Nearest-neighbour resize (PIL ``NEAREST``, as the official code) of one integer map ``[h, w]`` to
    ``size = (H, W)``; LongTensor ``[H, W]``. For an integer factor ``s`` output pixel ``i`` is input
    pixel ``s * i + s // 2``.

    >>> resize_labels(torch.arange(16).view(4, 4), (2, 2)).tolist()
    [[5, 7], [13, 15]]
    """
    x = np.asarray(label_map.cpu() if torch.is_tensor(label_map) else label_map)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"label_map must be one integer map [h, w], got {x.dtype} of shape {list(x.shape)}")
    h, w = (check_positive_int("size[0]", size[0]), check_positive_int("size[1]", size[1]))
    if x.min() < -2 ** 31 or x.max() >= 2 ** 31:
        raise ValueError("label_map values must fit in int32")
    out = _nearest(_pil().fromarray(x.astype(np.int32), mode="I") if x.dtype != np.uint8 else _pil().fromarray(x),
                   (h, w))
    return torch.from_numpy(np.asarray(out).astype(np.int64))


class CityscapesMaps(Splits):
    """Splits of category maps: ``splits[k]`` is a LongTensor ``[N_k, H, W]`` with entries in ``[0, 8)``.

    Args:
        splits: ``{"train", "valid", "test"}`` -> integer tensors ``[N_k, H, W]``.
        source: where the maps came from, in words (a stand-in says so here).
        stand_in: ``True`` for synthetic maps that only stand in for Cityscapes.
        path: the cache file read, if any; files: the label-id images of each split, in order.

    ``maps["train"]`` or ``maps.train``; ``num_classes`` (8), ``categories``, ``data_shape`` ``(H, W)``.

    >>> m = synthetic_cityscapes((4, 2, 2), seed=0)
    >>> m  # doctest: +NORMALIZE_WHITESPACE
    CityscapesMaps(train [4, 32, 64], valid [2, 32, 64], test [2, 32, 64],
                   synthetic stand-in (not Cityscapes): street-like maps)
    >>> m.stand_in, m.num_classes, m.train.dtype
    (True, 8, torch.int64)
    """

    num_classes = len(CITYSCAPES_CATEGORIES)
    categories = CITYSCAPES_CATEGORIES

    def __init__(self, splits: dict[str, Tensor], source: str, stand_in: bool = False, path: Path | None = None,
                 files: dict[str, list[str]] | None = None):
        if set(splits) != set(SPLITS):
            raise ValueError(f"splits must have the keys {list(SPLITS)}, got {list(splits)}")
        shapes = {tuple(x.shape[1:]) for x in splits.values()}
        if len(shapes) != 1 or any(x.dim() != 3 for x in splits.values()):
            raise ValueError(f"splits must be [N, H, W] with one (H, W), got "
                             f"{ {k: list(x.shape) for k, x in splits.items()} }")
        for k, x in splits.items():
            _check_categories(x, f"splits[{k!r}]")
        self.splits = {k: splits[k].long() for k in SPLITS}
        self.source, self.stand_in, self.path, self.files = source, stand_in, path, files
        self.data_shape = shapes.pop()

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k} {list(x.shape)}" for k, x in self.splits.items())
        return f"CityscapesMaps({shapes}, {self.source})"


def _check_categories(x: Tensor, name: str) -> None:
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of category indices, got dtype {x.dtype}")
    bad = (x < 0) | (x >= len(CITYSCAPES_CATEGORIES))
    if bad.any():
        pos = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} must hold category indices in [0, {len(CITYSCAPES_CATEGORIES)}), got "
                         f"{int(x[pos])} at position {pos}")


def colourise(x: Tensor) -> Tensor:
    """Category maps ``[..., H, W]`` to RGB images ``uint8 [..., H, W, 3]`` with :data:`CITYSCAPES_PALETTE`.

    >>> colourise(torch.tensor([[5, 1]])).tolist()
    [[[70, 130, 180], [128, 64, 128]]]
    """
    x = torch.as_tensor(x)
    if x.dim() < 2:
        raise ValueError(f"x must be category maps [..., H, W], got shape {list(x.shape)}")
    _check_categories(x, "x")
    return CITYSCAPES_PALETTE.to(x.device)[x.long()]


def _missing(data_dir: str | Path) -> FileNotFoundError:
    folder = Path(data_dir) / "cityscapes"
    return FileNotFoundError(
        f"Cityscapes not found: no {folder / ZIP_NAME} and no {folder / 'gtFine'}/ folder. The Cityscapes licence "
        f"does not let us download it for you: register at https://www.cityscapes-dataset.com/, download {ZIP_NAME} "
        f"from {CITYSCAPES_URL} and put it at {folder / ZIP_NAME} (mkdir -p {folder}); then run "
        f"catlib.data.load_cityscapes({str(data_dir)!r}) again. catlib.data.synthetic_cityscapes() gives a labelled "
        f"stand-in meanwhile.")


def _find_source(source, data_dir: str | Path) -> Path:
    if source is not None:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"source {path} does not exist; expected {ZIP_NAME} (from {CITYSCAPES_URL}) or "
                                    f"a folder holding gtFine/")
        return path
    folder = Path(data_dir) / "cityscapes"
    for path in (folder / ZIP_NAME, folder / "gtFine"):
        if path.exists():
            return path
    raise _missing(data_dir)


def _open_zip(source: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{source} is not a readable zip archive ({err}); a partial download? Download "
                         f"{ZIP_NAME} again from {CITYSCAPES_URL}") from err


def _list_maps(source: Path, archive: zipfile.ZipFile | None) -> dict[str, list[str]]:
    """The label-id images of the official ``"train"`` and ``"val"`` sets, each sorted by (city, file name)."""
    found: dict[str, list[tuple[str, str, str]]] = {"train": [], "val": []}
    if archive is None:
        root = source if source.name == "gtFine" else source / "gtFine"
        if not root.is_dir():
            raise FileNotFoundError(f"{source} holds no gtFine/ folder; expected the unpacked {ZIP_NAME}")
        for split in found:
            for p in root.glob(f"{split}/*/*_gtFine_labelIds.png"):
                found[split].append((p.parent.name, p.name, str(p)))
    else:
        for name in archive.namelist():
            m = _FILE.search(name)
            if m:
                found[m.group(1)].append((m.group(2), m.group(3), name))
    return {k: [name for _, _, name in sorted(v)] for k, v in found.items()}


def _read_map(archive: zipfile.ZipFile | None, name: str, size: tuple[int, int]) -> np.ndarray:
    """One label-id image: check every pixel's id, resize (nearest), map to categories; uint8 ``[H, W]``."""
    try:
        image = _pil().open(io.BytesIO(archive.read(name)) if archive is not None else name)
        image.load()
    except Exception as err:  # PIL raises several types for damaged files
        raise ValueError(f"{name} is not a readable PNG ({err}); a damaged download?") from err
    if image.mode not in ("L", "P", "I", "I;16"):
        raise ValueError(f"{name} has image mode {image.mode!r}; expected a one-channel label-id image "
                         f"(*_gtFine_labelIds.png, mode 'L'), not a colour image")
    ids = np.asarray(image).astype(np.int64)
    bad = (ids < -1) | (ids > _MAX_ID)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} holds label id {ids[r, c]} at pixel (row {r}, column {c}); expected Cityscapes "
                         f"label ids 0..{_MAX_ID}")
    small = np.asarray(_nearest(image, size)).astype(np.int64)
    return np.where(small >= 0, _ID_TO_CATEGORY[np.maximum(small, 0)], 7).astype(np.uint8)


def _check_sizes(split_sizes, name: str = "split_sizes") -> tuple[int, int, int]:
    sizes = tuple(CITYSCAPES_SPLIT_SIZES if split_sizes is None else split_sizes)
    if len(sizes) != 3:
        raise ValueError(f"{name} must be three counts (train, valid, test), got {split_sizes!r}")
    for k, n in zip(SPLITS, sizes):
        check_positive_int(f"{name}[{k!r}]", n)
    return sizes  # type: ignore[return-value]


def _cache_path(data_dir: str | Path, size: tuple[int, int]) -> Path:
    return Path(data_dir) / "cityscapes" / f"cityscapes_{size[0]}x{size[1]}.pt"


def prepare_cityscapes(source: str | Path | None = None, data_dir: str | Path = "data",
                       size: Sequence[int] = CITYSCAPES_SIZE, split_sizes: Sequence[int] | None = None) -> Path:
    """Read the gtFine label-id maps, make the category maps (module docstring) and cache them; returns the cache.

    Args:
        source: ``gtFine_trainvaltest.zip``, an unpacked folder holding ``gtFine/``, or ``gtFine/`` itself;
            ``None``: ``data_dir/cityscapes/gtFine_trainvaltest.zip`` or ``data_dir/cityscapes/gtFine/``.
        data_dir: the cache goes to ``data_dir/cityscapes/cityscapes_<H>x<W>.pt`` (uint8 maps and file lists).
        size: ``(H, W)`` of the maps.
        split_sizes: ``(train, valid, test)`` counts; the official train set must hold ``train + valid`` maps
            and the val set ``test`` maps. Default :data:`CITYSCAPES_SPLIT_SIZES` (2975 and 500 files).

    Raises ``FileNotFoundError`` (where to get the data) when there is none, and ``ValueError`` for
    a damaged zip, wrong counts (a partial download or extraction), a colour image or a bad label id.
    """
    h, w = check_positive_int("size[0]", size[0]), check_positive_int("size[1]", size[1])
    sizes = _check_sizes(split_sizes)
    path = _find_source(source, data_dir)
    archive = _open_zip(path) if path.is_file() else None
    try:
        files = _list_maps(path, archive)
        maps = _read_splits(path, archive, files, sizes, (h, w))
    finally:
        if archive is not None:
            archive.close()
    files = {k: [Path(name).name for name in v] for k, v in files.items()}   # aachen_000000_000019_gtFine_labelIds.png
    names = {"train": files["train"][:sizes[0]], "valid": files["train"][sizes[0]:], "test": files["val"]}
    splits = {"train": maps["train"][:sizes[0]], "valid": maps["train"][sizes[0]:], "test": maps["val"]}
    state = {"format": _FORMAT, "size": [h, w], "split_sizes": list(sizes), "source": str(path),
             "splits": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in splits.items()}, "files": names}
    cache = _cache_path(data_dir, (h, w))
    cache.parent.mkdir(parents=True, exist_ok=True)
    part = cache.with_suffix(".pt.part")
    torch.save(state, part)
    os.replace(part, cache)
    return cache


def _read_splits(path: Path, archive: zipfile.ZipFile | None, files: dict[str, list[str]],
                 sizes: tuple[int, int, int], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Check the counts, then read every map of the official ``"train"`` and ``"val"`` sets."""
    n_train, n_val = len(files["train"]), len(files["val"])
    if n_train == 0 and n_val == 0:
        raise ValueError(f"{path} holds no gtFine/train/<city>/*_gtFine_labelIds.png nor gtFine/val/...; expected "
                         f"{ZIP_NAME} from {CITYSCAPES_URL}")
    if (n_train, n_val) != (sizes[0] + sizes[1], sizes[2]):
        raise ValueError(f"{path} holds {n_train} train and {n_val} val label-id maps, expected {sizes[0] + sizes[1]} "
                         f"and {sizes[2]} (a partial download or extraction?); download {ZIP_NAME} again from "
                         f"{CITYSCAPES_URL}")
    return {k: np.stack([_read_map(archive, name, size) for name in files[k]]) for k in ("train", "val")}


def load_cityscapes(data_dir: str | Path = "data", size: Sequence[int] = CITYSCAPES_SIZE,
                    split_sizes: Sequence[int] | None = None, source: str | Path | None = None) -> CityscapesMaps:
    """The category maps, LongTensors ``[N, H, W]`` in ``[0, 8)``: from the cache, made by
    :func:`prepare_cityscapes` first if it is missing and the zip (or folder) is there.

    Args:
        data_dir: the folder holding ``cityscapes/`` (the cache, and the zip or ``gtFine/`` folder).
        size: ``(H, W)`` of the maps; split_sizes: ``(train, valid, test)`` counts, default 2500 / 475 / 500.
        source: the zip or folder to prepare from when there is no cache (default: look in ``data_dir/cityscapes``).

    Returns :class:`CityscapesMaps` with ``stand_in=False`` and ``files`` (the label-id images of each split).

    Raises ``FileNotFoundError`` naming where to put ``gtFine_trainvaltest.zip`` and the Cityscapes
    website when there is no data, and ``ValueError`` for a damaged cache or one made with other
    ``split_sizes`` (delete it and load again).
    """
    h, w = check_positive_int("size[0]", size[0]), check_positive_int("size[1]", size[1])
    sizes = _check_sizes(split_sizes)
    cache = _cache_path(data_dir, (h, w))
    if not cache.is_file():
        prepare_cityscapes(source, data_dir, (h, w), sizes)
    fix = f"delete {cache} and run catlib.data.load_cityscapes({str(data_dir)!r}) again"
    try:
        state = torch.load(cache, weights_only=True)
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise KeyError(f"format {state.get('format') if isinstance(state, dict) else type(state).__name__!r}")
        splits, files = state["splits"], state["files"]
    except Exception as err:  # torch raises several types for truncated files
        raise ValueError(f"{cache} is damaged or not a catlib Cityscapes cache ({err}); {fix}") from err
    found = tuple(len(splits[k]) for k in SPLITS)
    if found != sizes:
        raise ValueError(f"{cache} holds {found} maps for (train, valid, test), expected {sizes}; {fix}")
    for k in SPLITS:
        x = splits[k]
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != (h, w):
            raise ValueError(f"{cache} holds {k} maps of {x.dtype} {list(x.shape)}, expected uint8 [N, {h}, {w}]; "
                             f"{fix}")
        try:
            _check_categories(x, f"{cache}: {k}")
        except ValueError as err:
            raise ValueError(f"{err}; {fix}") from None
    return CityscapesMaps(splits, f"Cityscapes gtFine (real, {cache})", stand_in=False, path=cache, files=files)


def _street_map(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One street-like category map ``[h, w]`` (see :func:`synthetic_street_maps`)."""
    cat = {name: i for i, name in enumerate(CITYSCAPES_CATEGORIES)}
    m = np.full((h, w), cat["sky"], dtype=np.int64)
    horizon = int(rng.integers(round(0.40 * h), round(0.50 * h) + 1))
    rows = np.arange(h)[:, None]
    x = 0
    while x < w:   # skyline: buildings and trees of random widths and heights
        width = int(rng.integers(max(2, w // 16), max(3, w // 4) + 1))
        kind = rng.choice(["construction", "nature", "sky"], p=[0.6, 0.3, 0.1])
        if kind != "sky":
            low = round((0.0 if kind == "construction" else 0.2) * h)
            top = int(rng.integers(low, max(low + 1, horizon - 2)))
            cols = slice(x, min(w, x + width))
            m[top:horizon, cols] = cat[kind]
        x += width
    m[horizon:] = cat["flat"]   # road and sidewalk
    for _ in range(int(rng.integers(0, 4))):   # poles with a sign on top
        c, top = int(rng.integers(0, w)), int(rng.integers(round(0.1 * h), max(round(0.1 * h) + 1, horizon - 3)))
        m[top:horizon + 2, c] = cat["object"]
        m[top:top + 2, max(0, c - 1):c + 2] = cat["object"]
    for _ in range(int(rng.integers(0, 5))):   # cars: larger when nearer (lower)
        bottom = int(rng.integers(horizon + 2, max(horizon + 3, h - 3)))
        height = max(2, round((bottom - horizon) * 0.6))
        width = max(3, round(height * rng.uniform(1.6, 2.6)))
        c = int(rng.integers(-width // 2, w - width // 2))
        m[max(0, bottom - height):bottom, max(0, c):max(0, c + width)] = cat["vehicle"]
    for _ in range(int(rng.integers(0, 4))):   # people on the sidewalks, near the edges
        bottom = int(rng.integers(horizon + 1, max(horizon + 2, min(h - 3, horizon + max(2, h // 6)) + 1)))
        height = max(2, round((bottom - horizon + 3) * 0.7))
        c = int(rng.choice([rng.integers(0, max(1, w // 4)), rng.integers(w - max(1, w // 4), w)]))
        m[max(0, bottom - height):bottom, c:c + max(1, w // 48)] = cat["human"]
    hood = round(0.08 * h) + (np.linspace(-1, 1, w) ** 2 * round(0.06 * h)).round().astype(np.int64)
    m[rows >= (h - 1 - hood)[None, :]] = cat["void"]   # the ego vehicle's bonnet
    return m


def synthetic_street_maps(n: int, seed: int = 0, size: Sequence[int] = CITYSCAPES_SIZE) -> Tensor:
    """Synthetic stand-in maps (not Cityscapes), LongTensor ``[n, H, W]`` in ``[0, 8)`` with the Cityscapes categories:
    sky on top, a skyline of buildings (construction) and trees (nature) down to a random horizon, road and
    sidewalk (flat) below, a few poles with signs (object), cars (vehicle, larger when lower) and people
    (human), and the ego vehicle's bonnet (void) at the bottom. Seeded; no exact entropy is claimed.

    >>> x = synthetic_street_maps(2, seed=0)
    >>> x.shape, x.dtype, int(x[:, 0].eq(5).float().mean() > 0.5)
    (torch.Size([2, 32, 64]), torch.int64, 1)
    """
    n = check_positive_int("n", n)
    h, w = check_positive_int("size[0]", size[0], 8), check_positive_int("size[1]", size[1], 8)
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([_street_map(rng, h, w) for _ in range(n)]))


def synthetic_cityscapes(split_sizes: Sequence[int] = CITYSCAPES_SPLIT_SIZES, seed: int = 0,
                         size: Sequence[int] = CITYSCAPES_SIZE) -> CityscapesMaps:
    """The labelled stand-in: :func:`synthetic_street_maps` in splits like :func:`load_cityscapes`, with
    ``stand_in=True`` and ``source`` saying it is not Cityscapes. Each split has its own seeded stream.

    >>> synthetic_cityscapes((3, 1, 1)).source
    'synthetic stand-in (not Cityscapes): street-like maps'
    """
    sizes = _check_sizes(split_sizes)
    splits = {k: synthetic_street_maps(n, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]), size)
              for i, (k, n) in enumerate(zip(SPLITS, sizes))}
    return CityscapesMaps(splits, "synthetic stand-in (not Cityscapes): street-like maps", stand_in=True)
