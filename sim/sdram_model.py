"""A cycle-accurate behavioural model of the SDR SDRAM chip (IS42S16160G class) that checks the
datasheet's timing and protocol rules on every clock edge.

``SDRAMModel.edge(...)`` takes the pins as the chip samples them at one rising clock edge and returns
the word it drives on DQ until the next edge (``None``: high impedance). ``SDRAMModel.process(pins)``
wraps it as an Amaranth simulator process (``sim.add_process``) on ``eqfpga.hdl.sdram``'s pin
signature: at each edge of ``sync`` it samples the pins (their values just before the edge, as the
chip's input registers see them) and sets ``dq_i`` for the controller's input register to capture at
the next edge; ``UNDRIVEN`` stands for a high-impedance bus. ``command(...)``/``nop(n)`` drive the
model directly with hand-written command sequences.

Edges are counted from 0 (the first edge the model sees); every figure comes from ``SDRAMTimings``
through ``SDRAMTimings.cycles(clk_freq)``. Any broken rule raises ``SDRAMTimingError`` naming the
rule, the command, the bank and the edge. The rules (``SDRAMTimingError.rule``):

- ``init wait``: no command but NOP/DESELECT during the first ``t_init_ns`` (200 us) of edges.
- ``init sequence``: then PRECHARGE ALL first; then AUTO REFRESH (at least ``init_refreshes``)
  before LOAD MODE REGISTER; no ACTIVE/READ/WRITE before the mode register is set.
- ``mode register``: burst length and CAS latency equal those the model was given; sequential
  bursts, standard operation, write bursts of the programmed length, reserved bits and BA zero.
- ``tRCD``: ACTIVE to READ/WRITE, same bank. ``tRC``: ACTIVE to ACTIVE, same bank. ``tRRD``: ACTIVE
  to ACTIVE, another bank. ``tRP``: a precharge (PRECHARGE, or the one auto precharge starts) to
  ACTIVE, REFRESH or LOAD MODE REGISTER. ``tRAS``: ACTIVE to a precharge of the bank, auto precharge
  included (READA's starts BL edges after the READ, WRITEA's tWR edges after its last data word).
  ``tRAS max``: a row open longer than 100 us. ``tWR``: last write data to PRECHARGE.
- ``tRFC``: REFRESH to any command but NOP. ``tMRD``: LOAD MODE REGISTER to any command but NOP.
- ``no open row``: READ/WRITE to a bank with no open row (or whose auto precharge is pending).
  ``bank already open``: ACTIVE to a bank with an open row (or a pending auto precharge).
  ``banks not idle``: REFRESH or LOAD MODE REGISTER while a bank is open. A PRECHARGE (or
  PRECHARGE ALL) reaching an idle bank leaves it alone; one reaching a bank whose auto precharge is
  pending is a ``burst interrupt``.
- ``refresh interval``: once the first REFRESH has been issued, two REFRESH commands are never more
  than ``refresh_gap_max`` edges apart (default tREFI = 64 ms / 8192, rounded down: 781 at 100 MHz).
  This strict, locally checkable rule implies the datasheet's (8192 refreshes in every 64 ms window),
  which no simulation is long enough to observe; a looser gap (e.g. 9 x tREFI, JEDEC's DDR
  postponement) can be given.
- ``bus contention``: the controller drives DQ (``dq_oe``) in a cycle in which the chip drives read
  data, or in the cycle after the last word (the chip's output turn-off time).
- ``write data``: a write burst word with ``dq_oe`` low.
- ``burst interrupt``: a READ, WRITE or PRECHARGE that would cut a burst short (legal on the chip, but
  not modelled: the controller never does it). ``unsupported``: BURST TERMINATE.
- ``CKE``: CKE low after the power-up wait (power-down and self refresh are not modelled).

DQM: a write word's byte lanes with DQM high are not written (latency 0); a read word's byte lanes
with DQM high two edges before its capture edge are not driven (latency 2; they read as ``UNDRIVEN``'s
bytes). Bursts are sequential and wrap within the BL-aligned block of columns.

Storage is a sparse dict of words. A word never written reads as ``unwritten_word(bank, row, col)``
(a documented fill pattern: ``0xA5A5 ^ (row << 3 & 0xFFFF) ^ (bank << 1) ^ col``), so a test can
check reads of unwritten words too. ``refreshes`` counts REFRESH commands; ``log`` lists
``(edge, command, bank)`` of every command but NOP/DESELECT.
"""
from __future__ import annotations

from eqfpga.hdl.sdram import SDRAMTimings

__all__ = ["SDRAMModel", "SDRAMTimingError", "unwritten_word", "UNDRIVEN"]

UNDRIVEN = 0xDEAD          # what dq_i reads while nothing drives the bus (simulation only)
NEVER = -(1 << 40)          # an edge long before any other


def unwritten_word(bank: int, row: int, col: int) -> int:
    """What the model returns for a word that was never written."""
    return 0xA5A5 ^ ((row << 3) & 0xFFFF) ^ (bank << 1) ^ col


class SDRAMTimingError(Exception):
    """A datasheet rule broken: ``rule``, ``command``, ``bank`` (None: no single bank), ``cycle``."""

    def __init__(self, rule: str, command: str, bank, cycle: int, detail: str):
        self.rule, self.command, self.bank, self.cycle, self.detail = rule, command, bank, cycle, detail
        where = "" if bank is None else f" to bank {bank}"
        super().__init__(f"{rule} violated: {command}{where} at cycle {cycle}: {detail}")


class _Bank:
    __slots__ = ("row", "t_act", "t_pre", "ap_at", "t_wdata_end", "t_read_end", "t_burst_end")

    def __init__(self):
        self.row = None             # the open row, None when closed
        self.t_act = NEVER          # last ACTIVE
        self.t_pre = NEVER          # start of the last precharge (explicit or auto)
        self.ap_at = None           # edge the pending auto precharge starts
        self.t_wdata_end = NEVER    # edge of the last word of the last write burst
        self.t_read_end = NEVER     # last edge of the last read burst's column pipeline
        self.t_burst_end = NEVER    # last edge of the column pipeline of the last burst


# The datasheet's command truth table, (cs_n, ras_n, cas_n, we_n) -> command (kept apart from the
# controller's encoding on purpose). CKE is checked separately.
_COMMANDS = {
    (0, 1, 1, 1): "NOP", (0, 0, 1, 1): "ACTIVE", (0, 1, 0, 1): "READ", (0, 1, 0, 0): "WRITE",
    (0, 0, 1, 0): "PRECHARGE", (0, 0, 0, 1): "REFRESH", (0, 0, 0, 0): "LOAD MODE REGISTER",
    (0, 1, 1, 0): "BURST TERMINATE",
}
_ENCODE = {name: pins for pins, name in _COMMANDS.items()}


class SDRAMModel:
    """The chip (see the module docstring). Keyword-only: ``timings``, ``clk_freq`` (Hz),
    ``burst_length`` and ``cas_latency`` (what the mode register must hold; CL defaults to the one
    ``timings`` chooses at ``clk_freq``), ``refresh_gap_max`` (edges; default tREFI)."""

    def __init__(self, *, timings: SDRAMTimings | None = None, clk_freq: float = 100e6,
                 burst_length: int, cas_latency: int | None = None, refresh_gap_max: int | None = None):
        self.timings = t = SDRAMTimings() if timings is None else timings
        self.cyc = c = t.cycles(clk_freq)
        if type(burst_length) is not int or burst_length not in (1, 2, 4, 8):
            raise ValueError(f"burst_length must be 1, 2, 4 or 8, not {burst_length!r}")
        self.burst_length = burst_length
        self.cas_latency = c.cl if cas_latency is None else cas_latency
        self.refresh_gap_max = c.refi if refresh_gap_max is None else refresh_gap_max
        self.t = 0
        self.banks = [_Bank() for _ in range(t.banks)]
        self.storage: dict[int, int] = {}
        self.refreshes = 0
        self.log: list[tuple[int, str, int | None]] = []
        self._stage = "wait"        # wait -> precharged -> ready (mode register set)
        self._init_refreshes = 0
        self._t_ref = NEVER
        self._t_first_ref = None
        self._t_mrd = NEVER
        self._t_act_any = NEVER
        self._writes: dict[int, tuple[int, int, int]] = {}    # edge -> (bank, row, col) of a write word
        self._drive: dict[int, int] = {}                      # edge -> the read word driven after it
        self._chip_busy: set[int] = set()                     # edges whose cycle the chip drives DQ
        self._read_mask: dict[int, int] = {}                  # edge -> DQM lanes for the word driven after it
        self._full_mask = (1 << (t.data_width // 8)) - 1

    # --- storage -------------------------------------------------------------------------------
    def _index(self, bank, row, col):
        return (bank * self.timings.rows + row) * self.timings.cols + col

    def word(self, bank: int, row: int, col: int) -> int:
        return self.storage.get(self._index(bank, row, col), unwritten_word(bank, row, col))

    # --- driving the model -----------------------------------------------------------------------
    def command(self, name: str, ba: int = 0, a: int = 0, *, dq: int | None = None, dqm: int = 0,
                cke: int = 1):
        """One edge with command ``name`` (``"NOP"``, ``"ACTIVE"``, ``"READ"``, ..., ``"DESELECT"``);
        ``dq``: the word the controller drives (None: not driving)."""
        cs_n, ras_n, cas_n, we_n = (1, 1, 1, 1) if name == "DESELECT" else _ENCODE[name]
        return self.edge(cke=cke, cs_n=cs_n, ras_n=ras_n, cas_n=cas_n, we_n=we_n, ba=ba, a=a, dqm=dqm,
                         dq_o=0 if dq is None else dq, dq_oe=int(dq is not None))

    def nop(self, n: int = 1, **kw):
        """``n`` NOP edges; returns what the chip drove after each."""
        return [self.command("NOP", **kw) for _ in range(n)]

    def process(self, pins):
        """An Amaranth simulator process (``sim.add_process``) playing the chip on ``pins``."""
        order = (pins.cke, pins.cs_n, pins.ras_n, pins.cas_n, pins.we_n, pins.ba, pins.a, pins.dqm,
                 pins.dq_o, pins.dq_oe)

        async def chip(ctx):
            ctx.set(pins.dq_i, UNDRIVEN)
            tick = ctx.tick().sample(*order)
            while True:
                # one-shot waits, not ``async for``: the simulation ends with this process suspended,
                # and a suspended async generator fails to close when the garbage collector finds it
                _, rst, *v = await tick
                if rst:
                    continue
                out = self.edge(cke=v[0], cs_n=v[1], ras_n=v[2], cas_n=v[3], we_n=v[4], ba=v[5], a=v[6],
                                dqm=v[7], dq_o=v[8], dq_oe=v[9])
                ctx.set(pins.dq_i, UNDRIVEN if out is None else out)
        return chip

    # --- one clock edge --------------------------------------------------------------------------
    def edge(self, *, cke, cs_n, ras_n, cas_n, we_n, ba, a, dqm, dq_o, dq_oe):
        t = self.t
        self._start_auto_precharges(t)
        self._check_standing_rules(t, cke)
        name = "DESELECT" if cs_n else _COMMANDS[(0, ras_n, cas_n, we_n)]
        if name not in ("NOP", "DESELECT"):
            self.log.append((t, name, None if name in ("REFRESH", "LOAD MODE REGISTER") else ba))
            self._command(t, name, ba, a)
        self._data_phase(t, dq_o, dq_oe, dqm)
        self.t = t + 1
        return self._driven(t)

    def _error(self, rule, command, bank, detail):
        raise SDRAMTimingError(rule, command, bank, self.t, detail)

    def _start_auto_precharges(self, t):
        for i, b in enumerate(self.banks):
            if b.ap_at is not None and b.ap_at <= t:
                cmd = "auto precharge"
                if b.ap_at - b.t_act < self.cyc.ras:
                    self._error("tRAS", cmd, i, f"precharge starts {b.ap_at - b.t_act} cycles after ACTIVE "
                                f"(edge {b.t_act}), tRAS is {self.cyc.ras}")
                b.row, b.t_pre, b.ap_at = None, b.ap_at, None

    def _check_standing_rules(self, t, cke):
        if not cke and (self._stage != "wait" or t >= self.cyc.init):
            self._error("CKE", "CKE low", None, "power-down and self refresh are not modelled")
        for i, b in enumerate(self.banks):
            if b.row is not None and t - b.t_act > self.cyc.ras_max:
                self._error("tRAS max", "open row", i, f"row {b.row} open since edge {b.t_act}, "
                            f"longer than {self.cyc.ras_max} cycles")
        if self._t_first_ref is not None and t - self._t_ref > self.refresh_gap_max:
            self._error("refresh interval", "no REFRESH", None, f"last REFRESH at edge {self._t_ref}, "
                        f"more than {self.refresh_gap_max} cycles ago")

    # --- commands ---------------------------------------------------------------------------------
    def _command(self, t, name, ba, a):
        c = self.cyc
        if self._stage == "wait" and t < c.init:
            self._error("init wait", name, ba, f"only NOPs during the first {c.init} cycles (power-up wait)")
        if t - self._t_ref < c.rfc:
            self._error("tRFC", name, ba, f"{t - self._t_ref} cycles after REFRESH, tRFC is {c.rfc}")
        if t - self._t_mrd < c.mrd:
            self._error("tMRD", name, ba, f"{t - self._t_mrd} cycles after LOAD MODE REGISTER, tMRD is {c.mrd}")
        if name == "BURST TERMINATE":
            self._error("unsupported", name, ba, "BURST TERMINATE is not modelled")
        ap = bool(a & (1 << 10))
        if name == "PRECHARGE":
            self._precharge(t, ba, ap)
            return
        if self._stage == "wait":
            self._error("init sequence", name, ba, "the first command after the power-up wait must be PRECHARGE ALL")
        if name == "REFRESH":
            self._refresh(t)
        elif name == "LOAD MODE REGISTER":
            self._load_mode(t, ba, a)
        elif self._stage != "ready":
            self._error("init sequence", name, ba, "the mode register is not set yet")
        elif name == "ACTIVE":
            self._activate(t, ba, a)
        else:
            self._read_write(t, name, ba, a & (self.timings.cols - 1), ap)

    def _all_idle(self, t, name):
        for i, b in enumerate(self.banks):
            if b.row is not None:
                self._error("banks not idle", name, i, f"row {b.row} is open")
            if t - b.t_pre < self.cyc.rp:
                self._error("tRP", name, i, f"{t - b.t_pre} cycles after the precharge at edge {b.t_pre}, "
                            f"tRP is {self.cyc.rp}")

    def _precharge(self, t, ba, all_banks):
        name = "PRECHARGE ALL" if all_banks else "PRECHARGE"
        if self._stage == "wait":
            if not all_banks:
                self._error("init sequence", name, ba, "the first command after the power-up wait must be "
                            "PRECHARGE ALL")
            self._stage = "precharged"
        for i in (range(len(self.banks)) if all_banks else (ba,)):
            b = self.banks[i]
            if b.ap_at is not None:
                self._error("burst interrupt", name, i, "auto precharge of this bank is pending")
            if b.row is None:
                continue                   # precharging an idle bank is a NOP for it
            if t <= b.t_read_end:           # a PRECHARGE may follow a READ by BL edges, not sooner
                self._error("burst interrupt", name, i, f"the read burst runs until edge {b.t_read_end}")
            if t - b.t_act < self.cyc.ras:
                self._error("tRAS", name, i, f"{t - b.t_act} cycles after ACTIVE, tRAS is {self.cyc.ras}")
            if t - b.t_wdata_end < self.cyc.wr:
                self._error("tWR", name, i, f"{t - b.t_wdata_end} cycles after the last write word "
                            f"(edge {b.t_wdata_end}), tWR is {self.cyc.wr}")
            b.row, b.t_pre = None, t

    def _refresh(self, t):
        self._all_idle(t, "REFRESH")
        if self._stage == "precharged":
            self._init_refreshes += 1
        if self._t_first_ref is None:
            self._t_first_ref = t
        self._t_ref = t
        self.refreshes += 1

    def _load_mode(self, t, ba, a):
        name = "LOAD MODE REGISTER"
        self._all_idle(t, name)
        if self._stage == "precharged" and self._init_refreshes < self.timings.init_refreshes:
            self._error("init sequence", name, None, f"{self._init_refreshes} AUTO REFRESH before the mode "
                        f"register, the init sequence asks {self.timings.init_refreshes}")
        bl = {0: 1, 1: 2, 2: 4, 3: 8}.get(a & 0b111)
        problems = []
        if bl != self.burst_length:
            problems.append(f"burst length code {a & 0b111:03b} ({bl}), expected {self.burst_length}")
        if (a >> 4) & 0b111 != self.cas_latency:
            problems.append(f"CAS latency {(a >> 4) & 0b111}, expected {self.cas_latency}")
        if a & (1 << 3):
            problems.append("interleaved bursts (A3 = 1), expected sequential")
        if (a >> 7) & 0b11:
            problems.append(f"operating mode A8:7 = {(a >> 7) & 0b11:02b}, expected 00")
        if a & (1 << 9):
            problems.append("single-word writes (A9 = 1), expected bursts")
        if a >> 10 or ba:
            problems.append(f"reserved bits set (A12:10 = {a >> 10:03b}, BA = {ba})")
        if problems:
            self._error("mode register", name, None, "; ".join(problems))
        self._stage = "ready"
        self._t_mrd = t

    def _activate(self, t, ba, row):
        c, b = self.cyc, self.banks[ba]
        if b.row is not None:
            pending = " (auto precharge pending)" if b.ap_at is not None else ""
            self._error("bank already open", "ACTIVE", ba, f"row {b.row} is open{pending}")
        if row >= self.timings.rows:
            self._error("row address", "ACTIVE", ba, f"row {row} >= {self.timings.rows}")
        if t - b.t_pre < c.rp:
            self._error("tRP", "ACTIVE", ba, f"{t - b.t_pre} cycles after the precharge at edge {b.t_pre}, "
                        f"tRP is {c.rp}")
        if t - b.t_act < c.rc:
            self._error("tRC", "ACTIVE", ba, f"{t - b.t_act} cycles after ACTIVE at edge {b.t_act}, tRC is {c.rc}")
        if t - self._t_act_any < c.rrd:
            self._error("tRRD", "ACTIVE", ba, f"{t - self._t_act_any} cycles after an ACTIVE to another bank, "
                        f"tRRD is {c.rrd}")
        b.row, b.t_act = row, t
        self._t_act_any = t

    def _read_write(self, t, name, ba, col, ap):
        c, b, BL = self.cyc, self.banks[ba], self.burst_length
        full = name + ("A" if ap else "")
        if b.row is None or b.ap_at is not None:
            why = "auto precharge pending" if b.ap_at is not None else "no ACTIVE since the last precharge"
            self._error("no open row", full, ba, why)
        if t - b.t_act < c.rcd:
            self._error("tRCD", full, ba, f"{t - b.t_act} cycles after ACTIVE at edge {b.t_act}, tRCD is {c.rcd}")
        if any(t <= x.t_burst_end for x in self.banks):
            self._error("burst interrupt", full, ba, "a burst is still running")
        base = col & ~(BL - 1)
        cols = [base | ((col + k) & (BL - 1)) for k in range(BL)]
        b.t_burst_end = t + BL - 1
        if name == "WRITE":
            for k, cc in enumerate(cols):
                self._writes[t + k] = (ba, b.row, cc)
            b.t_wdata_end = t + BL - 1
            if ap:
                b.ap_at = t + BL - 1 + c.wr
        else:
            cl = self.cas_latency
            for k, cc in enumerate(cols):       # word k is captured at edge t + CL + k
                self._drive[t + cl - 1 + k] = self.word(ba, b.row, cc)
            b.t_read_end = t + BL - 1
            self._chip_busy.update(range(t + cl, t + cl + BL + 1))
            if ap:
                b.ap_at = t + BL

    # --- the data bus -----------------------------------------------------------------------------
    def _data_phase(self, t, dq_o, dq_oe, dqm):
        if dq_oe and t in self._chip_busy:
            self._error("bus contention", "DQ driven", None, "the controller drives DQ while the chip "
                        "drives read data (or in the cycle after the last word)")
        self._chip_busy.discard(t)
        if dqm:
            self._read_mask[t + 1] = dqm            # read DQM latency 2: the word captured at t + 2
        target = self._writes.pop(t, None)
        if target is not None:
            if not dq_oe:
                self._error("write data", "WRITE", target[0], "a write burst word with DQ not driven")
            i = self._index(*target)
            keep = 0
            for lane in range(self.timings.data_width // 8):
                if dqm >> lane & 1:
                    keep |= 0xFF << (8 * lane)
            old = self.storage.get(i, unwritten_word(*target))
            self.storage[i] = (old & keep) | (dq_o & ~keep & ((1 << self.timings.data_width) - 1))

    def _driven(self, t):
        word = self._drive.pop(t, None)
        mask = self._read_mask.pop(t, 0)
        if word is None or mask == self._full_mask:
            return None
        if not mask:
            return word
        out = word
        for lane in range(self.timings.data_width // 8):
            if mask >> lane & 1:
                sel = 0xFF << (8 * lane)
                out = (out & ~sel) | (UNDRIVEN & sel)
        return out
