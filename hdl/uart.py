"""8N1 UART receiver and transmitter with ``lib.stream`` byte interfaces.

``divisor`` is the number of clock cycles per bit (``clk / baud`` rounded; at least 4 so that the
receiver can find the middle of a bit). Bits are LSB first: start bit 0, 8 data bits, stop bit 1.

``UARTRx`` samples every bit in its middle (``divisor // 2`` cycles after the falling edge of the
start bit, then every ``divisor`` cycles), rejects a start bit that is gone at mid-bit (a glitch),
and drops a byte whose stop bit reads 0 (framing error: ``frame_error`` pulses) and then waits for
the line to return to 1 before it hunts for the next start bit, so a break or a misaligned stream
recovers at the next idle gap. Received bytes go through a small ``SyncFIFOBuffered`` so that the
consumer may stall for a few byte times, then through an output register (``data.payload`` and
``data.valid`` are registers: the FIFO memory's read data reach nothing but that register).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out


def _check_divisor(obj, divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
        obj._MustUse__silence = True            # a refused object is not an unused one
        raise ValueError(f"divisor (clock cycles per bit) must be an integer >= 4, not {divisor!r}")


class UARTRx(wiring.Component):
    """``rx`` line in, ``data`` byte stream out (through a FIFO of ``fifo_depth`` bytes).

    ``busy``: a byte is being received or the FIFO holds bytes. ``frame_error``: one-cycle pulse
    per byte dropped for a bad stop bit. ``overflow``: one-cycle pulse per byte lost to a full FIFO.
    """

    def __init__(self, divisor: int, fifo_depth: int = 16):
        _check_divisor(self, divisor)
        self.divisor, self.fifo_depth = divisor, fifo_depth
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "busy": Out(1),
            "frame_error": Out(1),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        D = self.divisor
        # the FIFO's read data come straight from its memory (a long clock-to-out on an FPGA
        # block RAM): they go through one more register, which also holds one of the bytes
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=max(2, self.fifo_depth - 1))
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)   # rx is asynchronous to clk

        timer = Signal(range(D + 1))
        tz = Signal()                   # timer == 0, kept with the timer (its reloads are never 0)
        nbit = Signal(range(9))
        shreg = Signal(8)
        push = Signal()
        m.d.comb += [fifo.w_data.eq(shreg), fifo.w_en.eq(push),
                     self.overflow.eq(push & ~fifo.w_rdy)]
        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += [timer.eq(D // 2 - 1), tz.eq(0)]
                    m.next = "START"
            with m.State("START"):
                m.d.comb += self.busy.eq(1)
                with m.If(~tz):
                    m.d.sync += [timer.eq(timer - 1), tz.eq(timer == 1)]
                with m.Elif(line):              # gone at mid-bit: a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(D - 1), tz.eq(0), nbit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.busy.eq(1)
                with m.If(~tz):
                    m.d.sync += [timer.eq(timer - 1), tz.eq(timer == 1)]
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), timer.eq(D - 1), tz.eq(0), nbit.eq(nbit + 1)]
                    with m.If(nbit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.comb += self.busy.eq(1)
                with m.If(~tz):
                    m.d.sync += [timer.eq(timer - 1), tz.eq(timer == 1)]
                with m.Elif(line):
                    # back to IDLE at mid stop bit: the next start edge may come half a bit later
                    m.d.comb += push.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.frame_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):              # framing error: resynchronise on the idle level
                m.d.comb += self.busy.eq(1)
                with m.If(line):
                    m.next = "IDLE"

        out_full, out_data = Signal(), Signal(8)
        m.d.comb += [
            self.data.payload.eq(out_data),
            self.data.valid.eq(out_full),
            fifo.r_en.eq(~out_full | self.data.ready),
        ]
        with m.If(fifo.r_rdy & fifo.r_en):
            m.d.sync += [out_full.eq(1), out_data.eq(fifo.r_data)]
        with m.Elif(self.data.ready):
            m.d.sync += out_full.eq(0)
        with m.If(fifo.r_rdy | out_full):
            m.d.comb += self.busy.eq(1)
        return m


class UARTTx(wiring.Component):
    """``data`` byte stream in, ``tx`` line out. ``busy``: a byte is on the line."""

    def __init__(self, divisor: int):
        _check_divisor(self, divisor)
        self.divisor = divisor
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        D = self.divisor
        shreg = Signal(10, init=0x3FF)      # the bits still to send, LSB next; idle level 1
        left = Signal(range(11))
        timer = Signal(range(D))
        m.d.comb += [self.tx.eq(shreg[0]), self.busy.eq(left != 0),
                     self.data.ready.eq(left == 0)]
        with m.If(left == 0):
            with m.If(self.data.valid):
                m.d.sync += [shreg.eq(Cat(0, self.data.payload, 1)), left.eq(10), timer.eq(D - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shreg.eq(Cat(shreg[1:], 1)), left.eq(left - 1), timer.eq(D - 1)]
        return m
