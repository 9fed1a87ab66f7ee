"""The serial link: protocol engine and the UART-attached core (docs/protocol.md is the contract).

The protocol itself (constants, framing, pixel code) is plain Python in ``eqfpga.hdl.protocol``.

``ProtocolEngine`` sits between two byte streams (from the UART receiver, to the UART transmitter)
and the ports of one ``EPCore``. It has two halves joined by a one-entry job slot:

* the **receiver** hunts for the sync byte, reads the header, writes the payload into one of two
  banks of the payload buffer (a ``Memory`` of 2 x MAX_PAYLOAD bytes) while computing the CRC,
  and queues either a checked frame or an error (BAD_LENGTH, BAD_CRC, TIMEOUT) as a job. Two banks
  let it take in the next frame while the executor still works on the previous one.
* the **executor** takes jobs in order, validates a frame's arguments against the config before it
  touches the core, executes it, and sends exactly one reply per job, computing the reply CRC
  as the bytes leave. A TRAIN/INFER sample is streamed to the core straight from the buffer (the
  zero-run code decoded on the fly), after a first decoding pass that only checks it.

``LinkedCore`` is UART + engine + core with the board-facing ports ``rx``, ``tx``, ``status`` (LEDs)
and ``idle`` (nothing in flight: lets a simulator sleep).
"""
from __future__ import annotations


from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eqfpga.golden.config import EPConfig

from .core import Access, EPCore
from .crc import CRC32
from .protocol import (COUNTER_NAMES, CRC_BYTES, DUP_WINDOW, HEADER_BYTES, INFO_BYTES, MAX_PAYLOAD, MUTATING,
                       PARAMS_HEADER, SYNC_REPLY, SYNC_REQUEST, Cmd, ParamKind, Status, info_payload,
                       config_json, pixel_bytes, value_bytes)
from .uart import UARTRx, UARTTx


def _const_table(values, index):
    """values[index] for a small table of Python ints (index assumed in range)."""
    return Array(Const(v, max(1, max(values).bit_length())) for v in values)[index]


class ProtocolEngine(wiring.Component):
    """Byte streams ``rx`` (in) / ``tx`` (out) <-> ``core`` (the flipped ``EPCore`` ports).

    ``idle``: hunting for a sync byte with nothing buffered, no job queued or running.
    ``reply_ok`` / ``reply_err``: one-cycle pulses when a reply with status OK / an error status
    (not DUPLICATE) starts. ``timeout_bytes``: byte times (10 bits at ``divisor``) without a byte
    before a started frame is dropped.
    """

    def __init__(self, cfg: EPConfig, *, divisor: int, clk_hz: int, timeout_bytes: int = 256):
        if not isinstance(cfg, EPConfig):
            raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")
        if not isinstance(timeout_bytes, int) or timeout_bytes < 1:
            raise ValueError(f"timeout_bytes must be a positive integer, not {timeout_bytes!r}")
        self.cfg, self.divisor, self.clk_hz, self.timeout_bytes = cfg, divisor, clk_hz, timeout_bytes
        self.timeout_cycles = timeout_bytes * 10 * divisor
        self.json = config_json(cfg)
        self.info = info_payload(cfg, clk_hz=clk_hz, divisor=divisor)
        assert len(self.info) == INFO_BYTES
        shape_of_core = EPCore(cfg=cfg)          # only for its signature (port shapes)
        shape_of_core._MustUse__silence = True
        core_sig = shape_of_core.signature
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "core": In(core_sig),
            "idle": Out(1),
            "reply_ok": Out(1),
            "reply_err": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, f = self.cfg, self.cfg.fixed
        sizes, N = cfg.sizes, cfg.n_layers
        n_in, n_out = sizes[0], sizes[-1]
        core = self.core
        VBW, VBB = value_bytes(f.weight_bits), value_bytes(f.bias_bits)
        PB = pixel_bytes(f.input_frac)
        fx = f.input_frac

        # ---- memories ---------------------------------------------------------------------
        m.submodules.buf = buf = Memory(shape=8, depth=2 * MAX_PAYLOAD, init=[])
        bwr, brd = buf.write_port(), buf.read_port()
        rom_data = list(self.info) + list(self.json)
        m.submodules.rom = rom = Memory(shape=8, depth=len(rom_data), init=rom_data)
        rrd = rom.read_port()

        # ---- job slot between receiver and executor ---------------------------------------
        j_valid = Signal()
        j_status, j_seq, j_cmd = Signal(3), Signal(8), Signal(8)
        j_len, j_bank = Signal(12), Signal()
        j_swallow = Signal()    # error job: the dropped bytes held a sync byte (see Status)
        bank_busy = Signal(2)
        bank_set, bank_clr = Signal(2), Signal(2)
        j_put, j_take = Signal(), Signal()
        m.d.sync += bank_busy.eq((bank_busy | bank_set) & ~bank_clr)
        with m.If(j_put):
            m.d.sync += j_valid.eq(1)
        with m.Elif(j_take):
            m.d.sync += j_valid.eq(0)

        # ---- receiver ---------------------------------------------------------------------
        m.submodules.rx_crc = rx_crc = CRC32()
        r_bank = Signal()
        r_seq, r_cmd = Signal(8), Signal(8)
        r_len = Signal(16)
        r_pos = Signal(12)
        r_crc = Signal(32)
        r_k = Signal(2)
        r_status = Signal(3)
        tcount = Signal(range(self.timeout_cycles + 1))
        byte, fire = self.rx.payload, self.rx.valid & self.rx.ready
        m.d.comb += [rx_crc.data.eq(byte), bwr.addr.eq(Cat(r_pos[:11], r_bank)), bwr.data.eq(byte)]
        in_frame = Signal()
        # a sync byte inside a frame that is then dropped means a real request may be in there
        r_swallow = Signal()
        with m.If(in_frame & fire & (byte == SYNC_REQUEST)):
            m.d.sync += r_swallow.eq(1)
        with m.If(in_frame & ~self.rx.valid):
            m.d.sync += tcount.eq(tcount + 1)
        with m.Else():
            m.d.sync += tcount.eq(0)
        # a started frame whose bytes stop coming is dropped (checked in every in-frame state)
        timed_out = (tcount == self.timeout_cycles) & ~self.rx.valid

        def check_timeout():
            with m.If(timed_out):
                m.d.sync += r_status.eq(Status.TIMEOUT)
                m.next = "ERROR"

        with m.FSM(name="rx") as rfsm:
            with m.State("HUNT"):
                # the bank about to be filled must have been released by the executor
                m.d.comb += self.rx.ready.eq(~bank_busy.bit_select(r_bank, 1))
                with m.If(fire & (byte == SYNC_REQUEST)):
                    m.d.comb += rx_crc.clear.eq(1)
                    m.d.sync += [r_seq.eq(0), r_pos.eq(0), r_k.eq(0), r_swallow.eq(0)]
                    m.next = "SEQ"
            for st, nxt, reg in (("SEQ", "CMD", r_seq), ("CMD", "LEN0", r_cmd)):
                with m.State(st):
                    m.d.comb += [self.rx.ready.eq(1), in_frame.eq(1), rx_crc.valid.eq(fire)]
                    with m.If(fire):
                        m.d.sync += reg.eq(byte)
                        m.next = nxt
                    check_timeout()
            with m.State("LEN0"):
                m.d.comb += [self.rx.ready.eq(1), in_frame.eq(1), rx_crc.valid.eq(fire)]
                with m.If(fire):
                    m.d.sync += r_len[:8].eq(byte)
                    m.next = "LEN1"
                check_timeout()
            with m.State("LEN1"):
                m.d.comb += [self.rx.ready.eq(1), in_frame.eq(1), rx_crc.valid.eq(fire)]
                with m.If(fire):
                    m.d.sync += r_len[8:].eq(byte)
                    with m.If(Cat(r_len[:8], byte) > MAX_PAYLOAD):
                        m.d.sync += r_status.eq(Status.BAD_LENGTH)
                        m.next = "ERROR"
                    with m.Elif(Cat(r_len[:8], byte) == 0):
                        m.next = "CRC"
                    with m.Else():
                        m.next = "PAYLOAD"
                check_timeout()
            with m.State("PAYLOAD"):
                m.d.comb += [self.rx.ready.eq(1), in_frame.eq(1), rx_crc.valid.eq(fire),
                             bwr.en.eq(fire)]
                with m.If(fire):
                    m.d.sync += r_pos.eq(r_pos + 1)
                    with m.If(r_pos + 1 == r_len):
                        m.next = "CRC"
                check_timeout()
            with m.State("CRC"):
                m.d.comb += [self.rx.ready.eq(1), in_frame.eq(1)]
                with m.If(fire):
                    m.d.sync += [r_crc.eq(Cat(r_crc[8:], byte)), r_k.eq(r_k + 1)]
                    with m.If(r_k == 3):
                        m.next = "CHECK"
                check_timeout()
            with m.State("CHECK"):
                with m.If(r_crc == rx_crc.value):
                    m.next = "QUEUE"
                with m.Else():
                    m.d.sync += r_status.eq(Status.BAD_CRC)
                    m.next = "ERROR"
            with m.State("QUEUE"):              # a checked frame: hand its bank over
                with m.If(~j_valid):
                    m.d.comb += [j_put.eq(1), bank_set.eq(Mux(r_bank, 0b10, 0b01))]
                    m.d.sync += [j_status.eq(Status.OK), j_seq.eq(r_seq), j_cmd.eq(r_cmd),
                                 j_len.eq(r_len), j_bank.eq(r_bank), r_bank.eq(~r_bank)]
                    m.next = "HUNT"
            with m.State("ERROR"):
                with m.If(~j_valid):
                    m.d.comb += j_put.eq(1)
                    m.d.sync += [j_status.eq(r_status), j_seq.eq(r_seq), j_cmd.eq(r_cmd),
                                 j_swallow.eq(r_swallow),
                                 j_len.eq(0)]
                    m.next = "HUNT"

        # ---- executor ---------------------------------------------------------------------
        e_status, e_seq, e_cmd = Signal(3), Signal(8), Signal(8)
        e_len, e_bank, e_holds = Signal(12), Signal(), Signal()
        j_swallow_e = Signal()
        args = Signal(64)
        a_kind, a_layer = args[0:8], args[8:16]
        a_row, a_col, a_count = args[16:32], args[32:48], args[48:64]
        a_u16_0, a_u16_1, a_u32 = args[0:16], args[16:32], args[0:32]

        # payload buffer reader: a prefetch queue of 4 bytes in registers. ``rbyte`` (a register)
        # is buf[bank][pos] when ``rvalid``; ``step`` (only with rvalid) moves to pos + 1, ``load``
        # jumps to load_val (the first byte is there 4 cycles later). The buffer's read data go
        # into a plain register first (a block RAM's clock-to-out is long: nothing else follows).
        pos = Signal(12)
        step, load = Signal(), Signal()
        load_val = Signal(12)
        with m.If(load):
            m.d.sync += pos.eq(load_val)
        with m.Elif(step):
            m.d.sync += pos.eq(pos + 1)
        fpos = Signal(11)            # the next byte to fetch
        QD = 4
        fetched = Signal()           # a read was issued last cycle: brd.data is its byte
        fetched2 = Signal()          # ... two cycles ago: bq is its byte
        bq = Signal(8)
        m.d.sync += bq.eq(brd.data)
        qn = Signal(range(QD + 1))   # bytes in the queue
        q = [Signal(8, name=f"rq{i}") for i in range(QD)]
        rbyte, rvalid = q[0], Signal()
        m.d.comb += [rvalid.eq(qn != 0), brd.addr.eq(Cat(fpos, e_bank))]
        issue = Signal()
        m.d.comb += issue.eq((qn + fetched + fetched2) < QD)
        with m.If(load):
            m.d.sync += [fpos.eq(load_val[:11]), fetched.eq(0), fetched2.eq(0), qn.eq(0)]
        with m.Else():
            m.d.sync += [fetched.eq(issue), fetched2.eq(fetched)]
            with m.If(issue):
                m.d.sync += fpos.eq(fpos + 1)
            m.d.sync += qn.eq(qn + fetched2 - step)
            for i in range(QD):
                with m.If(step):
                    with m.If(fetched2 & (qn == i + 1)):
                        m.d.sync += q[i].eq(bq)
                    with m.Elif(i + 1 < QD):
                        m.d.sync += q[i].eq(q[i + 1 if i + 1 < QD else i])
                with m.Elif(fetched2 & (qn == i)):
                    m.d.sync += q[i].eq(bq)

        # ROM reader: the address is a register, the read data go into a plain register (rom_q);
        # rom_q is rom[rpos] two cycles after rpos last changed (rom_ok)
        rpos = Signal(range(len(rom_data) + 1))
        rstep, rload = Signal(), Signal()
        rload_val = Signal.like(rpos)
        with m.If(rload):
            m.d.sync += rpos.eq(rload_val)
        with m.Elif(rstep):
            m.d.sync += rpos.eq(rpos + 1)
        m.d.comb += rrd.addr.eq(rpos)
        rom_q = Signal(8)
        rsettle = Signal(2)
        m.d.sync += [rom_q.eq(rrd.data), rsettle.eq(Cat(rload | rstep, rsettle[0]))]
        rom_ok = Signal()
        m.d.comb += rom_ok.eq(rsettle == 0)

        def free_bank():
            with m.If(e_holds):
                m.d.comb += bank_clr.eq(Mux(e_bank, 0b10, 0b01))
                m.d.sync += e_holds.eq(0)

        # duplicate detection: the last DUP_WINDOW executed mutating requests
        d_valid = Signal(DUP_WINDOW)
        d_seq = [Signal(8, name=f"d_seq{i}") for i in range(DUP_WINDOW)]
        d_haspred = Signal(DUP_WINDOW)
        d_pred = [Signal(8, name=f"d_pred{i}") for i in range(DUP_WINDOW)]
        dup_record, dup_haspred, dup_pred = Signal(), Signal(), Signal(8)
        with m.If(dup_record):
            m.d.sync += [d_valid.eq(Cat(1, d_valid[:-1])), d_haspred.eq(Cat(dup_haspred, d_haspred[:-1]))]
            m.d.sync += [d_seq[0].eq(e_seq), d_pred[0].eq(dup_pred)]
            for i in range(1, DUP_WINDOW):
                m.d.sync += [d_seq[i].eq(d_seq[i - 1]), d_pred[i].eq(d_pred[i - 1])]
        dup_hit = Signal()
        hit_haspred, hit_pred = Signal(), Signal(8)
        for i in reversed(range(DUP_WINDOW)):       # the newest entry wins
            with m.If(d_valid[i] & (d_seq[i] == e_seq)):
                m.d.comb += [dup_hit.eq(1), hit_haspred.eq(d_haspred[i]), hit_pred.eq(d_pred[i])]
        is_mut = Signal()
        m.d.comb += is_mut.eq((e_cmd == Cmd.WRITE_PARAMS) | (e_cmd == Cmd.TRAIN) | (e_cmd == Cmd.SET_T))

        # reply
        m.submodules.tx_crc = tx_crc = CRC32()
        rep_status = Signal(3)
        rep_len = Signal(12)
        rep_src = Signal(3)
        SRC_NONE, SRC_ROM, SRC_PRED, SRC_CNT, SRC_RP = range(5)
        k = Signal(12)           # byte index inside the current reply part
        pred = Signal(8)
        sticky_err = Signal()
        # the reply bytes go through a one-byte output register (tq); the reply CRC is computed
        # from it as each byte leaves: ``tq_clr`` (the sync byte) clears it, ``tq_crc`` feeds it.
        # ``tx_fire``: the executor hands ``tx_data`` over (the register is empty), so when the
        # first CRC byte is handed over every payload byte has left and been counted.
        tx_data = Signal(8)
        tx_emit, tx_fire, tx_crc_in = Signal(), Signal(), Signal()
        tq_full, tq_data, tq_crc, tq_clr = Signal(), Signal(8), Signal(), Signal()
        tq_go = Signal()
        m.d.comb += [tx_fire.eq(tx_emit & ~tq_full), self.tx.valid.eq(tq_full),
                     self.tx.payload.eq(tq_data), tq_go.eq(tq_full & self.tx.ready),
                     tx_crc.data.eq(tq_data), tx_crc.clear.eq(tq_go & tq_clr),
                     tx_crc.valid.eq(tq_go & tq_crc)]
        with m.If(tx_fire):
            m.d.sync += [tq_full.eq(1), tq_data.eq(tx_data), tq_crc.eq(tx_crc_in), tq_clr.eq(0)]
        with m.Elif(tq_go):
            m.d.sync += tq_full.eq(0)

        def reply(status, length=0, src=SRC_NONE):
            m.d.sync += [rep_status.eq(status), rep_len.eq(length), rep_src.eq(src), k.eq(0)]
            m.next = "HDR"

        # parameter runs (WRITE_PARAMS / READ_PARAMS)
        rows = [sizes[n + 1] for n in range(N)]
        cols = [sizes[n] for n in range(N)]
        layer_ok = a_layer < N
        lsel = Mux(layer_ok, a_layer, 0)
        nrows, ncols = _const_table(rows, lsel), _const_table(cols, lsel)
        is_bias = a_kind == ParamKind.BIAS
        vb = Mux(is_bias, VBB, VBW)
        # argument checks in two register stages (args settle in PARSE, two cycles before CHECK
        # reads these: PARSE -> CHECK0 -> CHECK)
        base_ok, run_end, run_lim = Signal(), Signal(17), Signal(range(max(rows + cols) + 1))
        m.d.sync += [base_ok.eq((a_kind <= 1) & layer_ok & (a_row < nrows) & (~is_bias | (a_col == 0))),
                     run_end.eq(Mux(is_bias, a_row, a_col) + a_count),
                     run_lim.eq(Mux(is_bias, nrows, ncols))]
        run_ok = Signal()
        m.d.sync += run_ok.eq(base_ok & (run_end <= run_lim))
        run_bytes = Signal(20)
        m.d.sync += run_bytes.eq(Mux(is_bias, a_count * VBB, a_count * VBW))
        wp_len_ok, rp_len_ok = Signal(), Signal()
        m.d.sync += [wp_len_ok.eq((e_len >= PARAMS_HEADER) & (e_len == PARAMS_HEADER + run_bytes)),
                     rp_len_ok.eq((e_len == PARAMS_HEADER) & (run_bytes <= MAX_PAYLOAD))]
        config_ok = Signal()
        m.d.sync += config_ok.eq((a_u16_0 + a_u16_1 <= len(self.json)) & (a_u16_1 <= MAX_PAYLOAD))
        vidx = Signal(16)        # value index inside the run
        wp_check = Signal()      # WRITE_PARAMS: first pass, range check only

        def fits(v, bits, nbytes):
            """v (nbytes on the wire) is the sign extension of its low `bits` bits."""
            top = v[bits - 1:8 * nbytes]
            return (top == 0) | (top == (1 << len(top)) - 1)
        vb_k = Signal(2)         # byte index inside a value
        value = Signal(32)
        acc_row = Signal(14)     # the access address of value vidx, kept with vidx
        acc_col = Signal(14)
        vidx_last = Signal()     # vidx + 1 == a_count, kept with vidx

        def vidx_reset():
            m.d.sync += [vidx.eq(0), acc_row.eq(a_row), acc_col.eq(Mux(is_bias, 0, a_col)),
                         vidx_last.eq(a_count == 1)]

        def vidx_inc():
            m.d.sync += [vidx.eq(vidx + 1), vidx_last.eq(vidx + 2 == a_count)]
            with m.If(is_bias):
                m.d.sync += acc_row.eq(acc_row + 1)
            with m.Else():
                m.d.sync += acc_col.eq(acc_col + 1)

        # sample decoding (TRAIN / INFER)
        streaming = Signal()
        px_count = Signal(range(n_in + 1))     # check pass: pixels so far (never above n_in)
        px_full = Signal()                      # px_count == n_in, kept with px_count
        px_k = Signal(2)
        px_acc = Signal(max(8, 8 * PB))
        zleft = Signal(9)
        label = Signal(8)
        px_value = Signal(8 * PB)
        if PB == 1:
            m.d.comb += px_value.eq(rbyte)
        else:
            m.d.comb += px_value.eq(Cat(px_acc[:8 * (PB - 1)], rbyte))
        px_fits = (px_value >> fx) == 0 if fx < 8 * PB else Const(1)
        # at_end (pos == e_len) and at_end1 (pos + 1 == e_len) are registers, kept with pos
        at_end, at_end1 = Signal(), Signal()
        with m.If(load):
            m.d.sync += [at_end.eq(load_val == e_len), at_end1.eq(load_val + 1 == e_len)]
        with m.Elif(step):
            m.d.sync += [at_end.eq(at_end1), at_end1.eq(pos + 2 == e_len)]
        run_sum = Signal(range(n_in + 258))

        m.d.comb += [core.learn.eq(e_cmd == Cmd.TRAIN), core.t_value.eq(a_u32),
                     core.access_rsp.ready.eq(1), core.result.ready.eq(0)]
        m.d.comb += [core.access.payload.layer.eq(a_layer), core.access.payload.row.eq(acc_row),
                     core.access.payload.col.eq(acc_col), core.access.payload.data.eq(value)]

        counters = [getattr(core, nm) for nm in COUNTER_NAMES]
        cnt_word = Array(counters)[k[2:6]]

        with m.FSM(name="exec") as efsm:
            with m.State("IDLE"):
                with m.If(j_valid):
                    m.d.comb += j_take.eq(1)
                    m.d.sync += [e_status.eq(j_status), e_seq.eq(j_seq), e_cmd.eq(j_cmd),
                                 e_len.eq(j_len), e_bank.eq(j_bank), j_swallow_e.eq(j_swallow),
                                 e_holds.eq(j_status == Status.OK), args.eq(0)]
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                with m.If(e_status != Status.OK):
                    m.d.sync += pred.eq(j_swallow_e)
                    reply(e_status, 1, SRC_PRED)
                with m.Elif(is_mut & dup_hit):
                    free_bank()
                    reply(Status.DUPLICATE, Mux(hit_haspred, 1, 0), SRC_PRED)
                    m.d.sync += pred.eq(hit_pred)
                with m.Elif((e_cmd < Cmd.INFO) | (e_cmd > Cmd.SET_T)):
                    free_bank()
                    reply(Status.UNKNOWN_CMD)
                with m.Else():
                    m.d.comb += [load.eq(1), load_val.eq(0)]
                    m.d.sync += k.eq(0)
                    m.next = "PARSE"
            with m.State("PARSE"):              # the first min(len, 8) payload bytes into args
                with m.If((k == 8) | (k == e_len)):
                    m.next = "CHECK0"
                with m.Elif(rvalid):
                    m.d.comb += step.eq(1)
                    m.d.sync += [args.word_select(k[:3], 8).eq(rbyte), k.eq(k + 1)]
            with m.State("CHECK0"):             # the argument checks settle
                m.next = "CHECK"
            with m.State("CHECK"):
                with m.Switch(e_cmd):
                    with m.Case(Cmd.INFO):
                        free_bank()
                        with m.If(e_len == 0):
                            m.d.comb += [rload.eq(1), rload_val.eq(0)]
                            reply(Status.OK, INFO_BYTES, SRC_ROM)
                        with m.Else():
                            reply(Status.BAD_ARG)
                    with m.Case(Cmd.CONFIG):
                        free_bank()
                        with m.If((e_len == 4) & config_ok):
                            m.d.comb += [rload.eq(1), rload_val.eq(INFO_BYTES + a_u16_0)]
                            reply(Status.OK, a_u16_1, SRC_ROM)
                        with m.Else():
                            reply(Status.BAD_ARG)
                    with m.Case(Cmd.WRITE_PARAMS):
                        with m.If(wp_len_ok & run_ok):
                            vidx_reset()
                            m.d.sync += [vb_k.eq(0), value.eq(0), wp_check.eq(1)]
                            with m.If(a_count == 0):
                                free_bank()
                                m.d.comb += dup_record.eq(1)
                                reply(Status.OK)
                            with m.Else():
                                m.next = "WP_VAL"
                        with m.Else():
                            free_bank()
                            reply(Status.BAD_ARG)
                    with m.Case(Cmd.READ_PARAMS):
                        free_bank()
                        with m.If(rp_len_ok & run_ok):
                            vidx_reset()
                            m.d.sync += vb_k.eq(0)
                            reply(Status.OK, run_bytes, SRC_RP)
                        with m.Else():
                            reply(Status.BAD_ARG)
                    with m.Case(Cmd.TRAIN, Cmd.INFER):
                        with m.If((e_len >= 1) & (a_kind < n_out)):
                            m.d.sync += [label.eq(a_kind), px_count.eq(0), px_full.eq(0), px_k.eq(0),
                                         streaming.eq(0)]
                            m.d.comb += [load.eq(1), load_val.eq(1)]
                            m.next = "PX"
                        with m.Else():
                            free_bank()
                            reply(Status.BAD_ARG)
                    with m.Case(Cmd.COUNTERS):
                        free_bank()
                        with m.If(e_len == 0):
                            reply(Status.OK, 4 * len(COUNTER_NAMES), SRC_CNT)
                        with m.Else():
                            reply(Status.BAD_ARG)
                    with m.Case(Cmd.SET_T):
                        free_bank()
                        with m.If(e_len == 4):
                            # the core is idle here: the previous job's sample has finished
                            m.d.comb += [core.t_set.eq(1), dup_record.eq(1)]
                            reply(Status.OK)
                        with m.Else():
                            reply(Status.BAD_ARG)

            # ---- WRITE_PARAMS: assemble each value from vb bytes, write it over access
            with m.State("WP_VAL"):
                nv = Signal(32)
                m.d.comb += nv.eq(value | (rbyte << (vb_k * 8)))
                with m.If(~rvalid):
                    pass
                with m.Elif(vb_k + 1 != vb):
                    m.d.comb += step.eq(1)
                    m.d.sync += [value.eq(nv), vb_k.eq(vb_k + 1)]
                with m.Else():
                    m.d.comb += step.eq(1)
                    with m.If(wp_check):
                        # first pass: every value must be a sign-extended `bits`-bit integer
                        m.d.sync += [value.eq(0), vb_k.eq(0)]
                        vidx_inc()
                        with m.If(~Mux(is_bias, fits(nv, f.bias_bits, VBB), fits(nv, f.weight_bits, VBW))):
                            m.next = "BAD_ARG"
                        with m.Elif(vidx_last):
                            m.d.comb += [load.eq(1), load_val.eq(PARAMS_HEADER)]
                            m.d.sync += wp_check.eq(0)
                            vidx_reset()
                    with m.Else():
                        # sign-extend from vb bytes (the wire carries sign-extended values)
                        m.d.sync += value.eq(Mux(is_bias, nv[:8 * VBB].as_signed(), nv[:8 * VBW].as_signed()))
                        m.next = "WP_ACC"
            with m.State("WP_ACC"):
                m.d.comb += [core.access.valid.eq(1), core.access.payload.op.eq(
                    Mux(is_bias, Access.WRITE_BIAS, Access.WRITE_WEIGHT))]
                with m.If(core.access.ready):
                    m.next = "WP_RSP"
            with m.State("WP_RSP"):
                with m.If(core.access_rsp.valid):
                    m.d.sync += [vb_k.eq(0), value.eq(0)]
                    vidx_inc()
                    with m.If(vidx_last):
                        free_bank()
                        m.d.comb += dup_record.eq(1)
                        reply(Status.OK)
                    with m.Else():
                        m.next = "WP_VAL"

            # ---- TRAIN / INFER: decode the zero-run code, first to check it, then to stream it
            with m.State("PX"):
                with m.If(at_end & (px_k == 0)):
                    with m.If(streaming):
                        m.next = "LABEL"
                    with m.Elif(px_full):
                        m.d.sync += [streaming.eq(1), px_count.eq(0), px_full.eq(0)]
                        m.d.comb += [load.eq(1), load_val.eq(1)]
                    with m.Else():
                        m.next = "BAD_ARG"
                with m.Elif(at_end):
                    m.next = "BAD_ARG"           # the payload ends inside a pixel value
                with m.Elif(~rvalid):
                    pass
                with m.Elif(px_k + 1 < PB):
                    m.d.comb += step.eq(1)
                    m.d.sync += [px_acc.word_select(px_k, 8).eq(rbyte), px_k.eq(px_k + 1)]
                with m.Elif(px_value == 0):
                    m.d.comb += step.eq(1)
                    m.d.sync += px_k.eq(0)
                    m.next = "RUN"
                with m.Elif(~streaming):
                    with m.If(~px_fits | px_full):
                        m.next = "BAD_ARG"
                    with m.Else():
                        m.d.comb += step.eq(1)
                        m.d.sync += [px_count.eq(px_count + 1), px_full.eq(px_count == n_in - 1),
                                     px_k.eq(0)]
                with m.Else():
                    m.d.comb += [core.sample.valid.eq(1), core.sample.payload.eq(px_value)]
                    with m.If(core.sample.ready):
                        m.d.comb += step.eq(1)
                        m.d.sync += px_k.eq(0)
            with m.State("RUN"):
                with m.If(at_end):
                    m.next = "BAD_ARG"           # a zero without its run length
                with m.Elif(rvalid):
                    m.d.comb += step.eq(1)
                    with m.If(streaming):
                        m.d.sync += zleft.eq(rbyte + 1)
                        m.next = "ZEROS"
                    with m.Else():
                        m.d.sync += run_sum.eq(px_count + rbyte + 1)
                        m.next = "RUN_CHK"
            with m.State("RUN_CHK"):                # check pass: the run must fit in the sample
                with m.If(run_sum > n_in):
                    m.next = "BAD_ARG"
                with m.Else():
                    m.d.sync += [px_count.eq(run_sum), px_full.eq(run_sum == n_in)]
                    m.next = "PX"
            with m.State("BAD_ARG"):
                free_bank()
                reply(Status.BAD_ARG)
            with m.State("ZEROS"):
                m.d.comb += [core.sample.valid.eq(1), core.sample.payload.eq(0)]
                with m.If(core.sample.ready):
                    m.d.sync += zleft.eq(zleft - 1)
                    with m.If(zleft == 1):
                        m.next = "PX"
            with m.State("LABEL"):
                m.d.comb += [core.sample.valid.eq(1), core.sample.payload.eq(label)]
                with m.If(core.sample.ready):
                    free_bank()                     # the next frame may now be received into it
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += core.result.ready.eq(1)
                with m.If(core.result.valid):
                    m.d.sync += pred.eq(core.result.payload)
                    with m.If(e_cmd == Cmd.TRAIN):
                        m.d.comb += [dup_record.eq(1), dup_haspred.eq(1), dup_pred.eq(core.result.payload)]
                    reply(Status.OK, 1, SRC_PRED)

            # ---- the reply: header, payload from rep_src, CRC
            with m.State("HDR"):
                m.d.comb += [tx_emit.eq(1), tx_crc_in.eq(k != 0),
                             tx_data.eq(Array([Const(SYNC_REPLY, 8), e_seq, rep_status,
                                               rep_len[:8], rep_len[8:]])[k[:3]])]
                with m.If(tx_fire):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == 0):
                        m.d.sync += tq_clr.eq(1)        # the sync byte starts the reply CRC
                        m.d.comb += [self.reply_ok.eq(rep_status == Status.OK),
                                     self.reply_err.eq((rep_status != Status.OK)
                                                       & (rep_status != Status.DUPLICATE))]
                    with m.If(k == 4):
                        m.d.sync += k.eq(0)
                        with m.If(rep_len == 0):
                            m.next = "TXCRC"
                        with m.Else():
                            with m.Switch(rep_src):
                                with m.Case(SRC_ROM):
                                    m.next = "P_ROM"
                                with m.Case(SRC_PRED):
                                    m.next = "P_PRED"
                                with m.Case(SRC_CNT):
                                    m.next = "P_CNT"
                                with m.Case(SRC_RP):
                                    m.next = "RP_ACC"
            with m.State("P_ROM"):
                m.d.comb += [tx_emit.eq(rom_ok), tx_crc_in.eq(1), tx_data.eq(rom_q)]
                with m.If(tx_fire):
                    m.d.comb += rstep.eq(1)
                    m.d.sync += k.eq(k + 1)
                    with m.If(k + 1 == rep_len):
                        m.d.sync += k.eq(0)
                        m.next = "TXCRC"
            with m.State("P_PRED"):
                m.d.comb += [tx_emit.eq(1), tx_crc_in.eq(1), tx_data.eq(pred)]
                with m.If(tx_fire):
                    m.d.sync += k.eq(0)
                    m.next = "TXCRC"
            with m.State("P_CNT"):
                m.d.comb += [tx_emit.eq(1), tx_crc_in.eq(1),
                             tx_data.eq(cnt_word.word_select(k[:2], 8))]
                with m.If(tx_fire):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k + 1 == rep_len):
                        m.d.sync += k.eq(0)
                        m.next = "TXCRC"
            with m.State("RP_ACC"):
                m.d.comb += [core.access.valid.eq(1), core.access.payload.op.eq(
                    Mux(is_bias, Access.READ_BIAS, Access.READ_WEIGHT))]
                with m.If(core.access.ready):
                    m.next = "RP_RSP"
            with m.State("RP_RSP"):
                with m.If(core.access_rsp.valid):
                    m.d.sync += [value.eq(core.access_rsp.payload), vb_k.eq(0)]
                    m.next = "RP_EMIT"
            with m.State("RP_EMIT"):
                m.d.comb += [tx_emit.eq(1), tx_crc_in.eq(1),
                             tx_data.eq(value.word_select(vb_k, 8))]
                with m.If(tx_fire):
                    m.d.sync += vb_k.eq(vb_k + 1)
                    with m.If(vb_k + 1 == vb):
                        vidx_inc()
                        with m.If(vidx_last):
                            m.d.sync += k.eq(0)
                            m.next = "TXCRC"
                        with m.Else():
                            m.next = "RP_ACC"
            with m.State("TXCRC"):
                m.d.comb += [tx_emit.eq(1), tx_data.eq(tx_crc.value.word_select(k[:2], 8))]
                with m.If(tx_fire):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == 3):
                        free_bank()
                        m.next = "IDLE"

        m.d.comb += self.idle.eq(~self.rx.valid & ~j_valid & (bank_busy == 0) & ~tq_full
                                 & efsm.ongoing("IDLE") & rfsm.ongoing("HUNT"))
        return m


class LinkedCore(wiring.Component):
    """UART + ``ProtocolEngine`` + ``EPCore`` for one config: the whole board design but the pins.

    ``status`` (LEDs): bit 0 core busy, bit 1 rx activity (stretched to ~50 ms), bit 2 an error
    reply was sent (sticky until the next OK), bit 3 heartbeat (toggles every 2**24 cycles).
    ``idle``: nothing in flight (the engine hunts with empty buffers, tx idle, core idle).
    """

    def __init__(self, cfg: EPConfig, *, divisor: int, clk_hz: int, timeout_bytes: int = 256,
                 weights=None, biases=None, rx_fifo_depth: int = 256):
        if not isinstance(cfg, EPConfig):
            raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")
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
        m.submodules.uart_rx = urx = UARTRx(self.divisor, fifo_depth=self.rx_fifo_depth)
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        m.submodules.engine = eng = ProtocolEngine(self.cfg, divisor=self.divisor, clk_hz=self.clk_hz,
                                                   timeout_bytes=self.timeout_bytes)
        m.submodules.core = core = EPCore(cfg=self.cfg, weights=self._weights, biases=self._biases)
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
