"""ProtocolEngine alone in the Amaranth simulator, with random gaps on its input byte stream and
random backpressure on its output: replies (ROM payloads, the reply CRC from the output register)
must be byte-exact whatever the timing."""
import random
import zlib

from amaranth.sim import Simulator

from eqfpga.golden.config import load_config
from eqfpga.hdl.link import ProtocolEngine
from eqfpga.hdl.protocol import INFO_BYTES, SYNC_REPLY, SYNC_REQUEST, Cmd, Status, config_json, frame, info_payload

CFG = load_config("tiny")


def _run(requests, seed, probe=None):
    """The engine's reply bytes to ``requests``; ``probe`` (a dict): receives the core's seed port
    at the end."""
    dut = ProtocolEngine(CFG, divisor=4, clk_hz=1_000_000)
    rng = random.Random(seed)
    data = b"".join(requests)
    out = []

    async def feed(ctx):
        for b in data:
            while rng.random() < 0.3:
                ctx.set(dut.rx.valid, 0)
                await ctx.tick()
            ctx.set(dut.rx.valid, 1)
            ctx.set(dut.rx.payload, b)
            await ctx.tick().until(dut.rx.ready)
        ctx.set(dut.rx.valid, 0)

    async def drain(ctx):
        while True:
            ready = rng.random() < 0.4
            ctx.set(dut.tx.ready, ready)
            valid, payload = ctx.get(dut.tx.valid), ctx.get(dut.tx.payload)
            if probe is not None:
                probe["seed"] = ctx.get(dut.core.seed)
            await ctx.tick()
            if ready and valid:
                out.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feed)
    sim.add_testbench(drain, background=True)
    sim.run_until(3e-3)
    return bytes(out)


def _split(stream):
    replies = []
    while stream:
        n = 5 + int.from_bytes(stream[3:5], "little") + 4
        replies.append(stream[:n])
        stream = stream[n:]
    return replies


def test_rom_replies_and_crc_under_backpressure():
    js = config_json(CFG)
    info = info_payload(CFG, clk_hz=1_000_000, divisor=4)
    assert len(info) == INFO_BYTES
    reqs = [frame(SYNC_REQUEST, 1, Cmd.INFO, b""),
            frame(SYNC_REQUEST, 2, Cmd.CONFIG, (3).to_bytes(2, "little") + (17).to_bytes(2, "little")),
            frame(SYNC_REQUEST, 3, Cmd.INFO, b"x"),                       # BAD_ARG
            frame(SYNC_REQUEST, 4, Cmd.CONFIG, (0).to_bytes(2, "little") + len(js).to_bytes(2, "little"))]
    bad = bytearray(frame(SYNC_REQUEST, 5, Cmd.INFO, b""))
    bad[-1] ^= 1                                                          # BAD_CRC
    reqs.append(bytes(bad))
    want = [frame(SYNC_REPLY, 1, Status.OK, info), frame(SYNC_REPLY, 2, Status.OK, js[3:20]),
            frame(SYNC_REPLY, 3, Status.BAD_ARG, b""), frame(SYNC_REPLY, 4, Status.OK, js),
            frame(SYNC_REPLY, 5, Status.BAD_CRC, b"\x00")]
    for seed in range(3):
        got = _split(_run(reqs, seed))
        assert got == want, seed
        for r in got:
            assert zlib.crc32(r[1:-4]).to_bytes(4, "little") == r[-4:]


def test_seed_register_commands():
    """GET_SEED answers the build's seed until SET_SEED writes another, which drives the core's seed
    port; wrong lengths are BAD_ARG and change nothing; a resent SET_SEED is a DUPLICATE, not
    executed again."""
    assert CFG.seed == 1
    u32 = lambda v: v.to_bytes(4, "little")         # noqa: E731
    reqs = [frame(SYNC_REQUEST, 1, Cmd.GET_SEED, b""),
            frame(SYNC_REQUEST, 2, Cmd.SET_SEED, u32(0xDEADBEEF)),
            frame(SYNC_REQUEST, 3, Cmd.GET_SEED, b""),
            frame(SYNC_REQUEST, 4, Cmd.SET_SEED, b"\x01\x02\x03"),              # BAD_ARG: 3 bytes
            frame(SYNC_REQUEST, 5, Cmd.SET_SEED, u32(7) + b"\x00"),               # BAD_ARG: 5 bytes
            frame(SYNC_REQUEST, 6, Cmd.GET_SEED, b"\x00"),                         # BAD_ARG
            frame(SYNC_REQUEST, 2, Cmd.SET_SEED, u32(99)),                         # seq 2 again
            frame(SYNC_REQUEST, 7, Cmd.GET_SEED, b"")]
    want = [frame(SYNC_REPLY, 1, Status.OK, u32(1)), frame(SYNC_REPLY, 2, Status.OK, b""),
            frame(SYNC_REPLY, 3, Status.OK, u32(0xDEADBEEF)), frame(SYNC_REPLY, 4, Status.BAD_ARG, b""),
            frame(SYNC_REPLY, 5, Status.BAD_ARG, b""), frame(SYNC_REPLY, 6, Status.BAD_ARG, b""),
            frame(SYNC_REPLY, 2, Status.DUPLICATE, b""), frame(SYNC_REPLY, 7, Status.OK, u32(0xDEADBEEF))]
    probe = {}
    assert _split(_run(reqs, 0, probe)) == want
    assert probe["seed"] == 0xDEADBEEF
