"""SDR SDRAM controller for the ULX3S's 32 MB chip: a command stream of fixed bursts in, read words out.

The chip: an IS42S16160G-class part (amaranth-boards' ulx3s ``SDRAMResource``): 4 banks x 8192 rows
x 512 columns x 16 bits = 32 MB, 16 Mi words, so a word address has 24 bits. Every datasheet figure
lives in ``SDRAMTimings`` (ns or clocks, one place); ``SDRAMTimings.cycles(clk_freq)`` turns them into
clock cycles (minimums rounded up, maximums rounded down), and both this controller and the chip
model (``eqfpga.sim.sdram_model``) read them from there, so another clock frequency just works.

What the controller does:

- Initialisation (datasheet order): ``t_init_ns`` (200 us) of NOPs with CKE high and DQM high, then
  PRECHARGE ALL, ``init_refreshes`` (8) AUTO REFRESH, LOAD MODE REGISTER (burst length BL, sequential,
  CAS latency, write bursts of BL), tMRD. ``init_done`` rises with the LOAD MODE REGISTER.
- Closed-page bursts: every host command is ACTIVE, then READ or WRITE with auto precharge (A10 = 1)
  of BL words, the row closing by itself. One bank at a time: the next ACTIVE or REFRESH waits until
  the bank has precharged (tRP after the auto precharge starts) and tRC has passed. ACTIVE to READ
  is held back beyond tRCD where needed so that the auto precharge never starts before tRAS.
- Periodic AUTO REFRESH: a counter raises a request every ``refresh_period`` cycles; the request
  has priority over host commands at the next burst boundary, and the period is short enough that
  two REFRESH commands are never more than tREFI (7.8125 us) apart, even if the request comes just
  after a burst started. A host command waits only for its write data, for read FIFO room, or for
  one refresh.

Host side (``lib.stream``, one clock domain):

- ``cmd``: payload ``{addr: 24 bits (a word address), write: 1}``. One command moves one burst of
  ``burst_length`` (BL, 1, 2, 4 or 8, a constructor parameter) words: the aligned block holding
  ``addr`` (its low log2(BL) bits are ignored). ``cmd.ready`` is a register (a one-command slot):
  the next command is accepted while the current burst runs. Commands execute in order.
- ``wdata``: the words of write bursts, in command order, BL per write command. They go into a write
  FIFO of ``2 * BL`` words (at least 4); a write burst starts only when all BL of its words are
  there, so the host may send data before or after the command, from independent processes.
- ``rdata``: the words of read bursts, in command order. A read burst is started only when the read
  FIFO (``2 * BL`` words, at least 4) has room for all BL words, counting the words still in flight;
  so a reader that is not ready never loses data: the controller just stops issuing reads (writes
  and refreshes go on). ``rdata.valid`` and ``rdata.payload`` come from the FIFO's output register.
- ``busy``: initialisation running, a command pending or in progress, write data waiting, or read
  words not yet delivered. ``init_done``: the init sequence has been issued.

SDRAM side (``sdram``, see ``sdram_pin_signature``): the chip's pins as plain signals ``cke, cs_n,
ras_n, cas_n, we_n, ba, a, dqm, dq_o, dq_oe`` (all flip-flop outputs, set from the state machine one
cycle ahead; nothing combinational reaches a pin) and ``dq_i`` (registered on entry). Read timing,
counted in cycles of the controller's clock: the state machine decides READ in cycle R; the pin
register holds it in R + 1; the chip samples it at the edge ending R + 1; its data come CL cycles
later and are captured by the ``dq_i`` register (+ ``extra_read_latency`` cycles of board I/O
registers), then pass the read FIFO (2 cycles: memory write, output register).

What the board top must do (not done here):

- Clock: drive the chip's CLK pin through an output DDR cell (ODDRX1F on the ECP5, amaranth's
  ``io.DDRBuffer`` with outputs 1, 0) from this clock or from a PLL copy of it with a phase offset.
  The cycle accounting above (and the model's) assumes the chip samples, at its clock edge k + 1,
  what the pin registers launched at FPGA edge k, and that the FPGA's input register captures at edge
  m the word the chip launched at its edge m - 1. With phi = the delay of the chip's clock edge after
  the FPGA's, that needs phi <= t_co,min + t_board - tIH (command hold; tIH 0.8 ns) and
  phi <= T - tAC - t_board - t_setup,in (read data; tAC 6-6.5 ns at CL 2 for -7 parts): about
  2.5 ns at most at 100 MHz, and a clock sent through an ODDR of this same clock arrives together
  with the data, roughly tIH too late for the hold: shift it earlier with a PLL phase. These are
  estimates from datasheet figures; check the I/O timing report or sweep the phase on the board.
  CL 3 (``SDRAMTimings(cas_latency=3)``) relaxes the read side (tAC 5.4 ns) for one cycle of latency.
- I/O registers: put the pins in I/O-cell registers (``xdr=1`` / ``io.FFBuffer``: fixed
  clock-to-out and setup). The commands then all move one cycle later together (no timing change at
  the chip) and the read data arrive two cycles later: pass ``extra_read_latency=2``.
- ``dq`` is driven when ``dq_oe`` is 1: one bit for all 16 pins, which the top fans out to the 16
  I/O cells' output enables (16 copies of the register if the tools are to put it in each cell).

Timing parameters at 100 MHz (defaults of ``SDRAMTimings``, -7 speed grade, computed by
``SDRAMTimings.cycles``): tRCD 2, tRP 2, tRAS 5 (max 10,000), tRC 6, tRRD 2, tRFC 6, tWR 2, tMRD 2,
tREFI 781 (7.8125 us rounded down), init wait 20,000, CAS latency 2: the -7 grade allows CL 2 down to
a 10 ns clock (ISSI's IS42S16160B/D tables: tCK >= 10 ns at CL 2, 7 ns at CL 3), so 100 MHz runs CL 2,
exactly at that limit; above 100 MHz ``cycles`` picks CL 3 by itself.

Throughput (computed from the parameters by ``sdram_schedule``, not measured here; the tests measure
them in simulation and compare). Cycles counted from the burst's ACTIVE; a burst occupies the chip
from its ACTIVE to the next ACTIVE or REFRESH:
  act_to_read   = max(tRCD, tRAS - BL)                      (READA's precharge starts BL after it)
  read_period   = max(act_to_read + BL + tRP, tRC)
  act_to_write  = max(tRCD, tRAS - (BL - 1 + tWR))          (WRITEA's starts tWR after its last word)
  write_period  = max(act_to_write + BL - 1 + tWR + tRP, tRC)
  read_latency  = act_to_read + CL + 5 + extra_read_latency (cmd handshake cycle to first rdata
                  handshake cycle on an idle controller: slot 1, pin register 1, dq_i register 1,
                  FIFO 2)
  refresh_period = tREFI - max(read_period, write_period) - tRFC - 2; each refresh costs tRFC
                  cycles of a saturated stream: overhead = tRFC / refresh_period.

  | BL | read_period | read words/cycle | write_period | write words/cycle | read_latency | refresh |
  |----|-------------|------------------|--------------|-------------------|--------------|---------|
  | 1  | 7           | 0.143            | 7            | 0.143             | 11           | 0.78 %  |
  | 2  | 7           | 0.286            | 7            | 0.286             | 10           | 0.78 %  |
  | 4  | 8           | 0.500            | 9            | 0.444             | 9            | 0.79 %  |
  | 8  | 12          | 0.667            | 13           | 0.615             | 9            | 0.79 %  |

At BL = 8: 133 MB/s reading and 123 MB/s writing of the 200 MB/s peak, before the refresh overhead
(6 / 760 cycles = 0.79 %). Closed-page bursts to one bank at a time leave bank interleaving unused.
"""
from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from dataclasses import dataclass

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

__all__ = ["SDRAMTimings", "SDRAMCycles", "SDRAMSchedule", "SDRAMController", "sdram_pin_signature",
           "sdram_schedule", "mode_register_value"]

# Datasheet minimum for the power-up wait; shorter only through SDRAMTimings.for_tests_with_short_init.
DATASHEET_INIT_NS = 200_000.0


@dataclass(frozen=True)
class SDRAMTimings:
    """The chip's geometry and datasheet timings, in ns or clocks; ``cycles(clk_freq)`` converts.

    Defaults: IS42S16160G-class, -7 speed grade, at the slow end of the ranges the -7 datasheets
    give; at 100 MHz the cycle counts are the same for either end. For comparison, LiteDRAM's
    IS42S16160 module uses tRCD = tRP = tWR = 20 ns and tRFC = 70 ns: at 100 MHz the same 2 cycles
    for the first three, and 7 instead of 6 for tRFC (pass ``t_rfc_ns=70.0`` for that margin).
    """
    # geometry: 4 banks x 8192 rows x 512 columns x 16 bits = 32 MB
    banks: int = 4
    rows: int = 8192
    cols: int = 512
    data_width: int = 16
    # minimums (ns)
    t_rcd_ns: float = 18.0          # ACTIVE to READ/WRITE: 15-18 ns in the -7 datasheets
    t_rp_ns: float = 18.0           # PRECHARGE to ACTIVE/REFRESH: 15-18 ns
    t_ras_ns: float = 42.0          # ACTIVE to PRECHARGE: 37-42 ns
    t_rc_ns: float = 60.0           # ACTIVE to ACTIVE, same bank: 60 ns (63 in some ISSI -7 tables)
    t_rfc_ns: float = 60.0          # AUTO REFRESH to any command: 60 ns (tables listing only tRC mean it)
    t_rrd_ns: float = 15.0          # ACTIVE to ACTIVE, other bank: 14 ns in ISSI/Alliance -7 tables; 15 kept
    t_wr_ns: float = 14.0           # last write data to PRECHARGE: 14 ns (Alliance -7), "1 clk + 7 ns" ...
    t_wr_ck: int = 2                # ... ISSI's tDPL: 2 clocks. The larger of the two is used
    t_mrd_ck: int = 2               # LOAD MODE REGISTER to any command: 2 clocks
    # maximums
    t_ras_max_ns: float = 100_000.0  # a row may stay open at most 100 us
    t_ref_ns: float = 64_000_000.0   # every row refreshed within 64 ms ...
    refresh_rows: int = 8192         # ... by 8192 AUTO REFRESH commands: tREFI = 7.8125 us
    # initialisation
    t_init_ns: float = DATASHEET_INIT_NS   # NOPs after power-up and stable clock: 100 or 200 us: 200
    init_refreshes: int = 8                # datasheets ask >= 2; many recommend 8
    # CAS latency: allowed down to these clock periods (-7, ISSI B/D tables: 10 ns at CL 2, 7 ns at CL 3)
    t_ck_cl2_min_ns: float = 10.0
    t_ck_cl3_min_ns: float = 7.0
    cas_latency: int | None = None   # None: the smallest the clock allows
    # set only by for_tests_with_short_init: permits t_init_ns below the datasheet's 200 us
    test_short_init: bool = False

    def __post_init__(self):
        for name in ("banks", "rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 2 or v & (v - 1):
                raise ValueError(f"{name} must be a power of two >= 2, not {v!r}")
        if self.data_width not in (8, 16, 32):
            raise ValueError(f"data_width must be 8, 16 or 32, not {self.data_width!r}")
        if self.cols > 1024:
            raise ValueError(f"cols must be <= 1024 (A10 is the auto-precharge bit), not {self.cols!r}")
        if self.t_init_ns < DATASHEET_INIT_NS and not self.test_short_init:
            raise ValueError(f"t_init_ns = {self.t_init_ns!r} is below the datasheet's 200 us: shorter "
                             "waits are for tests only, through SDRAMTimings.for_tests_with_short_init")
        if self.cas_latency not in (None, 2, 3):
            raise ValueError(f"cas_latency must be None, 2 or 3, not {self.cas_latency!r}")
        if not isinstance(self.init_refreshes, int) or self.init_refreshes < 2:
            raise ValueError(f"init_refreshes must be an integer >= 2, not {self.init_refreshes!r}")

    @classmethod
    def for_tests_with_short_init(cls, t_init_ns: float = 1_000.0, **overrides) -> "SDRAMTimings":
        """The same chip with a power-up wait of ``t_init_ns`` instead of 200 us: for simulations
        that test something else. Never for hardware."""
        return cls(t_init_ns=t_init_ns, test_short_init=True, **overrides)

    def replace(self, **changes) -> "SDRAMTimings":
        return dataclasses.replace(self, **changes)

    @property
    def bank_bits(self) -> int:
        return self.banks.bit_length() - 1

    @property
    def row_bits(self) -> int:
        return self.rows.bit_length() - 1

    @property
    def col_bits(self) -> int:
        return self.cols.bit_length() - 1

    @property
    def addr_bits(self) -> int:
        """Bits of a word address: 24 for 16 Mi words."""
        return self.bank_bits + self.row_bits + self.col_bits

    @property
    def a_bits(self) -> int:
        """Width of the chip's A bus: the row address, and at least A10 (auto precharge)."""
        return max(self.row_bits, self.col_bits, 11)

    def cycles(self, clk_freq: float) -> "SDRAMCycles":
        """Clock cycles at ``clk_freq`` (Hz): minimum times rounded up, maximum times rounded down."""
        if not clk_freq > 0:
            raise ValueError(f"clk_freq must be positive, not {clk_freq!r}")
        period = 1e9 / clk_freq

        def up(ns):
            return max(1, math.ceil(ns / period - 1e-9))

        def down(ns):
            return math.floor(ns / period + 1e-9)

        return SDRAMCycles(
            clk_freq=clk_freq, rcd=up(self.t_rcd_ns), rp=up(self.t_rp_ns), ras=up(self.t_ras_ns),
            rc=up(self.t_rc_ns), rfc=up(self.t_rfc_ns), rrd=up(self.t_rrd_ns),
            wr=max(self.t_wr_ck, up(self.t_wr_ns)), mrd=self.t_mrd_ck,
            ras_max=down(self.t_ras_max_ns), refi=down(self.t_ref_ns / self.refresh_rows),
            init=up(self.t_init_ns), cl=self._cas_latency(period))

    def _cas_latency(self, period: float) -> int:
        allowed = [cl for cl, t_ck in ((2, self.t_ck_cl2_min_ns), (3, self.t_ck_cl3_min_ns))
                   if period >= t_ck - 1e-9]
        if not allowed:
            raise ValueError(f"a {period:.3g} ns clock is faster than the part allows at any CAS latency "
                             f"(tCK >= {self.t_ck_cl3_min_ns} ns at CL 3)")
        if self.cas_latency is None:
            return allowed[0]
        if self.cas_latency not in allowed:
            raise ValueError(f"CAS latency {self.cas_latency} needs tCK >= "
                             f"{self.t_ck_cl2_min_ns if self.cas_latency == 2 else self.t_ck_cl3_min_ns} ns,"
                             f" not {period:.3g} ns")
        return self.cas_latency


@dataclass(frozen=True)
class SDRAMCycles:
    """``SDRAMTimings`` in clock cycles at ``clk_freq`` (see ``SDRAMTimings.cycles``)."""
    clk_freq: float
    rcd: int
    rp: int
    ras: int
    rc: int
    rfc: int
    rrd: int
    wr: int
    mrd: int
    ras_max: int
    refi: int
    init: int
    cl: int


@dataclass(frozen=True)
class SDRAMSchedule:
    """The controller's fixed burst schedule in cycles (formulas in the module docstring)."""
    burst_length: int
    act_to_read: int
    act_to_write: int
    read_period: int
    write_period: int
    read_latency: int
    refresh_period: int
    refresh_cost: int

    @property
    def refresh_overhead(self) -> float:
        """Fraction of a saturated stream's cycles spent refreshing."""
        return self.refresh_cost / self.refresh_period


def sdram_schedule(cyc: SDRAMCycles, burst_length: int, extra_read_latency: int = 0) -> SDRAMSchedule:
    BL = burst_length
    act_to_read = max(cyc.rcd, cyc.ras - BL)
    act_to_write = max(cyc.rcd, cyc.ras - (BL - 1 + cyc.wr))
    read_period = max(act_to_read + BL + cyc.rp, cyc.rc)
    write_period = max(act_to_write + BL - 1 + cyc.wr + cyc.rp, cyc.rc)
    # a request may wait one whole burst, and the first one follows the last init refresh by tRFC
    refresh_period = cyc.refi - max(read_period, write_period) - cyc.rfc - 2
    if refresh_period < 4 * max(read_period, write_period):
        raise ValueError(f"tREFI of {cyc.refi} cycles leaves too little time between refreshes "
                         f"(refresh period {refresh_period} cycles)")
    return SDRAMSchedule(burst_length=BL, act_to_read=act_to_read, act_to_write=act_to_write,
                         read_period=read_period, write_period=write_period,
                         read_latency=act_to_read + cyc.cl + 5 + extra_read_latency,
                         refresh_period=refresh_period, refresh_cost=cyc.rfc)


def mode_register_value(burst_length: int, cas_latency: int) -> int:
    """The LOAD MODE REGISTER word: A2:0 burst length, A3 = 0 sequential, A6:4 CAS latency,
    A8:7 = 0 standard operation, A9 = 0 write bursts of the programmed length, A12:10 = 0."""
    bl_code = {1: 0b000, 2: 0b001, 4: 0b010, 8: 0b011}[burst_length]
    return bl_code | (cas_latency << 4)


def sdram_pin_signature(timings: SDRAMTimings) -> wiring.Signature:
    """The chip's pins as seen from the controller (``Out``: to the chip). The command pins start
    at 1 (NOP/deselect), CKE at 1, DQM at all-ones (masked) until the init sequence ends."""
    return wiring.Signature({
        "cke": Out(1, init=1),
        "cs_n": Out(1, init=1),
        "ras_n": Out(1, init=1),
        "cas_n": Out(1, init=1),
        "we_n": Out(1, init=1),
        "ba": Out(timings.bank_bits),
        "a": Out(timings.a_bits),
        "dqm": Out(timings.data_width // 8, init=(1 << (timings.data_width // 8)) - 1),
        "dq_o": Out(timings.data_width),
        "dq_oe": Out(1),
        "dq_i": In(timings.data_width),
    })


# (ras_n, cas_n, we_n) with cs_n = 0: the datasheet's command truth table. The chip model decodes the
# pins with a table of its own, so that an encoding mistake here shows up as a protocol error there.
_NOP = (1, 1, 1)
_ACTIVE = (0, 1, 1)
_READ = (1, 0, 1)
_WRITE = (1, 0, 0)
_PRECHARGE = (0, 1, 0)
_REFRESH = (0, 0, 1)
_MODE = (0, 0, 0)
_AP = 1 << 10       # A10: auto precharge (READ/WRITE), all banks (PRECHARGE)


@contextmanager
def _when_expired(m: Module, timer: Signal):
    """The body runs in a cycle where ``timer`` is 0; until then ``timer`` counts down."""
    with m.If(timer != 0):
        m.d.sync += timer.eq(timer - 1)
    with m.Else():
        yield


class SDRAMController(wiring.Component):
    """Closed-page SDR SDRAM controller: ``cmd``/``wdata`` streams in, ``rdata`` out, chip pins on
    ``sdram`` (see the module docstring for the protocol, timing and the board top's duties).

    Keyword-only: ``timings`` (``SDRAMTimings``, default: the -7 datasheet figures), ``clk_freq``
    (Hz, default 100 MHz), ``burst_length`` (1, 2, 4 or 8), ``extra_read_latency`` (cycles of I/O
    registers between the pins and the chip, default 0).
    """

    def __init__(self, *, timings: SDRAMTimings | None = None, clk_freq: float = 100e6,
                 burst_length: int = 8, extra_read_latency: int = 0):
        self._MustUse__silence = True               # a refused object is not an unused one
        if type(burst_length) is not int or burst_length not in (1, 2, 4, 8):
            raise ValueError(f"burst_length must be 1, 2, 4 or 8, not {burst_length!r}")
        if type(extra_read_latency) is not int or extra_read_latency < 0:
            raise ValueError(f"extra_read_latency must be an integer >= 0, not {extra_read_latency!r}")
        self.timings = SDRAMTimings() if timings is None else timings
        if not isinstance(self.timings, SDRAMTimings):
            raise TypeError(f"timings must be an SDRAMTimings, not {timings!r}")
        if burst_length > self.timings.cols:
            raise ValueError(f"burst_length {burst_length} exceeds a row of {self.timings.cols} columns")
        self.clk_freq = clk_freq
        self.burst_length = burst_length
        self.extra_read_latency = extra_read_latency
        self.cycles = self.timings.cycles(clk_freq)
        self.schedule = sdram_schedule(self.cycles, burst_length, extra_read_latency)
        self.fifo_depth = max(2 * burst_length, 4)
        self.cmd_layout = data.StructLayout({"addr": self.timings.addr_bits, "write": 1})
        w = self.timings.data_width
        super().__init__({
            "cmd": In(stream.Signature(self.cmd_layout)),
            "wdata": In(stream.Signature(w)),
            "rdata": Out(stream.Signature(w)),
            "init_done": Out(1),
            "busy": Out(1),
            "sdram": Out(sdram_pin_signature(self.timings)),
        })
        self._MustUse__silence = False

    def split_address(self, addr: int) -> tuple[int, int, int]:
        """(bank, row, column) of word address ``addr``: column in the low bits, then bank, then row."""
        t = self.timings
        return ((addr >> t.col_bits) & (t.banks - 1), addr >> (t.col_bits + t.bank_bits), addr & (t.cols - 1))

    def elaborate(self, platform):
        m = Module()
        t, cyc, sch, BL = self.timings, self.cycles, self.schedule, self.burst_length
        pins = self.sdram

        m.submodules.wfifo = wfifo = SyncFIFOBuffered(width=t.data_width, depth=self.fifo_depth)
        m.submodules.rfifo = rfifo = SyncFIFOBuffered(width=t.data_width, depth=self.fifo_depth)
        m.d.comb += [
            wfifo.w_data.eq(self.wdata.payload), wfifo.w_en.eq(self.wdata.valid),
            self.wdata.ready.eq(wfifo.w_rdy),
            self.rdata.payload.eq(rfifo.r_data), self.rdata.valid.eq(rfifo.r_rdy),
            rfifo.r_en.eq(self.rdata.ready),
        ]

        # the one-command slot: cmd.ready is a register (not a function of the payload)
        pend_valid = Signal()
        pend = Signal(self.cmd_layout)
        m.d.comb += self.cmd.ready.eq(~pend_valid)
        with m.If(self.cmd.valid & ~pend_valid):
            m.d.sync += [pend.eq(self.cmd.payload), pend_valid.eq(1)]
        p_col = pend.addr[:t.col_bits] & ~(BL - 1)         # the aligned block of the burst
        p_bank = pend.addr[t.col_bits:t.col_bits + t.bank_bits]
        p_row = pend.addr[t.col_bits + t.bank_bits:]
        cur_bank = Signal(t.bank_bits, reset_less=True)
        cur_col = Signal(t.col_bits, reset_less=True)

        # read FIFO room: words committed to reads (in flight or in the FIFO) never exceed its depth
        reserved = Signal(range(self.fifo_depth + 1))
        room = reserved <= self.fifo_depth - BL
        commit_read = Signal()
        popped = rfifo.r_en & rfifo.r_rdy
        m.d.sync += reserved.eq(reserved + commit_read * BL - popped)

        can_write = wfifo.level >= BL
        init_done = Signal()
        refresh_due = Signal()
        read_issue = Signal()
        timer = Signal(range(max(cyc.init, sch.refresh_period, 64) + 1), init=cyc.init)
        init_left = Signal(range(t.init_refreshes + 1))
        beats_left = Signal(range(BL))

        def issue(cmd, ba=0, a=0):
            ras_n, cas_n, we_n = cmd
            m.d.sync += [pins.cs_n.eq(0), pins.ras_n.eq(ras_n), pins.cas_n.eq(cas_n), pins.we_n.eq(we_n),
                         pins.ba.eq(ba), pins.a.eq(a)]

        def write_beat():
            m.d.comb += wfifo.r_en.eq(1)
            m.d.sync += [pins.dq_o.eq(wfifo.r_data), pins.dq_oe.eq(1)]

        # every cycle: NOP and no drive unless a state below says otherwise (later assignments win)
        m.d.sync += [pins.cs_n.eq(0), pins.ras_n.eq(1), pins.cas_n.eq(1), pins.we_n.eq(1), pins.dq_oe.eq(0),
                     pins.cke.eq(1)]

        with m.FSM(name="sdram") as fsm:
            with m.State("INIT_WAIT"):              # the power-up wait: NOPs, CKE and DQM high
                with _when_expired(m, timer):
                    issue(_PRECHARGE, a=_AP)
                    m.d.sync += [timer.eq(cyc.rp - 1), init_left.eq(t.init_refreshes)]
                    m.next = "INIT_REFRESH"
            with m.State("INIT_REFRESH"):
                with _when_expired(m, timer):
                    with m.If(init_left != 0):
                        issue(_REFRESH)
                        m.d.sync += [timer.eq(cyc.rfc - 1), init_left.eq(init_left - 1)]
                    with m.Else():
                        issue(_MODE, a=mode_register_value(BL, cyc.cl))
                        m.d.sync += [timer.eq(cyc.mrd - 1), init_done.eq(1), pins.dqm.eq(0)]
                        m.next = "IDLE"
            with m.State("IDLE"):                   # a burst boundary: every bank closed
                with _when_expired(m, timer):
                    with m.If(refresh_due):         # refresh first: it is never put off for a command
                        issue(_REFRESH)
                        m.d.sync += [timer.eq(cyc.rfc - 1), refresh_due.eq(0)]
                    with m.Elif(pend_valid & pend.write & can_write):
                        issue(_ACTIVE, ba=p_bank, a=p_row)
                        m.d.sync += [timer.eq(sch.act_to_write - 1), pend_valid.eq(0),
                                     cur_bank.eq(p_bank), cur_col.eq(p_col)]
                        m.next = "WRITE"
                    with m.Elif(pend_valid & ~pend.write & room):
                        issue(_ACTIVE, ba=p_bank, a=p_row)
                        m.d.comb += commit_read.eq(1)
                        m.d.sync += [timer.eq(sch.act_to_read - 1), pend_valid.eq(0),
                                     cur_bank.eq(p_bank), cur_col.eq(p_col)]
                        m.next = "READ"
            with m.State("READ"):
                with _when_expired(m, timer):
                    issue(_READ, ba=cur_bank, a=cur_col | _AP)
                    m.d.comb += read_issue.eq(1)
                    m.d.sync += timer.eq(sch.read_period - sch.act_to_read - 1)
                    m.next = "IDLE"
            with m.State("WRITE"):
                with _when_expired(m, timer):
                    issue(_WRITE, ba=cur_bank, a=cur_col | _AP)
                    write_beat()
                    if BL == 1:
                        m.d.sync += timer.eq(sch.write_period - sch.act_to_write - 1)
                        m.next = "IDLE"
                    else:
                        m.d.sync += beats_left.eq(BL - 2)
                        m.next = "WRITE_DATA"
            if BL > 1:
                with m.State("WRITE_DATA"):         # the burst's other words, one a cycle
                    write_beat()
                    m.d.sync += beats_left.eq(beats_left - 1)
                    with m.If(beats_left == 0):
                        m.d.sync += timer.eq(sch.write_period - sch.act_to_write - (BL - 1) - 1)
                        m.next = "IDLE"

        # the refresh request: every refresh_period cycles once initialised (after the FSM: a request
        # raised in the cycle a REFRESH clears the previous one is kept)
        refresh_timer = Signal(range(sch.refresh_period), init=sch.refresh_period - 1)
        with m.If(init_done):
            with m.If(refresh_timer == 0):
                m.d.sync += [refresh_timer.eq(sch.refresh_period - 1), refresh_due.eq(1)]
            with m.Else():
                m.d.sync += refresh_timer.eq(refresh_timer - 1)

        # read capture: dq_i registered on entry; the burst's first word is in that register
        # CL + 2 cycles after the READ decision (pin register, chip, input register) plus the board's
        # I/O registers; the next BL - 1 words follow one a cycle
        dq_in = Signal(t.data_width, reset_less=True)
        m.d.sync += dq_in.eq(pins.dq_i)
        first = read_issue
        for k in range(cyc.cl + 2 + self.extra_read_latency):
            nxt = Signal(name=f"rd_first_d{k}")
            m.d.sync += nxt.eq(first)
            first = nxt
        beats_left_rd = Signal(range(BL))
        capture = first | (beats_left_rd != 0)
        with m.If(first):
            m.d.sync += beats_left_rd.eq(BL - 1)
        with m.Elif(beats_left_rd != 0):
            m.d.sync += beats_left_rd.eq(beats_left_rd - 1)
        m.d.comb += [rfifo.w_data.eq(dq_in), rfifo.w_en.eq(capture)]

        m.d.comb += [
            self.init_done.eq(init_done),
            self.busy.eq(~init_done | pend_valid | ~fsm.ongoing("IDLE") | (reserved != 0) | (wfifo.level != 0)),
        ]
        return m
