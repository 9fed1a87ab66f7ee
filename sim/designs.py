"""The two designs the simulators build, as Verilog text, and their top module names."""
from __future__ import annotations

import os

from eqfpga.golden.config import EPConfig
from eqfpga.hdl.generate import CORE_TOP   # the core alone (EPCore): as `eqfpga generate` names it

__all__ = ["CORE_TOP", "BOARD_TOP", "core_verilog", "board_verilog"]
BOARD_TOP = "boardsim_top"      # the core behind its serial link (LinkedCore): the simulated board


def core_verilog(cfg: EPConfig, *, weights=None, biases=None, train: bool = True) -> str:
    """``EPCore`` for ``cfg`` as a Verilog module named CORE_TOP (``train=False``: inference only)."""
    from amaranth.back import verilog

    from eqfpga.hdl.core import EPCore

    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    return verilog.convert(EPCore(cfg=cfg, weights=weights, biases=biases, train=train), name=CORE_TOP)


def board_verilog(cfg: EPConfig, *, divisor: int, clk_hz: int, timeout_bytes: int,
                  weights=None, biases=None) -> str:
    """``LinkedCore`` for ``cfg`` as a Verilog module named BOARD_TOP, with the board top's reset
    registers a block (``local_resets``): the simulated board is the board's design."""
    from amaranth.back import verilog

    from eqfpga.hdl.link import LinkedCore

    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    return verilog.convert(LinkedCore(cfg, divisor=divisor, clk_hz=clk_hz, timeout_bytes=timeout_bytes,
                                      weights=weights, biases=biases, local_resets=True), name=BOARD_TOP)
