"""Organisation and schedule of the lane-local EqProp core, as plain Python (no Amaranth, no torch).

The core (``eqfpga.hdl.core`` and its parts), the resource estimate (``eqfpga.hdl.resources``), the
report (``eqfpga.hdl.generate``) and the simulators (``eqfpga.sim``) all read the organisation and
the cycle counts from here, so they cannot disagree. docs/hardware.md explains the design.

Organisation (P = cfg.parallelism lanes, N weight layers, neuron layers 1..N):

* Lane p owns neuron i = g*P + p of every layer k = 1..N-1 (g < G_k = ceil(s_k / P)).
* ``W_0``: lane p holds the rows of its layer-1 neurons, W_0[g*P+p][j] at address g*s_0 + j.
* ``W_n`` (n >= 1): lane p holds the columns of its layer-n neurons, W_n[m][g*P+p] at address
  g*s_(n+1) + m. The forward product into layer n+1 (a tree sum over lanes) and the feedback into
  layer n (a local sum over the broadcast s_(n+1)[m]) read the same stored word.
* ``b_0``, the input drive d0 and the layer-1 states live in the lanes (address g); the biases and
  states of layers 2..N live in the root, which finishes those neurons one a cycle from the adder
  tree's sum. The lanes keep a copy of the middle layers' (2..N-1) states for their own products.
* States: N_SLOTS slots. The free phase ping-pongs in slots 0/1, the nudged phase in 2/3, the
  negative (symmetric) phase in the two slots not holding the free and nudged results, so the final
  states of all three phases survive the sample (host reads, the update).

Schedule: a sample is a list of *segments* (the input drive, one per layer and step, the update
parts); each emits one op a cycle. A segment starts when the *guards* of what it reads have run
out: a write at pipeline depth w read at depth r needs the reading op emitted at least w - r + 1
cycles after the writing one. ``Plan.segments`` lists them with their cycles; the controller
implements the same rule with countdown registers, and the RTL's ``cycles`` counter equals
``sample_cycles`` (tests/test_hdl_core.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from eqfpga.golden.config import EPConfig
from eqfpga.golden.fixedpoint import share_bits

N_SLOTS = 4
IDX_BITS = 14               # neuron indices (14-bit fields of the spec's random counter)
BROADCAST_FANOUT = 8        # registers one register of the broadcast tree drives
BROADCAST_LEAF = 4          # lanes one register of the tree's last level drives (neighbours: one hash group)
KEY_CYCLES = 16             # H(seed, t), then the sign H(key, SIGN_COUNTER): one ARX round a cycle

# ---- pipeline depths (an op emitted in cycle e is at depth d in cycle e + d) ------------------
OP_DEPTH = 1                # the controller's op register
ROOT_READ_DEPTH = 1         # root state reads for the broadcast operands (address from the op register)
RECORD_DEPTH = 3            # the broadcast record (operands read and registered) enters the tree
# lane stages (relative to the lane's op register, at depth RECORD_DEPTH + broadcast levels)
LANE_MAC = 4                # product registered at 4; the accumulator takes it in 4 -> 5
LANE_ACC_WRITE = 5          # d0 / feedback accumulators stored from the accumulator at 5
LANE_TREE = 5               # the lane's adder-tree input register is visible at 5
LANE_STATE_WRITE = 7        # layer-1 finish: acc + terms (5), round and clamp (6), state write (7)
LANE_FLAGS = 9              # clamp and settling flags registered at 9 (into the flag trees)
LANE_HASH = 9               # random word of the lane's hash (counter registered at 1, 8 rounds)
LANE_PARAM_WRITE = 13       # + R (9), shift (10), saturate the update (11), add and saturate (12), write (13)
LANE_UPDATE_FLAGS = 14
# root stages relative to the adder tree's output (depth DT)
ROOT_TERMS_READ = -3        # bias and old states read for the finish terms
ROOT_STATE_WRITE = 3        # racc (1), acc + terms (2), round and clamp, state write (3)
ROOT_BIAS_WRITE = 14        # root bias update: R at 10, round 11, shift 12, saturate 13, write 14
ROOT_BIAS_FLAGS = 15


def _cdiv(a, b):
    return -(-a // b)


def broadcast_levels(P: int, leaf: int = BROADCAST_LEAF) -> int:
    """Register levels of the broadcast tree below the record register: the last level has one
    register for ``leaf`` neighbouring lanes, each level above at most BROADCAST_FANOUT times fewer."""
    levels, n = 1, _cdiv(P, leaf)
    while n > BROADCAST_FANOUT:
        n = _cdiv(n, BROADCAST_FANOUT)
        levels += 1
    return levels


def tree_levels(P: int) -> int:
    """Registered levels of the adder tree (pairwise sums)."""
    return max(0, (P - 1).bit_length())


@dataclass(frozen=True)
class Segment:
    """One run of ops of one kind: ``name`` (e.g. "H" layer 1, "O3" root layer 3), first op's cycle
    (from the sample's first busy cycle), ops, and what the step / phase was."""
    name: str
    start: int
    ops: int
    phase: str = ""
    step: int = 0


@dataclass(frozen=True)
class Plan:
    cfg: EPConfig

    def __post_init__(self):
        if not isinstance(self.cfg, EPConfig):
            raise TypeError(f"cfg must be an EPConfig, not {self.cfg!r}")

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def P(self) -> int:
        return self.cfg.parallelism

    @property
    def sizes(self) -> tuple:
        return self.cfg.sizes

    @property
    def N(self) -> int:
        return self.cfg.n_layers

    def blocks(self, k: int) -> int:
        """G_k: neurons of layer k a lane owns at most (groups)."""
        return _cdiv(self.sizes[k], self.P)

    def lane_groups(self, k: int, p: int) -> int:
        """Groups of layer k lane p really owns (neurons g*P + p < s_k)."""
        return max(0, _cdiv(self.sizes[k] - p, self.P))

    @property
    def lane_layers(self) -> range:
        """Layers whose neurons (and outgoing weights) the lanes own: 1..N-1."""
        return range(1, self.N)

    @property
    def root_layers(self) -> range:
        """Layers the root finishes: 2..N."""
        return range(2, self.N + 1)

    @property
    def middle_layers(self) -> range:
        """Layers both: finished by the root, copied into the lanes (2..N-1)."""
        return range(2, self.N)

    # ---- lane memories -------------------------------------------------------------------
    def w_depth(self, n: int) -> int:
        """Words of a lane's W_n memory."""
        return self.blocks(1) * self.sizes[0] if n == 0 else self.blocks(n) * self.sizes[n + 1]

    def w_base(self, n: int) -> int:
        """First word of W_n in a lane's weight memory: one memory holds every layer, W_0 first
        (its block RAM has room for the small W_n: no LUT RAM and no select after the read)."""
        return sum(self.w_depth(k) for k in range(n))

    @property
    def w_words(self) -> int:
        """Words of a lane's weight memory."""
        return max(2, self.w_base(self.N))

    def weight_addr(self, n: int, i: int, j: int) -> tuple:
        """(lane, address in its weight memory) of W_n[i][j]."""
        P = self.P
        if n == 0:
            return i % P, (i // P) * self.sizes[0] + j
        return j % P, self.w_base(n) + (j // P) * self.sizes[n + 1] + i

    def bias_addr(self, n: int, i: int) -> tuple:
        """(lane, address) of b_n[i]: lane -1 is the root."""
        if n == 0:
            return i % self.P, i // self.P
        return -1, i

    @property
    def lane_state_offsets(self) -> dict:
        """Word offset of layer k in one slot of a lane's state memory (k = 1..N-1)."""
        off, acc = {}, 0
        for k in self.lane_layers:
            off[k] = acc
            acc += self.blocks(k)
        return off

    @property
    def SL(self) -> int:
        """Words of one slot of a lane's state memory."""
        return sum(self.blocks(k) for k in self.lane_layers)

    @property
    def root_state_offsets(self) -> dict:
        off, acc = {}, 0
        for k in self.root_layers:
            off[k] = acc
            acc += self.sizes[k]
        return off

    @property
    def SR(self) -> int:
        """Words of one slot of the root's state memory."""
        return sum(self.sizes[k] for k in self.root_layers)

    def lane_state_addr(self, slot: int, k: int, g: int) -> int:
        return slot * self.SL + self.lane_state_offsets[k] + g

    def root_state_addr(self, slot: int, k: int, i: int) -> int:
        return slot * self.SR + self.root_state_offsets[k] + i

    # ---- phase slots ---------------------------------------------------------------------
    @property
    def slot_free(self) -> int:
        return (self.cfg.T1 - 1) % 2

    @property
    def slot_nudged(self) -> int:
        return 2 + (self.cfg.T2 - 1) % 2

    @property
    def neg_slots(self) -> tuple:
        """(A, B) ping-pong slots of the negative phase: neither the free nor the nudged result."""
        return 1 - self.slot_free, 5 - self.slot_nudged

    @property
    def slot_negative(self) -> int:
        a, b = self.neg_slots
        return a if self.cfg.T2 % 2 == 1 else b

    @property
    def symmetric(self) -> bool:
        return self.cfg.nudging == "symmetric"

    @property
    def update_slots(self) -> tuple:
        """(a, c): the slots of the update's two state sets (nudged, and negative or free)."""
        return self.slot_nudged, (self.slot_negative if self.symmetric else self.slot_free)

    def steps(self, learn: bool = True) -> list:
        """Every step in order: dict(phase, step, rslot, wslot, zero, zero2, lastfree, forward).
        ``rslot`` holds s_(t-1) (ignored when ``zero``: the free phase starts from zeros), ``wslot``
        receives s_t and holds s_(t-2) before (zeros when ``zero2``); ``forward``: layers 1..N in order,
        else N..1 (alternating, so that a layer's inputs were finished two segments earlier)."""
        cfg, out = self.cfg, []
        for t in range(1, cfg.T1 + 1):
            out.append(dict(phase="free", step=t, rslot=(t - 2) % 2, wslot=(t - 1) % 2, zero=t == 1,
                            zero2=t <= 2, lastfree=t == cfg.T1))
        if learn:
            for t in range(1, cfg.T2 + 1):
                out.append(dict(phase="nudged", step=t, rslot=self.slot_free if t == 1 else 2 + (t - 2) % 2,
                                wslot=2 + (t - 1) % 2, zero=False, zero2=False, lastfree=False))
            if self.symmetric:
                na, nb = self.neg_slots
                for t in range(1, cfg.T2 + 1):
                    out.append(dict(phase="negative", step=t,
                                    rslot=self.slot_free if t == 1 else (na if t % 2 == 0 else nb),
                                    wslot=na if t % 2 == 1 else nb, zero=False, zero2=False, lastfree=False))
        for u, st in enumerate(out):
            st["forward"] = u % 2 == 0
        return out

    def step_slots(self, learn: bool = True) -> list:
        """(phase, step, slot) of every step in order."""
        return [(s["phase"], s["step"], s["wslot"]) for s in self.steps(learn)]

    # ---- shifts (docs/fixed-point.md, "Update") -----------------------------------------
    @property
    def acc_width(self) -> int:
        """Accumulator and adder-tree width: what ``EPConfig.acc_bits_needed`` proves enough for
        every partial sum (fixed.acc_bits is the upper limit the config allows)."""
        return min(self.cfg.fixed.acc_bits, self.cfg.acc_bits_needed())

    def lane_update_shifts(self) -> list:
        """(op kind name, layer, shift) of the lanes' update classes: b_0, W_0, W_n for n >= 1."""
        return ([("U0B", 0, self.sh_b(0)), ("U0", 0, self.sh_w(0))]
                + [("UWC", n, self.sh_w(n)) for n in range(1, self.N)])

    def lane_random_bits(self) -> list:
        """Random bits m of the lanes' update classes that need any (stochastic rounding and a
        positive shift)."""
        if self.cfg.fixed.update_rounding != "stochastic":
            return []
        return [sh for *_, sh in self.lane_update_shifts() if sh > 0]

    @property
    def hash_share(self) -> int:
        """Lanes that share one hash pipeline: the fewest neurons a hash word serves among the
        lanes' classes (docs/fixed-point.md: S = 32 / share_bits(m)), halved until it divides P;
        lane p reads the word of lane p - p % hash_share."""
        ms = self.lane_random_bits()
        if not ms:
            return 1
        share = min(32 // share_bits(m) for m in ms)
        while self.P % share:
            share //= 2
        return share

    def sh_w(self, n: int) -> int:
        f = self.cfg.fixed
        f_pre = f.input_frac if n == 0 else f.state_frac
        sym = 1 if self.symmetric else 0
        return f.state_frac + f_pre + self.cfg.lr_shifts[n] - self.cfg.beta_shift + sym - f.weight_frac

    def sh_b(self, n: int) -> int:
        f = self.cfg.fixed
        sym = 1 if self.symmetric else 0
        return f.state_frac + self.cfg.lr_shifts[n] - self.cfg.beta_shift + sym - f.bias_frac

    # ---- pipeline depths -----------------------------------------------------------------
    @property
    def LB(self) -> int:
        return broadcast_levels(self.P)

    @property
    def LT(self) -> int:
        return tree_levels(self.P)

    @property
    def DL(self) -> int:
        """Depth of the lanes' op register."""
        return RECORD_DEPTH + self.LB

    @property
    def DT(self) -> int:
        """Depth of the adder tree's output register (at the root)."""
        return self.DL + LANE_TREE + self.LT

    @property
    def last_depth(self) -> int:
        """Depth of the pipeline's last effect (a counter or memory write)."""
        return max(self.DL + LANE_UPDATE_FLAGS + self.LT + 1, self.DT + ROOT_STATE_WRITE + 2,
                   ROOT_BIAS_FLAGS + 1, self.DL + LANE_FLAGS + self.LT + 1)

    @property
    def drain(self) -> int:
        """Cycles after the last op before the sample counts: every effect has landed."""
        return self.last_depth + 1

    @property
    def response_depth(self) -> int:
        """Depth at which a host access answers (after any write, after lane values came up the tree)."""
        return max(self.DT, ROOT_BIAS_WRITE, self.DL + LANE_PARAM_WRITE) + 2

    def guards(self) -> dict:
        """name -> cycles between a producing op and the first op that may read what it wrote."""
        DT = self.DT
        g = {"d0": LANE_ACC_WRITE + 1,                              # d0, stored at the lane stage 5
             "L1": LANE_STATE_WRITE + 1,                              # lane states, read at the lane op
             "L1self": LANE_STATE_WRITE + 1,
             "key": 0}
        for k in self.root_layers:
            g[f"R{k}"] = DT + ROOT_STATE_WRITE - ROOT_READ_DEPTH + 1   # root states as broadcast operands
            g[f"R{k}self"] = ROOT_STATE_WRITE - ROOT_TERMS_READ + 1    # the old state of the same neuron
        for k in self.middle_layers:
            g[f"fb{k}"] = LANE_ACC_WRITE + 1
            # the copy: root state register (DT + 3) -> record register -> LB levels -> lane write
            g[f"C{k}"] = DT + ROOT_STATE_WRITE + 1 + self.LB - self.DL + 1
        return g

    # ---- schedule ------------------------------------------------------------------------
    def lane_state_guard(self, k: int) -> str:
        """The guard of layer k's states as the lanes read them (k in 1..N-1)."""
        return "L1" if k == 1 else f"C{k}"

    def step_segments(self, k: int, rslot: int = 0, wslot: int = 1) -> list:
        """[(name, ops, reads, writes_last, writes_first)] of layer k in a step reading slot
        ``rslot`` and writing ``wslot``. Guards of states are per slot ("R2@1"): a step reads the
        slot of step t-1 and, for the settling check and the nudge, the old values of its own
        layer (per neuron, hence the "self" guards set by a segment's first op)."""
        s, N = self.sizes, self.N
        r, w = f"@{rslot}", f"@{wslot}"
        if k == 1:
            return [("H", self.blocks(1) * s[2], ["R2" + r, "d0", "L1self" + r, "L1self" + w],
                     ["L1" + w], ["L1self" + w])]
        out = []
        if k < N:
            out.append((f"F{k}", self.blocks(k) * s[k + 1], [f"R{k + 1}" + r], [f"fb{k}"], []))
        out.append((f"O{k}", s[k] * self.blocks(k - 1),
                    [self.lane_state_guard(k - 1) + r, f"R{k}self" + r, f"R{k}self" + w]
                    + ([f"fb{k}"] if k < N else []),
                    [f"R{k}" + w] + ([f"C{k}" + w] if k < N else []), [f"R{k}self" + w]))
        return out

    def segments(self, nnz: int, learn: bool = True) -> list:
        """Every segment of a sample with ``nnz`` non-zero pixels, with its first op's cycle."""
        s, N = self.sizes, self.N
        need = self.guards()
        free = {}                   # guard -> first cycle a reader may emit
        out = []
        t = 0

        def run(name, ops, reads, writes_last=(), writes_first=(), phase="", step=0):
            nonlocal t
            # the controller prepares a segment's successor during its second cycle: a segment of a
            # single op (not D0, which the idle state prepares for) waits a cycle before it issues
            start = max([t + (ops == 1 and name != "D0")] + [free.get(r, 0) for r in reads])
            out.append(Segment(name, start, ops, phase, step))
            for w in writes_first:
                free[w] = start + need[w.split("@")[0]]
            for w in writes_last:
                free[w] = start + ops - 1 + need[w.split("@")[0]]
            t = start + ops

        free["key"] = KEY_CYCLES if learn else 0
        run("D0", self.blocks(1) * max(nnz, 1), [], ["d0"])
        for st in self.steps(learn):
            order = range(1, N + 1) if st["forward"] else range(N, 0, -1)
            for k in order:
                for name, ops, reads, wl, wf in self.step_segments(k, st["rslot"], st["wslot"]):
                    if st["phase"] != "free":
                        reads = reads + ["key"]        # the nudge's sign
                    run(name, ops, reads, wl, wf, st["phase"], st["step"])
        if learn:
            a, c = (f"@{x}" for x in self.update_slots)
            run("U0", self.blocks(1) * (1 + nnz), ["L1" + a, "L1" + c, "key"])
            for n in range(1, N):
                g = self.lane_state_guard(n)
                run(f"UW{n}", 2 * self.blocks(n) * s[n + 1], [g + a, g + c, f"R{n + 1}" + a, f"R{n + 1}" + c, "key"])
            for n in range(1, N):
                run(f"UB{n}", s[n + 1], [f"R{n + 1}" + a, f"R{n + 1}" + c, "key"])
        return out

    def sample_cycles(self, nnz: int, learn: bool = True) -> dict:
        """Cycles of one sample, per part, as the controller runs them (counted by ``cycles``):
        input drive, free steps, nudged (and negative) steps, update, drain and result, total.
        Loading the pixels and the key overlap the previous sample / the input drive: no cycles."""
        segs = self.segments(nnz, learn)
        first = {}
        for sg in segs:
            part = ("input_drive" if sg.name == "D0" else "update" if sg.name.startswith("U")
                    else "free_steps" if sg.phase == "free" else "nudged_steps")
            first.setdefault(part, sg.start)
        end = segs[-1].start + segs[-1].ops
        order = [p for p in ("input_drive", "free_steps", "nudged_steps", "update") if p in first]
        parts = {}
        for a, b in zip(order, order[1:] + [None]):
            parts[a] = (first[b] if b else end) - first[a]
        parts.setdefault("nudged_steps", 0)
        parts.setdefault("update", 0)
        parts["steps"] = parts["free_steps"] + parts["nudged_steps"]
        parts["load"] = 0
        parts["key"] = 0
        parts["drain_and_result"] = self.drain + 1
        parts["total"] = end + self.drain + 1
        return parts

    def state_ready_offsets(self, nnz: int, learn: bool = True) -> list:
        """Cycle offsets (``cycles`` from the sample's start) by which each step's states are all
        written (its last segment's last op + the deepest state write)."""
        segs = [sg for sg in self.segments(nnz, learn) if sg.phase]
        done = {}
        lat = max(self.DL + LANE_STATE_WRITE, self.DT + ROOT_STATE_WRITE) + 1
        for sg in segs:
            key = (sg.phase, sg.step)
            done[key] = max(done.get(key, 0), sg.start + sg.ops - 1 + lat)
        return list(done.values())

    def step_cycles(self) -> int:
        """Cycles of one step without waits (the sum of its segments' ops)."""
        return sum(ops for k in range(1, self.N + 1) for _, ops, *_ in self.step_segments(k))

    def macs_per_step(self) -> int:
        """Products of one step, input drive excluded (forward + feedback for layers >= 1)."""
        s = self.sizes
        return sum(2 * s[n] * s[n + 1] for n in range(1, self.N))

    def products(self, nnz: int, learn: bool = True) -> int:
        """Multiplications a sample really needs on the lanes' multipliers: the input drive, every
        step's forward and feedback products, and the update's (one per W_0 weight at a non-zero
        pixel, two per W_n weight, n >= 1; biases none)."""
        cfg, s = self.cfg, self.sizes
        steps = cfg.T1 + ((cfg.T2 * (2 if self.symmetric else 1)) if learn else 0)
        work = nnz * s[1] + steps * self.macs_per_step()
        if learn:
            work += nnz * s[1] + 2 * sum(s[n] * s[n + 1] for n in range(1, self.N))
        return work

    def mac_utilisation(self, nnz: int, learn: bool = True) -> float:
        """Products per multiplier per clock over a whole sample: products / (P x cycles)."""
        return self.products(nnz, learn) / (self.P * self.sample_cycles(nnz, learn)["total"])

    def ideal_cycles(self, nnz: int, learn: bool = True) -> int:
        """ceil((nnz*H + steps*MACs per step + update RMWs) / P): the bound of P products a cycle."""
        cfg, s = self.cfg, self.sizes
        steps = cfg.T1 + ((cfg.T2 * (2 if self.symmetric else 1)) if learn else 0)
        work = nnz * s[1] + steps * self.macs_per_step()
        if learn:
            work += nnz * s[1] + sum(s[n] * s[n + 1] for n in range(1, self.N)) + sum(s[1:])
        return math.ceil(work / self.P)
