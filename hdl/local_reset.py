"""Reset replicas: a block's reset from a register of its own, not from the one reset net.

On the ECP5 nothing promotes a reset to a global network (nextpnr puts clocks there only), so the
``sync`` reset is one fabric net to every flip-flop that has a reset: 2,762 of them in the control
proxy, more at P = 64, where that net was the routed critical path (the reset synchroniser beside the
UART pins -> a 9.47 ns net -> the root across the chip; docs/hardware.md, "P = 64 routes").

``local_domain(m, name)`` makes a domain ``name`` on the ``sync`` clock whose reset is a register
that copies the ``sync`` reset (one cycle later). A block elaborated in it (``DomainRenamer``) has
a reset net of its own, driven from a flip-flop that the placer can put beside the block. Every
replica lags by the same one cycle, so blocks that talk to each other leave reset together; the
replicas are marked ``NO_MERGE`` (yosys would fold identical flip-flops back into one).

The clock is the ``sync`` clock assigned combinationally: in hardware one net; in Verilator (the
simulated board, ``sim.designs.board_verilog``) an alias of it. In Amaranth's own simulator a
register of ``sync`` that feeds one of these domains directly would race it by a delta cycle; no
such path exists in ``LinkedCore`` (its only ``sync`` registers are the LED stretchers, which read
the blocks, and the reset replicas themselves).
"""
from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal

from .trees import NO_MERGE


def local_domain(m: Module, name: str) -> str:
    """A domain ``name``: the ``sync`` clock, a reset register of its own (the ``sync`` reset,
    registered). Returns the name."""
    m.domains += ClockDomain(name, local=True)
    rst = Signal(init=1, name=f"{name}_rst", reset_less=True, attrs={NO_MERGE: 1})
    m.d.sync += rst.eq(ResetSignal("sync"))
    m.d.comb += [ClockSignal(name).eq(ClockSignal("sync")), ResetSignal(name).eq(rst)]
    return name


def in_local_domain(m: Module, name: str, elaboratable):
    """``elaboratable`` in a new local domain ``name`` (its ``sync`` renamed)."""
    return DomainRenamer({"sync": local_domain(m, name)})(elaboratable)
