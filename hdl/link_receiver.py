"""The receiving part of the protocol engine: request bytes in, jobs out (docs/protocol.md).

``FrameReceiver`` hunts for the request sync byte, reads the header, writes the payload into one of
the two banks of the payload buffer and feeds every byte after the sync byte, the frame's own CRC
included, through the library CRC (``FRAME_CRC``): after the last CRC byte ``match_detected`` says
whether the frame is intact. Each frame becomes one job (``JOB``): a checked frame with its bank,
or an error to answer (BAD_LENGTH, BAD_CRC, TIMEOUT) with the ``swallowed`` flag. The job leaves
through a one-entry slot, so the receiver hunts for the next frame while a job waits; a bank is
filled only after the executor has released it.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out

from .stream_slice import StreamSlice
from .link_streams import BANK_ADDR_BITS, BUFFER_ADDR_BITS, FRAME_CRC, JOB, LENGTH_BITS, STATUS_BITS
from .protocol import CRC_BYTES, MAX_PAYLOAD, SYNC_REQUEST, Status


RX_BYTE = data.StructLayout({
    "data": 8,
    "sync": 1,      # data == SYNC_REQUEST
    "zero": 1,      # data == 0
    "one": 1,       # data == 1
    "above": 1,     # data > MAX_PAYLOAD >> 8 (as a length's high byte: above MAX_PAYLOAD)
    "at": 1,        # data == MAX_PAYLOAD >> 8
})


class FrameReceiver(wiring.Component):
    """``rx`` request bytes -> ``job`` (one per frame), payloads into the buffer over ``buffer``.

    ``release``: the executor is done with a bank (payload: the bank). ``timeout_cycles``: cycles
    without a byte before a started frame is dropped. ``idle``: hunting, no job waiting, both
    banks free.
    """

    def __init__(self, *, timeout_cycles: int):
        if not isinstance(timeout_cycles, int) or timeout_cycles < 1:
            raise ValueError(f"timeout_cycles must be a positive integer, not {timeout_cycles!r}")
        self.timeout_cycles = timeout_cycles
        super().__init__({
            "rx": In(stream.Signature(8)),
            "job": Out(stream.Signature(JOB)),
            "release": In(stream.Signature(1, always_ready=True)),
            # the payload buffer's write port (driven from here)
            "buffer": In(WritePort.Signature(addr_width=BUFFER_ADDR_BITS, shape=8)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = FRAME_CRC.create()
        job = self.job.payload

        # banks: busy from queueing a checked frame until the executor releases it
        bank_busy = Signal(2)
        bank_set, bank_clr = Signal(2), Signal(2)
        m.d.sync += bank_busy.eq((bank_busy | bank_set) & ~bank_clr)
        with m.If(self.release.valid):
            m.d.comb += bank_clr.eq(Mux(self.release.payload, 0b10, 0b01))

        # the job slot: valid until the executor takes the job
        put = Signal()
        with m.If(put):
            m.d.sync += self.job.valid.eq(1)
        with m.Elif(self.job.ready):
            m.d.sync += self.job.valid.eq(0)

        bank = Signal()                 # the bank the next payload goes into
        seq, cmd = Signal(8), Signal(8)
        length = Signal(16)
        pos = Signal(BANK_ADDR_BITS + 1)
        crc_k = Signal(range(CRC_BYTES))
        status = Signal(STATUS_BITS)    # the error of a dropped frame
        timer = Signal(range(self.timeout_cycles + 1))
        # the bytes come through a register slice, with the facts the state machine needs about
        # each computed before it (so that its decisions start from flip-flops)
        hi = MAX_PAYLOAD >> 8
        assert MAX_PAYLOAD % 256 == 0
        m.submodules.rx_slice = rs = StreamSlice(RX_BYTE)
        rin = self.rx.payload
        m.d.comb += [rs.i.valid.eq(self.rx.valid), self.rx.ready.eq(rs.i.ready),
                     rs.i.payload.data.eq(rin), rs.i.payload.sync.eq(rin == SYNC_REQUEST),
                     rs.i.payload.zero.eq(rin == 0), rs.i.payload.one.eq(rin == 1),
                     rs.i.payload.above.eq(rin > hi), rs.i.payload.at.eq(rin == hi)]
        rx = rs.o
        # in the states that take bytes (rx.ready = 1) a byte is taken when rx.valid: their
        # branches use it directly, not the shared handshake
        byte, valid, bf = rx.payload.data, rx.valid, rx.payload
        # the bank about to be filled is free (registered: cleared as a frame takes it, then
        # recomputed from bank_busy and bank)
        can_fill = Signal()
        m.d.sync += can_fill.eq(~bank_busy.bit_select(bank, 1))
        m.d.comb += [crc.data.eq(byte),
                     self.buffer.addr.eq(Cat(pos[:BANK_ADDR_BITS], bank)), self.buffer.data.eq(byte)]
        in_frame = Signal()
        lo_zero = Signal()              # the length's low byte is 0
        lo_one = Signal()               # ... is 1
        rem = Signal(BANK_ADDR_BITS + 1)    # payload bytes still to come (length - pos)
        plast = Signal()                # rem == 1, kept with rem
        crc_ok = Signal()               # the frame's CRC matched (registered)
        # a sync byte inside a frame that is then dropped means a real request may be in there
        swallowed = Signal()
        with m.If(in_frame & valid & bf.sync):
            m.d.sync += swallowed.eq(1)
        waiting = in_frame & ~valid
        with m.If(waiting):
            m.d.sync += timer.eq(timer + 1)
        with m.Else():
            m.d.sync += timer.eq(0)
        # a started frame whose bytes stop coming is dropped (checked in every in-frame state);
        # timer == timeout_cycles, kept as a flag beside the timer (the compare is a cycle ahead)
        t_full = Signal()
        m.d.sync += t_full.eq(waiting & (timer == self.timeout_cycles - 1))
        timed_out = t_full & ~valid

        def take_byte():
            m.d.comb += [rx.ready.eq(1), in_frame.eq(1), crc.valid.eq(valid)]
            with m.If(timed_out):
                m.d.sync += status.eq(Status.TIMEOUT)
                m.next = "ERROR"

        with m.FSM(name="rx") as fsm:
            with m.State("HUNT"):
                # the bank about to be filled must have been released by the executor
                m.d.comb += rx.ready.eq(can_fill)
                # the CRC register waits at its initial value (start from the state alone keeps
                # it off the byte compare; the sync byte itself is not covered)
                m.d.comb += crc.start.eq(1)
                with m.If(can_fill & valid & bf.sync):
                    m.d.sync += [seq.eq(0), pos.eq(0), crc_k.eq(0), swallowed.eq(0)]
                    m.next = "SEQ"
            for state, after, reg in (("SEQ", "CMD", seq), ("CMD", "LEN0", cmd), ("LEN0", "LEN1", length[:8])):
                with m.State(state):
                    take_byte()
                    with m.If(valid):
                        m.d.sync += reg.eq(byte)
                        if state == "LEN0":
                            m.d.sync += [lo_zero.eq(bf.zero), lo_one.eq(bf.one)]
                        m.next = after
            with m.State("LEN1"):
                take_byte()
                # MAX_PAYLOAD is a power of two: the length is above it when the high byte is
                # above its high byte, or equal with low bits set (lo_zero: kept from LEN0)
                with m.If(valid):
                    m.d.sync += [length[8:].eq(byte), rem.eq(Cat(length[:8], byte)),
                                 plast.eq(lo_one & bf.zero)]
                    with m.If(bf.above | (bf.at & ~lo_zero)):
                        m.d.sync += status.eq(Status.BAD_LENGTH)
                        m.next = "ERROR"
                    with m.Elif(bf.zero & lo_zero):
                        m.next = "CRC"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                take_byte()
                m.d.comb += self.buffer.en.eq(valid)
                with m.If(valid):
                    m.d.sync += [pos.eq(pos + 1), rem.eq(rem - 1), plast.eq(rem == 2)]
                    with m.If(plast):
                        m.next = "CRC"
            with m.State("CRC"):                # the frame's CRC goes through the CRC register too
                take_byte()
                with m.If(valid):
                    m.d.sync += crc_k.eq(crc_k + 1)
                    with m.If(crc_k == CRC_BYTES - 1):
                        m.next = "CRC_CHK"
            with m.State("CRC_CHK"):            # the CRC register's verdict, registered
                m.d.sync += crc_ok.eq(crc.match_detected)
                m.next = "QUEUE"
            with m.State("QUEUE"):
                with m.If(~self.job.valid):
                    m.d.comb += put.eq(1)
                    m.d.sync += [job.seq.eq(seq), job.cmd.eq(cmd), job.bank.eq(bank)]
                    with m.If(crc_ok):                      # intact: hand its bank over
                        m.d.comb += bank_set.eq(Mux(bank, 0b10, 0b01))
                        m.d.sync += can_fill.eq(0)
                        m.d.sync += [job.status.eq(Status.OK), job.length.eq(length[:LENGTH_BITS]),
                                     job.swallowed.eq(0), bank.eq(~bank)]
                    with m.Else():
                        m.d.sync += [job.status.eq(Status.BAD_CRC), job.length.eq(0),
                                     job.swallowed.eq(swallowed)]
                    m.next = "HUNT"
            with m.State("ERROR"):
                with m.If(~self.job.valid):
                    m.d.comb += put.eq(1)
                    m.d.sync += [job.status.eq(status), job.seq.eq(seq), job.cmd.eq(cmd),
                                 job.length.eq(0), job.bank.eq(bank), job.swallowed.eq(swallowed)]
                    m.next = "HUNT"

        m.d.comb += self.idle.eq(fsm.ongoing("HUNT") & ~rx.valid & ~self.job.valid & (bank_busy == 0))
        return m
