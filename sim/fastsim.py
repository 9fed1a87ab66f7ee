"""Free-running compiled simulation of the core: a C++ Verilator harness, driven at sample boundaries.

``build(cfg)`` converts ``EPCore(cfg=cfg)`` to Verilog, writes a small config-specific header
(memory accessors, the access payload layout) beside ``harness/fastsim_main.cpp`` and builds both
with ``verilator --cc --exe --build --flatten`` (-O3) in ``build_dir("fastsim", <config tag>[-wave])``,
reused as ``eqfpga.sim.build_cache`` decides.

The core's memories are known only through ``eqfpga.hdl.memory_map.memory_views(cfg)``: each view
names a memory by its instance path from the core's top (any nesting: Amaranth writes one Verilog
module per submodule instance), its word fields and the logical value of each field. The views are
found in the Verilog (``resolve_views``), made readable by a .vlt file (``public_flat_rd`` on
exactly those memories, nothing else is public) and read in C++ as members of the flattened model
(``verilator_name``: ``eqfpga_top__DOT__lane3__DOT__w0``); memory ids are positions in the list of
views.

``FastSim(cfg)`` starts the binary and speaks its binary protocol (documented at the top of
``harness/fastsim_main.cpp``) through pipes: load / read every weight and bias through the access
port, read raw memories, set t, set the seed port (``cfg.seed`` at start), run a batch of samples
(learn on or off) returning predictions, cycles and the checksum of all weights and biases after
every sample, computed in C++ from the RTL's memory arrays, read states, snapshot every state and
d0 memory at chosen cycles, and dump FST or VCD waveforms on request.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eqfpga.golden.config import EPConfig
from eqfpga.hdl.core import ACCESS_LAYOUT, Access
from eqfpga.hdl.memory_map import MemoryView, memory_views
from eqfpga.hdl.plan import Plan

from .build_cache import HARNESS_DIR, cached_build, core_key, core_tag
from .designs import CORE_TOP, core_verilog
from .paths import build_dir
from .toolchain import (HARNESS_MAKEFLAGS, VERILATOR_WARNINGS, harness_build_command, run_verilator_build,
                        setup_verilator)

HARNESS = HARNESS_DIR / "fastsim_main.cpp"
PHASES = {"free": 0, "nudged": 1, "negative": 2}
PROTOCOL_VERSION = 2
# --flatten: every memory a member of the root model, whatever Verilator's inlining would decide
BUILD_FLAGS = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert", "--flatten"]

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


def split_params(cfg: EPConfig, flat: np.ndarray):
    """The inverse of ``flat_params``: (weights, biases), W_n (out x in) and b_n per layer."""
    s, W, B, at = cfg.sizes, [], [], 0
    for n in range(cfg.n_layers):
        k = s[n + 1] * s[n]
        W.append(flat[at:at + k].reshape(s[n + 1], s[n]))
        B.append(flat[at + k:at + k + s[n + 1]])
        at += k + s[n + 1]
    return W, B


# ---- the memory views: raw words -> logical values ------------------------------------------------
def unpack_fields(raw: np.ndarray, field_bits: int, fields: int, signed: bool) -> np.ndarray:
    """(depth, fields) int64 field values of raw memory words ((depth, words) uint32, word bits
    little-endian); field f is bits [f*field_bits, (f+1)*field_bits)."""
    raw = np.ascontiguousarray(raw, dtype="<u4")
    bits = np.unpackbits(raw.view(np.uint8).reshape(raw.shape[0], -1), axis=1, bitorder="little")
    if bits.shape[1] < fields * field_bits:
        raise FastSimError(f"memory words of {bits.shape[1]} bits cannot hold {fields} fields of {field_bits}")
    bits = bits[:, :fields * field_bits].reshape(raw.shape[0], fields, field_bits).astype(np.int64)
    weights = np.left_shift(np.int64(1), np.arange(field_bits, dtype=np.int64))
    if signed:
        weights[-1] = -weights[-1]
    return (bits * weights).sum(-1)


def view_values(view: MemoryView, raw: np.ndarray, index: np.ndarray | None = None):
    """(index, values) of the used fields of ``view``'s raw contents (index >= 0 only)."""
    idx = np.asarray(view.index, np.int64) if index is None else index
    vals = unpack_fields(raw[:view.depth], view.field_bits, view.fields, view.signed).reshape(-1)
    used = idx >= 0
    return idx[used], vals[used]


def gather(pairs, size: int, what: str) -> np.ndarray:
    """One int64 vector of ``size`` values from (index, values) pairs (indices outside [0, size)
    are ignored); every position must be covered."""
    out = np.zeros(size, np.int64)
    seen = np.zeros(size, bool)
    for idx, vals in pairs:
        sel = (idx >= 0) & (idx < size)
        out[idx[sel]] = vals[sel]
        seen[idx[sel]] = True
    if not seen.all():
        raise FastSimError(f"{what}: no memory view holds position {int(np.flatnonzero(~seen)[0])} "
                           f"(of {size}); see eqfpga.hdl.memory_map")
    return out


def check_views(cfg: EPConfig, views) -> None:
    """The views must hold every weight and bias exactly once, every d0[i] exactly once (when there
    is a d0 view) and no state position twice (whether a slot's states are all there is checked
    when a snapshot is decoded)."""
    s = cfg.sizes
    n_params = sum(s[n + 1] * (s[n] + 1) for n in range(cfg.n_layers))
    for kinds, size, what, complete in ((("w", "b"), n_params, "weights and biases", True),
                                        (("d0",), s[1], "d0", True),
                                        (("state",), None, "states", False)):
        idx = [np.asarray(v.index, np.int64) for v in views if v.kind in kinds]
        if not idx:
            if kinds == ("w", "b"):
                raise FastSimError("memory views: no weight or bias memory")
            continue
        idx = np.concatenate(idx)
        idx = idx[idx >= 0]
        if size is not None and idx.size and idx.max() >= size:
            raise FastSimError(f"memory views: {what} position {int(idx.max())} out of range (0..{size - 1})")
        count = np.bincount(idx, minlength=size or 0)
        if (count > 1).any():
            raise FastSimError(f"memory views: {what} position {int(np.flatnonzero(count > 1)[0])} "
                               f"is held {int(count.max())} times")
        if complete and (count == 0).any():
            raise FastSimError(f"memory views: {what} position {int(np.flatnonzero(count == 0)[0])} "
                               "is held by no memory")


def _pairs(views, kinds, raws: dict, index=None) -> list:
    """(index, values) of every view of the given kinds, from ``raws`` ({path: raw words})."""
    return [view_values(v, raws[v.path], None if index is None else index[k])
            for k, v in enumerate(views) if v.kind in kinds]


def decode_params(cfg: EPConfig, views, raws: dict, index=None):
    """(weights, biases) from the raw words of every weight and bias view ({path: raw});
    ``index``: the views' indices as int64 arrays (optional, for speed)."""
    s = cfg.sizes
    total = sum(s[n + 1] * (s[n] + 1) for n in range(cfg.n_layers))
    return split_params(cfg, gather(_pairs(views, ("w", "b"), raws, index), total, "weights and biases"))


def decode_states(cfg: EPConfig, views, snap: dict, slot: int, index=None) -> list:
    """States s_1..s_N (one int64 vector per layer) held in state slot ``slot``, assembled from the
    raw words of every state view ({path: raw})."""
    s = cfg.sizes
    size = sum(s[1:])
    pairs = [(idx - slot * size, vals) for idx, vals in _pairs(views, ("state",), snap, index)]
    flat = gather(pairs, size, f"states of slot {slot}")
    bounds = np.cumsum([0] + list(s[1:]))
    return [flat[bounds[k - 1]:bounds[k]] for k in range(1, len(s))]


def decode_d0(cfg: EPConfig, views, snap: dict, index=None) -> np.ndarray:
    """The input drive d0 (layer 1's neurons) from the raw words of every d0 view ({path: raw})."""
    return gather(_pairs(views, ("d0",), snap, index), cfg.sizes[1], "d0")


# ---- the views in the Verilog: accessors for the C++ harness -----------------------------------
_ID = r"(?:\\\S+|[A-Za-z_][\w$]*)"
_MODULE_RE = re.compile(rf"^module\s+({_ID})\s*\((.*?)^endmodule", re.M | re.S)
_MEM_RE = re.compile(rf"^\s*reg\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?({_ID})\s*\[(\d+):(\d+)\]\s*;", re.M)
_INST_RE = re.compile(rf"^\s*({_ID})\s+({_ID})\s*\(", re.M)


def _unescape(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def verilog_hierarchy(text: str) -> dict:
    """{module: {"mems": {name: (bits, depth)}, "insts": {instance: module}}} of Verilog text as
    Amaranth / Yosys write it (one module per submodule instance, escaped names unescaped)."""
    mods = {}
    bodies = {}
    for mt in _MODULE_RE.finditer(text):
        bodies[_unescape(mt.group(1))] = mt.group(2)
    for name, body in bodies.items():
        mems = {}
        for mt in _MEM_RE.finditer(body):
            hi, lo, mem, d1, d0 = mt.groups()
            bits = abs(int(hi) - int(lo)) + 1 if hi is not None else 1
            mems[_unescape(mem)] = (bits, abs(int(d1) - int(d0)) + 1)
        insts = {_unescape(mt.group(2)): _unescape(mt.group(1)) for mt in _INST_RE.finditer(body)
                 if _unescape(mt.group(1)) in bodies}
        mods[name] = {"mems": mems, "insts": insts}
    return mods


def verilator_name(name: str) -> str:
    """A Verilog identifier as Verilator spells it in C++ (its AstNode::encodeName): letters and
    digits stay (no leading digit), a '_' before another '_' adds '__05F', any other character
    becomes '__0' and its two hex digits."""
    out, i = [], 0
    while i < len(name):
        c = name[i]
        if c.isascii() and (c.isalpha() or (c.isdigit() and i > 0)):
            out.append(c)
        elif c == "_":
            if i + 1 < len(name) and name[i + 1] == "_":
                out.append("___05F")
                i += 1
            else:
                out.append("_")
        else:
            out.append(f"__0{ord(c):02x}")
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class ResolvedMemory:
    """A memory view found in the Verilog."""
    view: MemoryView
    module: str          # the Verilog module that declares the memory
    var: str             # its name there
    cxx: str             # the member of Vtop___024root that holds it (a flattened build)
    bits: int            # word width in the Verilog
    depth: int


def resolve_views(text: str, top: str, views) -> list:
    """Find every view's memory in the Verilog (``top``: the top module's name) by following the
    instance names of its path; errors name what is missing and what there is."""
    mods = verilog_hierarchy(text)
    if top not in mods:
        raise FastSimError(f"the Verilog has no module {top!r} (modules: {sorted(mods)})")
    out = []
    for v in views:
        mod = top
        for k, inst in enumerate(v.path[:-1]):
            insts = mods[mod]["insts"]
            if inst not in insts:
                where = ".".join((top,) + v.path[:k])
                raise FastSimError(f"memory view {v.name}: {where} (module {mod}) has no instance {inst!r} "
                                   f"(instances: {sorted(insts)})")
            mod = insts[inst]
        mems = mods[mod]["mems"]
        if v.path[-1] not in mems:
            raise FastSimError(f"memory view {v.name}: module {mod} has no memory {v.path[-1]!r} "
                               f"(memories: {sorted(mems)}); eqfpga.hdl.memory_map.memory_views must "
                               "describe the core's memories")
        bits, depth = mems[v.path[-1]]
        if depth != v.depth or bits < v.word_bits:
            raise FastSimError(f"memory view {v.name}: the memory is {depth} x {bits} bits, the view "
                               f"{v.depth} words of {v.fields} x {v.field_bits} bits")
        cxx = "__DOT__".join(verilator_name(p) for p in (top,) + v.path)
        out.append(ResolvedMemory(v, mod, v.path[-1], cxx, bits, depth))
    return out


# fs_copy: one memory word (any Verilator storage type) into 32-bit words
_COPY = """\
template <std::size_t N>
static inline void fs_copy(const VlWide<N>& v, uint32_t* out) {
    for (std::size_t i = 0; i < N; i++) out[i] = v[i];
}
static inline void fs_copy(CData v, uint32_t* out) { out[0] = v; }
static inline void fs_copy(SData v, uint32_t* out) { out[0] = v; }
static inline void fs_copy(IData v, uint32_t* out) { out[0] = v; }
static inline void fs_copy(QData v, uint32_t* out) { out[0] = (uint32_t)v; out[1] = (uint32_t)(v >> 32); }
"""


def accessor_header(mems: list) -> str:
    """C++ (after Vtop___024root.h): FS_NMEM, FS_MAX_WORDS, fs_mem_bits[], fs_mem_depth[] and
    fs_mem_word(root, id, addr, out) for the resolved memories (ids in list order); a build with
    ``--flatten`` and ``public_vlt(mems)``."""
    lines = [_COPY, f"#define FS_NMEM {len(mems)}",
             f"#define FS_MAX_WORDS {max([(m.bits + 31) // 32 for m in mems] + [1])}",
             f"static const int fs_mem_bits[] = {{{', '.join(str(m.bits) for m in mems) or '0'}}};",
             f"static const int fs_mem_depth[] = {{{', '.join(str(m.depth) for m in mems) or '0'}}};",
             "static const char* const fs_mem_names[] = {"
             + (", ".join(f'"{m.view.name}"' for m in mems) or '""') + "};",
             "static inline void fs_mem_word(Vtop___024root* r, int id, int a, uint32_t* out) {",
             "    switch (id) {"]
    for k, m in enumerate(mems):
        lines.append(f"    case {k}: fs_copy(r->{m.cxx}[a], out); break;  // {m.module}: {m.var}")
    lines += ["    default: (void)r; (void)a; (void)out; break;", "    }", "}"]
    return "\n".join(lines) + "\n"


def public_vlt(mems: list) -> str:
    """Verilator configuration: read access to exactly the resolved memories."""
    return "`verilator_config\n" + "".join(
        f'public_flat_rd -module "{m.module}" -var "{m.var}"\n' for m in mems)


def _counter_ports(text: str, top: str) -> list:
    """The core's 32-bit outputs other than stream payloads: cycles, samples, t, event counters."""
    body = next((mt.group(2) for mt in _MODULE_RE.finditer(text) if _unescape(mt.group(1)) == top), "")
    return [mt.group(1) for mt in re.finditer(r"^\s*output\s+\[31:0\]\s+(\w+)\s*;", body, re.M)
            if "__" not in mt.group(1)]


def snapshot_ids(views) -> list:
    """Ids (positions in ``views``) of the memories a 'Z' snapshot copies: every state and d0 view."""
    return [k for k, v in enumerate(views) if v.kind in ("state", "d0")]


def _header(cfg: EPConfig, text: str, mems: list) -> str:
    """fastsim_cfg.h: the accessors of the resolved memory views, the snapshot memories, the
    counter ports, the access payload layout."""
    views = [m.view for m in mems]
    counters = _counter_ports(text, CORE_TOP)
    snaps = snapshot_ids(views)
    lines = ["// generated by eqfpga.sim.fastsim: do not edit", "#pragma once", accessor_header(mems),
             f"#define FS_NSNAP {len(snaps)}",
             f"static const int fs_snap_mems[] = {{{', '.join(map(str, snaps)) or '-1'}}};",
             f"#define FS_NCOUNTERS {len(counters)}",
             "#define FS_COUNTERS(X) " + " ".join(f"X({c})" for c in counters),
             "static const char* const fs_counter_names[] = {" + ", ".join(f'"{c}"' for c in counters) + "};"]
    for fld in ("op", "layer", "row", "col", "data"):
        f = ACCESS_LAYOUT[fld]
        lines.append(f"#define FS_ACC_{fld.upper()}_OFF {f.offset}")
        lines.append(f"#define FS_ACC_{fld.upper()}_W {f.width}")
    return "\n".join(lines) + "\n"


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
        mems = resolve_views(text, CORE_TOP, memory_views(cfg))
        return {f"{CORE_TOP}.v": text, "fastsim_cfg.h": _header(cfg, text, mems),
                "fastsim.vlt": public_vlt(mems), "fastsim_main.cpp": HARNESS.read_text()}

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
        cfg.check_hardware()
        self.cfg, self.plan, self.wave_built = cfg, Plan(cfg), wave
        self.views = memory_views(cfg)
        check_views(cfg, self.views)
        self._index = [np.asarray(v.index, np.int64) for v in self.views]
        self.snap_ids = snapshot_ids(self.views)
        self.exe = build(cfg, wave=wave, root=root, quiet=quiet)
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
        version, n = self._u32(2)
        if version != PROTOCOL_VERSION:
            raise FastSimError(f"the harness speaks protocol {version}, this module {PROTOCOL_VERSION}")
        mems = [self._u32(2) for _ in range(n)]  # (depth, bits) per memory
        snaps = [self._u32() for _ in range(self._u32())]
        self.counter_names = []
        for _ in range(self._u32()):
            ln = struct.unpack("<H", self._read(2))[0]
            self.counter_names.append(self._read(ln).decode())
        if len(mems) != len(self.views) or snaps != self.snap_ids or any(
                d != v.depth or b < v.word_bits for (d, b), v in zip(mems, self.views)):
            raise FastSimError(f"the harness {self.exe} was built for other memory views "
                               f"({mems}, snapshots {snaps})")
        return mems

    def _send_layout(self):
        """The checksum layout: every weight and bias view, its fields and their logical positions."""
        parts = []
        for mem, (v, idx) in enumerate(zip(self.views, self._index)):
            if v.kind in ("w", "b"):
                parts.append(struct.pack("<IIIII", mem, v.field_bits, v.fields, int(v.signed), idx.size)
                             + idx.astype("<i8").tobytes())
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

    # ---- raw memories (through the memory views) ----
    def mem_id(self, mem) -> int:
        """The id of a memory: its position in ``self.views``, a ``MemoryView``, a path tuple or a
        dotted name ("lane3.w0")."""
        if isinstance(mem, (int, np.integer)):
            if not 0 <= mem < len(self.views):
                raise FastSimError(f"no memory {mem} (there are {len(self.views)})")
            return int(mem)
        path = mem.path if isinstance(mem, MemoryView) else tuple(mem.split(".")) if isinstance(mem, str) else tuple(mem)
        for k, v in enumerate(self.views):
            if v.path == path:
                return k
        raise FastSimError(f"no memory view {'.'.join(path)} (views: {[v.name for v in self.views]})")

    def read_memory(self, mem) -> np.ndarray:
        """(depth, words) uint32: the raw contents of a memory (``mem_id`` takes its id, view, path
        or name)."""
        self._call(b"M" + struct.pack("<I", self.mem_id(mem)))
        depth, nw = self._u32(2)
        return np.frombuffer(self._read(4 * depth * nw), dtype="<u4").reshape(depth, nw)

    def dump_params(self):
        """Every weight and bias read straight from the core's memories (the RTL's real contents)."""
        raws = {v.path: self.read_memory(k) for k, v in enumerate(self.views) if v.kind in ("w", "b")}
        return decode_params(self.cfg, self.views, raws, self._index)

    def decode_states(self, snap: dict, slot: int):
        """States s_1..s_N held in state slot ``slot`` of a snapshot ({path: raw} of every state
        view, as ``run_snapshots`` returns them)."""
        return decode_states(self.cfg, self.views, snap, slot, self._index)

    def decode_d0(self, snap: dict):
        """The input drive d0 (layer 1's neurons) of a snapshot ({path: raw} of every d0 view)."""
        return decode_d0(self.cfg, self.views, snap, self._index)

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
        """One sample with raw snapshots of every state and d0 memory (the views of kind "state"
        and "d0") taken right after the clock edge at which the core's ``cycles`` counter has
        advanced by each offset. ``snapshots[k]`` ({view path: raw (depth, words) uint32}) belongs
        to ``offsets[k]`` (the caller's order); the list stops before the first offset the sample
        did not reach."""
        offsets = [int(o) for o in offsets]
        order = sorted(range(len(offsets)), key=offsets.__getitem__)
        asc = [offsets[k] for k in order]
        px = np.ascontiguousarray(pixels, dtype="<u2").reshape(-1)
        self._call(b"Z" + struct.pack("<IB", px.size, int(learn)) + px.tobytes() +
                   struct.pack("<HI", int(label), len(asc)) + np.array(asc, "<u4").tobytes())
        pred, cycles = self._u32(2)
        cs = struct.unpack("<Q", self._read(8))[0]
        m = self._u32()
        taken = {}
        for k in order[:m]:
            snap = {}
            for mem in self.snap_ids:
                depth, bits = self.mems[mem]
                snap[self.views[mem].path] = np.frombuffer(self._read(4 * depth * ((bits + 31) // 32)),
                                                           "<u4").reshape(depth, -1)
            taken[k] = snap
        n = 0
        while n in taken:
            n += 1
        return {"pred": pred, "cycles": cycles, "checksum": cs, "snapshots": [taken[k] for k in range(n)],
                "offsets": offsets[:n]}
