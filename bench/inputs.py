"""MNIST as the measured code takes it, and the net's size figures."""
from __future__ import annotations

import numpy as np

from eqfpga.golden.data import MNIST, load_mnist
from eqfpga.golden.fixedpoint import bytes_to_lsbs
from eqfpga.hdl.generate import nnz_counts


def as_mnist(data) -> MNIST:
    """``data``: an MNIST, or a folder of the IDX files (None: fetched, as load_mnist does)."""
    return data if isinstance(data, MNIST) else load_mnist(data)


def lsbs(images, cfg) -> np.ndarray:
    """MNIST bytes as UQ(0, input_frac) LSBs, as FixedEP.bytes_to_lsbs and the core take them."""
    return bytes_to_lsbs(np.asarray(images).astype(np.int64).reshape(len(images), -1), cfg.fixed.input_frac)


def nnz_histogram(images) -> tuple:
    """(non-zero pixel counts, how many images have each): the plan's cycles depend on them."""
    v, f = np.unique(nnz_counts(images), return_counts=True)
    return v.astype(int), f.astype(int)


def connections(cfg) -> int:
    """Weights of the net (the C of CUPS)."""
    s = cfg.sizes
    return sum(s[n] * s[n + 1] for n in range(len(s) - 1))
