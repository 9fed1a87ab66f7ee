"""UART receiver / transmitter in Amaranth's simulator (async testbenches)."""
import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from eqfpga.hdl.uart import UARTRx, UARTTx


def frame_bits(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def run(dut, *benches, processes=(), deadline=None):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in benches:
        sim.add_testbench(tb)
    for p in processes:
        sim.add_process(p)
    if deadline is None:
        sim.run()
    else:
        sim.run_until(deadline * 1e-6)


def collector(stream, out, ready=lambda: True):
    async def proc(ctx):
        ctx.set(stream.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(stream.valid, stream.payload):
            if valid:
                out.append(payload)
    return proc


@pytest.mark.parametrize("divisor", [4, 5, 7, 16])
def test_rx_bytes_back_to_back(divisor):
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(24)] + [0x00, 0xFF, 0xA5, 0x5A]
    dut = UARTRx(divisor)
    got, errors = [], []

    async def drive(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        for k, b in enumerate(data):
            for bit in frame_bits(b):
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(divisor)
            if k % 7 == 3:                       # some idle gaps, most bytes back to back
                await ctx.tick().repeat(rng.randrange(1, 3 * divisor))
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(4 * divisor)
        assert not ctx.get(dut.busy)

    async def watch(ctx):
        async for _, _, fe in ctx.tick().sample(dut.frame_error):
            if fe:
                errors.append(1)

    run(dut, drive, processes=[collector(dut.data, got), watch])
    assert got == data
    assert not errors


def test_rx_tolerates_baud_mismatch():
    """Mid-bit sampling: the host's bit length may differ from the divisor by a few percent."""
    divisor, data = 32, [0x55, 0xAA, 0x00, 0xFF, 0x3C]
    dut = UARTRx(divisor)
    got = []

    async def drive(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3)
        for length in (31, 33):               # -3 % and +3 % bit times (the limit is ~5 %)
            for b in data:
                for bit in frame_bits(b):
                    ctx.set(dut.rx, bit)
                    await ctx.tick().repeat(length)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(80)

    run(dut, drive, processes=[collector(dut.data, got)])
    assert got == data + data


@pytest.mark.parametrize("divisor", [4, 9])
def test_rx_framing_error_recovers(divisor):
    """A bad stop bit drops the byte and pulses frame_error; a long break (line low) is one error;
    a glitch shorter than half a bit is no start bit; reception goes on after the line idles."""
    dut = UARTRx(divisor)
    got, errors = [], []

    async def drive(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        seq = [(0x11, 1), (0x22, 0), (0x33, 1)]
        for b, stop in seq:
            for bit in frame_bits(b, stop):
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(divisor)
            if not stop:                       # after a framing error the line must idle again
                ctx.set(dut.rx, 1)
                await ctx.tick().repeat(divisor)
        ctx.set(dut.rx, 0)                      # break: 3 byte times low
        await ctx.tick().repeat(30 * divisor)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(2 * divisor)
        ctx.set(dut.rx, 0)                      # glitch
        await ctx.tick().repeat(divisor // 2 - 1)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        for bit in frame_bits(0x44):
            ctx.set(dut.rx, bit)
            await ctx.tick().repeat(divisor)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)

    async def watch(ctx):
        async for _, _, fe in ctx.tick().sample(dut.frame_error):
            if fe:
                errors.append(1)

    run(dut, drive, processes=[collector(dut.data, got), watch])
    assert got == [0x11, 0x33, 0x44]
    assert len(errors) == 2


def test_rx_fifo_absorbs_stalled_consumer():
    divisor, depth = 4, 8
    dut = UARTRx(divisor, fifo_depth=depth)
    data = list(range(40, 40 + depth))
    got = []

    async def bench(ctx):
        ctx.set(dut.rx, 1)
        ctx.set(dut.data.ready, 0)
        await ctx.tick().repeat(3)
        for b in data:
            for bit in frame_bits(b):
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(divisor)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(2 * divisor)
        ctx.set(dut.data.ready, 1)
        for _ in range(2 * depth):
            if ctx.get(dut.data.valid):
                got.append(ctx.get(dut.data.payload))
            await ctx.tick()

    run(dut, bench)
    assert got == data


@pytest.mark.parametrize("divisor", [4, 6, 13])
def test_tx_back_to_back(divisor):
    rng = random.Random(100 + divisor)
    data = [rng.randrange(256) for _ in range(16)]
    dut = UARTTx(divisor)
    got = []

    async def feed(ctx):
        for b in data:
            ctx.set(dut.data.payload, b)
            ctx.set(dut.data.valid, 1)
            await ctx.tick().until(dut.data.ready)
        ctx.set(dut.data.valid, 0)

    async def line(ctx):
        # an independent receiver model: falling edge, then sample every bit in its middle
        while len(got) < len(data):
            await ctx.tick().until(~dut.tx)
            await ctx.tick().repeat(divisor // 2)
            assert ctx.get(dut.tx) == 0
            v = 0
            for i in range(8):
                await ctx.tick().repeat(divisor)
                v |= ctx.get(dut.tx) << i
            await ctx.tick().repeat(divisor)
            assert ctx.get(dut.tx) == 1, "stop bit"
            got.append(v)
        await ctx.tick().repeat(divisor)
        assert not ctx.get(dut.busy) and ctx.get(dut.tx) == 1

    run(dut, feed, line)
    assert got == data


def test_tx_rx_loopback():
    divisor = 5
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = list(range(0, 256, 7))
    got = []

    async def feed(ctx):
        for b in data:
            ctx.set(tx.data.payload, b)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    run(m, feed, processes=[collector(rx.data, got)])
    assert got == data


def test_divisor_checked():
    for bad in (3, 0, 4.0, True):
        with pytest.raises(ValueError, match="divisor"):
            UARTRx(bad)
        with pytest.raises(ValueError, match="divisor"):
            UARTTx(bad)
