"""SDRAM controller (hdl/sdram.py) against the chip model (sim/sdram_model.py), Amaranth simulator.

Three groups: the timing parameters and the controller's computed schedule; the model's rule checks,
each driven by a hand-written command sequence that breaks exactly one rule (and its legal twin that
does not); the controller with the model as its chip: random traffic, measured latency, throughput and
refresh cost against the formulas, a stalled reader, board I/O registers, deliberately wrong timings.
"""
import random
import re

import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.sim import Simulator

from eqfpga.hdl import sdram as sdram_mod
from eqfpga.hdl.sdram import SDRAMController, SDRAMTimings, sdram_pin_signature, sdram_schedule
from eqfpga.sim.sdram_model import UNDRIVEN, SDRAMModel, SDRAMTimingError, unwritten_word

CLK = 100e6
# every controller test but one uses a 1 us power-up wait (100 cycles) instead of 200 us
FAST = SDRAMTimings.for_tests_with_short_init(t_init_ns=1_000)
AP = 1 << 10


# --- timing parameters and the schedule ------------------------------------------------------------

def test_timings_in_cycles_at_100_mhz():
    c = SDRAMTimings().cycles(CLK)
    assert (c.rcd, c.rp, c.ras, c.rc, c.rfc, c.rrd, c.wr, c.mrd, c.cl) == (2, 2, 5, 6, 6, 2, 2, 2, 2)
    assert (c.refi, c.ras_max, c.init) == (781, 10_000, 20_000)     # maximums round down


def test_timings_follow_the_clock():
    slow = SDRAMTimings().cycles(50e6)
    assert (slow.rcd, slow.ras, slow.rc, slow.refi, slow.init, slow.cl) == (1, 3, 3, 390, 10_000, 2)
    fast = SDRAMTimings().cycles(133e6)              # 7.52 ns: CL 2 needs 10 ns, so CL 3
    assert (fast.rcd, fast.ras, fast.rc, fast.refi, fast.cl) == (3, 6, 8, 1039, 3)
    with pytest.raises(ValueError, match="faster than the part allows"):
        SDRAMTimings().cycles(150e6)
    with pytest.raises(ValueError, match="CAS latency 2 needs"):
        SDRAMTimings(cas_latency=2).cycles(133e6)
    s = sdram_schedule(FAST.cycles(133e6), 8)
    assert (s.act_to_read, s.read_latency, s.read_period) == (3, 3 + 3 + 5, 3 + 8 + 3)


def test_short_init_only_through_the_test_option():
    with pytest.raises(ValueError, match="for_tests_with_short_init"):
        SDRAMTimings(t_init_ns=1_000)
    assert SDRAMTimings().t_init_ns == 200_000 and not SDRAMTimings().test_short_init
    assert FAST.test_short_init and FAST.cycles(CLK).init == 100


def test_arguments_checked():
    for bad in (0, 3, 16, True, 8.0):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            SDRAMController(burst_length=bad)
    with pytest.raises(ValueError, match="extra_read_latency"):
        SDRAMController(extra_read_latency=-1)
    with pytest.raises(ValueError, match="power of two"):
        SDRAMTimings(rows=1000)


def test_docstring_table_is_the_schedule():
    """The module docstring's throughput table is what sdram_schedule computes at 100 MHz."""
    rows = re.findall(r"^\s*\|\s*(\d)\s*\|(.*)\|\s*$", sdram_mod.__doc__, re.M)
    assert [int(bl) for bl, _ in rows] == [1, 2, 4, 8]
    for bl, rest in rows:
        BL = int(bl)
        s = sdram_schedule(SDRAMTimings().cycles(CLK), BL)
        want = [str(s.read_period), f"{BL / s.read_period:.3f}", str(s.write_period),
                f"{BL / s.write_period:.3f}", str(s.read_latency), f"{100 * s.refresh_overhead:.2f} %"]
        assert [x.strip() for x in rest.split("|")] == want


# --- the model's rules, on hand-written command sequences ------------------------------------------

def mode_word(bl, cl):
    return {1: 0, 2: 1, 4: 2, 8: 3}[bl] | cl << 4


def chip(bl=4, timings=FAST, **kw):
    return SDRAMModel(timings=timings, clk_freq=CLK, burst_length=bl, **kw)


def init(m, *, refreshes=8, mode=None):
    """The legal init sequence; ends on the LOAD MODE REGISTER edge."""
    c = m.cyc
    m.nop(c.init)
    m.command("PRECHARGE", a=AP)
    m.nop(c.rp - 1)
    for _ in range(refreshes):
        m.command("REFRESH")
        m.nop(c.rfc - 1)
    m.command("LOAD MODE REGISTER", a=mode_word(m.burst_length, m.cas_latency) if mode is None else mode)


def ready(m):
    init(m)
    m.nop(m.cyc.mrd - 1)


def act(m, bank=0, row=5):
    m.command("ACTIVE", bank, row)


# Each case: (rule, model factory, sequence(m, bad)). With bad=False the sequence is legal; with bad=True
# it differs by the one thing that breaks the rule. At 100 MHz: tRCD 2, tRP 2, tRAS 5, tRC 6, tRFC 6,
# tWR 2, tMRD 2, CL 2, power-up wait 100 cycles.
def c_init_wait(m, bad):
    m.nop(m.cyc.init - bad)
    m.command("PRECHARGE", a=AP)


def c_precharge_all_first(m, bad):
    m.nop(m.cyc.init)
    m.command("REFRESH" if bad else "PRECHARGE", a=0 if bad else AP)


def c_refreshes_before_mode(m, bad):
    init(m, refreshes=7 if bad else 8)


def c_no_active_before_mode(m, bad):
    m.nop(m.cyc.init)
    m.command("PRECHARGE", a=AP)
    m.nop(1)
    for _ in range(8):
        m.command("REFRESH")
        m.nop(5)
    if not bad:
        m.command("LOAD MODE REGISTER", a=mode_word(4, 2))
        m.nop(1)
    act(m)


def c_mode_burst_length(m, bad):
    init(m, mode=mode_word(8 if bad else 4, 2))


def c_mode_cas_latency(m, bad):
    init(m, mode=mode_word(4, 3 if bad else 2))


def c_trcd(m, bad):
    ready(m)
    act(m)
    m.nop(m.cyc.rcd - 1 - bad)
    m.command("READ", 0, 0)


def c_trp(m, bad):
    ready(m)
    act(m)
    m.nop(m.cyc.ras - 1)
    m.command("PRECHARGE", 0)
    m.nop(m.cyc.rp - 1 - bad)
    act(m)


def c_trp_auto_precharge(m, bad):
    ready(m)
    act(m)
    m.nop(1)
    m.command("READ", 0, 0 | AP)           # edge 2 after ACTIVE; BL 4: precharge starts at edge 6
    m.nop(m.burst_length + m.cyc.rp - 1 - bad)
    act(m)


def c_tras(m, bad):
    ready(m)
    act(m)
    m.nop(m.cyc.ras - 1 - bad)
    m.command("PRECHARGE", 0)


def c_tras_auto_precharge(m, bad):      # BL 1: READA's precharge starts 1 edge later: READA at >= tRAS - 1
    ready(m)
    act(m)
    m.nop(m.cyc.ras - 2 - bad)
    m.command("READ", 0, AP)
    m.nop(3)


def c_trc(m, bad):                      # tRC 8 here, more than tRAS + tRP = 7
    ready(m)
    act(m)
    m.nop(m.cyc.ras - 1)
    m.command("PRECHARGE", 0)
    m.nop(m.cyc.rc - m.cyc.ras - 1 - bad)
    act(m)


def c_trrd(m, bad):
    ready(m)
    act(m, 0)
    m.nop(m.cyc.rrd - 1 - bad)
    act(m, 1)


def c_trfc(m, bad):
    ready(m)
    m.command("REFRESH")
    m.nop(m.cyc.rfc - 1 - bad)
    act(m)


def c_tmrd(m, bad):
    init(m)
    m.nop(m.cyc.mrd - 1 - bad)
    act(m)


def c_twr(m, bad):
    ready(m)
    act(m)
    m.nop(1)
    m.command("WRITE", 0, 0, dq=1)
    m.nop(m.burst_length - 1, dq=2)
    m.nop(m.cyc.wr - 1 - bad)
    m.command("PRECHARGE", 0)


def c_no_open_row(m, bad):
    ready(m)
    act(m, 0)
    m.nop(m.cyc.rcd - 1)
    m.command("READ", 1 if bad else 0, 0)


def c_no_open_row_auto_precharge(m, bad):
    ready(m)
    act(m)
    m.nop(1)
    m.command("READ", 0, AP if bad else 0)
    m.nop(m.burst_length - 1)
    m.command("READ", 0, 4)                 # seamless after the first burst: legal if the row is open


def c_bank_already_open(m, bad):
    ready(m)
    act(m)
    m.nop(m.cyc.ras - 1)
    m.command("NOP" if bad else "PRECHARGE", 0)
    m.nop(m.cyc.rp + 1)
    act(m)


def c_banks_not_idle(m, bad):
    ready(m)
    act(m)
    m.nop(m.cyc.ras - 1)
    m.command("NOP" if bad else "PRECHARGE", 0)
    m.nop(m.cyc.rp + 1)
    m.command("REFRESH")


def c_refresh_interval(m, bad):
    ready(m)
    m.nop(600)
    if not bad:
        m.command("REFRESH")
    m.nop(400)


def c_bus_contention(m, bad):
    ready(m)
    act(m)
    m.nop(1)
    m.command("READ", 0, 0)                 # words captured at +2 .. +5; the chip lets go after +6
    m.nop(m.cas_latency + m.burst_length - bad)
    m.nop(1, dq=0x1234)


def c_write_data(m, bad):
    ready(m)
    act(m)
    m.nop(1)
    m.command("WRITE", 0, 0, dq=1)
    m.nop(1, dq=None if bad else 2)


def c_burst_interrupt(m, bad):
    ready(m)
    act(m)
    m.nop(1)
    m.command("READ", 0, 0)
    m.nop(m.burst_length - 1 - bad)
    m.command("READ", 0, 4)


def c_tras_max(m, bad):                 # tRAS max 300 ns = 30 cycles here
    ready(m)
    act(m)
    m.nop(25)
    if not bad:
        m.command("PRECHARGE", 0)
    m.nop(10)


def c_cke(m, bad):
    ready(m)
    m.nop(3, cke=0 if bad else 1)


def c_unsupported(m, bad):
    ready(m)
    m.command("BURST TERMINATE" if bad else "NOP")


CASES = [
    ("init wait", chip, c_init_wait),
    ("init sequence", chip, c_precharge_all_first),
    ("init sequence", chip, c_refreshes_before_mode),
    ("init sequence", chip, c_no_active_before_mode),
    ("mode register", chip, c_mode_burst_length),
    ("mode register", chip, c_mode_cas_latency),
    ("tRCD", chip, c_trcd),
    ("tRP", chip, c_trp),
    ("tRP", chip, c_trp_auto_precharge),
    ("tRAS", chip, c_tras),
    ("tRAS", lambda: chip(bl=1), c_tras_auto_precharge),
    ("tRC", lambda: chip(timings=FAST.replace(t_rc_ns=80.0)), c_trc),
    ("tRRD", chip, c_trrd),
    ("tRFC", chip, c_trfc),
    ("tMRD", chip, c_tmrd),
    ("tWR", chip, c_twr),
    ("no open row", chip, c_no_open_row),
    ("no open row", chip, c_no_open_row_auto_precharge),
    ("bank already open", chip, c_bank_already_open),
    ("banks not idle", chip, c_banks_not_idle),
    ("refresh interval", chip, c_refresh_interval),
    ("bus contention", chip, c_bus_contention),
    ("write data", chip, c_write_data),
    ("burst interrupt", chip, c_burst_interrupt),
    ("tRAS max", lambda: chip(timings=FAST.replace(t_ras_max_ns=300.0)), c_tras_max),
    ("CKE", chip, c_cke),
    ("unsupported", chip, c_unsupported),
]


@pytest.mark.parametrize("rule, make, seq", CASES, ids=[f"{r}-{s.__name__[2:]}" for r, _, s in CASES])
def test_model_rule(rule, make, seq):
    seq(make(), bad=False)                  # the legal twin passes ...
    with pytest.raises(SDRAMTimingError) as e:
        seq(make(), bad=True)               # ... the one-change violation is caught, by name
    assert e.value.rule == rule, str(e.value)
    assert str(e.value).startswith(f"{rule} violated: ")
    assert f"at cycle {e.value.cycle}" in str(e.value)


def test_model_reads_what_was_written():
    """CL 2: word k of a READ at edge t is driven after edge t + 1 + k (captured at t + 2 + k);
    bursts wrap in their aligned block; DQM masks write lanes at once and read lanes 2 edges later."""
    m = chip(bl=4)
    ready(m)
    act(m, 2, 77)
    m.nop(1)
    m.command("WRITE", 2, 9, dq=0x1111)             # columns 9, 10, 11, 8
    m.nop(1, dq=0x2222)
    m.nop(1, dq=0x3333, dqm=0b10)                   # upper byte masked: column 11 keeps its fill's byte
    m.nop(1, dq=0x4444)
    assert [m.word(2, 77, c) for c in (8, 9, 10)] == [0x4444, 0x1111, 0x2222]
    assert m.word(2, 77, 11) == (unwritten_word(2, 77, 11) & 0xFF00) | 0x33
    assert m.word(2, 77, 12) == unwritten_word(2, 77, 12)
    m.nop(1)
    out = [m.command("READ", 2, 8)]                 # after edge t: nothing yet
    out += m.nop(1)                                 # after t + 1: word 0
    out += m.nop(1, dqm=0b01)                       # masks the lower byte of word 2 (driven after t + 3)
    out += m.nop(4)
    assert out[:6] == [None, 0x4444, 0x1111, (0x2222 & 0xFF00) | (UNDRIVEN & 0xFF), m.word(2, 77, 11), None]


def test_model_as_a_simulator_process():
    """The model on free pins, driven by a testbench: write, read back through dq_i, then a tRCD
    violation raised out of the simulation."""
    pins = sdram_pin_signature(FAST).create()
    m = chip(bl=2)
    top = Module()
    top.domains.sync = ClockDomain()        # nothing but the clock: the testbench is the controller
    sim = Simulator(top)
    sim.add_clock(1 / CLK)
    sim.add_process(m.process(pins))
    seen = []
    cmds = {"NOP": (1, 1, 1), "ACTIVE": (0, 1, 1), "READ": (1, 0, 1), "WRITE": (1, 0, 0),
            "PRECHARGE": (0, 1, 0), "REFRESH": (0, 0, 1), "LOAD MODE REGISTER": (0, 0, 0)}

    async def bench(ctx):
        async def cmd(name, ba=0, a=0, dq=None, n=1):
            for _ in range(n):
                ras, cas, we = cmds[name]
                for sig, v in ((pins.cs_n, 0), (pins.ras_n, ras), (pins.cas_n, cas), (pins.we_n, we),
                               (pins.ba, ba), (pins.a, a), (pins.dqm, 0), (pins.dq_oe, dq is not None),
                               (pins.dq_o, dq or 0)):
                    ctx.set(sig, v)
                await ctx.tick()
                seen.append(ctx.get(pins.dq_i))
        await cmd("NOP", n=100)
        await cmd("PRECHARGE", a=AP)
        await cmd("NOP")
        for _ in range(8):
            await cmd("REFRESH")
            await cmd("NOP", n=5)
        await cmd("LOAD MODE REGISTER", a=mode_word(2, 2))
        await cmd("NOP")
        await cmd("ACTIVE", 1, 3)
        await cmd("NOP")
        await cmd("WRITE", 1, 6, dq=0xBEEF)
        await cmd("NOP", dq=0xCAFE)
        await cmd("NOP", n=2)
        seen.clear()
        await cmd("READ", 1, 6)
        await cmd("NOP", n=3)
        assert seen == [UNDRIVEN, 0xBEEF, 0xCAFE, UNDRIVEN]
        await cmd("ACTIVE", 2, 3)
        await cmd("READ", 2, 0)              # one cycle after ACTIVE: tRCD
        await cmd("NOP", n=3)

    sim.add_testbench(bench)
    with pytest.raises(SDRAMTimingError, match="tRCD violated: READ to bank 2"):
        sim.run()


# --- the controller with the model as its chip ------------------------------------------------------

class Bench:
    """A controller, the chip model on its pins, and edge-stamped host handshakes."""

    def __init__(self, *, bl, timings=FAST, chip_timings=None, dut=None, top=None, pins=None, **chip_kw):
        self.dut = dut or SDRAMController(timings=timings, clk_freq=CLK, burst_length=bl)
        self.chip = SDRAMModel(timings=chip_timings or timings, clk_freq=CLK, burst_length=bl, **chip_kw)
        self.sim = Simulator(top or self.dut)
        self.sim.add_clock(1 / CLK)
        self.sim.add_process(self.chip.process(pins or self.dut.sdram))
        self.events = []                 # (edge, "cmd" | "rdata") of every handshake
        self.edge = 0
        self.sim.add_process(self._watch)

    async def _watch(self, ctx):
        d = self.dut
        tick = ctx.tick().sample(d.cmd.valid, d.cmd.ready, d.rdata.valid, d.rdata.ready)
        while True:
            _, _, cv, cr, rv, rr = await tick
            self.edge += 1
            if cv and cr:
                self.events.append((self.edge, "cmd"))
            if rv and rr:
                self.events.append((self.edge, "rdata"))

    def run(self, *benches):
        for b in benches:
            self.sim.add_testbench(b)
        self.sim.run()

    def acts(self):
        """(edge, kind) of every ACTIVE and REFRESH after init, kind "R", "W" or "REF"."""
        out, log = [], self.chip.log
        for i, (e, name, _) in enumerate(log):
            if name == "ACTIVE":
                follow = next(n for _, n, _ in log[i + 1:] if n in ("READ", "WRITE"))
                out.append((e, follow[0]))
            elif name == "REFRESH" and e > self.init_end():
                out.append((e, "REF"))
        return out

    def init_end(self):
        return next(e for e, n, _ in self.chip.log if n == "LOAD MODE REGISTER")


def stall(rng, p):
    n = 0
    while rng.random() < p:
        n += 1
    return n


# The helpers wait with one-shot ``await ctx.tick()`` only: a testbench left waiting when a simulation
# stops (a timing error, a background process) is then a plain suspended coroutine, which closes cleanly
# when collected; ``until``/``repeat``/``async for`` hold async generators that do not (and in CPython
# 3.11 their finalizers, run by a later garbage collection, have broken an unrelated ast.parse).
async def idle(ctx, n):
    for _ in range(n):
        await ctx.tick()


async def until(ctx, signal):
    """Wait for an edge at which ``signal`` is 1 (a handshake, when it is a ready)."""
    while True:
        _, _, v = await ctx.tick().sample(signal)
        if v:
            return


def wait(n):
    """A testbench that only keeps the simulation running for ``n`` cycles."""
    async def bench(ctx):
        await idle(ctx, n)
    return bench


def send_commands(dut, ops, rng, p, on_accept=None):
    """A testbench sending ``ops`` ((write, addr) pairs) with random gaps (probability ``p`` a cycle)."""
    async def bench(ctx):
        for write, addr in ops:
            await idle(ctx, stall(rng, p))
            ctx.set(dut.cmd.payload, {"addr": addr, "write": write})
            ctx.set(dut.cmd.valid, 1)
            await until(ctx, dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            if on_accept is not None:
                on_accept()
    return bench


def send_words(dut, words, rng, p):
    async def bench(ctx):
        for w in words:
            n = stall(rng, p)
            if n:
                ctx.set(dut.wdata.valid, 0)
                await idle(ctx, n)
            ctx.set(dut.wdata.payload, w)
            ctx.set(dut.wdata.valid, 1)
            await until(ctx, dut.wdata.ready)
        ctx.set(dut.wdata.valid, 0)
    return bench


def read_words(dut, n, out, rng, p, limit, ready_from=0):
    async def bench(ctx):
        cycles = 0
        while len(out) < n:
            r = cycles >= ready_from and rng.random() >= p
            ctx.set(dut.rdata.ready, r)
            _, _, valid, payload = await ctx.tick().sample(dut.rdata.valid, dut.rdata.payload)
            if r and valid:
                out.append(payload)
            cycles += 1
            assert cycles < limit, f"only {len(out)} of {n} read words after {limit} cycles"
    return bench


def plan_traffic(dut, rng, n_ops, n_blocks):
    """Random reads and writes over a region of BL-word blocks spread across banks and rows (half of
    them pairs of neighbours in one row), then a read of every block. Returns (ops, write words,
    expected read words)."""
    t, BL = dut.timings, dut.burst_length
    blocks = set()
    while len(blocks) < n_blocks:
        b = rng.randrange(1 << t.addr_bits) & ~(BL - 1)
        blocks.update([b, b ^ BL] if len(blocks) < n_blocks // 2 else [b])
    blocks = sorted(blocks)
    mem, ops, words, expect = {}, [], [], []
    for k in range(n_ops + len(blocks)):
        if k < n_ops:
            write, base = rng.random() < 0.55, rng.choice(blocks)
        else:
            write, base = False, blocks[k - n_ops]
        ops.append((write, base | rng.randrange(BL)))       # the low bits are ignored
        for a in range(base, base + BL):
            if write:
                mem[a] = rng.randrange(1 << 16)
                words.append(mem[a])
            else:
                expect.append(mem[a] if a in mem else unwritten_word(*dut.split_address(a)))
    return ops, words, expect


@pytest.mark.parametrize("bl, n_ops", [(1, 170), (2, 160), (4, 140), (8, 120)])
def test_random_traffic(bl, n_ops):
    """Random addresses across banks and rows, a random read/write mix, random stalls on all three
    streams, over several refreshes; every word read equals the last one written there (or the
    model's fill pattern for words never written)."""
    rng = random.Random(bl)
    b = Bench(bl=bl)
    ops, words, expect = plan_traffic(b.dut, rng, n_ops, n_blocks=24)
    got, stamps = [], []
    cmds = send_commands(b.dut, ops, random.Random(1), 0.4, on_accept=lambda: stamps.append(b.chip.refreshes))
    b.run(cmds, send_words(b.dut, words, random.Random(2), 0.3),
          read_words(b.dut, len(expect), got, random.Random(3), 0.3, limit=40 * len(ops) * bl + 5000))
    bad = next((i for i, (g, e) in enumerate(zip(got, expect)) if g != e), None)
    assert bad is None, f"read word {bad}: got {got[bad]:#06x}, expected {expect[bad]:#06x}"
    assert len(got) == len(expect)
    assert stamps[-1] - stamps[0] >= 3, "fewer than 3 refreshes during the traffic"


@pytest.mark.parametrize("bl", [1, 2, 4, 8])
def test_latency_throughput_and_refresh_cost(bl):
    """Measured against sdram_schedule: the read latency of an idle controller; with every stream
    always ready, each burst's ACTIVE to the next ACTIVE is exactly read_period or write_period, plus
    tRFC when a REFRESH comes between; REFRESH every refresh_period cycles on average, never more than
    tREFI apart."""
    rng = random.Random(10 + bl)
    b = Bench(bl=bl)
    s, c = b.dut.schedule, b.dut.cycles
    ops = [(False, 0x40)] + [(rng.random() < 0.5, rng.randrange(1 << 24)) for _ in range(2600 // s.read_period)]
    n_reads = sum(1 for w, _ in ops if not w) * bl
    got = []

    async def commands(ctx):
        await until(ctx, b.dut.init_done)
        await idle(ctx, 20)                       # idle: the first read measures the latency
        await send_commands(b.dut, ops[:1], rng, 0)(ctx)
        while len(got) < bl:
            await ctx.tick()
        await send_commands(b.dut, ops[1:], rng, 0)(ctx)

    b.run(commands, send_words(b.dut, [rng.randrange(1 << 16) for w, _ in ops if w for _ in range(bl)], rng, 0),
          read_words(b.dut, n_reads, got, rng, 0, limit=10 ** 5))

    first_cmd = next(e for e, k in b.events if k == "cmd")
    first_word = next(e for e, k in b.events if k == "rdata")
    assert first_word - first_cmd == s.read_latency

    seq = b.acts()[1:]                                     # the saturated stream after the first read
    period = {"R": s.read_period, "W": s.write_period}
    bursts = [(e, k) for e, k in seq if k != "REF"]
    refs = [e for e, k in seq if k == "REF"]
    for (e0, k0), (e1, _) in zip(bursts, bursts[1:]):
        n_ref = sum(1 for r in refs if e0 < r < e1)
        assert e1 - e0 == period[k0] + n_ref * c.rfc, (k0, e0, e1, n_ref)
    assert {k for _, k in bursts} == {"R", "W"}
    inside = [r for r in refs if bursts[0][0] < r < bursts[-1][0]]
    assert len(inside) >= 3
    gaps = [r1 - r0 for r0, r1 in zip(refs, refs[1:])]
    assert max(gaps) <= c.refi
    assert abs(sum(gaps) / len(gaps) - s.refresh_period) <= max(period.values())
    # the refresh overhead of the window: cycles not spent in bursts, over all cycles
    total = bursts[-1][0] - bursts[0][0]
    lost = total - sum(period[k] for _, k in bursts[:-1])
    assert lost == len(inside) * c.rfc
    assert abs(lost / total - s.refresh_overhead) <= c.rfc / total


def test_stalled_reader_loses_nothing_and_refresh_goes_on():
    """Reads pile up while rdata.ready is low: the controller starts only as many read bursts as the
    read FIFO can hold, keeps refreshing (the model checks the interval), and delivers everything."""
    bl = 4
    b = Bench(bl=bl)
    rng = random.Random(5)
    writes = [(True, a * bl) for a in range(6)]
    reads = [(False, a * bl) for a in range(6)]
    words = [rng.randrange(1 << 16) for _ in range(6 * bl)]
    got = []
    stall_cycles = 2000

    async def reader(ctx):
        await read_words(b.dut, len(words), got, rng, 0, limit=stall_cycles + 5000, ready_from=stall_cycles)(ctx)

    b.run(send_commands(b.dut, writes + reads, rng, 0), send_words(b.dut, words, rng, 0), reader)
    assert got == words
    read_acts = [e for e, k in b.acts() if k == "R"]
    first_word = next(e for e, k in b.events if k == "rdata")
    assert len([e for e in read_acts if e < first_word]) == b.dut.fifo_depth // bl
    refs_in_stall = [e for e, k in b.acts() if k == "REF" and read_acts[0] < e < first_word]
    assert len(refs_in_stall) >= 2


def test_datasheet_init():
    """Default timings (200 us power-up wait): the controller waits 20,000 cycles, then the init
    sequence passes the model and a write/read round trip works."""
    b = Bench(bl=2, timings=SDRAMTimings())
    got = []
    b.run(send_commands(b.dut, [(True, 0x123456), (False, 0x123456)], random.Random(0), 0),
          send_words(b.dut, [0x0F0F, 0xF0F0], random.Random(0), 0),
          read_words(b.dut, 2, got, random.Random(0), 0, limit=30_000))
    assert got == [0x0F0F, 0xF0F0]
    first = b.chip.log[0]
    assert first[1] == "PRECHARGE" and first[0] >= 20_000
    assert [n for _, n, _ in b.chip.log[1:10]] == ["REFRESH"] * 8 + ["LOAD MODE REGISTER"]


class WithIORegisters(Elaboratable):
    """The controller with one more register on every pin, both ways (the board's I/O-cell
    registers): the model sits on the outer pins."""

    def __init__(self, ctrl):
        self.ctrl = ctrl
        self.pins = sdram_pin_signature(ctrl.timings).create(path=("io",))

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl = c = self.ctrl
        for name in ("cke", "cs_n", "ras_n", "cas_n", "we_n", "ba", "a", "dqm", "dq_o", "dq_oe"):
            m.d.sync += getattr(self.pins, name).eq(getattr(c.sdram, name))
        m.d.sync += c.sdram.dq_i.eq(self.pins.dq_i)
        return m


def test_board_io_registers():
    bl = 4
    dut = SDRAMController(timings=FAST, clk_freq=CLK, burst_length=bl, extra_read_latency=2)
    top = WithIORegisters(dut)
    b = Bench(bl=bl, dut=dut, top=top, pins=top.pins)
    rng = random.Random(7)
    ops, words, expect = plan_traffic(dut, rng, 30, n_blocks=8)
    got = []
    b.run(send_commands(dut, ops, rng, 0.3), send_words(dut, words, rng, 0.3),
          read_words(dut, len(expect), got, rng, 0.3, limit=20_000))
    assert got == expect


@pytest.mark.parametrize("rule, bl, ctrl_timings, chip_kw", [
    ("tRCD", 8, FAST.replace(t_rcd_ns=10.0), {}),              # tRCD one cycle short
    ("tRAS", 1, FAST.replace(t_ras_ns=30.0), {}),              # READA's precharge before tRAS
    ("tRP", 8, FAST.replace(t_rp_ns=10.0), {}),                # next ACTIVE one cycle early
    ("refresh interval", 4, FAST.replace(refresh_rows=4096), {}),   # tREFI twice the datasheet's
    ("init wait", 4, SDRAMTimings.for_tests_with_short_init(t_init_ns=500), {}),
    ("mode register", 4, FAST.replace(cas_latency=3), {"cas_latency": 2}),
], ids=["tRCD", "tRAS", "tRP", "refresh", "init", "CL"])
def test_wrong_controller_timings_are_caught(rule, bl, ctrl_timings, chip_kw):
    """The controller built with a too-short (or too-long) figure; the model, with the datasheet's,
    names the rule it breaks."""
    dut = SDRAMController(timings=ctrl_timings, clk_freq=CLK, burst_length=bl)
    b = Bench(bl=bl, dut=dut, chip_timings=FAST, **chip_kw)
    rng = random.Random(3)
    ops = [(w, rng.randrange(1 << 24)) for w in [True, False] * 3]
    with pytest.raises(SDRAMTimingError) as e:
        b.run(send_commands(dut, ops, rng, 0), send_words(dut, [1] * 3 * bl, rng, 0),
              read_words(dut, 3 * bl, [], rng, 0, limit=3_000), wait(2_000))
    assert e.value.rule == rule, str(e.value)
