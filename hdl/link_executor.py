"""The executing part of the protocol engine: jobs in, core access, replies out (docs/protocol.md).

``Executor`` takes the receiver's jobs in order. For a checked frame it parses the first payload
bytes into ``args``, validates them against the config before it touches the core, executes the
command through the core's ports and answers with exactly one reply: a ``head`` (seq, status,
length) and ``length`` bytes on ``body``. It holds the seed register that drives the core's
``seed`` port (reset to the config's seed; SET_SEED writes it, GET_SEED reads it). A TRAIN /
INFER sample is streamed to the core straight from the payload buffer (the zero-run code decoded
on the fly), after a first decoding pass that only checks it. Its helpers, one job each:

* ``PayloadReader``: the payload of a frame in the buffer as a byte stream (a prefetch queue);
* ``RomReader``: the INFO payload and the config JSON (one ROM) as a byte stream;
* ``DuplicateWindow``: the last ``DUP_WINDOW`` executed mutating requests (seq, cached prediction).

Every block-RAM read goes into a plain register first (a block RAM's clock-to-out is long), and
the argument checks are computed in register stages, so that no decision waits on a memory.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.lib.wiring import In, Out

from eqfpga.golden.config import EPConfig

from .core import Access, EPCore
from .link_streams import BANK_ADDR_BITS, BUFFER_ADDR_BITS, JOB, LENGTH_BITS, REPLY_HEAD, STATUS_BITS
from .protocol import (COUNTER_NAMES, DUP_WINDOW, INFO_BYTES, MAX_PAYLOAD, MUTATING, PARAMS_HEADER, SEED_BYTES,
                       Cmd, ParamKind, Status, pixel_bytes, value_bytes)


def core_signature(cfg: EPConfig) -> wiring.Signature:
    """The signature of ``EPCore(cfg=cfg)`` (the ports the executor drives, flipped)."""
    core = EPCore(cfg=cfg)
    core._MustUse__silence = True           # built for its signature only, never elaborated
    return core.signature


def _const_table(values, index):
    """values[index] for a small table of Python ints (index assumed in range)."""
    return Array(Const(v, max(1, max(values).bit_length())) for v in values)[index]


class PayloadReader(wiring.Component):
    """A frame's payload in ``bank`` of the payload buffer as the byte stream ``data``.

    ``data.payload`` (a register) is the byte at the read position when ``data.valid`` (a
    register); taking it moves to the next byte. ``seek`` jumps to ``seek_pos``: that byte is there
    4 cycles later, then one byte a cycle. ``seek_pos`` must hold for two cycles before a ``seek``
    (the reader computes ``length - seek_pos`` and its compares from it a cycle ahead). The
    buffer's read data go into a plain register and from there into a prefetch queue of 4 bytes.
    ``at_end``: the read position equals ``length`` (a register). ``zero`` / ``fits``: the byte on
    ``data.payload`` is 0 / has no bit at or above ``fit_shift`` set (registers kept beside the
    queue, so that a consumer's decision on the byte starts from flip-flops).
    """

    QUEUE = 4

    buffer: In(ReadPort.Signature(addr_width=BUFFER_ADDR_BITS, shape=8))   # the buffer's read port
    bank: In(1)
    length: In(LENGTH_BITS)
    seek: In(1)
    seek_pos: In(LENGTH_BITS)
    data: Out(stream.Signature(8))
    at_end: Out(1)
    zero: Out(1)
    fits: Out(1)

    def __init__(self, fit_shift: int = 8):
        self.fit_shift = fit_shift
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        QD = self.QUEUE
        step = self.data.valid & self.data.ready
        # the bytes left (length - position), with at_end (left == 0) and at_end1 (left == 1);
        # their values after a seek are registers computed from seek_pos and length a cycle ahead
        left = Signal(LENGTH_BITS)
        at_end1 = Signal()
        seek_left = Signal(LENGTH_BITS)
        seek_end, seek_end1 = Signal(), Signal()
        m.d.sync += [seek_left.eq(self.length - self.seek_pos),
                     seek_end.eq(self.length == self.seek_pos),
                     seek_end1.eq(self.length == self.seek_pos + 1)]
        with m.If(self.seek):
            m.d.sync += [left.eq(seek_left), self.at_end.eq(seek_end), at_end1.eq(seek_end1)]
        with m.Elif(step):
            m.d.sync += [left.eq(left - 1), self.at_end.eq(at_end1), at_end1.eq(left == 2)]

        fpos = Signal(BANK_ADDR_BITS)   # the next byte to fetch
        fetched = Signal()              # a read was issued last cycle: buffer.data is its byte
        fetched2 = Signal()             # ... two cycles ago: bq is its byte
        bq = Signal(8)
        m.d.sync += bq.eq(self.buffer.data)
        bq_zero, bq_fits = Signal(), Signal()
        s = self.fit_shift
        m.d.comb += [bq_zero.eq(bq == 0), bq_fits.eq((bq >> s) == 0 if s < 8 else 1)]
        if s >= 8:                      # every byte fits: a constant, not a register
            m.d.comb += self.fits.eq(1)
        # the queue: one-hot fill (full[i]: entry i holds a byte), each entry with its flags
        full = Signal(QD)
        room = Signal(range(QD + 1), init=QD)      # QD - (queued + in flight)
        q = [Signal(8, name=f"q{i}") for i in range(QD)]
        qz = [Signal(name=f"qz{i}") for i in range(QD)]
        qf = [Signal(name=f"qf{i}") for i in range(QD)]
        m.d.comb += [self.data.payload.eq(q[0]), self.data.valid.eq(full[0]),
                     self.zero.eq(qz[0]),
                     self.buffer.addr.eq(Cat(fpos, self.bank)), self.buffer.en.eq(1)]
        if s < 8:
            m.d.comb += self.fits.eq(qf[0])
        issue = Signal()
        m.d.comb += issue.eq(room != 0)
        with m.If(self.seek):
            m.d.sync += [fpos.eq(self.seek_pos[:BANK_ADDR_BITS]), fetched.eq(0), fetched2.eq(0),
                         full.eq(0), room.eq(QD)]
        with m.Else():
            m.d.sync += [fetched.eq(issue), fetched2.eq(fetched)]
            with m.If(issue):
                m.d.sync += fpos.eq(fpos + 1)
            with m.If(issue & ~step):
                m.d.sync += room.eq(room - 1)
            with m.Elif(~issue & step):
                m.d.sync += room.eq(room + 1)
            # full: shifts down by a step, fills up by an arrival
            with m.If(step & ~fetched2):
                m.d.sync += full.eq(full[1:])
            with m.Elif(~step & fetched2):
                m.d.sync += full.eq(Cat(1, full[:-1]))
            for i in range(QD):
                nxt = [q[i + 1], qz[i + 1], qf[i + 1]] if i + 1 < QD else [q[i], qz[i], qf[i]]
                cur = [q[i], qz[i], qf[i]]
                new = [bq, bq_zero, bq_fits]
                # after the step entry i gets entry i + 1, or the arriving byte if i + 1 was the
                # first empty one; without a step, the arriving byte goes to the first empty entry
                last_full = full[i] & ~full[i + 1] if i + 1 < QD else full[i]
                first_empty = ~full[i] & (full[i - 1] if i > 0 else 1)
                with m.If(step):
                    with m.If(fetched2 & last_full):
                        m.d.sync += [c.eq(n) for c, n in zip(cur, new)]
                    if i + 1 < QD:
                        with m.Else():
                            m.d.sync += [c.eq(n) for c, n in zip(cur, nxt)]
                with m.Elif(fetched2 & first_empty):
                    m.d.sync += [c.eq(n) for c, n in zip(cur, new)]
        return m


class RomReader(wiring.Component):
    """``contents`` (bytes) in a ROM, read as the byte stream ``data`` from ``seek_pos`` on.

    The ROM's read data go into a plain register: ``data.valid`` two cycles after the position last
    changed (a ``seek`` or a byte taken).
    """

    def __init__(self, contents: bytes):
        self.contents = bytes(contents)
        super().__init__({
            "seek": In(1),
            "seek_pos": In(range(len(self.contents) + 1)),
            "data": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = Memory(shape=8, depth=len(self.contents), init=list(self.contents))
        rd = rom.read_port()
        step = self.data.valid & self.data.ready
        pos = Signal.like(self.seek_pos)
        with m.If(self.seek):
            m.d.sync += pos.eq(self.seek_pos)
        with m.Elif(step):
            m.d.sync += pos.eq(pos + 1)
        settle = Signal(2)
        m.d.comb += rd.addr.eq(pos)
        m.d.sync += [self.data.payload.eq(rd.data), settle.eq(Cat(self.seek | step, settle[0]))]
        m.d.comb += self.data.valid.eq(settle == 0)
        return m


class DuplicateWindow(wiring.Component):
    """The last ``DUP_WINDOW`` executed mutating requests: their seq and, for TRAIN, the prediction.

    ``hit``: ``seq`` (of two cycles before) is among them (the newest entry gives ``hit_has_pred``
    / ``hit_pred``).
    ``record``: remember ``seq`` with ``record_has_pred`` / ``record_pred``, dropping the oldest.
    """

    seq: In(8)
    hit: Out(1)
    hit_has_pred: Out(1)
    hit_pred: Out(8)
    record: In(1)
    record_has_pred: In(1)
    record_pred: In(8)

    def elaborate(self, platform):
        m = Module()
        valid = Signal(DUP_WINDOW)
        has_pred = Signal(DUP_WINDOW)
        seqs = [Signal(8, name=f"seq{i}") for i in range(DUP_WINDOW)]
        preds = [Signal(8, name=f"pred{i}") for i in range(DUP_WINDOW)]
        with m.If(self.record):
            m.d.sync += [valid.eq(Cat(1, valid[:-1])), has_pred.eq(Cat(self.record_has_pred, has_pred[:-1])),
                         seqs[0].eq(self.seq), preds[0].eq(self.record_pred)]
            for i in range(1, DUP_WINDOW):
                m.d.sync += [seqs[i].eq(seqs[i - 1]), preds[i].eq(preds[i - 1])]
        # registered twice: ``hit`` answers for the ``seq`` of two cycles before (the compares,
        # then the pick of the newest matching entry, each in a stage of its own)
        match = Signal(DUP_WINDOW)
        m.d.sync += match.eq(Cat(*[valid[i] & (seqs[i] == self.seq) for i in range(DUP_WINDOW)]))
        m.d.sync += self.hit.eq(match.any())
        for i in reversed(range(DUP_WINDOW)):       # the newest entry wins
            with m.If(match[i]):
                m.d.sync += [self.hit_has_pred.eq(has_pred[i]), self.hit_pred.eq(preds[i])]
        return m


class Executor(wiring.Component):
    """``job`` -> ``core`` access -> ``head`` + ``body`` (one reply per job).

    ``release``: the bank of a checked frame is no longer needed (the receiver may fill it again).
    ``rom``: the INFO payload followed by the config JSON. ``idle``: waiting for a job.
    ``core.seed`` comes from the seed register, reset to ``cfg.seed`` (a board never sent SET_SEED
    computes with its build's seed); it changes only between jobs, when the core is idle.
    """

    def __init__(self, cfg: EPConfig, *, rom: bytes):
        if not isinstance(cfg, EPConfig):
            raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")
        if len(rom) < INFO_BYTES:
            raise ValueError(f"rom must start with the {INFO_BYTES}-byte INFO payload, got {len(rom)} bytes")
        self.cfg, self.rom = cfg, bytes(rom)
        super().__init__({
            "job": In(stream.Signature(JOB)),
            "release": Out(stream.Signature(1, always_ready=True)),
            "buffer": In(ReadPort.Signature(addr_width=BUFFER_ADDR_BITS, shape=8)),
            "core": In(core_signature(cfg)),
            "head": Out(stream.Signature(REPLY_HEAD)),
            "body": Out(stream.Signature(8)),
            "idle": Out(1),
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
        json_bytes = len(self.rom) - INFO_BYTES

        # the job being executed
        e_status, e_seq, e_cmd = Signal(STATUS_BITS, name="e_status"), Signal(8, name="e_seq"), Signal(8, name="e_cmd")
        e_len, e_bank, e_swallowed = Signal(LENGTH_BITS, name="e_len"), Signal(name="e_bank"), Signal(name="e_swallowed")
        e_holds = Signal()              # the job still holds its bank
        args = Signal(64)
        a_kind, a_layer = args[0:8], args[8:16]
        a_row, a_col, a_count = args[16:32], args[32:48], args[48:64]
        a_u16_0, a_u16_1, a_u32 = args[0:16], args[16:32], args[0:32]

        # the payload reader: seek_pos is a register (0 for the argument parse, then the start of
        # the values or pixels), set at least a cycle before each seek
        seek_pos = Signal(LENGTH_BITS, name="seek_pos")
        m.submodules.payload = rd = PayloadReader(fit_shift=max(0, fx - 8 * (PB - 1)))
        wiring.connect(m, rd.buffer, wiring.flipped(self.buffer))
        m.d.comb += [rd.bank.eq(e_bank), rd.length.eq(e_len), rd.seek_pos.eq(seek_pos)]
        rbyte, rvalid, at_end = rd.data.payload, rd.data.valid, rd.at_end

        def take():
            m.d.comb += rd.data.ready.eq(1)

        def seek():
            m.d.comb += rd.seek.eq(1)

        m.submodules.rom = rom = RomReader(self.rom)
        m.submodules.dup = dup = DuplicateWindow()
        m.d.comb += dup.seq.eq(e_seq)

        # facts about the command, registered (e_cmd is set when the job is taken, two cycles
        # before they are read); known commands fit in e_cmd's low 4 bits
        assert max(Cmd) < 16
        is_mut, unknown = Signal(name="is_mut"), Signal(name="unknown_cmd")
        m.d.sync += [is_mut.eq(Cat(*[e_cmd == c for c in sorted(MUTATING)]).any()),
                     unknown.eq((e_cmd < min(Cmd)) | (e_cmd > max(Cmd)))]
        is_cmd = {}
        for c in Cmd:
            is_cmd[c] = Signal(name=f"is_{c.name.lower()}")
            m.d.sync += is_cmd[c].eq(e_cmd == c)
        learn = is_cmd[Cmd.TRAIN]

        # the seed register (SET_SEED / GET_SEED), the core's seed
        seed = Signal(32, init=self.cfg.seed)
        m.d.comb += core.seed.eq(seed)

        # the reply: the head, then rep_len body bytes from rep_src
        rep_status = Signal(STATUS_BITS)
        rep_len = Signal(LENGTH_BITS)
        rep_src = Signal(3)
        SRC_NONE, SRC_ROM, SRC_PRED, SRC_CNT, SRC_PARAMS, SRC_SEED = range(6)
        pred = Signal(8)
        m.d.comb += [self.head.payload.seq.eq(e_seq), self.head.payload.status.eq(rep_status),
                     self.head.payload.length.eq(rep_len)]

        def reply(status, length=0, src=SRC_NONE):
            # written in every cycle of the deciding state (its other exits overwrite them later)
            m.d.sync += [rep_status.eq(status), rep_len.eq(length), rep_src.eq(src)]

        # parameter runs (WRITE_PARAMS / READ_PARAMS)
        rows = [sizes[n + 1] for n in range(N)]
        cols = [sizes[n] for n in range(N)]
        layer_ok = a_layer < N
        lsel = Mux(layer_ok, a_layer, 0)
        nrows, ncols = _const_table(rows, lsel), _const_table(cols, lsel)
        is_bias = Signal(name="is_bias")        # registered: args settle in PARSE
        m.d.sync += is_bias.eq(a_kind == ParamKind.BIAS)
        vb = Mux(is_bias, VBB, VBW)
        # argument checks in register stages (args settle in PARSE, then 5 cycles in CHECKS before
        # CHECK)
        # (each adder or compare in a stage of its own)
        kind_ok, layer_ok_r, base_ok = Signal(), Signal(), Signal()
        nrows_r, ncols_r = Signal(range(max(rows) + 1)), Signal(range(max(cols) + 1))
        run_start, run_end = Signal(16), Signal(17)
        run_lim = Signal(range(max(rows + cols) + 1))
        m.d.sync += [kind_ok.eq((a_kind <= 1) & ((a_kind != ParamKind.BIAS) | (a_col == 0))),
                     layer_ok_r.eq(layer_ok), nrows_r.eq(nrows), ncols_r.eq(ncols),
                     base_ok.eq(kind_ok & layer_ok_r & (a_row < nrows_r)),
                     run_start.eq(Mux(a_kind == ParamKind.BIAS, a_row, a_col)),
                     run_end.eq(run_start + a_count),
                     run_lim.eq(Mux(is_bias, nrows_r, ncols_r))]
        run_ok = Signal()
        m.d.sync += run_ok.eq(base_ok & (run_end <= run_lim))
        run_bytes = Signal(20)
        m.d.sync += run_bytes.eq(Mux(a_kind == ParamKind.BIAS, a_count * VBB, a_count * VBW))
        # e_len - PARAMS_HEADER and e_len's compares, registered (e_len is set as the job is taken)
        e_len_ge_h, e_len_is_h, e_len_mh = Signal(), Signal(), Signal(LENGTH_BITS)
        m.d.sync += [e_len_ge_h.eq(e_len >= PARAMS_HEADER), e_len_is_h.eq(e_len == PARAMS_HEADER),
                     e_len_mh.eq(e_len - PARAMS_HEADER)]
        wp_len_ok, rp_len_ok, rb_fit, rb_small, rb_eq = Signal(), Signal(), Signal(), Signal(), Signal()
        rb_eq_lo, rb_eq_hi = Signal(), Signal()
        h = LENGTH_BITS // 2
        m.d.sync += [rb_eq_lo.eq(e_len_mh[:h] == run_bytes[:h]),
                     rb_eq_hi.eq(e_len_mh[h:] == run_bytes[h:LENGTH_BITS]), rb_eq.eq(rb_eq_lo & rb_eq_hi)]
        m.d.sync += [rb_small.eq(run_bytes < (1 << LENGTH_BITS)),
                     rb_fit.eq(run_bytes <= MAX_PAYLOAD),
                     wp_len_ok.eq(e_len_ge_h & rb_small & rb_eq),
                     rp_len_ok.eq(e_len_is_h & rb_fit)]
        config_end, u16_1_ok, config_ok = Signal(17), Signal(), Signal()
        m.d.sync += [config_end.eq(a_u16_0 + a_u16_1), u16_1_ok.eq(a_u16_1 <= MAX_PAYLOAD),
                     config_ok.eq((config_end <= json_bytes) & u16_1_ok)]
        len_is = {}
        for n in (0, 1, 4, SEED_BYTES):
            if n not in len_is:
                len_is[n] = Signal(name=f"len_is{n}")
                m.d.sync += len_is[n].eq(e_len == n)
        label_ok, count_zero, count_one = Signal(), Signal(), Signal()
        m.d.sync += [label_ok.eq(a_kind < n_out), count_zero.eq(a_count == 0), count_one.eq(a_count == 1)]
        # the command's argument checks, one registered bit (valid in CHECKS' last cycle)
        cmd_ok, ok_now = Signal(name="cmd_ok"), Signal()
        m.d.sync += cmd_ok.eq(ok_now)
        m.d.comb += ok_now.eq(Cat(
            (is_cmd[Cmd.INFO] | is_cmd[Cmd.COUNTERS] | is_cmd[Cmd.GET_SEED]) & len_is[0],
            is_cmd[Cmd.CONFIG] & len_is[4] & config_ok,
            is_cmd[Cmd.WRITE_PARAMS] & wp_len_ok & run_ok,
            is_cmd[Cmd.READ_PARAMS] & rp_len_ok & run_ok,
            (is_cmd[Cmd.TRAIN] | is_cmd[Cmd.INFER]) & ~len_is[0] & label_ok,
            is_cmd[Cmd.SET_T] & len_is[4],
            is_cmd[Cmd.SET_SEED] & len_is[SEED_BYTES]).any())
        # CHECK's outcome, registered from cmd_ok (valid in CHECK)
        c_status, c_len, c_src = Signal(STATUS_BITS), Signal(LENGTH_BITS), Signal(3)
        c_go_wp, c_go_px, c_rom, c_tset, c_seed = (Signal(name=n) for n in ("c_go_wp", "c_go_px", "c_rom", "c_tset", "c_seed"))
        c_rompos = Signal(range(len(self.rom) + 1))
        m.d.sync += [
            c_status.eq(Mux(cmd_ok, Status.OK, Status.BAD_ARG)),
            c_go_wp.eq(cmd_ok & is_cmd[Cmd.WRITE_PARAMS] & ~count_zero),
            c_go_px.eq(cmd_ok & (is_cmd[Cmd.TRAIN] | is_cmd[Cmd.INFER])),
            c_rom.eq(cmd_ok & (is_cmd[Cmd.INFO] | is_cmd[Cmd.CONFIG])),
            c_tset.eq(cmd_ok & is_cmd[Cmd.SET_T]),
            c_seed.eq(cmd_ok & is_cmd[Cmd.SET_SEED]),
            c_rompos.eq(Mux(is_cmd[Cmd.CONFIG], INFO_BYTES + a_u16_0, 0)),
        ]
        m.d.sync += [c_len.eq(0), c_src.eq(SRC_NONE)]
        with m.If(cmd_ok):
            with m.If(is_cmd[Cmd.INFO]):
                m.d.sync += [c_len.eq(INFO_BYTES), c_src.eq(SRC_ROM)]
            with m.If(is_cmd[Cmd.CONFIG]):
                m.d.sync += [c_len.eq(a_u16_1), c_src.eq(SRC_ROM)]
            with m.If(is_cmd[Cmd.READ_PARAMS]):
                m.d.sync += [c_len.eq(run_bytes), c_src.eq(SRC_PARAMS)]
            with m.If(is_cmd[Cmd.COUNTERS]):
                m.d.sync += [c_len.eq(4 * len(COUNTER_NAMES)), c_src.eq(SRC_CNT)]
            with m.If(is_cmd[Cmd.GET_SEED]):
                m.d.sync += [c_len.eq(SEED_BYTES), c_src.eq(SRC_SEED)]

        wp_check = Signal()             # WRITE_PARAMS: first pass, range check only

        def fits(v, bits, nbytes):
            """v (nbytes on the wire) is the sign extension of its low `bits` bits."""
            top = v[bits - 1:8 * nbytes]
            return (top == 0) | (top == (1 << len(top)) - 1)
        vb_k = Signal(2)                # byte index inside a value
        vb_last = Signal()              # vb_k + 1 == vb, kept with vb_k
        vb_is1 = Signal()
        m.d.sync += vb_is1.eq(vb == 1)

        def vb_reset():
            m.d.sync += [vb_k.eq(0), vb_last.eq(vb_is1)]

        def vb_inc():
            m.d.sync += [vb_k.eq(vb_k + 1), vb_last.eq(vb_k + 2 == vb)]
        value = Signal(32)
        acc_row = Signal(14)            # the access address of the current value, kept with vleft
        acc_col = Signal(14)
        vleft = Signal(16)              # values left in the run (the current one included)
        vidx_last = Signal()            # vleft == 1, kept with vleft

        def vidx_reset():
            m.d.sync += [vleft.eq(a_count), acc_row.eq(a_row), acc_col.eq(Mux(is_bias, 0, a_col)),
                         vidx_last.eq(count_one)]

        def vidx_inc():
            m.d.sync += [vleft.eq(vleft - 1), vidx_last.eq(vleft == 2)]
            with m.If(is_bias):
                m.d.sync += acc_row.eq(acc_row + 1)
            with m.Else():
                m.d.sync += acc_col.eq(acc_col + 1)

        # sample decoding (TRAIN / INFER)
        streaming = Signal()
        px_count = Signal(range(n_in + 1))     # check pass: pixels so far (never above n_in)
        px_full = Signal()                      # px_count == n_in, kept with px_count
        px_k = Signal(2)
        px_k0 = (px_k == 0) if PB > 1 else Const(1)     # one byte a pixel: always at a pixel's start
        px_acc = Signal(max(8, 8 * PB))
        zleft = Signal(9)
        zlast = Signal()                        # zleft == 1, kept with zleft
        label = Signal(8)
        px_value = Signal(8 * PB)
        if PB == 1:
            m.d.comb += px_value.eq(rbyte)
            px_zero, px_fits = rd.zero, rd.fits
        else:
            lo = px_acc[:8 * (PB - 1)]
            m.d.comb += px_value.eq(Cat(lo, rbyte))
            px_zero = rd.zero & (lo == 0)
            px_fits = rd.fits & ((lo >> fx) == 0 if fx < len(lo) else Const(1))
        run_sum = Signal(range(n_in + 258))
        run_over = Signal()                     # run_sum > n_in, registered

        # PARSE: the first min(len, 8) payload bytes into args, byte i where kbit[i]
        parse_end = Signal(name="parse_end")
        pleft = Signal(4)
        kbit = Signal(8)
        len_min8, len_zero = Signal(4), Signal()
        m.d.sync += [len_min8.eq(Mux(e_len >= 8, 8, e_len)), len_zero.eq(e_len == 0)]
        m.d.comb += [core.learn.eq(learn), core.t_value.eq(a_u32),
                     core.access_rsp.ready.eq(1), core.result.ready.eq(0)]
        m.d.comb += [core.access.payload.layer.eq(a_layer), core.access.payload.row.eq(acc_row),
                     core.access.payload.col.eq(acc_col), core.access.payload.data.eq(value)]

        counters = [getattr(core, nm) for nm in COUNTER_NAMES]
        # COUNTERS / SEED: the words copied into a shift register before the head goes out (the
        # core is idle: they hold), sent from its low byte, least significant byte first
        words = Signal(32 * len(counters), name="words")
        # the body: bleft bytes left, blast = (bleft == 1) kept with it
        bleft, blast = Signal(LENGTH_BITS), Signal()
        # where the body comes from (one-hot): registered in HEAD, taken in BODY
        rep_empty = Signal()
        h_idle, h_rom, h_pred, h_words, h_rp = (Signal(name=n) for n in ("h_idle", "h_rom", "h_pred", "h_words", "h_rp"))
        # waits of a few cycles (LOOKUP, CHECKS) without states of their own (the state machine
        # stays below 32 states, which yosys encodes one-hot): a one-hot delay line
        dly = Signal(5)
        m.d.sync += dly.eq(dly << 1)
        # DISPATCH's decision, registered in the last cycle of LOOKUP
        d_err, d_dup, d_stop = Signal(), Signal(), Signal()
        m.d.sync += [d_err.eq(e_status != Status.OK), d_dup.eq(is_mut & dup.hit),
                     d_stop.eq((e_status != Status.OK) | (is_mut & dup.hit) | unknown)]

        # release, registered: a job's bank is given back in HEAD (every reply passes it, after
        # the last read of the bank) or, for TRAIN / INFER, as the label goes to the core
        free = Signal()
        m.d.sync += self.release.valid.eq(free & e_holds)
        m.d.sync += self.release.payload.eq(e_bank)
        with m.If(free):
            m.d.sync += e_holds.eq(0)
        # a mutating request that is answered OK is recorded as its head goes out (registered)
        m.d.sync += dup.record.eq(self.head.valid & self.head.ready & is_mut & (rep_status == Status.OK))
        m.d.comb += [dup.record_has_pred.eq(learn), dup.record_pred.eq(pred)]

        with m.FSM(name="exec") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.job.ready.eq(1)
                with m.If(self.job.valid):
                    job = self.job.payload
                    m.d.sync += [e_status.eq(job.status), e_seq.eq(job.seq), e_cmd.eq(job.cmd),
                                 e_len.eq(job.length), e_bank.eq(job.bank), e_swallowed.eq(job.swallowed),
                                 e_holds.eq(job.status == Status.OK), args.eq(0), seek_pos.eq(0),
                                 dly.eq(1)]
                    m.next = "LOOKUP"
            with m.State("LOOKUP"):
                # 3 cycles: the duplicate window looks the new seq up (2), DISPATCH's decision
                # settles (1)
                with m.If(dly[2]):
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.sync += [pred.eq(Mux(d_err, e_swallowed, dup.hit_pred)),
                             seek_pos.eq(Mux(is_cmd[Cmd.WRITE_PARAMS], PARAMS_HEADER, 1)),
                             pleft.eq(len_min8), parse_end.eq(len_zero), kbit.eq(1)]
                reply(Mux(d_err, e_status, Mux(d_dup, Status.DUPLICATE, Status.UNKNOWN_CMD)),
                      Mux(d_err, 1, Mux(d_dup, dup.hit_has_pred, 0)), SRC_PRED)
                with m.If(d_stop):
                    m.next = "PREHEAD"
                with m.Else():
                    seek()                      # to 0
                    m.next = "PARSE"
            with m.State("PARSE"):
                with m.If(parse_end):
                    m.d.sync += dly.eq(1)
                    m.next = "CHECKS"
                with m.Elif(rvalid):
                    take()
                    for i in range(8):
                        with m.If(kbit[i]):
                            m.d.sync += args[8 * i:8 * i + 8].eq(rbyte)
                    m.d.sync += [kbit.eq(kbit << 1), pleft.eq(pleft - 1), parse_end.eq(pleft == 1)]
            with m.State("CHECKS"):
                # 5 cycles: the argument checks settle (the adders, then the compares), their
                # verdict cmd_ok, and what CHECK does with it
                with m.If(dly[4]):
                    m.next = "CHECK"
            with m.State("CHECK"):
                reply(c_status, c_len, c_src)
                vidx_reset()
                vb_reset()
                m.d.sync += [value.eq(0), wp_check.eq(1),
                             label.eq(a_kind), px_count.eq(0), px_full.eq(0), px_k.eq(0), streaming.eq(0)]
                m.d.comb += [rom.seek.eq(c_rom), rom.seek_pos.eq(c_rompos),
                             core.t_set.eq(c_tset)]  # the core is idle here: the previous sample has finished
                with m.If(c_seed):
                    m.d.sync += seed.eq(a_u32)  # the core is idle here: the next sample's key uses it
                with m.If(c_go_wp):
                    m.next = "WP_VAL"
                with m.Elif(c_go_px):
                    seek()                      # to 1
                    m.next = "PX"
                with m.Else():
                    m.next = "PREHEAD"

            # ---- WRITE_PARAMS: assemble each value from vb bytes, write it over access
            with m.State("WP_VAL"):
                nv = Signal(32)
                m.d.comb += nv.eq(value | (rbyte << (vb_k * 8)))
                with m.If(~rvalid):
                    pass
                with m.Elif(~vb_last):
                    take()
                    m.d.sync += value.eq(nv)
                    vb_inc()
                with m.Else():
                    take()
                    with m.If(wp_check):
                        # first pass: every value must be a sign-extended `bits`-bit integer
                        m.d.sync += value.eq(0)
                        vb_reset()
                        vidx_inc()
                        with m.If(~Mux(is_bias, fits(nv, f.bias_bits, VBB), fits(nv, f.weight_bits, VBW))):
                            m.next = "BAD_ARG"
                        with m.Elif(vidx_last):
                            m.d.sync += wp_check.eq(0)
                            vidx_reset()
                            m.next = "WP_SEEK"
                    with m.Else():
                        # sign-extend from vb bytes (the wire carries sign-extended values)
                        m.d.sync += value.eq(Mux(is_bias, nv[:8 * VBB].as_signed(), nv[:8 * VBW].as_signed()))
                        m.next = "WP_ACC"
            with m.State("WP_SEEK"):            # the second pass: the values again
                seek()                          # to PARAMS_HEADER
                m.next = "WP_VAL"
            with m.State("WP_ACC"):
                m.d.comb += [core.access.valid.eq(1), core.access.payload.op.eq(
                    Mux(is_bias, Access.WRITE_BIAS, Access.WRITE_WEIGHT))]
                with m.If(core.access.ready):
                    m.next = "WP_RSP"
            with m.State("WP_RSP"):
                reply(Status.OK)
                with m.If(core.access_rsp.valid):
                    m.d.sync += value.eq(0)
                    vb_reset()
                    vidx_inc()
                    with m.If(vidx_last):
                        m.next = "PREHEAD"
                    with m.Else():
                        m.next = "WP_VAL"

            # ---- TRAIN / INFER: decode the zero-run code, first to check it, then to stream it
            # PX: the check pass, PXS: the streaming pass (states of their own: the byte-taking
            # decision of each is small)
            for st, strm in (("PX", False), ("PXS", True)):
                with m.State(st):
                    with m.If(at_end & px_k0):
                        if strm:
                            m.next = "LABEL"
                        else:
                            with m.If(px_full):
                                m.d.sync += [streaming.eq(1), px_count.eq(0), px_full.eq(0)]
                                m.next = "PX_SEEK"
                            with m.Else():
                                m.next = "BAD_ARG"
                    with m.Elif(at_end):
                        m.next = "BAD_ARG"           # the payload ends inside a pixel value
                    with m.Elif(~rvalid):
                        pass
                    if PB > 1:
                        with m.Elif(px_k + 1 < PB):
                            take()
                            m.d.sync += [px_acc.word_select(px_k, 8).eq(rbyte), px_k.eq(px_k + 1)]
                    with m.Elif(px_zero):
                        take()
                        m.d.sync += px_k.eq(0)
                        m.next = "RUN"
                    if not strm:
                        with m.Elif(~px_fits | px_full):
                            m.next = "BAD_ARG"
                        with m.Else():
                            take()
                            m.d.sync += [px_count.eq(px_count + 1), px_full.eq(px_count == n_in - 1),
                                         px_k.eq(0)]
                    else:
                        with m.Else():
                            m.d.comb += [core.sample.valid.eq(1), core.sample.payload.eq(px_value)]
                            with m.If(core.sample.ready):
                                take()
                                m.d.sync += px_k.eq(0)
            with m.State("PX_SEEK"):            # the second pass: the pixels again
                seek()                          # to 1
                m.next = "PXS"
            with m.State("RUN"):
                m.d.sync += [run_sum.eq(px_count + rbyte + 1), zleft.eq(rbyte + 1), zlast.eq(rbyte == 0)]
                with m.If(at_end):
                    m.next = "BAD_ARG"           # a zero without its run length
                with m.Elif(rvalid):
                    take()
                    with m.If(streaming):
                        m.next = "ZEROS"
                    with m.Else():
                        m.next = "RUN_CHK"
            with m.State("RUN_CHK"):                # check pass: the run must fit in the sample
                m.d.sync += [px_count.eq(run_sum), px_full.eq(run_sum == n_in), run_over.eq(run_sum > n_in)]
                m.next = "RUN_CHK2"
            with m.State("RUN_CHK2"):
                with m.If(run_over):
                    m.next = "BAD_ARG"
                with m.Else():
                    m.next = "PX"
            with m.State("BAD_ARG"):
                reply(Status.BAD_ARG)
                m.next = "PREHEAD"
            with m.State("ZEROS"):
                m.d.comb += [core.sample.valid.eq(1), core.sample.payload.eq(0)]
                with m.If(core.sample.ready):
                    m.d.sync += [zleft.eq(zleft - 1), zlast.eq(zleft == 2)]
                    with m.If(zlast):
                        m.next = "PXS"
            with m.State("LABEL"):
                m.d.comb += [core.sample.valid.eq(1), core.sample.payload.eq(label)]
                with m.If(core.sample.ready):
                    m.d.comb += free.eq(1)          # the next frame may now be received into it
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += core.result.ready.eq(1)
                reply(Status.OK, 1, SRC_PRED)
                with m.If(core.result.valid):
                    m.d.sync += pred.eq(core.result.payload)
                    m.next = "PREHEAD"

            # ---- the reply: the head, then the body from rep_src
            with m.State("PREHEAD"):            # the reply's length facts, registered
                m.d.sync += [rep_empty.eq(rep_len == 0), bleft.eq(rep_len), blast.eq(rep_len == 1),
                             words.eq(Mux(rep_src == SRC_SEED, seed, Cat(*counters)))]
                m.next = "HEAD"
            with m.State("HEAD"):
                # where the body comes from, registered here (HEAD lasts at least a cycle), taken
                # in BODY: HEAD's exit waits on the head's handshake only
                m.d.sync += [h_idle.eq(rep_empty),
                             h_rom.eq(~rep_empty & (rep_src == SRC_ROM)),
                             h_pred.eq(~rep_empty & (rep_src == SRC_PRED)),
                             h_words.eq(~rep_empty & ((rep_src == SRC_CNT) | (rep_src == SRC_SEED))),
                             h_rp.eq(~rep_empty & (rep_src == SRC_PARAMS))]
                m.d.comb += [self.head.valid.eq(1), free.eq(1)]
                with m.If(self.head.ready):
                    m.next = "BODY"
            with m.State("BODY"):
                with m.If(h_idle):
                    m.next = "DONE"
                with m.If(h_rom):
                    m.next = "ROM"
                with m.If(h_pred):
                    m.next = "PRED"
                with m.If(h_words):
                    m.next = "WORDS"
                with m.If(h_rp):
                    m.next = "RP_ACC"

            def body_step():
                m.d.sync += [bleft.eq(bleft - 1), blast.eq(bleft == 2)]
                with m.If(blast):
                    m.next = "DONE"
            with m.State("DONE"):               # the reply is out (the last state before IDLE)
                m.next = "IDLE"
            with m.State("ROM"):
                m.d.comb += [self.body.valid.eq(rom.data.valid), self.body.payload.eq(rom.data.payload),
                             rom.data.ready.eq(self.body.ready)]
                with m.If(self.body.valid & self.body.ready):
                    body_step()
            with m.State("PRED"):
                m.d.comb += [self.body.valid.eq(1), self.body.payload.eq(pred)]
                with m.If(self.body.ready):
                    m.next = "DONE"
            with m.State("WORDS"):
                m.d.comb += [self.body.valid.eq(1), self.body.payload.eq(words[:8])]
                with m.If(self.body.ready):
                    m.d.sync += words.eq(words >> 8)
                    body_step()
            with m.State("RP_ACC"):
                m.d.comb += [core.access.valid.eq(1), core.access.payload.op.eq(
                    Mux(is_bias, Access.READ_BIAS, Access.READ_WEIGHT))]
                with m.If(core.access.ready):
                    m.next = "RP_RSP"
            with m.State("RP_RSP"):
                with m.If(core.access_rsp.valid):
                    m.d.sync += value.eq(core.access_rsp.payload)
                    vb_reset()
                    m.next = "RP_EMIT"
            with m.State("RP_EMIT"):
                m.d.comb += [self.body.valid.eq(1), self.body.payload.eq(value.word_select(vb_k, 8))]
                with m.If(self.body.ready):
                    vb_inc()
                    with m.If(vb_last):
                        vidx_inc()
                        with m.If(vidx_last):
                            m.next = "DONE"
                        with m.Else():
                            m.next = "RP_ACC"

        m.d.comb += self.idle.eq(fsm.ongoing("IDLE"))
        return m
