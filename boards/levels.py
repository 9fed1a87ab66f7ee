"""Logic levels between registers in a yosys ``synth_ecp5`` netlist (its JSON): where the slow paths
are before place and route says so.

A path starts at a flip-flop's output, a memory's or multiplier's output or a module input, and
ends at a flip-flop's, block RAM's, LUT RAM's or multiplier's input. Its *levels* count the cells
that need routing between them: a LUT4 or the entry into a carry chain counts 1; a PFUMX or
L6MUX21 (the wide-function muxes beside a LUT) and each further carry cell 0.25 and 0.15, as they
sit in the same slice. On the ECP5 a level costs ~0.25 ns of logic and 0.6-2 ns of routing (build 3
of docs/hardware.md: 8 cells, 14.2 ns of routing), so a 100 MHz design wants about 4 or fewer.

``eqfpga levels NETLIST.json`` (the ``top.json`` that ``eqfpga build`` leaves in ``OUT/_work``) prints the deepest paths; ``--through NAME`` the chain into one register.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

COST = {"LUT4": 1.0, "PFUMX": 0.25, "L6MUX21": 0.25, "CCU2C": 1.0}
CARRY_STEP = 0.15           # a carry cell fed by the previous one's COUT
ENDPOINTS = ("TRELLIS_FF", "DP16KD", "TRELLIS_DPR16X4", "MULT18X18D", "ALU54B")
CLOCKS = ("CLK", "CLKA", "CLKB", "WCK")


@dataclass(frozen=True)
class LogicPath:
    levels: float
    start: str          # the net a path starts from (a register's output, an input)
    end: str            # the register (or cell) it ends in
    pin: str            # cell type and pin: "TRELLIS_FF.CE"


class Netlist:
    def __init__(self, netlist: dict):
        mods = netlist.get("modules", {})
        tops = [mod for mod in mods.values() if int(mod.get("attributes", {}).get("top", 0) or 0)]
        if len(tops) != 1 and len(mods) != 1:
            raise ValueError("the netlist must hold one top module (yosys write_json after synth_ecp5 -top ...)")
        top = tops[0] if tops else next(iter(mods.values()))
        self.cells = top["cells"]
        self.names = {}
        for name, net in top["netnames"].items():       # the shortest name of each bit
            for b in net["bits"]:
                if isinstance(b, int) and (b not in self.names or len(name) < len(self.names[b])):
                    self.names[b] = name
        self.driver = {}
        for cn, c in self.cells.items():
            if c["type"] in COST:
                for pin, d in c["port_directions"].items():
                    if d == "output":
                        for b in c["connections"][pin]:
                            self.driver[b] = cn
        self._depth = {}

    def _inputs(self, cn):
        """(pin, bit) of a cell's inputs, clocks left out."""
        c = self.cells[cn]
        for pin, d in c["port_directions"].items():
            if d == "input" and pin not in CLOCKS:
                for b in c["connections"][pin]:
                    if isinstance(b, int):
                        yield pin, b

    def _step(self, cn, pin):
        t = self.cells[cn]["type"]
        return CARRY_STEP if t == "CCU2C" and pin == "CIN" else COST[t]

    def depth(self, bit) -> tuple:
        """(levels, start bit) of the deepest path into ``bit`` (iterative: carry chains are long)."""
        if bit in self._depth:
            return self._depth[bit]
        stack = [bit]
        while stack:
            b = stack[-1]
            if b in self._depth:
                stack.pop()
                continue
            if b not in self.driver:
                self._depth[b] = (0.0, b)
                stack.pop()
                continue
            cn = self.driver[b]
            todo = [x for _, x in self._inputs(cn) if x not in self._depth]
            if todo:
                stack.extend(todo)
                continue
            best = (0.0, b)
            for pin, x in self._inputs(cn):
                lv = self._depth[x][0] + self._step(cn, pin)
                if lv > best[0]:
                    best = (lv, self._depth[x][1])
            self._depth[b] = best
            stack.pop()
        return self._depth[bit]

    def chain(self, bit) -> list:
        """The cells of the deepest path into ``bit``, from its start."""
        out = []
        while bit in self.driver:
            cn = self.driver[bit]
            pin, nxt = max(self._inputs(cn), key=lambda px: self.depth(px[1])[0] + self._step(cn, px[0]))
            out.append(f"{self.cells[cn]['type']}: {self.names.get(bit, bit)}")
            bit = nxt
        out.append(f"start: {self.names.get(bit, bit)}")
        return out[::-1]

    def _register(self, c):
        q = c["connections"].get("Q", [None])[0]
        return self.names.get(q, "?") if c["type"] == "TRELLIS_FF" else None

    def paths(self) -> list:
        """One ``LogicPath`` per (start, end register, pin), deepest first."""
        found = {}
        for cn, c in self.cells.items():
            if c["type"] not in ENDPOINTS:
                continue
            end = self._register(c) or cn
            for pin, b in self._inputs(cn):
                lv, start = self.depth(b)
                key = (self.names.get(start, str(start)), end, f"{c['type']}.{pin}")
                found[key] = max(found.get(key, 0.0), lv)
        return sorted((LogicPath(lv, *k) for k, lv in found.items()), key=lambda p: -p.levels)

    def into(self, register: str) -> dict:
        """pin -> (levels, chain) of the flip-flops whose output net is ``register``."""
        out = {}
        for cn, c in self.cells.items():
            if c["type"] == "TRELLIS_FF" and self._register(c) == register:
                for pin, b in self._inputs(cn):
                    lv = self.depth(b)[0]
                    if pin not in out or lv > out[pin][0]:
                        out[pin] = (lv, self.chain(b))
        return out


def load(path) -> Netlist:
    path = Path(path)
    try:
        return Netlist(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable yosys JSON netlist ({e})") from e


def report(path, *, top: int = 25, through: str | None = None, out=sys.stdout) -> None:
    net = load(path)
    if through:
        found = net.into(through)
        if not found:
            raise ValueError(f"no flip-flop drives a net named {through!r} in {path}")
        for pin, (lv, chain) in sorted(found.items()):
            print(f"{through}.{pin}: {lv:.2f} levels", file=out)
            for step in chain:
                print(f"    {step}", file=out)
        return
    print(f"{'levels':>6}  from -> to (pin)", file=out)
    for p in net.paths()[:top]:
        print(f"{p.levels:6.2f}  {p.start} -> {p.end} ({p.pin})", file=out)
