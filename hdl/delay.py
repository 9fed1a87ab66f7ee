"""Delay lines: a value ``n`` cycles later, in registers or in a small LUT RAM.

A lane carries many of its op's fields down its pipeline only to use them some stages later (the
update writes the weight it read 13 cycles before, at the address it read it from). As chains of
registers these cost ``n * width`` flip-flops each: ~800 of a lane's ~1,900 at P = 64, where the
flip-flops were what did not fit. ``Delays`` puts each long one in a 16-word memory instead,
written every cycle at a running pointer and read (asynchronously) ``n - 1`` words behind it into
one register: on the ECP5, yosys maps it to ceil(width / 4) TRELLIS_DPR16X4 LUT RAMs and ``width``
flip-flops, whatever ``n``. Each read pointer is a counter of its own.

``ram=False`` (an iCE40, which has no LUT RAM: each line would take a block RAM) keeps every delay
in registers. Registers remain for short delays (``n < RAM_MIN``), for narrow ones where the
registers cost less than the RAMs (a 1-bit flag up to 9 cycles) and for ``ctrl`` values (enables,
valid bits): what decides a write never comes out of a LUT RAM word.

No register here has a reset (``reset_less``): a lane's ~1,200 flip-flops on the reset net made it
the design's largest (37k sinks at P = 32). Registers and memory words start at their initial
values (configuration, the simulators), and a reset held for ``Plan.drain`` cycles (>= 20, more than
``RAM_DEPTH``) fills both with the NOP ops the reset controller sends (the board top holds it that
long, ``boards.top.hold_reset_until``).

The pointers are 4-bit counters (one per ``Delays`` and distinct delay), marked ``NO_MERGE``: every
lane's counter holds the same value, and yosys would otherwise fold them into one that drives the
whole chip.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib.memory import Memory

from .trees import NO_MERGE

RAM_DEPTH = 16      # one TRELLIS_DPR16X4 deep: delays up to 16 cycles
RAM_MIN = 3         # shorter delays stay in registers


def _registers_cheaper(width: int, n: int) -> bool:
    """A line of ``n`` registers costs width x n flip-flops; in LUT RAM it costs one 16x4 RAM per 4
    bits (~8 LUTs each, packed) and its output register. Short lines, and narrow ones up to ~9
    cycles (a flag), stay in registers."""
    return n < RAM_MIN or width * (n - 1) <= 8 * -(-width // 4)


class Delays:
    """Delay lines in module ``m``: ``d(v, n, name)`` is ``v`` ``n`` cycles later (``ctrl=True``:
    in registers, whatever ``n``)."""

    def __init__(self, m: Module, prefix: str = "dl", *, ram: bool = True):
        self.m, self.prefix, self.ram = m, prefix, ram
        self._ptr = None

    def reg(self, v, name, shape=None):
        r = Signal(shape if shape is not None else Value.cast(v).shape(), name=name, reset_less=True)
        self.m.d.sync += r.eq(v)
        return r

    def __call__(self, v, n: int, name: str, *, ctrl: bool = False):
        v = Value.cast(v)
        if not 0 <= n <= RAM_DEPTH:
            raise ValueError(f"a delay of {n} cycles is outside 0..{RAM_DEPTH}")
        if ctrl or not self.ram or _registers_cheaper(len(v), n):
            for k in range(n):
                v = self.reg(v, f"{name}_d{k}")
            return v
        return self._ram(v, n, name)

    def group(self, n: int, name: str, **values) -> dict:
        """Several values delayed by the same ``n`` in one line (one memory); each keeps its shape."""
        vals = {k: Value.cast(v) for k, v in values.items()}
        line = self(Cat(*vals.values()), n, name)
        out, at = {}, 0
        for k, v in vals.items():
            s = Signal(v.shape(), name=f"{k}_dl{n}")
            self.m.d.comb += s.eq(line[at:at + len(v)])
            out[k] = s
            at += len(v)
        return out

    def _pointer(self, behind: int = 0):
        """The write pointer (``behind`` = 0), or a read pointer that many words behind it: a
        counter of its own, so that no subtraction sits between a register and the LUT RAM."""
        if self._ptr is None:
            self._ptr = {}
        if behind not in self._ptr:
            ptr = Signal(range(RAM_DEPTH), name=f"{self.prefix}_ptr" + (f"_m{behind}" if behind else ""),
                         init=(-behind) % RAM_DEPTH, attrs={NO_MERGE: 1}, reset_less=True)
            self.m.d.sync += ptr.eq(ptr + 1)       # wraps: RAM_DEPTH is a power of 2
            self._ptr[behind] = ptr
        return self._ptr[behind]

    def _ram(self, v, n, name):
        shape = v.shape()
        mem = Memory(shape=shape, depth=RAM_DEPTH, init=[])
        self.m.submodules[f"{self.prefix}_{name}"] = mem
        wr = mem.write_port()
        rd = mem.read_port(domain="comb")
        # written at ptr at the end of cycle t; read at cycle t + n - 1, where the read pointer
        # (n - 1 behind) is ptr(t) again; then one register, so that what follows starts at a
        # flip-flop (a LUT RAM's read is as slow as a LUT and its routing)
        self.m.d.comb += [wr.addr.eq(self._pointer()), wr.data.eq(v), wr.en.eq(1),
                          rd.addr.eq(self._pointer(n - 1))]
        return self.reg(rd.data, f"{name}_dl{n}", shape)
