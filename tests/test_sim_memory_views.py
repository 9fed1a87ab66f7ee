"""The memory views (eqfpga.hdl.memory_map) and fastsim's generic accessors.

The core describes its memories as views (instance path, fields, logical index of every field);
fastsim finds them in the Verilog, makes exactly them readable and reads them from the flattened
Verilator model. The core has no submodules today, so a small hierarchical Amaranth design of this
test's own proves the nested case: memories at the top, in submodules (two of the same name in two
modules) and two levels down, words of 8 to 100 bits (every Verilator storage type), live contents
(written through ports after reset), read by the generated accessor and decoded through views.
"""
from __future__ import annotations

import random
import subprocess

import numpy as np
import pytest

from eqfpga.golden.config import load_config
from eqfpga.hdl.memory_map import MemoryView, memory_views, state_index
from eqfpga.hdl.plan import Plan
from eqfpga.sim import fastsim as F
from eqfpga.sim.toolchain import (VERILATOR_WARNINGS, harness_build_command, run_verilator_build,
                                  setup_verilator)

TINY = load_config("tiny")
H2 = TINY.replace(name="h2", sizes=(10, 6, 5, 3), lrs=(0.25, 0.125, 0.125), parallelism=3)


# ---- the views of today's core -------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [TINY, H2, load_config("mnist-1h")], ids=["tiny", "h2-P3", "mnist-1h"])
def test_views_of_the_core_follow_the_plan(cfg):
    views = memory_views(cfg)
    F.check_views(cfg, views)          # every weight, bias and d0 exactly once, no state twice
    pl, s = Plan(cfg), cfg.sizes
    by = {v.path: v for v in views}
    want = [(f"lane{p}", m) for p in range(pl.P) for m in ("w", "b0", "st", "d0")] + [("root", "bias"), ("root", "st")]
    assert sorted(by) == sorted(want)
    flat = F.flat_params([np.arange(s[n + 1] * s[n]).reshape(s[n + 1], s[n]) + 1000 * n for n in range(pl.N)],
                         [np.arange(s[n + 1]) - 1000 * (n + 1) for n in range(pl.N)])
    for n in range(pl.N):
        for i, j in ((0, 0), (s[n + 1] - 1, s[n] - 1), (s[n + 1] // 2, s[n] // 3)):
            lane, a = pl.weight_addr(n, i, j)
            w = by[(f"lane{lane}", "w")]
            assert flat[w.index[a]] == 1000 * n + i * s[n] + j
        lane, a = pl.bias_addr(n, s[n + 1] - 1)
        b = by[(f"lane{lane}", "b0") if lane >= 0 else ("root", "bias")]
        if lane < 0:
            a = pl.root_state_offsets[n + 1] + a
        assert flat[b.index[a]] == s[n + 1] - 1 - 1000 * (n + 1)
    st = by[("root", "st")]
    k, i, slot = pl.N, s[pl.N] - 1, 3
    assert st.index[pl.root_state_addr(slot, k, i)] == state_index(cfg, slot, k, i)
    lane_st = by[(f"lane{(s[1] - 1) % pl.P}", "st")]
    assert lane_st.index[pl.lane_state_addr(slot, 1, (s[1] - 1) // pl.P)] == state_index(cfg, slot, 1, s[1] - 1)
    assert (st.fields, st.field_bits, st.signed) == (1, cfg.fixed.state_frac + 1, False)


def test_plan_schedule_of_the_snapshots():
    pl = Plan(H2.replace(nudging="symmetric", T1=3, T2=2))
    assert pl.step_slots(False) == [("free", 1, 0), ("free", 2, 1), ("free", 3, 0)]
    assert pl.step_slots(True)[3:] == [("nudged", 1, 2), ("nudged", 2, 3), ("negative", 1, 1), ("negative", 2, 2)]
    off = pl.state_ready_offsets(4, True)
    assert len(off) == len(pl.step_slots(True)) == 7
    assert np.all(np.diff(off) >= pl.step_cycles()) and off[-1] < pl.sample_cycles(4, True)["total"]


def test_check_views_refuses_a_missing_or_twice_held_parameter():
    views = memory_views(TINY)
    w0 = views[0]
    idx = list(w0.index)
    gone = idx[idx.index(5)]
    idx[idx.index(5)] = -1
    with pytest.raises(F.FastSimError, match=f"position {gone} is held by no memory"):
        F.check_views(TINY, [MemoryView(**{**w0.__dict__, "index": tuple(idx)})] + views[1:])
    idx[idx.index(-1)] = 7
    with pytest.raises(F.FastSimError, match="position 7 is held 2 times"):
        F.check_views(TINY, [MemoryView(**{**w0.__dict__, "index": tuple(idx)})] + views[1:])


def _pack(view, values, bits=None):
    """Raw (depth, words) uint32 of ``view`` holding values[index] in every used field."""
    bits = bits or view.word_bits
    nw = -(-bits // 32)
    raw = np.zeros((view.depth, nw), np.uint32)
    mask = (1 << view.field_bits) - 1
    for a in range(view.depth):
        word = 0
        for f in range(view.fields):
            p = view.index[a * view.fields + f]
            if p >= 0:
                word |= (int(values[p]) & mask) << (f * view.field_bits)
        raw[a] = [(word >> (32 * i)) & 0xFFFFFFFF for i in range(nw)]
    return raw


def _lane_views(cfg):
    """A made-up organisation like the per-lane core's: lane p holds W_n, b_n, d0 and the layer-1
    states of the neurons i % P == p (fields of 2 values), "root" the other layers' states."""
    s, P, N = cfg.sizes, cfg.parallelism, cfg.n_layers
    f = cfg.fixed
    views, base = [], 0
    offs = []
    for n in range(N):
        offs.append(base)
        base += s[n + 1] * (s[n] + 1)

    def view(path, kind, layer, bits, signed, entries):
        fields = 2
        depth = max(1, -(-len(entries) // fields))
        index = list(entries) + [-1] * (depth * fields - len(entries))
        return MemoryView(path, kind, layer, depth, bits, fields, signed, tuple(index))

    for p in range(P):
        for n in range(N):
            views.append(view((f"lane{p}", f"w{n}"), "w", n, f.weight_bits, True,
                              [offs[n] + i * s[n] + j for i in range(p, s[n + 1], P) for j in range(s[n])]))
            views.append(view((f"lane{p}", f"b{n}"), "b", n, f.bias_bits, True,
                              [offs[n] + s[n + 1] * s[n] + i for i in range(p, s[n + 1], P)]))
        views.append(view((f"lane{p}", "d0"), "d0", 0, f.acc_bits, True, list(range(p, s[1], P))))
        views.append(view((f"lane{p}", "states"), "state", 0, f.state_frac + 1, False,
                          [state_index(cfg, slot, 1, i) for slot in range(4) for i in range(p, s[1], P)]))
    views.append(view(("root", "states"), "state", 0, f.state_frac + 1, False,
                      [state_index(cfg, slot, k, i) for slot in range(4) for k in range(2, N + 1)
                       for i in range(s[k])]))
    return views


@pytest.mark.parametrize("organisation", ["today", "per-lane"])
def test_decoding_through_views(organisation):
    """Parameters, states of every slot and d0 come back from raw words through any organisation."""
    cfg = H2.replace(fixed={"acc_bits": 30})
    views = memory_views(cfg) if organisation == "today" else _lane_views(cfg)
    F.check_views(cfg, views)
    rng = np.random.default_rng(1)
    f, s = cfg.fixed, cfg.sizes
    W = [rng.integers(f.weight_min, f.weight_max + 1, (s[n + 1], s[n])) for n in range(cfg.n_layers)]
    B = [rng.integers(f.bias_min, f.bias_max + 1, s[n + 1]) for n in range(cfg.n_layers)]
    flat = F.flat_params(W, B)
    states = rng.integers(0, 1 << (f.state_frac + 1), 4 * sum(s[1:]))
    dbits = min(v.field_bits for v in views if v.kind == "d0")      # the core keeps what acc_bits_needed proves
    d0 = rng.integers(-(1 << (dbits - 1)), 1 << (dbits - 1), s[1])
    raws = {}
    for v in views:
        vals = {"w": flat, "b": flat, "state": states, "d0": d0}[v.kind]
        raws[v.path] = _pack(v, vals, v.word_bits + 7)       # words wider than the fields
    rW, rB = F.decode_params(cfg, views, raws)
    assert all((a == b).all() for a, b in zip(rW + rB, W + B))
    for slot in range(4):
        got = F.decode_states(cfg, views, raws, slot)
        want = states[slot * sum(s[1:]):(slot + 1) * sum(s[1:])]
        assert (np.concatenate(got) == want).all() and [len(g) for g in got] == list(s[1:])
    assert (F.decode_d0(cfg, views, raws) == d0).all()
    with pytest.raises(F.FastSimError, match="states of slot 4: no memory view holds position 0"):
        F.decode_states(cfg, views, raws, 4)


def test_verilator_names():
    assert F.verilator_name("lane3") == "lane3"
    assert F.verilator_name("sample__valid") == "sample___05Fvalid"
    assert F.verilator_name("m$2") == "m__0242"
    assert F.verilator_name("in__st[0]") == "in___05Fst__05b0__05d"
    assert F.verilator_name("9m") == "__039m"


# ---- a hierarchical design ---------------------------------------------------------------------------
# (path, word bits, depth): CData, SData, QData and VlWide words; "w0" twice in two modules
MEMS = [(("top_mem",), 40, 4), (("lane0", "w0"), 8, 8), (("lane1", "w0"), 12, 8),
        (("lane1", "sub", "deep"), 100, 4), (("root", "states"), 12, 16)]
WRITES = [(1, 0x1234), (3, 0xBEEF), (6, 0x0F0F), (1, 0x7777)]     # (address, data) after reset


def _word(data16: int, k: int, bits: int) -> int:
    """What memory k writes for wdata: (wdata ^ k) repeated up to its width."""
    v = (data16 ^ k) & 0xFFFF
    return sum(v << (16 * r) for r in range(-(-bits // 16))) & ((1 << bits) - 1)


def _design(inits):
    from amaranth import Cat, Module, unsigned
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out

    class Top(wiring.Component):
        def __init__(self):
            super().__init__({"we": In(1), "waddr": In(4), "wdata": In(16), "out": Out(1)})

        def elaborate(self, platform):
            m = Module()
            mods = {(): m}          # path prefix -> the submodule there
            acc = 0
            for k, (path, bits, depth) in enumerate(MEMS):
                for n in range(1, len(path)):
                    if path[:n] not in mods:
                        mods[path[:n]] = mods[path[:n - 1]].submodules[path[n - 1]] = Module()
                mem = Memory(shape=unsigned(bits), depth=depth, init=inits[k])
                mods[path[:-1]].submodules[path[-1]] = mem
                wp, rp = mem.write_port(), mem.read_port()
                a = self.waddr[:(depth - 1).bit_length()]
                m.d.comb += [wp.addr.eq(a), wp.en.eq(self.we), rp.addr.eq(a),
                             wp.data.eq(Cat(*[self.wdata ^ k] * -(-bits // 16))[:bits])]
                acc = acc ^ rp.data.xor()
            m.d.comb += self.out.eq(acc)
            return m

    return Top()


HARNESS = r"""
#include <cstdint>
#include <cstdio>
#include <cstring>
#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"
#include "mem_access.h"

int main(int argc, char** argv) {
    VerilatedContext ctx;
    ctx.commandArgs(argc, argv);
    Vtop* top = new Vtop{&ctx};
    auto tick = [&] { top->clk = 0; top->eval(); top->clk = 1; top->eval(); };
    top->we = 0; top->rst = 1; tick(); top->rst = 0; tick();
    static const unsigned writes[][2] = {WRITES};
    for (const auto& w : writes) { top->we = 1; top->waddr = w[0]; top->wdata = w[1]; tick(); }
    top->we = 0; tick();
    uint32_t buf[FS_MAX_WORDS + 3];
    for (int id = 0; id < FS_NMEM; id++) {
        printf("%s %d %d", fs_mem_names[id], fs_mem_depth[id], fs_mem_bits[id]);
        for (int a = 0; a < fs_mem_depth[id]; a++) {
            std::memset(buf, 0, sizeof buf);
            fs_mem_word(top->rootp, id, a, buf);
            printf(" ");
            for (int i = (fs_mem_bits[id] + 31) / 32 - 1; i >= 0; i--) printf("%08x", buf[i]);
        }
        printf("\n");
    }
    delete top;
    return 0;
}
"""


def _views_of(rng):
    """One view per memory: fields of a width dividing the word, signed or not, a shuffled index."""
    views = []
    for path, bits, depth in MEMS:
        fb = max(d for d in (1, 2, 4, 5, 10, 20, 25) if bits % d == 0 and d <= 25)
        fields = bits // fb
        index = list(range(depth * fields))
        rng.shuffle(index)
        views.append(MemoryView(path, "state", 0, depth, fb, fields, bool(len(views) % 2), tuple(index)))
    return views


def test_nested_memories_read_by_the_generated_accessor(tmp_path):
    from amaranth.back import verilog

    rng = random.Random(5)
    inits = [[rng.getrandbits(bits) for _ in range(depth)] for _, bits, depth in MEMS]
    text = verilog.convert(_design(inits), name="hier_top")
    hier = F.verilog_hierarchy(text)
    assert "hier_top.lane1.sub" in hier and hier["hier_top.lane1"]["insts"]["sub"] == "hier_top.lane1.sub"
    views = _views_of(rng)
    mems = F.resolve_views(text, "hier_top", views)
    assert [m.cxx for m in mems] == ["hier_top__DOT__top_mem", "hier_top__DOT__lane0__DOT__w0",
                                     "hier_top__DOT__lane1__DOT__w0", "hier_top__DOT__lane1__DOT__sub__DOT__deep",
                                     "hier_top__DOT__root__DOT__states"]
    assert [m.module for m in mems] == ["hier_top", "hier_top.lane0", "hier_top.lane1", "hier_top.lane1.sub",
                                        "hier_top.root"]
    with pytest.raises(F.FastSimError, match=r"hier_top.lane1 \(module hier_top.lane1\) has no instance 'sob'"):
        F.resolve_views(text, "hier_top", [MemoryView(("lane1", "sob", "deep"), "state", 0, 4, 4, 25, False,
                                                      (-1,) * 100)])
    with pytest.raises(F.FastSimError, match="is 8 x 8 bits, the view 4 words"):
        F.resolve_views(text, "hier_top", [MemoryView(("lane0", "w0"), "state", 0, 4, 8, 1, False, (-1,) * 4)])

    setup_verilator()
    (tmp_path / "hier_top.v").write_text(text)
    (tmp_path / "mem_access.h").write_text("#pragma once\n" + F.accessor_header(mems))
    (tmp_path / "mem.vlt").write_text(F.public_vlt(mems))
    (tmp_path / "main.cpp").write_text(HARNESS.replace(
        "WRITES", ", ".join(f"{{{a}, {d}}}" for a, d in WRITES)))
    cmd = harness_build_command("hier_top", "memtest", ["mem.vlt", "hier_top.v", "main.cpp"],
                                flags=F.BUILD_FLAGS + VERILATOR_WARNINGS, cflags=f"-I{tmp_path}")
    run_verilator_build(cmd, tmp_path, tmp_path / "obj" / "memtest", F.FastSimError)
    out = subprocess.run([str(tmp_path / "obj" / "memtest")], capture_output=True, text=True, check=True).stdout

    want = [list(w) for w in inits]
    for a, d in WRITES:
        for k, (_, bits, depth) in enumerate(MEMS):
            want[k][a % depth] = _word(d, k, bits)
    lines = out.splitlines()
    assert len(lines) == len(MEMS)
    for k, (line, (path, bits, depth), view) in enumerate(zip(lines, MEMS, views)):
        name, d, b, *words = line.split()
        assert (name, int(d), int(b)) == (".".join(path), depth, bits)
        got = [int(w, 16) for w in words]
        assert got == want[k], f"{name}: the accessor read {got}, the memory holds {want[k]}"
        # the same words decoded through the view
        nw = -(-bits // 32)
        raw = np.array([[(v >> (32 * i)) & 0xFFFFFFFF for i in range(nw)] for v in got], np.uint32)
        idx, vals = F.view_values(view, raw)
        for p, v in zip(idx.tolist(), vals.tolist()):
            a, f = divmod(view.index.index(p), view.fields)
            u = (want[k][a] >> (f * view.field_bits)) & ((1 << view.field_bits) - 1)
            if view.signed and u >> (view.field_bits - 1):
                u -= 1 << view.field_bits
            assert v == u, (name, a, f)
