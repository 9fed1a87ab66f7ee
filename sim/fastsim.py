"""Free-running compiled simulation of the core: a C++ Verilator harness, driven at sample boundaries.

``build(cfg)`` converts ``EPCore(cfg=cfg)`` to Verilog, writes a small config-specific header
(memory accessors, the access payload layout) beside ``harness/fastsim_main.cpp`` and builds both
with ``verilator --cc --exe --build`` (-O3) in ``build_dir("fastsim", <config tag>[-wave])``,
reused as ``eqfpga.sim.build_cache`` decides.

``FastSim(cfg)`` starts the binary and speaks its binary protocol (documented at the top of
``harness/fastsim_main.cpp``) through pipes: load / read every weight and bias through the access
port, read raw memories, set t, set the seed port (``cfg.seed`` at start), run a batch of samples
(learn on or off) returning predictions, cycles and the checksum of all weights and biases after
every sample, computed in C++ from the RTL's memory arrays (exposed read-only by a .vlt file,
nothing else is public), read states, snapshot the state memory at chosen cycles, and dump FST or
VCD waveforms on request.

``param_checksum`` is the same checksum computed in Python (numpy) on any weights and biases.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from eqfpga.golden.config import EPConfig
from eqfpga.hdl.core import ACCESS_LAYOUT, Access
from eqfpga.hdl.plan import Plan

from .build_cache import HARNESS_DIR, cached_build, core_key, core_tag
from .designs import CORE_TOP, core_verilog
from .paths import build_dir
from .toolchain import (HARNESS_MAKEFLAGS, VERILATOR_WARNINGS, harness_build_command, run_verilator_build,
                        setup_verilator)

HARNESS = HARNESS_DIR / "fastsim_main.cpp"
PHASES = {"free": 0, "nudged": 1, "negative": 2}
BUILD_FLAGS = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert"]

_GOLD = np.uint64(0x9E3779B97F4A7C15)


class FastSimError(RuntimeError):
    pass


# ---- the checksum ----------------------------------------------------------------------------
def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    z = z + _GOLD
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def element_hashes(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """mix64((pos * 0x9E3779B97F4A7C15) ^ value) per element (value int64, pos int64)."""
    with np.errstate(over="ignore"):
        return _mix64((pos.astype(np.uint64) * _GOLD) ^ values.astype(np.int64).view(np.uint64))


def flat_params(weights, biases) -> np.ndarray:
    """Every weight and bias as one int64 vector in the logical order of the checksum:
    per layer n, W_n row-major (out x in), then b_n."""
    parts = []
    for W, b in zip(weights, biases):
        parts.append(np.asarray(W, dtype=np.int64).reshape(-1))
        parts.append(np.asarray(b, dtype=np.int64).reshape(-1))
    return np.concatenate(parts)


def param_checksum(weights, biases) -> int:
    """The harness's checksum of all weights and biases (lists per layer; a leading net axis of 1
    is allowed): sum of element_hashes mod 2**64."""
    v = flat_params([np.asarray(w).reshape(np.asarray(w).shape[-2:]) for w in weights],
                    [np.asarray(b).reshape(-1) for b in biases])
    with np.errstate(over="ignore"):
        return int(element_hashes(v, np.arange(v.size, dtype=np.int64)).sum(dtype=np.uint64))


class Layout:
    """Where each logical weight and bias lives in the core's memories (from ``Plan``)."""

    def __init__(self, cfg: EPConfig):
        pl = Plan(cfg)
        self.cfg, self.plan, self.N, self.P = cfg, pl, pl.N, pl.P
        s = cfg.sizes
        self.w_addr, self.w_lane, self.b_addr, self.b_lane, self.offsets = [], [], [], [], []
        base = 0
        for n in range(self.N):
            out, inp = s[n + 1], s[n]
            addr = np.empty((out, inp), np.int64)
            lane = np.empty((out, inp), np.int64)
            for i in range(out):
                for j in range(inp):
                    addr[i, j], lane[i, j] = pl.weight_addr(n, i, j)
            ba = np.array([pl.bias_addr(n, i) for i in range(out)], np.int64).reshape(out, 2)
            self.w_addr.append(addr)
            self.w_lane.append(lane)
            self.b_addr.append(ba[:, 0])
            self.b_lane.append(ba[:, 1])
            self.offsets.append(base)
            base += out * inp + out
        self.total = base

    def positions(self, n: int, kind: str, depth: int) -> np.ndarray:
        """pos[addr * P + lane] = logical index of the parameter (or -1) for W_n / b_n."""
        s = self.cfg.sizes
        pos = np.full(depth * self.P, -1, np.int64)
        if kind == "w":
            idx = self.offsets[n] + np.arange(s[n + 1] * s[n]).reshape(s[n + 1], s[n])
            pos[self.w_addr[n] * self.P + self.w_lane[n]] = idx
        else:
            idx = self.offsets[n] + s[n + 1] * s[n] + np.arange(s[n + 1])
            pos[self.b_addr[n] * self.P + self.b_lane[n]] = idx
        return pos


# ---- build -------------------------------------------------------------------------------------
def _memories(text: str) -> dict:
    """name -> (bits, depth) of every memory declared at the top of the Verilog."""
    out = {}
    for mt in re.finditer(r"^\s*reg\s+\[(\d+):(\d+)\]\s+(\w+)\s*\[(\d+):(\d+)\];", text, re.M):
        hi, lo, name, d1, d0 = mt.groups()
        out[name] = (int(hi) - int(lo) + 1, abs(int(d1) - int(d0)) + 1)
    return out


def _counter_ports(text: str) -> list:
    """The core's 32-bit outputs other than stream payloads: cycles, samples, t, event counters."""
    return [mt.group(1) for mt in re.finditer(r"^\s*output\s+\[31:0\]\s+(\w+)\s*;", text, re.M)
            if "__" not in mt.group(1)]


def _header(cfg: EPConfig, mems: dict, counters: list) -> str:
    N = cfg.n_layers
    names = [f"w{n}" for n in range(N)] + [f"b{n}" for n in range(N)] + ["states", "d0"]
    for nm in names:
        if nm not in mems:
            raise FastSimError(f"the core's Verilog has no memory {nm!r} (found {sorted(mems)}); "
                               "eqfpga.sim.fastsim must learn the new memory names")
    bits = [mems[nm][0] for nm in names]
    depth = [mems[nm][1] for nm in names]
    lines = ["// generated by eqfpga.sim.fastsim: do not edit", "#pragma once",
             f"#define FS_NMEM {len(names)}", f"#define FS_STATES_MEM {2 * N}", f"#define FS_D0_MEM {2 * N + 1}",
             f"#define FS_MAX_WORDS {max((b + 31) // 32 for b in bits)}",
             f"static const int fs_mem_bits[] = {{{', '.join(map(str, bits))}}};",
             f"static const int fs_mem_depth[] = {{{', '.join(map(str, depth))}}};",
             "static inline void fs_mem_word(Vtop___024root* r, int id, int a, uint32_t* out) {",
             "    switch (id) {"]
    for k, nm in enumerate(names):
        lines.append(f"    case {k}: fs_copy(r->{CORE_TOP}__DOT__{nm}[a], out); break;")
    lines += ["    default: break;", "    }", "}"]
    lines.append(f"#define FS_NCOUNTERS {len(counters)}")
    lines.append("#define FS_COUNTERS(X) " + " ".join(f"X({c})" for c in counters))
    lines.append("static const char* const fs_counter_names[] = {"
                 + ", ".join(f'"{c}"' for c in counters) + "};")
    for fld in ("op", "layer", "row", "col", "data"):
        f = ACCESS_LAYOUT[fld]
        lines.append(f"#define FS_ACC_{fld.upper()}_OFF {f.offset}")
        lines.append(f"#define FS_ACC_{fld.upper()}_W {f.width}")
    return "\n".join(lines) + "\n"


def _vlt(cfg: EPConfig) -> str:
    N = cfg.n_layers
    names = [f"w{n}" for n in range(N)] + [f"b{n}" for n in range(N)] + ["states", "d0"]
    return "`verilator_config\n" + "".join(
        f'public_flat_rd -module "{CORE_TOP}" -var "{nm}"\n' for nm in names)


def wave_format() -> str:
    """'fst' when the C library FST needs (lz4) is installed, else 'vcd' (no dependency)."""
    return "fst" if Path("/usr/include/lz4.h").exists() else "vcd"


def build(cfg: EPConfig, *, wave: bool = False, root: Path | None = None, quiet: bool = True) -> Path:
    """Build (or reuse, ``eqfpga.sim.build_cache``) the harness binary for ``cfg``; returns its path.
    ``root``: the folder of the builds (default ``build_dir("fastsim")``)."""
    setup_verilator()
    trace = wave_format() if wave else None
    flags = BUILD_FLAGS + VERILATOR_WARNINGS + {None: [], "fst": ["--trace-fst"], "vcd": ["--trace"]}[trace]
    cflags = f"-DFS_TRACE={ {None: 0, 'vcd': 1, 'fst': 2}[trace] }"

    def generate():
        text = core_verilog(cfg)
        return {f"{CORE_TOP}.v": text, "fastsim_cfg.h": _header(cfg, _memories(text), _counter_ports(text)),
                "fastsim.vlt": _vlt(cfg), "fastsim_main.cpp": HARNESS.read_text()}

    def compile(bdir: Path):
        cmd = harness_build_command(CORE_TOP, "fastsim", ["fastsim.vlt", f"{CORE_TOP}.v", "fastsim_main.cpp"],
                                    flags=flags, cflags=f"{cflags} -I{bdir}")
        t0 = time.time()
        run_verilator_build(cmd, bdir, bdir / "obj" / "fastsim", FastSimError)
        if not quiet:
            print(f"fastsim: built {bdir} in {time.time() - t0:.0f} s")

    folder = Path(root or build_dir("fastsim")) / (core_tag(cfg) + ("-wave" if wave else ""))
    return cached_build(folder, "obj/fastsim", key=core_key(cfg), flags=flags + [cflags, *HARNESS_MAKEFLAGS],
                        generate=generate, compile=compile)


# ---- the running harness -------------------------------------------------------------------------
class FastSim:
    """One running harness process for one config (a context manager)."""

    def __init__(self, cfg: EPConfig, *, wave: bool = False, root: Path | None = None, quiet: bool = True):
        cfg.check_fixed()
        self.cfg, self.plan, self.wave_built = cfg, Plan(cfg), wave
        self.exe = build(cfg, wave=wave, root=root, quiet=quiet)
        self.layout = Layout(cfg)
        # run a private copy: a rebuild of the same config (another process) cannot touch it
        self._tmp = tempfile.TemporaryDirectory(prefix="eqfpga-fastsim-")
        exe = Path(self._tmp.name) / "fastsim"
        shutil.copy2(self.exe, exe)
        # a sample can never take more than its schedule with every pixel non-zero: 4x that is a hang
        stuck = 4 * self.plan.sample_cycles(cfg.sizes[0], learn=True)["total"] + 100_000
        self.proc = subprocess.Popen([str(exe), str(stuck)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0)
        self._stderr = []
        self._errthread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._errthread.start()
        self._pending = None
        self.mems = self._hello()
        self._send_layout()
        self.set_seed(cfg.seed)

    # ---- plumbing ----
    def _drain_stderr(self):
        for line in self.proc.stderr:
            self._stderr.append(line.decode(errors="replace"))
            del self._stderr[:-50]

    def _write(self, data: bytes):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._died()

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.proc.stdout.read(n - len(buf))
            if not chunk:
                self._died()
            buf += chunk
        return bytes(buf)

    def _died(self):
        rc = self.proc.wait(timeout=10)
        self._errthread.join(timeout=2)
        raise FastSimError(f"the harness {self.exe} exited (status {rc}): {''.join(self._stderr)[-2000:]}")

    def _status(self):
        st = self._read(1)
        if st == b"K":
            return
        if st == b"E":
            n = struct.unpack("<I", self._read(4))[0]
            raise FastSimError(self._read(n).decode(errors="replace"))
        raise FastSimError(f"protocol error: status byte {st!r}")

    def _call(self, data: bytes):
        if self._pending is not None:
            raise FastSimError("a batch is running: collect() it first")
        self._write(data)
        self._status()

    def _u32(self, n=1):
        v = struct.unpack(f"<{n}I", self._read(4 * n))
        return v[0] if n == 1 else v

    def _hello(self):
        self._call(b"H")
        _version, n = self._u32(2)
        mems = [self._u32(2) for _ in range(n)]  # (depth, bits) per memory
        self.counter_names = []
        for _ in range(self._u32()):
            ln = struct.unpack("<H", self._read(2))[0]
            self.counter_names.append(self._read(ln).decode())
        return mems

    def _send_layout(self):
        N, P = self.cfg.n_layers, self.plan.P
        f = self.cfg.fixed
        parts = []
        for n in range(N):
            for mem, kind, lane_bits in ((n, "w", f.weight_bits), (N + n, "b", f.bias_bits)):
                depth, bits = self.mems[mem]
                if bits != P * lane_bits:
                    raise FastSimError(f"memory {mem} is {bits} bits wide, expected {P} lanes of {lane_bits}")
                pos = self.layout.positions(n, kind, depth)
                parts.append(struct.pack("<III", mem, lane_bits, pos.size) + pos.astype("<i8").tobytes())
        self._call(b"L" + struct.pack("<I", len(parts)) + b"".join(parts))

    def close(self):
        if self.proc.poll() is None:
            try:
                if self._pending is None:
                    self._write(b"Q")
                    self._status()
            except FastSimError:
                pass
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- access port ----
    def access(self, cmds) -> np.ndarray:
        """cmds: iterable of (op, layer, row, col, data); returns the int32 responses."""
        arr = np.array(list(cmds), dtype=np.int64).reshape(-1, 5)
        rec = np.zeros(len(arr), dtype=[("op", "u1"), ("layer", "u1"), ("row", "<u2"), ("col", "<u2"),
                                         ("data", "<i4")])
        for k, name in enumerate(("op", "layer", "row", "col", "data")):
            rec[name] = arr[:, k]
        self._call(b"A" + struct.pack("<I", len(rec)) + rec.tobytes())
        n = self._u32()
        return np.frombuffer(self._read(4 * n), dtype="<i4").astype(np.int64)

    def write_params(self, weights, biases):
        """Load every weight and bias through the access port (W_n: (out, in), b_n: (out,))."""
        cmds = []
        for n, (W, b) in enumerate(zip(weights, biases)):
            W = np.asarray(W, np.int64).reshape(self.cfg.sizes[n + 1], self.cfg.sizes[n])
            b = np.asarray(b, np.int64).reshape(-1)
            ii, jj = np.meshgrid(np.arange(W.shape[0]), np.arange(W.shape[1]), indexing="ij")
            cmds.append(np.stack([np.full(W.size, Access.WRITE_WEIGHT.value), np.full(W.size, n),
                                  ii.ravel(), jj.ravel(), W.ravel()], 1))
            cmds.append(np.stack([np.full(b.size, Access.WRITE_BIAS.value), np.full(b.size, n),
                                  np.arange(b.size), np.zeros(b.size, np.int64), b], 1))
        self.access(np.concatenate(cmds))

    def write_weight(self, n, i, j, v):
        self.access([(Access.WRITE_WEIGHT.value, n, i, j, int(v))])

    def write_bias(self, n, i, v):
        self.access([(Access.WRITE_BIAS.value, n, i, 0, int(v))])

    def read_params_access(self):
        """Every weight and bias read back through the access port."""
        s = self.cfg.sizes
        cmds = []
        for n in range(self.cfg.n_layers):
            ii, jj = np.meshgrid(np.arange(s[n + 1]), np.arange(s[n]), indexing="ij")
            k = ii.size
            cmds.append(np.stack([np.full(k, Access.READ_WEIGHT.value), np.full(k, n), ii.ravel(), jj.ravel(),
                                  np.zeros(k, np.int64)], 1))
            cmds.append(np.stack([np.full(s[n + 1], Access.READ_BIAS.value), np.full(s[n + 1], n),
                                  np.arange(s[n + 1]), np.zeros(s[n + 1], np.int64), np.zeros(s[n + 1], np.int64)], 1))
        r = self.access(np.concatenate(cmds))
        W, B, at = [], [], 0
        for n in range(self.cfg.n_layers):
            k = s[n + 1] * s[n]
            W.append(r[at:at + k].reshape(s[n + 1], s[n]))
            B.append(r[at + k:at + k + s[n + 1]])
            at += k + s[n + 1]
        return W, B

    def read_states(self, phase: str):
        """States s_1..s_N of the last sample's phase, read through the access port."""
        s = self.cfg.sizes
        cmds = [(Access.READ_STATE.value, k, PHASES[phase], i, 0)
                for k in range(1, len(s)) for i in range(s[k])]
        r = self.access(cmds)
        out, at = [], 0
        for k in range(1, len(s)):
            out.append(r[at:at + s[k]])
            at += s[k]
        return out

    # ---- raw memories ----
    def read_memory(self, mem: int) -> np.ndarray:
        """(depth, words) uint32: the raw contents of memory ``mem`` (ids as in the header)."""
        self._call(b"M" + struct.pack("<I", mem))
        depth, nw = self._u32(2)
        return np.frombuffer(self._read(4 * depth * nw), dtype="<u4").reshape(depth, nw)

    @staticmethod
    def lanes(raw: np.ndarray, lane_bits: int, lanes: int, signed: bool) -> np.ndarray:
        """(depth, lanes) int64 lane values of raw memory words."""
        bits = np.unpackbits(raw.astype("<u4").view(np.uint8).reshape(raw.shape[0], -1), axis=1,
                             bitorder="little")
        bits = bits[:, :lanes * lane_bits].reshape(raw.shape[0], lanes, lane_bits).astype(np.int64)
        weights = np.left_shift(np.int64(1), np.arange(lane_bits, dtype=np.int64))
        if signed:
            weights[-1] = -weights[-1]
        return (bits * weights).sum(-1)

    def dump_params(self):
        """Every weight and bias read straight from the core's memories (the RTL's real contents)."""
        f, P, N = self.cfg.fixed, self.plan.P, self.cfg.n_layers
        W, B = [], []
        for n in range(N):
            wl = self.lanes(self.read_memory(n), f.weight_bits, P, True)
            bl = self.lanes(self.read_memory(N + n), f.bias_bits, P, True)
            W.append(wl[self.layout.w_addr[n], self.layout.w_lane[n]])
            B.append(bl[self.layout.b_addr[n], self.layout.b_lane[n]])
        return W, B

    def decode_states(self, raw: np.ndarray, slot: int):
        """States s_1..s_N held in state-memory slot ``slot`` of a raw snapshot."""
        pl, f = self.plan, self.cfg.fixed
        lanes = self.lanes(raw, f.state_frac + 1, pl.P, False)
        out = []
        for k in range(1, pl.N + 1):
            i = np.arange(self.cfg.sizes[k])
            out.append(lanes[slot * pl.S + pl.state_offsets[k] + i // pl.P, i % pl.P])
        return out

    def decode_d0(self, raw: np.ndarray):
        pl = self.plan
        lanes = self.lanes(raw, self.cfg.fixed.acc_bits, pl.P, True)
        i = np.arange(self.cfg.sizes[1])
        return lanes[i // pl.P, i % pl.P]

    def checksum(self) -> int:
        self._call(b"K")
        return struct.unpack("<Q", self._read(8))[0]

    # ---- control ----
    def set_t(self, t: int):
        self._call(b"T" + struct.pack("<I", int(t) & 0xFFFFFFFF))

    def set_seed(self, seed: int):
        """Drive the core's ``seed`` port (held until the next call); ``FastSim(cfg)`` starts with
        ``cfg.seed``. One build serves every seed."""
        if not 0 <= int(seed) < 2**32:
            raise ValueError(f"seed must be an integer from 0 to 2**32 - 1, not {seed!r}")
        self._call(b"R" + struct.pack("<I", int(seed)))

    def counters(self) -> dict:
        """The core's counter outputs by port name (cycles, samples, t, act_low, ... as it has them)."""
        self._call(b"C")
        n = self._u32()
        return dict(zip(self.counter_names, np.frombuffer(self._read(4 * n), "<u4").tolist()))

    def layer_counters(self) -> dict | None:
        """Per-layer counters (access op READ_COUNTER, names LAYER_COUNTERS) as lists over weight
        layers, like the golden ``Counters``; None when the core has no such op."""
        from eqfpga.hdl import core
        op, names = getattr(core.Access, "READ_COUNTER", None), getattr(core, "LAYER_COUNTERS", None)
        if op is None or names is None:
            return None
        N = self.cfg.n_layers
        r = self.access([(op.value, n, c, 0, 0) for c in range(len(names)) for n in range(N)])
        return {name: [int(v) & 0xFFFFFFFF for v in r[c * N:(c + 1) * N]] for c, name in enumerate(names)}

    def wave(self, path: str | os.PathLike | None):
        """Start a waveform dump into ``path`` (None: stop it): FST or VCD (``wave_format()``,
        the file suffix should match). Needs a build with ``wave=True``."""
        p = str(path).encode() if path is not None else b""
        self._call(b"V" + struct.pack("<BH", 1 if path is not None else 0, len(p)) + p)

    # ---- samples ----
    def _pack_samples(self, images, labels) -> tuple[int, bytes]:
        images = np.ascontiguousarray(images, dtype="<u2").reshape(len(labels), -1)
        if images.shape[1] != self.cfg.sizes[0]:
            raise ValueError(f"samples have {images.shape[1]} pixels, the config {self.cfg.sizes[0]}")
        return len(labels), images.tobytes() + np.ascontiguousarray(labels, dtype="<u2").tobytes()

    def submit(self, images, labels, *, learn: bool = True, checksum: bool = True):
        """Start a batch (the harness runs it while Python does something else); see ``collect``."""
        n, payload = self._pack_samples(images, labels)
        if self._pending is not None:
            raise FastSimError("a batch is already running")
        self._write(b"S" + struct.pack("<IIBB", n, self.cfg.sizes[0], int(learn), int(checksum)) + payload)
        self._pending = n

    def collect(self) -> dict:
        """Results of the submitted batch: pred, cycles (per sample), checksum (after each sample),
        seconds (clocking time in C++) and clocks (cycles simulated, idle ones included)."""
        n, self._pending = self._pending, None
        if n is None:
            raise FastSimError("no batch submitted")
        self._status()
        rec = np.frombuffer(self._read(16 * n), dtype=[("pred", "<u4"), ("cycles", "<u4"), ("checksum", "<u8")])
        seconds, clocks = struct.unpack("<dQ", self._read(16))
        return {"pred": rec["pred"].astype(np.int64), "cycles": rec["cycles"].astype(np.int64),
                "checksum": rec["checksum"].copy(), "seconds": seconds, "clocks": clocks}

    def run(self, images, labels, *, learn: bool = True, checksum: bool = True) -> dict:
        self.submit(images, labels, learn=learn, checksum=checksum)
        return self.collect()

    def run_snapshots(self, pixels, label, offsets, *, learn: bool = True) -> dict:
        """One sample with raw snapshots of the state and input-drive memories taken right after
        the clock edge at which the core's ``cycles`` counter has advanced by each offset."""
        offsets = sorted(int(o) for o in offsets)
        px = np.ascontiguousarray(pixels, dtype="<u2").reshape(-1)
        self._call(b"Z" + struct.pack("<IB", px.size, int(learn)) + px.tobytes() +
                   struct.pack("<HI", int(label), len(offsets)) + np.array(offsets, "<u4").tobytes())
        pred, cycles = self._u32(2)
        cs = struct.unpack("<Q", self._read(8))[0]
        m = self._u32()
        sd, sb = self.mems[2 * self.cfg.n_layers]
        dd, db = self.mems[2 * self.cfg.n_layers + 1]
        snaps = []
        for _ in range(m):
            st = np.frombuffer(self._read(4 * sd * ((sb + 31) // 32)), "<u4").reshape(sd, -1)
            d0 = np.frombuffer(self._read(4 * dd * ((db + 31) // 32)), "<u4").reshape(dd, -1)
            snaps.append((st, d0))
        return {"pred": pred, "cycles": cycles, "checksum": cs, "snapshots": snaps,
                "offsets": offsets[:m]}
