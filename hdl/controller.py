"""The controller: one op a cycle, following ``Plan``'s segments (docs/hardware.md, "Schedule").

A sample is the input drive (D0), the steps (each one segment per lane layer and one or two per
root layer, layers 1..N and N..1 alternately), then the update parts (U0, UW_n, UB_n). Each
segment is two nested loops over a lane group and a neuron; its first op waits until the guards of
what it reads have run out (countdown registers set by the ops that wrote it, ``Plan.guards``), so
the RTL's cycles equal ``Plan.sample_cycles``. Host accesses are served between samples: the owning
lane and address come from a 14-cycle division of the neuron index by P.

For 100 MHz every decision comes from registers: whether an op issues (``run``) is decided a cycle
ahead from the guards' ``soon`` flags; the loops' ends are flags kept with the counters; and the
running segment's successor (its state, first loop values, guard mask) is prepared in ``nx`` while
the segment runs, so that its last op only copies it (a segment of one op therefore waits a cycle).
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from eqfpga.golden.fixedpoint import HASH_ROUNDS, SIGN_COUNTER

from .arx_hash import arx_round
from .ops import Kind, Target, Widths, op_layout
from .plan import IDX_BITS, KEY_CYCLES, N_SLOTS, Plan


class Access(enum.Enum, shape=3):
    READ_WEIGHT = 0
    WRITE_WEIGHT = 1
    READ_BIAS = 2
    WRITE_BIAS = 3
    READ_STATE = 4
    READ_COUNTER = 5


ACCESS_LAYOUT = data.StructLayout({
    "op": Access, "layer": unsigned(4), "row": unsigned(IDX_BITS), "col": unsigned(IDX_BITS),
    "data": signed(32),
})

DIV_BITS = IDX_BITS


class Controller(wiring.Component):
    def __init__(self, plan: Plan, *, train: bool, label_bits: int, jw: int):
        self.pl, self.train, self.w = plan, train, Widths(plan)
        super().__init__({
            "op": Out(op_layout(self.w)),
            # the loader
            "ready": In(1), "nnz": In(IDX_BITS + 1), "label_in": In(label_bits), "learn_in": In(1),
            "pix_addr": Out(jw), "release": Out(1),
            # host
            "access": In(stream.Signature(ACCESS_LAYOUT)),
            "rsp_valid": In(1), "rsp_ready": In(1),
            "t_set": In(1), "t_value": In(32), "seed": In(32),
            "result": Out(stream.Signature(unsigned(label_bits))),
            "best": In(IDX_BITS), "moved": In(1), "moved2": In(1),
            # to the datapath
            "key": Out(32), "gneg": Out(1), "label": Out(label_bits), "learn": Out(1), "start": Out(1),
            "busy": Out(1), "t": Out(32), "cycles": Out(32), "samples": Out(32),
            "unsettled": Out(32), "cycling": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        pl, cfg = self.pl, self.pl.cfg
        P, N, s = pl.P, pl.N, pl.sizes
        SL, SR = pl.SL, pl.SR
        offL, offR = pl.lane_state_offsets, pl.root_state_offsets
        train = self.train
        op = self.op
        m.d.sync += op.eq(0)                        # every op starts from all-zero fields (NOP)

        def emit(kind, **fields):
            m.d.sync += op.kind.eq(kind)
            for name, v in fields.items():
                m.d.sync += getattr(op, name).eq(v)

        def L(slot, k, g=0):
            return slot * SL + offL[k] + g

        def R(slot, k, i=0):
            return slot * SR + offR[k] + i

        # ---- counters ----------------------------------------------------------------------------
        t = Signal(32)
        cyc, smp, uns, cyl = (Signal(32, name=n) for n in ("cyc", "smp", "uns", "cyl"))
        m.d.comb += [self.t.eq(t), self.cycles.eq(cyc), self.samples.eq(smp), self.unsettled.eq(uns),
                     self.cycling.eq(cyl)]
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        with m.If(busy):
            m.d.sync += cyc.eq(cyc + 1)
        learn = Signal()
        label = Signal(len(self.label))
        m.d.comb += [self.learn.eq(learn), self.label.eq(label)]

        # ---- the key: H(seed, t), then the sign H(key, SIGN_COUNTER), one round a cycle ---------------
        hx, hy, hkey = Signal(16), Signal(16), Signal(32)
        hr = Signal(range(2 * HASH_ROUNDS + 1))
        key, sneg, key_soon = Signal(32, name="key"), Signal(name="sneg"), Signal(name="key_soon")    # key_soon: the key is ready next cycle
        m.d.comb += [self.key.eq(key)]
        hxn, hyn = arx_round(hx, hy, Mux(hr[0], hkey[16:], hkey[:16]), hr[:3])
        hout = Cat(hyn, hxn)
        m.d.comb += hkey.eq(Mux(hr < HASH_ROUNDS, self.seed, key))
        with m.If(hr < 2 * HASH_ROUNDS):
            m.d.sync += [hx.eq(hxn), hy.eq(hyn), hr.eq(hr + 1)]
            with m.If(hr == HASH_ROUNDS - 1):
                m.d.sync += [key.eq(hout), hx.eq(SIGN_COUNTER >> 16), hy.eq(SIGN_COUNTER & 0xFFFF)]
            with m.If(hr == 2 * HASH_ROUNDS - 2):
                m.d.sync += key_soon.eq(1)
            with m.If(hr == 2 * HASH_ROUNDS - 1):
                m.d.sync += sneg.eq(hout[0] if cfg.nudging == "random_sign" else 0)
        assert KEY_CYCLES == 2 * HASH_ROUNDS
        gneg = Signal()
        m.d.comb += self.gneg.eq(gneg)
        m.d.comb += gneg.eq(sneg)            # only random-sign nudging ever sets it

        # ---- guards ------------------------------------------------------------------------------------
        need = pl.guards()
        slotted = {b for b in need if b not in ("d0", "key") and not b.startswith("fb")}
        guards = {}
        for b, v in need.items():
            if b == "key":
                continue
            for sl in (range(N_SLOTS) if b in slotted else [None]):
                guards[(b, sl)] = Signal(range(max(v, 1) + 1), name=f"guard_{b}_{'x' if sl is None else sl}")
        setting = {k: Signal(name=f"set_{k[0]}_{'x' if k[1] is None else k[1]}") for k in guards}
        # soon[k]: the guard is at most 1, so it reads 0 next cycle unless it is set this cycle. The
        # controller decides a cycle ahead whether a segment may issue (``run``), from these registers.
        soon = {k: Signal(init=1, name=f"soon_{k[0]}_{'x' if k[1] is None else k[1]}") for k in guards}
        for k, g in guards.items():
            with m.If(setting[k]):
                m.d.sync += [g.eq(need[k[0]] - 1), soon[k].eq(need[k[0]] - 1 <= 1)]
            with m.Elif(g != 0):
                m.d.sync += [g.eq(g - 1), soon[k].eq(g <= 2)]

        # ---- step constants: cur (this step) and nxt (the next), from a table ---------------------
        steps = pl.steps(learn=True)
        n_steps = len(steps)
        step_layout = data.StructLayout({"rslot": 2, "wslot": 2, "zero": 1, "zero2": 1, "lastfree": 1,
                                         "forward": 1, "phase": 2, "last_free_step": 1, "last_step": 1})
        phase_id = {"free": 0, "nudged": 1, "negative": 2}
        def packed(st, u):
            c = step_layout.const({"rslot": st["rslot"], "wslot": st["wslot"], "zero": st["zero"],
                                   "zero2": st["zero2"], "lastfree": st["lastfree"], "forward": st["forward"],
                                   "phase": phase_id[st["phase"]], "last_free_step": u == cfg.T1 - 1,
                                   "last_step": u == n_steps - 1})
            return Const(c.as_value().value, step_layout.size)
        rom = Array([packed(st, u) for u, st in enumerate(steps)] + [Const(0, step_layout.size)])
        table = lambda idx: data.View(step_layout, rom[idx])  # noqa: E731
        cur = Signal(step_layout)
        nxt = Signal(step_layout)
        u1 = Signal(range(n_steps + 2))              # index of the next step
        m.d.sync += nxt.eq(table(u1))

        def slot_val(slot_sig, fn):
            """fn(slot) for a run-time slot (a mux of N_SLOTS constants)."""
            return Array([Const(fn(x), 16) for x in range(N_SLOTS)])[slot_sig]

        def slot_of(sl, cst):
            """The slot a guard name's "@r" / "@w" / "@a" / "@c" means: a constant or a step register."""
            if sl in ("a", "c"):
                return Const(pl.update_slots[0 if sl == "a" else 1], 2)
            return cst.rslot if sl == "r" else cst.wslot

        def set_guards(names, cst):
            for nm in names:
                base, _, sl = nm.partition("@")
                if not sl:
                    m.d.comb += setting[(base, None)].eq(1)
                elif sl in ("a", "c"):
                    raise AssertionError("the update writes no guarded state")
                else:
                    sel = cst.rslot if sl == "r" else cst.wslot
                    for x in range(N_SLOTS):
                        with m.If(sel == x):
                            m.d.comb += setting[(base, x)].eq(1)

        # ---- loop registers (one segment at a time) -----------------------------------------------------
        R_ = lambda n, w=16: Signal(w, name=n)  # noqa: E731
        co, ci = R_("co", IDX_BITS + 2), R_("ci", IDX_BITS + 2)     # outer, inner counters
        half = Signal()                                            # UWA / UWC
        run = Signal(name="run")        # this cycle issues an op of the segment (decided a cycle ahead)
        first = Signal(name="first")    # ...and it is the segment's first
        # loop flags, registered: ci is the inner loop's first / last, co the outer loop's last
        ci_zero, ci_last, co_last = Signal(name="ci_zero"), Signal(name="ci_last"), Signal(name="co_last")
        wa, wrow = R_("wa"), R_("wrow")
        sa, sa0, sb = R_("sa"), R_("sa0"), R_("sb")
        ra, ra0, rc, rc0 = R_("ra"), R_("ra0"), R_("rc"), R_("rc0")
        rsa, rsb, rb = R_("rsa"), R_("rsb"), R_("rb")
        gp = R_("gp", IDX_BITS)
        gg = R_("gg", IDX_BITS)
        injg, lane, sbc = R_("injg", IDX_BITS), R_("lane", IDX_BITS), R_("sbc")
        pe = R_("pe", IDX_BITS + 1)
        m.d.comb += self.pix_addr.eq(pe)
        phase = Signal(2)
        m.d.comb += phase.eq(cur.phase)

        # segment order of a step: forward and reverse
        fwd = []
        for k in range(1, N + 1):
            fwd += [name for name, *_ in pl.step_segments(k, "r", "w")]
        rev = []
        for k in range(N, 0, -1):
            rev += [name for name, *_ in pl.step_segments(k, "r", "w")]
        segs = {name: (k, ops, reads, wl, wf) for k in range(1, N + 1)
                for name, ops, reads, wl, wf in pl.step_segments(k, "r", "w")}
        a_slot, c_slot = pl.update_slots
        upd_names = ["U0"] + [f"UW{n}" for n in range(1, N)] + [f"UB{n}" for n in range(1, N)]
        upd_reads = {"U0": ["L1@a", "L1@c", "key"]}
        for n in range(1, N):
            gname = pl.lane_state_guard(n)
            upd_reads[f"UW{n}"] = [gname + "@a", gname + "@c", f"R{n + 1}@a", f"R{n + 1}@c", "key"]
            upd_reads[f"UB{n}"] = [f"R{n + 1}@a", f"R{n + 1}@c", "key"]
        # U0's inner loop runs over the bias and the nnz pixels: nnz + 1 ops, a run-time count
        nnz_zero, nnz_m1 = Signal(name="nnz_zero"), Signal(IDX_BITS + 1, name="nnz_m1")
        # (inner, outer) loop counts of each segment (U0's inner one is nnz + 1, a run-time count)
        loops = {}
        for name, (k, *_) in segs.items():
            kk = 1 if name == "H" else k
            loops[name] = (s[kk + 1], pl.blocks(kk)) if name == "H" or name.startswith("F") else (pl.blocks(k - 1), s[k])
        for n in range(1, N):
            loops[f"UW{n}"], loops[f"UB{n}"] = (s[n + 1], pl.blocks(n)), (s[n + 1], 1)

        # ---- the next segment, a cycle ahead ------------------------------------------------------------
        # While a segment runs, ``nx`` holds what entering its successor takes: which successor
        # (``sel``, an index into the state's list), the loop registers' first values, the guards it
        # waits for (``chk``, one bit per guard register and the key), whether one of them is set by
        # this segment's last op (``conflict``). Computed from registers (the state, cur, nxt, learn)
        # and registered, so that the segment's last op only copies it. It is valid from a segment's
        # second cycle on: a segment of one op waits a cycle before it issues (``multi``; Plan does
        # the same).
        gkeys = list(guards)
        succ_lists = {}
        NX = data.StructLayout({
            "sel": 3, "step": 1, "sa": 16, "sb": 16, "ra": 16, "rc": 16, "rsa": 16, "rsb": 16, "rb": 16,
            "sbc": 16, "ci_last": 1, "co_last": 1, "chk": len(gkeys) + 1, "conflict": 1, "multi": 1,
            "to_drain": 1, "to_uw": 1})
        nx = Signal(NX, name="nx")
        nx_d = Signal(NX, name="nx_d")
        m.d.sync += nx.eq(nx_d)
        # fields a successor does not use keep their value (no constant-only processes in the Verilog)
        m.d.comb += [nx_d.eq(nx), nx_d.conflict.eq(0), nx_d.multi.eq(0), nx_d.step.eq(0)]
        chk = Signal(len(gkeys) + 1, name="chk")         # the guards the running segment waits for

        def ready(mask):
            """Every guard of ``mask`` reads 0 next cycle (if none is set this cycle)."""
            ok = Const(1, 1)
            for i, kk in enumerate(gkeys):
                ok = ok & (~mask[i] | soon[kk])
            return ok & (~mask[len(gkeys)] | key_soon)

        def mask_of(names, cst):
            """The ``chk`` bits of guard names ("R2@r", "d0", "L1@a", "key", ...) for step constants cst."""
            bits = [Const(0, 1)] * (len(gkeys) + 1)
            for nm in names:
                if nm == "key":
                    bits[len(gkeys)] = Const(1, 1)
                    continue
                base, _, sl = nm.partition("@")
                for i, (b, x) in enumerate(gkeys):
                    if b == base:
                        bits[i] = bits[i] | (Const(1, 1) if not sl else slot_of(sl, cst) == x)
            return Cat(*bits)

        def conflict_of(names, cst, sets, scst):
            """A guard of ``names`` (with cst) is set (to more than 0) by ``sets`` (with scst)."""
            c = Const(0, 1)
            for nm in names:
                base, _, sl = nm.partition("@")
                if nm == "key" or need[base] - 1 <= 0:
                    continue
                for snm in sets:
                    sbase, _, ssl = snm.partition("@")
                    if sbase == base:
                        c = c | (Const(1, 1) if not sl else slot_of(sl, cst) == slot_of(ssl, scst))
            return c

        def next_is(sel, name, cst, sets=(), scst=None, step=0):
            """nx_d: the successor ``name`` (index ``sel``) with step constants ``cst``, entered after
            the last op of a segment that sets ``sets`` (with ``scst``)."""
            m.d.comb += [nx_d.sel.eq(sel), nx_d.step.eq(step), nx_d.to_drain.eq(name == "DRAIN"),
                         nx_d.to_uw.eq(name.startswith("UW"))]
            if name == "DRAIN":
                return
            if name in segs:
                k, ops, reads, wl, wf = segs[name]
                reads = list(reads)
                m.d.comb += nx_d.chk.eq(mask_of(reads, cst) | (Cat(Const(0, len(gkeys)), cst.phase != 0)))
                m.d.comb += nx_d.multi.eq(ops > 1)
                if name == "H":
                    m.d.comb += [nx_d.sa.eq(slot_val(cst.rslot, lambda x: L(x, 1))),
                                 nx_d.sb.eq(slot_val(cst.wslot, lambda x: L(x, 1))),
                                 nx_d.ra.eq(slot_val(cst.rslot, lambda x: R(x, 2)))]
                elif name.startswith("F"):
                    m.d.comb += nx_d.ra.eq(slot_val(cst.rslot, lambda x: R(x, k + 1)))
                else:
                    m.d.comb += [nx_d.sa.eq(slot_val(cst.rslot, lambda x: L(x, k - 1))),
                                 nx_d.rsa.eq(slot_val(cst.rslot, lambda x: R(x, k))),
                                 nx_d.rsb.eq(slot_val(cst.wslot, lambda x: R(x, k))), nx_d.rb.eq(offR[k])]
                    if k < N:
                        m.d.comb += nx_d.sbc.eq(slot_val(cst.wslot, lambda x: L(x, k)))
            else:
                reads = upd_reads[name]
                m.d.comb += nx_d.chk.eq(mask_of(reads, cst))
                if name == "U0":
                    m.d.comb += [nx_d.ci_last.eq(nnz_zero), nx_d.co_last.eq(pl.blocks(1) == 1),
                                 nx_d.multi.eq(~nnz_zero | (pl.blocks(1) > 1)),
                                 nx_d.sa.eq(L(a_slot, 1)), nx_d.sb.eq(L(c_slot, 1))]
                elif name.startswith("UW"):
                    n = int(name[2:])
                    m.d.comb += [nx_d.multi.eq(1),          # two ops a weight
                                 nx_d.sa.eq(L(a_slot, n) if n in offL else 0),
                                 nx_d.sb.eq(L(c_slot, n) if n in offL else 0),
                                 nx_d.ra.eq(R(a_slot, n + 1)), nx_d.rc.eq(R(c_slot, n + 1))]
                else:
                    n = int(name[2:])
                    m.d.comb += [nx_d.multi.eq(s[n + 1] > 1),
                                 nx_d.rb.eq(offR[n + 1]), nx_d.ra.eq(R(a_slot, n + 1)), nx_d.rc.eq(R(c_slot, n + 1))]
            if name in loops:
                inner, outer = loops[name]
                m.d.comb += [nx_d.ci_last.eq(inner == 1), nx_d.co_last.eq(outer == 1)]
            if sets:
                m.d.comb += nx_d.conflict.eq(conflict_of(reads, cst, sets, scst))

        def plan_successors(name, sets=()):
            """nx_d in state ``name`` (a step segment or D0): its successor, chosen from registers."""
            if name == "D0":
                succ_lists[name] = [fwd[0]]
                next_is(0, fwd[0], cur, sets, cur)
                return
            i_f, i_r = fwd.index(name), rev.index(name)
            nf = fwd[i_f + 1] if i_f + 1 < len(fwd) else None
            nr = rev[i_r + 1] if i_r + 1 < len(rev) else None
            # successors: the next segment of this step (either order), or after the step: the first
            # segment of the next step (either order), the update, the drain
            lst = list(dict.fromkeys(x for x in (nf, nr) if x))
            if not nf or not nr:
                for x in (fwd[0], rev[0], "U0" if train else None, "DRAIN"):
                    if x and x not in lst:
                        lst.append(x)
            succ_lists[name] = lst
            assert len(lst) <= 8

            def after_step():
                with m.If(cur.last_step | (cur.last_free_step & ~learn)):
                    if train:
                        with m.If(learn):
                            next_is(lst.index("U0"), "U0", cur, sets, cur, step=1)
                        with m.Else():
                            next_is(lst.index("DRAIN"), "DRAIN", cur, step=1)
                    else:
                        next_is(lst.index("DRAIN"), "DRAIN", cur, step=1)
                with m.Elif(nxt.forward):
                    next_is(lst.index(fwd[0]), fwd[0], nxt, sets, cur, step=1)
                with m.Else():
                    next_is(lst.index(rev[0]), rev[0], nxt, sets, cur, step=1)
            with m.If(cur.forward):
                if nf:
                    next_is(lst.index(nf), nf, cur, sets, cur)
                else:
                    after_step()
            with m.Else():
                if nr:
                    next_is(lst.index(nr), nr, cur, sets, cur)
                else:
                    after_step()

        drain = Signal(range(pl.drain + 1))

        # ``going``: this cycle is a segment's last op. The states only pick the successor state;
        # the one block after the state machine enters it from ``nx``, so that the loop registers
        # share one select instead of a case tree each over the states (6 LUT levels).
        # It comes from registers: which kind of state runs (in_d0: D0, no guard; in_seg: a segment
        # or an update; in_uw: a weight update, two ops a weight), kept beside the state machine.
        going = Signal(name="going")
        in_d0, in_seg, in_uw = Signal(name="in_d0"), Signal(name="in_seg"), Signal(name="in_uw")
        m.d.comb += going.eq(ci_last & co_last & (in_d0 | (in_seg & run & (~in_uw | half))))

        def go_next(name):
            """The segment's last op: enter the successor from ``nx``."""
            lst = succ_lists[name]
            with m.Switch(nx.sel):
                for i, x in enumerate(lst):
                    with m.Case(i):
                        m.next = x

        def loop(outer, inner, on_inner, on_outer, on_end):
            """Advance (co, ci) over outer x inner; the hooks add the field updates. The flags are
            registered (``ci == inner - 2`` now means ``ci_last`` next), so no compare is on the op's path.
            A run-time ``inner`` is given as (inner == 1, inner - 2), both registers."""
            inner_one, inner_m2 = inner if isinstance(inner, tuple) else (inner == 1, inner - 2)
            with m.If(ci_last):
                m.d.sync += [ci.eq(0), ci_zero.eq(1), ci_last.eq(inner_one)]
                with m.If(co_last):
                    on_end()
                with m.Else():
                    m.d.sync += [co.eq(co + 1), co_last.eq(co == outer - 2)]
                    on_outer()
            with m.Else():
                m.d.sync += [ci.eq(ci + 1), ci_zero.eq(0), ci_last.eq(ci == inner_m2)]
                on_inner()

        nudge_on = phase != 0
        neg = Mux(phase == 2, 1, (phase == 1) & sneg)

        def segment_state(name):
            k, ops, reads, wlast, wfirst = segs[name]
            with m.State(name):
                m.d.comb += busy.eq(1)
                # the successor's entry; a segment of one op sets its first guards at its last op too
                plan_successors(name, list(wlast) + (list(wfirst) if ops == 1 else []))
                with m.If(~run):
                    m.d.sync += run.eq(ready(chk))
                with m.Else():
                    m.d.sync += first.eq(0)
                    with m.If(first):
                        set_guards(wfirst, cur)
                    inner, outer = loops[name]
                    if name == "H" or name.startswith("F"):
                        kk = 1 if name == "H" else k
                        emit(Kind.FB, gl=kk, wl=kk, waddr=wa, g=gg, gp=gp, sa=sa, sb=sb, ra=ra, zero_op=cur.zero,
                             zero=cur.zero, zero2=cur.zero2, clear=ci_zero, last=ci_last,
                             lastfree=cur.lastfree if kk == 1 else 0, layer=kk)
                        m.d.sync += [wa.eq(wa + 1)]

                        def on_inner():
                            m.d.sync += ra.eq(ra + 1)

                        def on_outer():
                            m.d.sync += [ra.eq(ra0), gg.eq(gg + 1), gp.eq(gp + P), sa.eq(sa + 1), sb.eq(sb + 1)]
                    else:       # O_k: forward into root layer k
                        mid = k < N
                        emit(Kind.FWD, gl=k - 1, wl=k - 1, waddr=wa, g=ci, gp=gp, sa=sa, zero=cur.zero,
                             zero2=cur.zero2, clear=ci_zero, last=ci_last, layer=k, i=co,
                             rb=rb, rsa=rsa, rsb=rsb, nudge=nudge_on & (k == N), neg=neg,
                             lastfree=cur.lastfree,
                             **(dict(inj=ci_zero, inj_g=injg, lane=lane, sb=sbc) if mid else {}))

                        def on_inner():
                            m.d.sync += [wa.eq(wa + s[k]), sa.eq(sa + 1), gp.eq(gp + P)]

                        def on_outer():
                            m.d.sync += [wrow.eq(wrow + 1), wa.eq(wrow + 1), sa.eq(sa0), gp.eq(0),
                                         rb.eq(rb + 1), rsa.eq(rsa + 1), rsb.eq(rsb + 1)]
                            if mid:
                                with m.If(lane == P - 1):
                                    m.d.sync += [lane.eq(0), injg.eq(injg + 1), sbc.eq(sbc + 1)]
                                with m.Else():
                                    m.d.sync += lane.eq(lane + 1)

                    def on_end():
                        set_guards(wlast, cur)
                        go_next(name)
                    loop(outer, inner, on_inner, on_outer, on_end)

        # ---- update segments ------------------------------------------------------------------------
        def update_state(name, body):
            i = upd_names.index(name)
            nxt_name = upd_names[i + 1] if i + 1 < len(upd_names) else "DRAIN"
            succ_lists[name] = [nxt_name]
            with m.State(name):
                m.d.comb += busy.eq(1)
                next_is(0, nxt_name, cur)           # the update sets no guard
                with m.If(~run):
                    m.d.sync += run.eq(ready(chk))
                with m.Else():
                    body(lambda: go_next(name))

        def update_states():
            if not train:
                return

            def u0(end):
                with m.If(ci_zero):
                    emit(Kind.U0B, gl=1, g=gg, gp=gp, sa=sa, sb=sb)
                with m.Else():
                    emit(Kind.U0, gl=1, wl=0, g=gg, gp=gp, sa=sa, sb=sb, waddr=wa, pixel=1)
                    m.d.sync += pe.eq(pe + 1)

                def on_outer():
                    m.d.sync += [gg.eq(gg + 1), gp.eq(gp + P), sa.eq(sa + 1), sb.eq(sb + 1), wa.eq(wa + s[0]),
                                 pe.eq(0)]
                loop(pl.blocks(1), (nnz_zero, nnz_m1), lambda: None, on_outer, end)
            update_state("U0", u0)
            for n in range(1, N):
                def uw(end, n=n):
                    m.d.sync += half.eq(~half)
                    emit(Mux(half, Kind.UWC, Kind.UWA), gl=n, wl=n, g=gg, gp=gp, sa=sa, sb=sb, waddr=wa,
                         ra=ra, rc=rc, idx=ci)
                    with m.If(half):
                        m.d.sync += wa.eq(wa + 1)

                        def on_inner():
                            m.d.sync += [ra.eq(ra + 1), rc.eq(rc + 1)]

                        def on_outer():
                            m.d.sync += [ra.eq(ra0), rc.eq(rc0), gg.eq(gg + 1), gp.eq(gp + P), sa.eq(sa + 1),
                                         sb.eq(sb + 1)]
                        inner, outer = loops[f"UW{n}"]
                        loop(outer, inner, on_inner, on_outer, end)
                update_state(f"UW{n}", uw)
            for n in range(1, N):
                def ub(end, n=n):
                    emit(Kind.UBR, layer=n, i=ci, rb=rb, ra=ra, rc=rc)
                    m.d.sync += [rb.eq(rb + 1), ra.eq(ra + 1), rc.eq(rc + 1)]
                    inner, outer = loops[f"UB{n}"]
                    loop(outer, inner, lambda: None, lambda: None, end)
                update_state(f"UB{n}", ub)

        # ---- the sample ----------------------------------------------------------------------------
        # D0's inner loop: max(nnz, 1) ops a block
        d0_one, d0_m2 = Signal(name="d0_one"), Signal(IDX_BITS + 1, name="d0_m2")
        self._acc = Signal(ACCESS_LAYOUT, name="acc")
        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                # D0's successor (H or the first segment) from step 0's constants, for a D0 of one op
                next_is(0, fwd[0], table(0), ["d0"], table(0))
                # a sample's first values, loaded in every idle cycle (nothing reads them before the
                # sample starts; a host access may run the hash meanwhile, a start restarts it): the
                # start decision (the loader's ``ready``) selects none of these registers
                m.d.sync += [nnz_zero.eq(self.nnz == 0), nnz_m1.eq(self.nnz - 1),
                             d0_one.eq(self.nnz <= 1), d0_m2.eq(self.nnz - 2),
                             hx.eq(t[16:]), hy.eq(t[:16]), hr.eq(0), key_soon.eq(0),
                             co.eq(0), ci.eq(0), ci_zero.eq(1), ci_last.eq(self.nnz <= 1),
                             co_last.eq(pl.blocks(1) == 1), gg.eq(0), gp.eq(0), wa.eq(0), pe.eq(0),
                             cur.eq(table(0)), u1.eq(1)]
                with m.If(self.t_set):
                    m.d.sync += t.eq(self.t_value)
                with m.Elif(self.access.valid):
                    m.d.comb += self.access.ready.eq(1)
                    m.d.sync += self._acc.eq(self.access.payload)
                    m.next = "HDEC"
                with m.Elif(self.ready):
                    m.d.comb += self.start.eq(1)
                    # learn and label only at the start: the root reads them
                    m.d.sync += [learn.eq(self.learn_in if train else 0), label.eq(self.label_in)]
                    m.next = "D0"
            self._host_states(m, emit)
            with m.State("D0"):
                m.d.comb += busy.eq(1)
                plan_successors("D0", ["d0"])
                emit(Kind.D0MAC, gl=1, wl=0, g=gg, gp=gp, waddr=wa, pixel=~nnz_zero, clear=ci_zero, last=ci_last)
                m.d.sync += pe.eq(pe + 1)

                def on_outer():
                    m.d.sync += [gg.eq(gg + 1), gp.eq(gp + P), wa.eq(wa + s[0]), pe.eq(0)]

                def on_end():
                    m.d.comb += setting[("d0", None)].eq(1)
                    go_next("D0")
                loop(pl.blocks(1), (d0_one, d0_m2), lambda: None, on_outer, on_end)
            for name in fwd:
                segment_state(name)
            update_states()
            with m.State("DRAIN"):
                m.d.comb += busy.eq(1)
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == pl.drain - 1):
                    m.d.sync += smp.eq(smp + 1)
                    with m.If(learn):
                        m.d.sync += [t.eq(t + 1), uns.eq(uns + self.moved),
                                     cyl.eq(cyl + (self.moved & ~self.moved2 & (cfg.T1 >= 2)))]
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += [busy.eq(1), self.result.valid.eq(1), self.result.payload.eq(self.best)]
                with m.If(self.result.ready):
                    m.d.comb += self.release.eq(1)
                    m.next = "IDLE"
        # after the state machine: these win over the states' own updates in the same cycle, as
        # the last statements of a segment's last op did
        with m.If(going):
            m.d.sync += [in_d0.eq(0), in_seg.eq(~nx.to_drain), in_uw.eq(nx.to_uw)]
        with m.If(self.start):
            m.d.sync += [in_d0.eq(1), in_seg.eq(1), in_uw.eq(0)]
        with m.If(going):
            m.d.sync += [co.eq(0), ci.eq(0), ci_zero.eq(1), ci_last.eq(nx.ci_last), co_last.eq(nx.co_last),
                         half.eq(0), gg.eq(0), gp.eq(0), pe.eq(0), wa.eq(0), wrow.eq(0), injg.eq(0),
                         lane.eq(0), first.eq(1), chk.eq(nx.chk),
                         sa.eq(nx.sa), sa0.eq(nx.sa), sb.eq(nx.sb), ra.eq(nx.ra), ra0.eq(nx.ra), rc.eq(nx.rc),
                         rc0.eq(nx.rc), rsa.eq(nx.rsa), rsb.eq(nx.rsb), rb.eq(nx.rb), sbc.eq(nx.sbc),
                         run.eq(ready(nx.chk) & nx.multi & ~nx.conflict), drain.eq(0)]
            with m.If(nx.step):
                m.d.sync += [cur.eq(nxt), u1.eq(u1 + 1)]
        return m

    # ---- host accesses ------------------------------------------------------------------------------
    def _host_accept(self, m, a):
        """Latch the command and what the division needs: the owned index, the stride, the base."""
        pl = self.pl
        N, s = pl.N, pl.sizes
        h = self._h = {n: Signal(w, name=f"h_{n}") for n, w in (
            ("kind", 4), ("target", 3), ("wl", 2), ("gl", 2), ("layer", 3), ("cid", 3), ("row", IDX_BITS),
            ("num", DIV_BITS + 1), ("stride", 16), ("base", 16), ("data", 32), ("raddr", 16), ("rb", 16))}
        is_write = (a.op == Access.WRITE_WEIGHT) | (a.op == Access.WRITE_BIAS)
        m.d.sync += [h["kind"].eq(Mux(is_write, Kind.HWR, Kind.HRD)), h["target"].eq(Target.NONE),
                     h["data"].eq(a.data), h["num"].eq(0), h["stride"].eq(0), h["base"].eq(0),
                     h["layer"].eq(a.layer), h["cid"].eq(a.row), h["gl"].eq(1), h["wl"].eq(0)]
        row, col = a.row, a.col
        with m.Switch(a.op):
            with m.Case(Access.READ_WEIGHT, Access.WRITE_WEIGHT):
                for n in range(N):
                    with m.If((a.layer == n) & (row < s[n + 1]) & (col < s[n])):
                        m.d.sync += [h["target"].eq(Target.WEIGHT), h["wl"].eq(n), h["gl"].eq(max(n, 1))]
                        if n == 0:
                            m.d.sync += [h["num"].eq(row), h["stride"].eq(s[0]), h["base"].eq(col)]
                        else:
                            m.d.sync += [h["num"].eq(col), h["stride"].eq(s[n + 1]), h["base"].eq(row)]
            with m.Case(Access.READ_BIAS, Access.WRITE_BIAS):
                with m.If((a.layer == 0) & (row < s[1])):
                    m.d.sync += [h["target"].eq(Target.LANE_BIAS), h["num"].eq(row), h["stride"].eq(1)]
                for n in range(1, N):
                    with m.If((a.layer == n) & (row < s[n + 1])):
                        m.d.sync += [h["target"].eq(Target.ROOT_BIAS), h["rb"].eq(pl.root_state_offsets[n + 1] + row)]
            with m.Case(Access.READ_STATE):
                slots = [pl.slot_free, pl.slot_nudged, pl.slot_negative if pl.symmetric else pl.slot_nudged]
                for ph, slot in enumerate(slots):
                    with m.If((a.layer == 1) & (row == ph) & (col < s[1])):
                        m.d.sync += [h["target"].eq(Target.LANE_STATE), h["num"].eq(col), h["stride"].eq(1),
                                     h["base"].eq(slot * pl.SL + pl.lane_state_offsets[1])]
                    for k in pl.root_layers:
                        with m.If((a.layer == k) & (row == ph) & (col < s[k])):
                            m.d.sync += [h["target"].eq(Target.ROOT_STATE),
                                         h["raddr"].eq(slot * pl.SR + pl.root_state_offsets[k] + col)]
            with m.Case(Access.READ_COUNTER):
                with m.If((a.layer < N) & (row < 5)):
                    m.d.sync += h["target"].eq(Target.COUNTER)

    def _host_states(self, m, emit):
        """HDEC: decode the command; HDIV: q, r = num // P, num % P and addr = base + q * stride (binary long division);
        HEMIT: the op; HOST: wait for the response."""
        pl = self.pl
        P = pl.P
        with m.State("HDEC"):             # the command was latched in IDLE; decode it here
            self._host_accept(m, self._acc)
            m.next = "HDIV"
        h = self._h
        q, rem, addr = Signal(IDX_BITS + 1), Signal(DIV_BITS + 1), Signal(16)
        bit = Signal(range(DIV_BITS + 1))
        with m.State("HDIV"):
            with m.If(bit == 0):
                m.d.sync += [rem.eq(h["num"]), q.eq(0), addr.eq(h["base"]), bit.eq(1)]
            with m.Else():
                b = Signal(range(DIV_BITS), name="div_bit")          # bits DIV_BITS-1 .. 0
                m.d.comb += b.eq(DIV_BITS - bit)
                step = Const(P, 32) << b
                with m.If(rem >= step):
                    m.d.sync += [rem.eq(rem - step), q.eq(q | (Const(1, 32) << b)),
                                 addr.eq(addr + (h["stride"] << b))]
                with m.If(bit == DIV_BITS):
                    m.d.sync += bit.eq(0)
                    m.next = "HEMIT"
                with m.Else():
                    m.d.sync += bit.eq(bit + 1)
        with m.State("HEMIT"):
            tgt = h["target"]
            emit(h["kind"], target=tgt, lane=rem, wl=h["wl"], gl=h["gl"], g=q, waddr=addr, sa=addr,
                 ra=h["raddr"], rb=h["rb"], layer=h["layer"], cid=h["cid"], hdata=h["data"])
            m.next = "HOST"
        with m.State("HOST"):
            with m.If(self.rsp_valid & self.rsp_ready):
                m.next = "IDLE"
