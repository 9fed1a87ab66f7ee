"""The frame CRC of the serial link: the library CRC (``amaranth.lib.crc``) in the link's
configuration is zlib's crc32 (so the wire format stays ``eqfpga.hdl.protocol.crc32``), its
``match_detected`` fires exactly on intact frames, and ``CRCAppender`` appends it."""
import random

import pytest
from amaranth.sim import Simulator

from eqfpga.hdl.link_reply import CRCAppender
from eqfpga.hdl.link_streams import FRAME_CRC
from eqfpga.hdl.protocol import SYNC_REPLY, crc32


def _frames(seed, n=12):
    rng = random.Random(seed)
    return [b"", b"123456789", bytes(range(256))] + \
        [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(n)]


def _run(dut, *benches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in benches:
        sim.add_testbench(tb)
    sim.run()


def test_frame_crc_is_zlib_crc32():
    assert FRAME_CRC.compute(b"123456789") == 0xCBF43926
    for body in _frames(1):
        assert FRAME_CRC.compute(body) == crc32(body), body.hex()


def test_processor_crc_and_match_detected():
    """The gateware CRC of each frame equals crc32; with the frame's CRC appended (little-endian)
    match_detected is 1 exactly at the end of an intact frame, never for a damaged one."""
    rng = random.Random(2)
    cases = []
    for body in _frames(3):
        good = body + crc32(body).to_bytes(4, "little")
        cases.append((body, good, True))
        bad = bytearray(good)
        bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)      # one bit flipped anywhere
        cases.append((body, bytes(bad), False))
    dut = FRAME_CRC.create()
    seen = []

    async def bench(ctx):
        for body, codeword, intact in cases:
            ctx.set(dut.start, 1)                  # alone, as the receiver does on the sync byte
            await ctx.tick()
            ctx.set(dut.start, 0)
            early = []
            for i, b in enumerate(codeword):
                if i == len(body):
                    assert ctx.get(dut.crc) == crc32(codeword[:i]), codeword.hex()
                if rng.random() < 0.2:             # gaps (valid low) leave the register alone
                    ctx.set(dut.valid, 0)
                    await ctx.tick()
                ctx.set(dut.data, b)
                ctx.set(dut.valid, 1)
                await ctx.tick()
                if i < len(codeword) - 1:
                    early.append(ctx.get(dut.match_detected))
            ctx.set(dut.valid, 0)
            seen.append((intact, ctx.get(dut.match_detected), any(early)))

    _run(dut, bench)
    assert [(intact, bool(match)) for intact, match, _ in seen] == [(i, i) for i, _, _ in seen]
    assert not any(early for _, _, early in seen)


@pytest.mark.parametrize("skip", [0, 1])
def test_crc_appender_under_backpressure(skip):
    """Frames in with random gaps, bytes out with random backpressure: each frame comes out
    followed by the crc32 of its bytes after the first ``skip``."""
    frames = [bytes([SYNC_REPLY]) * skip + body for body in _frames(4 + skip) if body or skip]
    dut = CRCAppender(skip=skip)
    rng = random.Random(5)
    want = b"".join(fr + crc32(fr[skip:]).to_bytes(4, "little") for fr in frames)
    out = []

    async def feed(ctx):
        for fr in frames:
            for i, b in enumerate(fr):
                while rng.random() < 0.3:
                    ctx.set(dut.frames.valid, 0)
                    await ctx.tick()
                ctx.set(dut.frames.valid, 1)
                ctx.set(dut.frames.payload, {"data": b, "last": i == len(fr) - 1})
                await ctx.tick().until(dut.frames.ready)
        ctx.set(dut.frames.valid, 0)

    async def drain(ctx):
        while len(out) < len(want):
            ready = rng.random() < 0.4
            ctx.set(dut.tx.ready, ready)
            valid, payload = ctx.get(dut.tx.valid), ctx.get(dut.tx.payload)
            await ctx.tick()
            if ready and valid:
                out.append(payload)
        ctx.set(dut.tx.ready, 1)
        await ctx.tick().repeat(4)
        assert not ctx.get(dut.tx.valid) and not ctx.get(dut.busy)

    _run(dut, feed, drain)
    assert bytes(out) == want
