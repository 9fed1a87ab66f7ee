"""The serial link: the protocol engine and the UART-attached core (docs/protocol.md is the contract).

The protocol itself (constants, framing, pixel code) is plain Python in ``eqfpga.hdl.protocol``.

``ProtocolEngine`` sits between two byte streams (from the UART receiver, to the UART transmitter)
and the ports of one ``EPCore``. It wires three parts joined by ``lib.stream`` interfaces
(``eqfpga.hdl.link_streams``) around the payload buffer (a ``Memory`` of two banks of
MAX_PAYLOAD bytes, so that the next frame is received while the current one is executed):

* ``FrameReceiver`` (``link_receiver``): request bytes -> jobs, payloads into the buffer;
* ``Executor`` (``link_executor``): jobs -> core access -> reply heads and bodies; it holds the seed
  register that drives the core's ``seed`` port (reset to ``cfg.seed``, SET_SEED / GET_SEED);
* ``ReplySender`` (``link_reply``): heads and bodies -> reply bytes, CRC appended.

``LinkedCore`` is UART + engine + core with the board-facing ports ``rx``, ``tx``, ``status`` (LEDs)
and ``idle`` (nothing in flight: lets a simulator sleep).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eqfpga.golden.config import EPConfig

from .core import EPCore
from .link_executor import Executor, core_signature
from .link_receiver import FrameReceiver
from .link_reply import ReplySender
from .link_streams import BUFFER_ADDR_BITS, REPLY_HEAD
from .local_reset import in_local_domain
from .protocol import INFO_BYTES, RX_FIFO_DEPTH, config_json, info_payload
from .stream_slice import StreamSlice
from .uart import UARTRx, UARTTx


class ProtocolEngine(wiring.Component):
    """Byte streams ``rx`` (in) / ``tx`` (out) <-> ``core`` (the flipped ``EPCore`` ports).

    ``idle``: hunting for a sync byte with nothing buffered, no job queued or running, no reply
    being sent. ``reply_ok`` / ``reply_err``: one-cycle pulses when a reply with status OK / an
    error status (not DUPLICATE) starts. ``timeout_bytes``: byte times (10 bits at ``divisor``)
    without a byte before a started frame is dropped.
    """

    def __init__(self, cfg: EPConfig, *, divisor: int, clk_hz: int, timeout_bytes: int = 256):
        if not isinstance(cfg, EPConfig):
            raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")
        if not isinstance(timeout_bytes, int) or timeout_bytes < 1:
            raise ValueError(f"timeout_bytes must be a positive integer, not {timeout_bytes!r}")
        self.cfg, self.divisor, self.clk_hz, self.timeout_bytes = cfg, divisor, clk_hz, timeout_bytes
        self.timeout_cycles = timeout_bytes * 10 * divisor
        self.info = info_payload(cfg, clk_hz=clk_hz, divisor=divisor)
        if len(self.info) != INFO_BYTES:
            raise ValueError(f"the INFO payload has {len(self.info)} bytes, the protocol {INFO_BYTES}")
        self.rom = self.info + config_json(cfg)
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "core": In(core_signature(cfg)),
            "idle": Out(1),
            "reply_ok": Out(1),
            "reply_err": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buf = Memory(shape=8, depth=1 << BUFFER_ADDR_BITS, init=[])
        m.submodules.receiver = rcv = FrameReceiver(timeout_cycles=self.timeout_cycles)
        m.submodules.executor = exe = Executor(self.cfg, rom=self.rom)
        m.submodules.sender = snd = ReplySender()
        # register slices: the reply sender's handshakes stay off the executor's paths (the
        # receiver has one of its own at its input)
        m.submodules.body_slice = body_slice = StreamSlice(8)
        m.submodules.head_slice = head_slice = StreamSlice(REPLY_HEAD)
        wiring.connect(m, wiring.flipped(self.rx), rcv.rx)
        wiring.connect(m, rcv.buffer, buf.write_port())
        wiring.connect(m, rcv.job, exe.job)
        wiring.connect(m, exe.release, rcv.release)
        wiring.connect(m, exe.buffer, buf.read_port())
        wiring.connect(m, exe.core, wiring.flipped(self.core))
        wiring.connect(m, exe.head, head_slice.i)
        wiring.connect(m, head_slice.o, snd.head)
        wiring.connect(m, exe.body, body_slice.i)
        wiring.connect(m, body_slice.o, snd.body)
        wiring.connect(m, snd.tx, wiring.flipped(self.tx))
        m.d.comb += [self.reply_ok.eq(snd.started_ok), self.reply_err.eq(snd.started_error),
                     self.idle.eq(~self.rx.valid & ~body_slice.o.valid & ~head_slice.o.valid & rcv.idle & exe.idle & ~snd.busy)]
        return m


class LinkedCore(wiring.Component):
    """UART + ``ProtocolEngine`` + ``EPCore`` for one config: the whole board design but the pins.

    ``status`` (LEDs): bit 0 core busy, bit 1 rx activity (stretched to ~50 ms), bit 2 an error
    reply was sent (sticky until the next OK), bit 3 heartbeat (toggles every 2**24 cycles).
    ``idle``: nothing in flight (the engine hunts with empty buffers, tx idle, core idle).
    """

    def __init__(self, cfg: EPConfig, *, divisor: int, clk_hz: int, timeout_bytes: int = 256,
                 weights=None, biases=None, rx_fifo_depth: int = RX_FIFO_DEPTH, local_resets: bool = False):
        if not isinstance(cfg, EPConfig):
            raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")
        self.local_resets = bool(local_resets)
        self.cfg, self.divisor, self.clk_hz = cfg, divisor, int(clk_hz)
        self.timeout_bytes, self.rx_fifo_depth = timeout_bytes, rx_fifo_depth
        self._weights, self._biases = weights, biases
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "status": Out(4),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # local_resets (the board top): a reset register for each block (hdl/local_reset.py)
        local = (lambda name, e: in_local_domain(m, name, e)) if self.local_resets else (lambda name, e: e)
        m.submodules.uart_rx = urx = local("rst_uart_rx", UARTRx(self.divisor, fifo_depth=self.rx_fifo_depth))
        m.submodules.uart_tx = utx = local("rst_uart_tx", UARTTx(self.divisor))
        m.submodules.engine = eng = local("rst_engine", ProtocolEngine(
            self.cfg, divisor=self.divisor, clk_hz=self.clk_hz, timeout_bytes=self.timeout_bytes))
        m.submodules.core = core = EPCore(cfg=self.cfg, weights=self._weights, biases=self._biases,
                                          local_resets=self.local_resets)
        wiring.connect(m, urx.data, eng.rx)
        wiring.connect(m, eng.tx, utx.data)
        wiring.connect(m, eng.core, core)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        # LEDs
        stretch = max(1, self.clk_hz // 20)
        act = Signal(range(stretch + 1))
        with m.If(urx.busy):
            m.d.sync += act.eq(stretch)
        with m.Elif(act != 0):
            m.d.sync += act.eq(act - 1)
        err = Signal()
        with m.If(eng.reply_ok):
            m.d.sync += err.eq(0)
        with m.Elif(eng.reply_err):
            m.d.sync += err.eq(1)
        beat = Signal(25)
        m.d.sync += beat.eq(beat + 1)
        m.d.comb += self.status.eq(Cat(core.busy, act != 0, err, beat[24]))
        m.d.comb += self.idle.eq(eng.idle & ~urx.busy & ~utx.busy & ~core.busy & self.rx)
        return m
