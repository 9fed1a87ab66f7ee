"""Host side of the serial link (docs/protocol.md): framing, retries, and the ``Device`` API.

No torch needed: numpy and pyserial only. The protocol (constants, framing, pixel code) comes from
``eqfpga.hdl.protocol``, plain Python that the gateware imports too.

* ``encode_pixels`` / ``decode_pixels``: the lossless zero-run pixel code of TRAIN / INFER.
* ``Link``: frames requests (sequence numbers, CRC-32), checks the CRC of replies, resynchronises
  on garbage, matches replies to requests by ``seq`` and resends: a request after a timeout or a
  BAD_CRC / TIMEOUT / BAD_LENGTH reply naming it, every outstanding request after such a reply
  whose ``swallowed`` byte is 1 (a stray sync byte may have hidden one of them inside a false
  frame). Resending is safe: the device answers DUPLICATE to a mutating request it has already
  executed (it remembers the last two), and the host never keeps more than two requests in flight.
  A resent copy is preceded by 0xFF bytes (8, 16, 32, ...) that end any false frame.
* ``Device``: the operations (``info``, ``config``, ``check_config``, parameters, ``train`` /
  ``infer`` and their pipelined ``*_many`` forms, ``counters``, ``set_t``, ``set_seed`` / ``seed``).
"""
from __future__ import annotations

import struct
import time
from collections import OrderedDict

import numpy as np

from eqfpga.golden.config import RUNTIME_FIELDS, ConfigError, EPConfig
from eqfpga.hdl.protocol import (COUNTER_NAMES, CRC_BYTES, DUP_WINDOW, HEADER_BYTES, INFO_BYTES, MAGIC,
                                 MAX_PAYLOAD, MUTATING, PARAMS_HEADER, SEED_BYTES, SYNC_REPLY, SYNC_REQUEST,
                                 VERSION, Cmd, ParamKind, Status, config_crc, crc32, decode_pixels,
                                 encode_pixels, frame, value_bytes)

__all__ = ["LinkError", "encode_pixels", "decode_pixels", "Link", "Device"]

IN_FLIGHT = 2       # requests the host keeps outstanding (the device has two payload banks)

_HINT = {
    Status.BAD_CRC: "the frame was corrupted on the line: check the cable, the baud rate and that "
                    "nothing else writes to the port",
    Status.UNKNOWN_CMD: "the device does not know this command: host and bitstream differ in protocol "
                        "version (compare info()['version'])",
    Status.BAD_LENGTH: "the frame announced more than MAX_PAYLOAD bytes",
    Status.TIMEOUT: "the frame stopped arriving: the host stalled or bytes were lost (baud rate?)",
    Status.BAD_ARG: "the payload does not fit the device's config (layer/row/col out of range, wrong "
                    "length, pixel count or label; SET_SEED takes exactly 4 bytes, GET_SEED none): "
                    "compare Device.config() with the host's config",
}


class LinkError(RuntimeError):
    """A request failed; the message says what went wrong and what to do."""


class _Pending:
    __slots__ = ("seq", "cmd", "frame", "sent", "attempts", "reply")

    def __init__(self, seq, cmd, frame_bytes):
        self.seq, self.cmd, self.frame = seq, cmd, frame_bytes
        self.sent, self.attempts, self.reply = 0.0, 0, None


class Link:
    """Framed requests over a byte port (anything with ``write(bytes)`` and ``read(n)``; pyserial's
    ``Serial`` with a short ``timeout`` works). ``timeout``: seconds without the reply to the oldest
    request before everything outstanding is resent; ``retries``: resends per request before
    ``LinkError``."""

    def __init__(self, port_obj, *, timeout: float = 1.0, retries: int = 10):
        self.port, self.timeout, self.retries = port_obj, float(timeout), int(retries)
        self._seq = 0
        self._recent_mut = []           # seqs of the last mutating requests (never reused soon)
        self._rx = bytearray()
        self._out: "OrderedDict[int, _Pending]" = OrderedDict()
        self._done: dict = {}
        self.stats = {"sent": 0, "resent": 0, "replies": 0, "stale": 0, "garbage_bytes": 0,
                      "unmatched_errors": 0, "timeouts": 0}

    # ---- sending ----
    def _new_seq(self, mutating: bool) -> int:
        avoid = set(self._out) | set(self._done) | set(self._recent_mut)
        for _ in range(256):
            self._seq = self._seq % 255 + 1      # 1..255: 0 is the device's "header not read"
            if self._seq not in avoid:
                break
        if mutating:
            self._recent_mut = (self._recent_mut + [self._seq])[-2 * DUP_WINDOW:]
        return self._seq

    def _send(self, p: _Pending, resend: bool = False):
        if resend:
            # The copy is resent because something mangled the last one: the device may still be
            # inside a false frame (a stray sync byte). 0xFF bytes end a false header at once (they
            # make its len > MAX_PAYLOAD) and fill a false payload; doubling their number on every
            # attempt ends any false frame, so a frame whose own bytes imitate a header cannot
            # be misread the same way forever.
            self.port.write(b"\xff" * min(4 << min(p.attempts, 10), MAX_PAYLOAD + 16))
        self.port.write(p.frame)
        p.sent = time.monotonic()
        p.attempts += 1
        self.stats["sent"] += 1

    def submit(self, cmd: int, payload: bytes = b"") -> int:
        """Send one request (waits while IN_FLIGHT are outstanding); returns its seq."""
        if len(payload) > MAX_PAYLOAD:
            raise LinkError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD ({MAX_PAYLOAD}): split it")
        while len(self._out) >= IN_FLIGHT:
            self._pump()
        seq = self._new_seq(cmd in MUTATING)
        p = _Pending(seq, cmd, frame(SYNC_REQUEST, seq, cmd, payload))
        self._out[seq] = p
        self._send(p)
        return seq

    def result(self, seq: int) -> tuple[int, bytes]:
        """Wait for the reply to request ``seq``: (status, payload); OK / DUPLICATE only, other
        statuses raise ``LinkError``."""
        while seq not in self._done:
            if seq not in self._out:
                raise LinkError(f"no request with seq {seq} is outstanding")
            self._pump()
        cmd, status, payload = self._done.pop(seq)
        if status not in (Status.OK, Status.DUPLICATE):
            name = Status(status).name if status in Status._value2member_map_ else f"status {status}"
            raise LinkError(f"the device answered {Cmd(cmd).name} (seq {seq}) with {name}: "
                            f"{_HINT.get(status, 'unknown status: host and bitstream differ in version')}")
        return status, payload

    def request(self, cmd: int, payload: bytes = b"") -> bytes:
        """One request, waited for: the reply payload."""
        return self.result(self.submit(cmd, payload))[1]

    # ---- receiving ----
    def _resend_all(self, why: str):
        for p in self._out.values():
            if p.attempts > self.retries:
                raise LinkError(f"no valid reply to {Cmd(p.cmd).name} (seq {p.seq}) after "
                                f"{p.attempts} attempts (last: {why}); check that the device is "
                                "powered and programmed, the port and the baud rate")
            self.stats["resent"] += 1
            self._send(p, resend=True)

    def _pump(self):
        """Read what the port has, handle complete replies, resend on timeout."""
        waiting = getattr(self.port, "in_waiting", 0) or 0
        chunk = self.port.read(max(1, waiting))
        if chunk:
            self._rx += chunk
            self._parse()
        elif self._out:
            oldest = next(iter(self._out.values()))
            if time.monotonic() - oldest.sent > self.timeout:
                self.stats["timeouts"] += 1
                self._resend_all(f"no reply within {self.timeout} s")

    def _parse(self):
        rx = self._rx
        while True:
            i = rx.find(bytes([SYNC_REPLY]))
            if i < 0:
                self.stats["garbage_bytes"] += len(rx)
                rx.clear()
                return
            if i:
                self.stats["garbage_bytes"] += i
                del rx[:i]
            if len(rx) < HEADER_BYTES:
                return
            n = int.from_bytes(rx[3:5], "little")
            if n > MAX_PAYLOAD:
                del rx[:1]                     # not a reply header: resync on the next 0x5A
                continue
            total = HEADER_BYTES + n + CRC_BYTES
            if len(rx) < total:
                return
            body = bytes(rx[1:HEADER_BYTES + n])
            if crc32(body) != int.from_bytes(rx[HEADER_BYTES + n:total], "little"):
                del rx[:1]
                self.stats["garbage_bytes"] += 1
                continue
            del rx[:total]
            self._reply(body[0], body[1], body[4:])

    def _reply(self, seq: int, status: int, payload: bytes):
        self.stats["replies"] += 1
        p = self._out.get(seq)
        if status in (Status.BAD_CRC, Status.TIMEOUT, Status.BAD_LENGTH):
            # A dropped frame. Its seq may be ours (the copy was mangled) or a coincidence of
            # garbage; its payload byte says whether a sync byte was among the dropped bytes, i.e.
            # whether it may have swallowed any of our requests (no payload: assume it may).
            if self._out and payload[:1] != b"\x00":
                self.stats["unmatched_errors"] += p is None
                self._resend_all(f"{Status(status).name} reply for a frame that held a sync byte")
            elif p is not None:
                self._resend_one(p, Status(status).name)
            else:
                self.stats["stale"] += 1
            return
        if p is None:
            self.stats["stale"] += 1           # the answer to a resent copy: already handled
            return
        del self._out[seq]
        self._done[seq] = (p.cmd, status, payload)

    def _resend_one(self, p: _Pending, why: str):
        if p.attempts > self.retries:
            raise LinkError(f"{Cmd(p.cmd).name} (seq {p.seq}) failed {p.attempts} times (last: {why}): "
                            f"{_HINT.get(Status[why], '') if why in Status.__members__ else ''}")
        self.stats["resent"] += 1
        self._send(p, resend=True)

    def start_session(self):
        """Make the device's duplicate window hold only seqs of this session: no-op mutating
        requests (WRITE_PARAMS of 0 values) until DUP_WINDOW of them in a row were executed (OK),
        so that a seq left there by an earlier session cannot turn a new request into DUPLICATE."""
        noop = struct.pack("<BBHHH", ParamKind.WEIGHT, 0, 0, 0, 0)
        ok = 0
        for _ in range(4 * DUP_WINDOW + 4):
            status, _ = self.result(self.submit(Cmd.WRITE_PARAMS, noop))
            ok = ok + 1 if status == Status.OK else 0
            if ok == DUP_WINDOW:
                return
        raise LinkError("the device keeps answering DUPLICATE to new requests: it is not an eqfpga "
                        "device of this protocol version, or another host talks to it")

    def drain(self):
        """Wait for every outstanding reply (their results are dropped)."""
        while self._out:
            self._pump()
        self._done.clear()


# ---- the device -------------------------------------------------------------------------------
class Device:
    """One board (or simulated board) behind a ``Link``. A context manager; ``close()`` closes the
    port."""

    def __init__(self, link: Link, *, port_obj=None):
        self.link, self._port, self._cfg, self._info = link, port_obj, None, None
        link.start_session()

    @classmethod
    def open(cls, port: str, baud: int, *, timeout: float | None = None, retries: int = 10) -> "Device":
        """``port``: "/dev/ttyUSB0", a pty path, "socket://host:port" (pyserial URL). ``timeout``
        (seconds without a reply before resending): by default 1 s or, at low baud rates, the time
        of four maximal frames on the line (two requests in flight and their replies)."""
        import serial

        if timeout is None:
            timeout = max(1.0, 4 * (HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES) * 10 / int(baud))
        try:
            s = serial.serial_for_url(port, baudrate=int(baud), timeout=0.02)
        except (serial.SerialException, OSError, ValueError) as e:
            raise LinkError(f"cannot open {port!r} at {baud} baud: {e}; check the path (ls /dev/tty*) "
                            "and that no other program holds it") from None
        if hasattr(s, "reset_input_buffer"):
            s.reset_input_buffer()
        try:
            return cls(Link(s, timeout=timeout, retries=retries), port_obj=s)
        except BaseException:
            s.close()
            raise

    def close(self):
        if self._port is not None:
            self._port.close()
            self._port = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- identity ----
    def info(self) -> dict:
        p = self.link.request(Cmd.INFO)
        if len(p) != INFO_BYTES or p[:4] != MAGIC:
            raise LinkError(f"INFO reply {p[:8].hex()}... is not an eqfpga device (magic {MAGIC!r}): "
                            "wrong port or another program on the other end")
        version, maxp, clk, div, ccrc, jlen = struct.unpack("<HHIIIH", p[4:])
        if version != VERSION:
            raise LinkError(f"device speaks protocol version {version}, this host {VERSION}: rebuild the "
                            "bitstream or update the host")
        self._info = {"magic": p[:4].decode(), "version": version, "max_payload": maxp, "clk_hz": clk,
                      "baud_divisor": div, "config_crc": ccrc, "json_len": jlen}
        return dict(self._info)

    def config(self) -> EPConfig:
        """The config the device was built for (CONFIG; its elaborated fields checked against INFO's
        config_crc). Its runtime fields (``RUNTIME_FIELDS``) are the build's: ``seed`` is the seed
        register's reset value, not necessarily the seed the device holds now (``seed()``)."""
        info = self.info()
        js, off = bytearray(), 0
        while off < info["json_len"]:
            n = min(MAX_PAYLOAD, info["json_len"] - off)
            js += self.link.request(Cmd.CONFIG, struct.pack("<HH", off, n))
            off += n
        try:
            cfg = EPConfig.from_json(bytes(js).decode())
        except (ConfigError, UnicodeDecodeError) as e:
            raise LinkError(f"the config read over CONFIG is not a valid config ({e}): the link corrupted "
                            "it (retry) or the bitstream is broken") from None
        if config_crc(cfg) != info["config_crc"]:
            raise LinkError("the config read over CONFIG does not match INFO's config_crc: the link "
                            "corrupted it (retry) or the bitstream is broken")
        self._cfg = cfg
        return self._cfg

    @property
    def cfg(self) -> EPConfig:
        return self._cfg if self._cfg is not None else self.config()

    def check_config(self, cfg: EPConfig):
        """Raise ``LinkError`` naming every elaborated field in which the device's config differs
        from ``cfg``. The runtime fields (``eqfpga.golden.config.RUNTIME_FIELDS``: seed, epochs,
        name) may differ: the host sets them (``set_seed``). Passing it is the same as
        ``config_crc(cfg)`` equal to INFO's ``config_crc`` (which ``config()`` checked the device's
        config against); the field by field comparison names what differs."""
        dev = self.cfg.elaborated_dict()
        want = cfg.elaborated_dict()
        diffs = []
        for key in sorted(set(dev) | set(want)):
            if key == "fixed":
                for fk in sorted(set(dev.get("fixed", {})) | set(want.get("fixed", {}))):
                    a, b = dev.get("fixed", {}).get(fk), want.get("fixed", {}).get(fk)
                    if a != b:
                        diffs.append(f"fixed.{fk}: device {a!r}, host {b!r}")
            elif dev.get(key) != want.get(key):
                diffs.append(f"{key}: device {dev.get(key)!r}, host {want.get(key)!r}")
        if diffs:
            raise LinkError("the device was built for another config (" + "; ".join(diffs) +
                            "): build and program the bitstream for this config, or use the device's "
                            f"(only {', '.join(RUNTIME_FIELDS)} may differ)")

    # ---- parameters ----
    def _vb(self, kind):
        f = self.cfg.fixed
        return value_bytes(f.bias_bits if kind == ParamKind.BIAS else f.weight_bits)

    def _bits(self, kind):
        f = self.cfg.fixed
        return f.bias_bits if kind == ParamKind.BIAS else f.weight_bits

    @staticmethod
    def _kind(kind):
        if isinstance(kind, str):
            try:
                return {"weight": ParamKind.WEIGHT, "w": ParamKind.WEIGHT, "bias": ParamKind.BIAS, "b": ParamKind.BIAS}[kind.lower()]
            except KeyError:
                raise ValueError(f"kind must be 'weight' or 'bias', not {kind!r}") from None
        return ParamKind(int(kind))

    def _params_payload(self, kind, layer, row, col, values=None, count=None):
        kind = self._kind(kind)
        s = self.cfg.sizes
        if not 0 <= layer < self.cfg.n_layers:
            raise ValueError(f"layer {layer} out of range 0..{self.cfg.n_layers - 1}")
        if values is not None:
            values = np.asarray(values, dtype=np.int64).reshape(-1)
            count = values.size
        limit = s[layer + 1] if kind == ParamKind.BIAS else s[layer]
        start = row if kind == ParamKind.BIAS else col
        if kind == ParamKind.BIAS and col != 0:
            raise ValueError("a bias run has col 0 and runs over rows")
        if not (0 <= row < s[layer + 1] and 0 <= start and start + count <= limit):
            raise ValueError(f"run {kind.name.lower()} layer {layer} row {row} col {col} count {count} "
                             f"leaves the {'bias vector' if kind == ParamKind.BIAS else 'row'} ({limit})")
        vb = self._vb(kind)
        if count * vb > MAX_PAYLOAD - PARAMS_HEADER:
            raise ValueError(f"{count} values exceed one request ({(MAX_PAYLOAD - PARAMS_HEADER) // vb})")
        head = struct.pack("<BBHHH", int(kind), layer, row, col, count)
        if values is None:
            return head
        bits = self._bits(kind)
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if values.size and (values.min() < lo or values.max() > hi):
            raise ValueError(f"{kind.name.lower()} values must lie in {lo}..{hi} ({bits} bits), got "
                             f"{values.min()}..{values.max()}")
        if vb in (1, 2, 4, 8):
            raw = values.astype(f"<i{vb}").tobytes()
        else:
            raw = b"".join(int(v).to_bytes(vb, "little", signed=True) for v in values)
        return head + raw

    def _decode_values(self, kind, raw: bytes, count: int) -> np.ndarray:
        vb = self._vb(kind)
        if len(raw) != vb * count:
            raise LinkError(f"READ_PARAMS returned {len(raw)} bytes for {count} values of {vb} bytes")
        if vb in (1, 2, 4, 8):
            v = np.frombuffer(raw, dtype=f"<i{vb}").astype(np.int64)
        else:
            v = np.array([int.from_bytes(raw[i * vb:(i + 1) * vb], "little", signed=True)
                          for i in range(count)], dtype=np.int64)
        return v

    def write_params(self, kind, layer: int, row: int, col: int, values):
        self.link.request(Cmd.WRITE_PARAMS, self._params_payload(kind, layer, row, col, values=values))

    def read_params(self, kind, layer: int, row: int, col: int, count: int) -> np.ndarray:
        kind = self._kind(kind)
        raw = self.link.request(Cmd.READ_PARAMS, self._params_payload(kind, layer, row, col, count=count))
        return self._decode_values(kind, raw, count)

    def _runs(self, kind):
        """(layer, row, col, count) runs covering every weight (kind 0) or bias (1), each one request."""
        s, vb = self.cfg.sizes, self._vb(kind)
        per = (MAX_PAYLOAD - PARAMS_HEADER) // vb
        for n in range(self.cfg.n_layers):
            if kind == ParamKind.BIAS:
                for r0 in range(0, s[n + 1], per):
                    yield n, r0, 0, min(per, s[n + 1] - r0)
            else:
                for i in range(s[n + 1]):
                    for c0 in range(0, s[n], per):
                        yield n, i, c0, min(per, s[n] - c0)

    def _pipeline(self, jobs):
        """jobs: iterable of (cmd, payload); replies' payloads in order, IN_FLIGHT kept outstanding."""
        seqs, out = [], []
        for cmd, payload in jobs:
            if len(seqs) >= IN_FLIGHT:
                out.append(self.link.result(seqs.pop(0))[1])
            seqs.append(self.link.submit(cmd, payload))
        for sq in seqs:
            out.append(self.link.result(sq)[1])
        return out

    def write_weights(self, weights, biases):
        """Write every W_n (sizes[n+1], sizes[n]) and b_n (sizes[n+1],)."""
        s = self.cfg.sizes
        W = [np.asarray(w, dtype=np.int64).reshape(s[n + 1], s[n]) for n, w in enumerate(weights)]
        B = [np.asarray(b, dtype=np.int64).reshape(s[n + 1]) for n, b in enumerate(biases)]
        if len(W) != self.cfg.n_layers or len(B) != self.cfg.n_layers:
            raise ValueError(f"expected {self.cfg.n_layers} weight matrices and bias vectors")
        jobs = [(Cmd.WRITE_PARAMS, self._params_payload(ParamKind.WEIGHT, n, i, c, values=W[n][i, c:c + k]))
                for n, i, c, k in self._runs(ParamKind.WEIGHT)]
        jobs += [(Cmd.WRITE_PARAMS, self._params_payload(ParamKind.BIAS, n, r, 0, values=B[n][r:r + k]))
                 for n, r, _, k in self._runs(ParamKind.BIAS)]
        self._pipeline(jobs)

    def read_weights(self):
        """(weights, biases): lists per layer of int64 arrays, W_n (sizes[n+1], sizes[n])."""
        s = self.cfg.sizes
        W = [np.zeros((s[n + 1], s[n]), np.int64) for n in range(self.cfg.n_layers)]
        B = [np.zeros(s[n + 1], np.int64) for n in range(self.cfg.n_layers)]
        wr, br = list(self._runs(ParamKind.WEIGHT)), list(self._runs(ParamKind.BIAS))
        replies = self._pipeline([(Cmd.READ_PARAMS, self._params_payload(ParamKind.WEIGHT, n, i, c, count=k))
                                  for n, i, c, k in wr] +
                                 [(Cmd.READ_PARAMS, self._params_payload(ParamKind.BIAS, n, r, 0, count=k))
                                  for n, r, _, k in br])
        for (n, i, c, k), raw in zip(wr, replies[:len(wr)]):
            W[n][i, c:c + k] = self._decode_values(ParamKind.WEIGHT, raw, k)
        for (n, r, _, k), raw in zip(br, replies[len(wr):]):
            B[n][r:r + k] = self._decode_values(ParamKind.BIAS, raw, k)
        return W, B

    # ---- samples ----
    def _sample_payload(self, pixels, label) -> bytes:
        cfg = self.cfg
        px = np.asarray(pixels).reshape(-1)
        if px.size != cfg.sizes[0]:
            raise ValueError(f"a sample has {cfg.sizes[0]} pixels, got {px.size}")
        label = int(label)
        if not 0 <= label < cfg.sizes[-1]:
            raise ValueError(f"label {label} out of range 0..{cfg.sizes[-1] - 1}")
        return bytes([label]) + encode_pixels(px, cfg.fixed.input_frac)

    def train(self, pixels, label) -> int:
        """Train on one sample; returns the free-phase prediction (before the update)."""
        return self.link.request(Cmd.TRAIN, self._sample_payload(pixels, label))[0]

    def infer(self, pixels) -> int:
        return self.link.request(Cmd.INFER, self._sample_payload(pixels, 0))[0]

    def train_many(self, pixels_2d, labels) -> np.ndarray:
        """Train on the rows of ``pixels_2d`` in order (two requests in flight); predictions."""
        px = np.asarray(pixels_2d)
        labels = np.asarray(labels).reshape(-1)
        if px.shape[0] != labels.size:
            raise ValueError(f"{px.shape[0]} samples but {labels.size} labels")
        r = self._pipeline((Cmd.TRAIN, self._sample_payload(px[i], labels[i])) for i in range(labels.size))
        return np.array([p[0] for p in r], dtype=np.int64)

    def infer_many(self, pixels_2d) -> np.ndarray:
        px = np.asarray(pixels_2d)
        r = self._pipeline((Cmd.INFER, self._sample_payload(px[i], 0)) for i in range(px.shape[0]))
        return np.array([p[0] for p in r], dtype=np.int64)

    # ---- state ----
    def counters(self) -> dict:
        p = self.link.request(Cmd.COUNTERS)
        if len(p) != 4 * len(COUNTER_NAMES):
            raise LinkError(f"COUNTERS reply has {len(p)} bytes, expected {4 * len(COUNTER_NAMES)}")
        return dict(zip(COUNTER_NAMES, struct.unpack(f"<{len(COUNTER_NAMES)}I", p)))

    def set_t(self, t: int):
        """Load the sample counter t (it keys the random source of stochastic rounding)."""
        self.link.request(Cmd.SET_T, struct.pack("<I", int(t) & 0xFFFFFFFF))

    def set_seed(self, seed: int):
        """Write the device's seed register (SET_SEED): the random source of every later sample is
        keyed by H(seed, t). ``seed``: an integer from 0 to 2**32 - 1, as ``EPConfig.seed``."""
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= int(seed) < 2**32:
            raise ValueError(f"seed must be an integer from 0 to 2**32 - 1, not {seed!r}")
        self.link.request(Cmd.SET_SEED, struct.pack("<I", int(seed)))

    def seed(self) -> int:
        """The device's seed register (GET_SEED): its build's seed until ``set_seed``."""
        p = self.link.request(Cmd.GET_SEED)
        if len(p) != SEED_BYTES:
            raise LinkError(f"GET_SEED reply has {len(p)} bytes, expected {SEED_BYTES}")
        return struct.unpack("<I", p)[0]
