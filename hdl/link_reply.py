"""The sending part of the protocol engine: reply heads and bodies in, reply frames out.

``ReplySender`` turns each head (seq, status, length) and the ``length`` body bytes that follow it
into the bytes of a reply frame (sync byte, header, body) and passes them through ``CRCAppender``,
which appends the frame CRC computed by the library CRC (``FRAME_CRC``) as the bytes leave.
"""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .link_streams import FRAME_BYTE, FRAME_CRC, REPLY_HEAD
from .protocol import CRC_BYTES, SYNC_REPLY, Status
from .stream_slice import StreamSlice


class CRCAppender(wiring.Component):
    """``frames`` (bytes, ``last`` on each frame's final byte) -> ``tx``: the same bytes, each
    frame followed by its CRC-32 (little-endian, as ``eqfpga.hdl.protocol.crc32`` computes it).

    The first ``skip`` bytes of each frame pass without entering the CRC (a reply's sync byte).
    Bytes leave through a one-byte output register and enter the CRC from it as they leave: the
    CRC's data and start are registers, its enable the register's handshake. ``busy``: a byte or a
    CRC is on its way.
    """

    def __init__(self, *, skip: int = 0):
        if not isinstance(skip, int) or skip < 0:
            raise ValueError(f"skip must be a non-negative integer, not {skip!r}")
        self.skip = skip
        super().__init__({
            "frames": In(stream.Signature(FRAME_BYTE)),
            "tx": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = FRAME_CRC.create()
        full, q = Signal(), Signal(8)
        q_first = Signal()              # the register holds a frame's first byte: starts the CRC
        q_counted = Signal()            # enters the CRC as it leaves
        first = Signal(init=1)          # the next byte taken is a frame's first
        lead = Signal(range(self.skip + 1))    # bytes of this frame taken so far, up to skip
        k = Signal(range(CRC_BYTES))
        leaves = full & self.tx.ready
        m.d.comb += [self.tx.valid.eq(full), self.tx.payload.eq(q),
                     crc.data.eq(q), crc.valid.eq(leaves & q_counted),
                     # while a frame's first byte waits the CRC register holds its initial value
                     crc.start.eq(q_first)]
        with m.If(leaves):
            m.d.sync += [full.eq(0), q_first.eq(0)]

        with m.FSM(name="append") as fsm:
            with m.State("DATA"):
                m.d.comb += self.frames.ready.eq(~full)
                with m.If(self.frames.valid & ~full):
                    m.d.sync += [full.eq(1), q.eq(self.frames.payload.data), first.eq(0),
                                 q_first.eq(first), q_counted.eq(lead == self.skip)]
                    with m.If(self.frames.payload.last):
                        m.d.sync += [first.eq(1), lead.eq(0), k.eq(0)]
                        m.next = "CRC"
                    with m.Elif(lead != self.skip):
                        m.d.sync += lead.eq(lead + 1)
            with m.State("CRC"):
                # the register is empty: the frame's last byte has left and entered the CRC
                with m.If(~full):
                    m.d.sync += [full.eq(1), q.eq(crc.crc.word_select(k, 8)),
                                 q_first.eq(0), q_counted.eq(0), k.eq(k + 1)]
                    with m.If(k == CRC_BYTES - 1):
                        m.next = "DATA"

        m.d.comb += self.busy.eq(full | ~fsm.ongoing("DATA"))
        return m


class ReplySender(wiring.Component):
    """``head`` + ``body`` -> ``tx``: one reply frame per head (docs/protocol.md, "Frames").

    After a head is taken, exactly ``head.length`` bytes are taken from ``body``. ``started_ok`` /
    ``started_error``: one-cycle pulses when a reply with status OK / an error status (not
    DUPLICATE) starts. ``busy``: a reply is being sent.
    """

    head: In(stream.Signature(REPLY_HEAD))
    body: In(stream.Signature(8))
    tx: Out(stream.Signature(8))
    started_ok: Out(1)
    started_error: Out(1)
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.append = app = CRCAppender(skip=1)
        # a register slice before the appender: its handshake is off the sender's paths
        m.submodules.frame_slice = fs = StreamSlice(FRAME_BYTE)
        wiring.connect(m, fs.o, app.frames)
        wiring.connect(m, app.tx, wiring.flipped(self.tx))
        out = fs.i
        head = Signal(REPLY_HEAD)       # the reply being sent
        k = Signal(2)                   # header byte after the sync byte
        left = Signal.like(head.length)     # body bytes still to pass
        empty = Signal()                # head.length == 0, registered with the head
        last1 = Signal()                # left == 1, kept with left

        with m.FSM(name="reply") as fsm:
            with m.State("IDLE"):
                # the sync byte goes out as the head is taken
                m.d.comb += [out.valid.eq(self.head.valid), out.payload.data.eq(SYNC_REPLY),
                             self.head.ready.eq(out.ready)]
                with m.If(self.head.valid & out.ready):
                    status = self.head.payload.status
                    m.d.comb += [self.started_ok.eq(status == Status.OK),
                                 self.started_error.eq((status != Status.OK) & (status != Status.DUPLICATE))]
                    m.d.sync += [head.eq(self.head.payload), left.eq(self.head.payload.length), k.eq(0)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                # from the registered head (needed from the last header byte on, 3 cycles later)
                m.d.sync += [empty.eq(head.length == 0), last1.eq(head.length == 1)]
                m.d.comb += [out.valid.eq(1),
                             out.payload.data.eq(Array([head.seq, head.status, head.length[:8],
                                                        head.length[8:]])[k]),
                             out.payload.last.eq((k == 3) & empty)]
                with m.If(out.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == 3):
                        with m.If(empty):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += [out.valid.eq(self.body.valid), out.payload.data.eq(self.body.payload),
                             out.payload.last.eq(last1), self.body.ready.eq(out.ready)]
                with m.If(self.body.valid & out.ready):
                    m.d.sync += [left.eq(left - 1), last1.eq(left == 2)]
                    with m.If(last1):
                        m.next = "IDLE"

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | fs.o.valid | app.busy)
        return m
