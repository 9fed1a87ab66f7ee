"""The serial protocol (docs/protocol.md is the contract), in plain Python: no Amaranth.

Both sides import it: the host (``eqfpga.boards.link``) and the gateware (``eqfpga.hdl.link``).
It holds the constants, the commands and statuses, the framing with its CRC-32 (ISO-HDLC, as
``zlib.crc32`` and ``amaranth.lib.crc.catalog.CRC32_ISO_HDLC`` compute it), the config identity
of INFO (``config_crc``: the elaborated fields only) and the zero-run pixel code of TRAIN / INFER.
"""
from __future__ import annotations

import enum
import zlib

import numpy as np

from eqfpga.golden.config import EPConfig

# ---- protocol constants (docs/protocol.md) ---------------------------------------------------
SYNC_REQUEST = 0xA5
SYNC_REPLY = 0x5A
MAX_PAYLOAD = 2048
VERSION = 2                 # 2: SET_SEED / GET_SEED, INFO's config_crc covers the elaborated fields only
MAGIC = b"EQFP"
HEADER_BYTES = 5            # sync, seq, cmd/status, len (u16)
CRC_BYTES = 4
RX_FIFO_DEPTH = 256         # bytes the UART receiver buffers ahead of the engine
DUP_WINDOW = 2              # executed mutating seqs remembered for DUPLICATE (host keeps 2 in flight)


class Cmd(enum.IntEnum):
    INFO = 0x01
    CONFIG = 0x02
    WRITE_PARAMS = 0x03
    READ_PARAMS = 0x04
    TRAIN = 0x05
    INFER = 0x06
    COUNTERS = 0x07
    SET_T = 0x08
    SET_SEED = 0x09
    GET_SEED = 0x0A


MUTATING = frozenset({Cmd.WRITE_PARAMS, Cmd.TRAIN, Cmd.SET_T, Cmd.SET_SEED})


class Status(enum.IntEnum):
    OK = 0
    BAD_CRC = 1
    UNKNOWN_CMD = 2
    BAD_LENGTH = 3
    TIMEOUT = 4
    BAD_ARG = 5
    DUPLICATE = 6


class ParamKind(enum.IntEnum):
    """``kind`` of WRITE_PARAMS / READ_PARAMS."""
    WEIGHT = 0
    BIAS = 1


COUNTER_NAMES = ("t", "cycles", "samples", "update_sat", "weight_sat", "bias_sat", "act_low",
                 "act_high", "unsettled", "cycling")
PARAMS_HEADER = 8           # kind u8, layer u8, row u16, col u16, count u16
SEED_BYTES = 4              # SET_SEED's request payload and GET_SEED's reply payload: seed u32


def value_bytes(bits: int) -> int:
    """Bytes per parameter value on the wire: ceil(bits / 8)."""
    return (bits + 7) // 8


def pixel_bytes(input_frac: int) -> int:
    """Bytes per pixel value in the zero-run code: ceil(input_frac / 8), at least 1."""
    return max(1, (input_frac + 7) // 8)


def config_json(cfg: EPConfig) -> bytes:
    """The canonical config JSON that CONFIG serves: the whole config the device was built for
    (its runtime fields hold the build's values: ``seed`` is the seed register's reset value)."""
    return cfg.to_json().encode()


def config_crc(cfg: EPConfig) -> int:
    """INFO's ``config_crc``: the CRC-32 of ``cfg.elaborated_json()``, the config without its
    runtime fields (``eqfpga.golden.config.RUNTIME_FIELDS``). Two configs with the same CRC run on
    the same board; the host sets the runtime fields (SET_SEED)."""
    return crc32(cfg.elaborated_json().encode())


def info_payload(cfg: EPConfig, *, clk_hz: int, divisor: int) -> bytes:
    """The INFO reply payload of a device built for ``cfg``."""
    js = config_json(cfg)
    return (MAGIC + VERSION.to_bytes(2, "little") + MAX_PAYLOAD.to_bytes(2, "little")
            + int(clk_hz).to_bytes(4, "little") + int(divisor).to_bytes(4, "little")
            + config_crc(cfg).to_bytes(4, "little") + len(js).to_bytes(2, "little"))


INFO_BYTES = 22


# ---- the pixel code ---------------------------------------------------------------------------
def encode_pixels(pixels, input_frac: int) -> bytes:
    """UQ(0, input_frac) integer pixels -> the zero-run code: each value in ceil(input_frac/8) bytes
    (little-endian); a value 0 is followed by one byte r and stands for r + 1 zero pixels."""
    px = np.asarray(pixels).reshape(-1)
    if px.size and not np.issubdtype(px.dtype, np.integer):
        raise ValueError(f"pixels must be integers (UQ(0, {input_frac}) LSBs), not {px.dtype}; "
                         "convert MNIST bytes with FixedEP.bytes_to_lsbs or encode floats first")
    px = px.astype(np.int64)
    hi = (1 << input_frac) - 1
    if px.size and (px.min() < 0 or px.max() > hi):
        raise ValueError(f"pixels must lie in 0..{hi} (UQ(0, {input_frac})), got {px.min()}..{px.max()}")
    pb = pixel_bytes(input_frac)
    out = bytearray()
    nz = np.flatnonzero(px)
    pos = 0
    for j in list(nz) + [px.size]:
        run = j - pos                       # zeros before pixel j
        while run > 0:
            r = min(run, 256)
            out += bytes(pb) + bytes([r - 1])
            run -= r
        if j < px.size:
            out += int(px[j]).to_bytes(pb, "little")
        pos = j + 1
    return bytes(out)


def decode_pixels(data: bytes, input_frac: int, n: int | None = None) -> np.ndarray:
    """Inverse of ``encode_pixels``; ``n``: the exact pixel count expected (ValueError otherwise)."""
    pb = pixel_bytes(input_frac)
    out, i = [], 0
    while i < len(data):
        if i + pb > len(data):
            raise ValueError(f"pixel code ends inside a value at byte {i}")
        v = int.from_bytes(data[i:i + pb], "little")
        i += pb
        if v == 0:
            if i >= len(data):
                raise ValueError("pixel code ends after a zero without its run length")
            out.extend([0] * (data[i] + 1))
            i += 1
        else:
            if v >> input_frac:
                raise ValueError(f"pixel value {v} does not fit UQ(0, {input_frac})")
            out.append(v)
    if n is not None and len(out) != n:
        raise ValueError(f"pixel code decodes to {len(out)} pixels, expected {n}")
    return np.array(out, dtype=np.int64)


def frame(sync: int, seq: int, code: int, payload: bytes) -> bytes:
    """One frame (request: sync 0xA5 and a cmd; reply: sync 0x5A and a status)."""
    body = bytes([seq & 0xFF, code & 0xFF]) + len(payload).to_bytes(2, "little") + payload
    return bytes([sync]) + body + crc32(body).to_bytes(4, "little")


def crc32(data: bytes) -> int:
    """The frame CRC: CRC-32/ISO-HDLC (reflected 0x04C11DB7, init and xorout 0xFFFFFFFF)."""
    return zlib.crc32(data)


TRAIN_REPLY_BYTES = HEADER_BYTES + 1 + CRC_BYTES      # header, the prediction, CRC


def train_request_bytes(encoded_pixels: int) -> int:
    """Bytes on the wire of a TRAIN / INFER request whose pixel code is ``encoded_pixels`` long."""
    return HEADER_BYTES + 1 + encoded_pixels + CRC_BYTES   # header, the label, pixels, CRC
