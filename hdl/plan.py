"""Memory map and schedule of the EqProp core, as plain Python (no Amaranth, no torch).

The core (``eqfpga.hdl.core``), the report (``eqfpga.hdl.generate``) and the host-side drivers
(``eqfpga.sim``) all read the organisation from here, so the three cannot disagree.

Organisation (P = cfg.parallelism lanes; every memory word holds P lanes):

* ``W_n``, n >= 1: lane p holds W_n[i][j] for j % P == p at address i*C_n + j//P, C_n = ceil(in/P).
  Forward (W v): one row block = P products summed by an adder tree. Feedback (W^T v): the word at
  j*C_n + ib holds P consecutive columns of row j: P accumulators, one per neuron of block ib.
* ``W_0`` (never used transposed; its input is clamped): lane p holds W_0[i][j] for i % P == p at
  address (i//P)*in + j. The input drive and its update iterate over the non-zero pixels only.
* biases ``b_n``: lane i % P of word i // P. ``d0``: the same, A-bit lanes.
* states: one memory of 4 slots of S words (all layers 1..N, block offsets ``off[k]``); the free
  phase ping-pongs in slots 0/1, the nudged phase in 2/3, the negative (symmetric) phase in the
  two slots left free, so the final states of all three phases survive the sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from eqfpga.golden.config import EPConfig

N_SLOTS = 4

# Depths of the op pipeline (docs/hardware.md, "Pipeline"): an op emitted by the controller in
# cycle e is at depth d during cycle e + d; a memory write "at depth d" lands at the end of cycle
# e + d, a read "at depth d" drives the address in cycle e + d (synchronous read ports).
READ_DEPTH = 2          # stage B: every read address (registered op fields only)
DATA_DEPTH = 4          # stage C: every memory's read data, registered
ACC_DEPTH = 8           # operands (5), products (6), adder tree (7, 8), accumulate at the end of 8
STATE_WRITE_DEPTH = 10  # neuron finish: acc + terms (8 -> 9), round and clamp (9 -> 10), write (10)
D0_WRITE_DEPTH = ACC_DEPTH
HASH_PER_STAGE = 1      # ARX rounds between two registers of the per-lane hash
# counter at B (2), registered at 3, then HASH_ROUNDS / HASH_PER_STAGE stages; D is ready at 7
HASH_DEPTH = max(READ_DEPTH + 1 + 8 // HASH_PER_STAGE, DATA_DEPTH + 3)
UPDATE_WRITE_DEPTH = HASH_DEPTH + 4  # D + R, shift, saturate the update, add and saturate, write
UPDATE_LAST_DEPTH = UPDATE_WRITE_DEPTH + 2  # the saturation counters add one stage after the write

PIPE_DEPTH = STATE_WRITE_DEPTH       # a step's last state write lands PIPE_DEPTH - 2 cycles after its last bubble
# A read at depth READ_DEPTH of an op emitted in cycle e' sees a write at depth W of an op emitted in
# cycle e when e' + READ_DEPTH > e + W: W - READ_DEPTH bubble cycles between the two ops.
STEP_BUBBLES = STATE_WRITE_DEPTH - READ_DEPTH   # a step's last state write before the next step's first read
# d0's last write (D0ST at the accumulate stage) before the first finish of layer 1, which at least
# one feedback op of block 0 precedes (every config has a layer 2)
D0_BUBBLES = D0_WRITE_DEPTH - READ_DEPTH - 1
SNAP_DELAY = PIPE_DEPTH   # cycles after a step's bubble cycle when its last state write has landed
KEY_CYCLES = 16         # the sample's key H(seed, t) and sign H(key, SIGN_COUNTER): one round a cycle


def _cdiv(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class Plan:
    cfg: EPConfig

    def __post_init__(self):
        cfg = self.cfg
        if not isinstance(cfg, EPConfig):
            raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")

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
        """Words (blocks of P neurons) of layer k's states."""
        return _cdiv(self.sizes[k], self.P)

    def last_lanes(self, k: int) -> int:
        """Valid lanes in the last block of layer k."""
        return self.sizes[k] - (self.blocks(k) - 1) * self.P

    def row_words(self, n: int) -> int:
        """C_n: words per row of W_n (n >= 1)."""
        return _cdiv(self.sizes[n], self.P)

    def w_depth(self, n: int) -> int:
        if n == 0:
            return self.blocks(1) * self.sizes[0]
        return self.sizes[n + 1] * self.row_words(n)

    def b_depth(self, n: int) -> int:
        return self.blocks(n + 1)

    @property
    def state_offsets(self) -> dict:
        off, acc = {}, 0
        for k in range(1, self.N + 1):
            off[k] = acc
            acc += self.blocks(k)
        return off

    @property
    def S(self) -> int:
        """Words of one state slot (all layers)."""
        return sum(self.blocks(k) for k in range(1, self.N + 1))

    # ---- phase slots ---------------------------------------------------------------------
    @property
    def slot_free(self) -> int:
        return 0 if self.cfg.T1 % 2 == 1 else 1

    @property
    def slot_nudged(self) -> int:
        return 2 if self.cfg.T2 % 2 == 1 else 3

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

    # ---- address maps --------------------------------------------------------------------
    def weight_addr(self, n: int, i: int, j: int) -> tuple:
        """(address, lane) of W_n[i][j]."""
        P = self.P
        if n == 0:
            return (i // P) * self.sizes[0] + j, i % P
        return i * self.row_words(n) + j // P, j % P

    def bias_addr(self, n: int, i: int) -> tuple:
        return i // self.P, i % self.P

    # ---- shifts (docs/fixed-point.md, "Update") -----------------------------------------
    def sh_w(self, n: int) -> int:
        f = self.cfg.fixed
        f_pre = f.input_frac if n == 0 else f.state_frac
        sym = 1 if self.symmetric else 0
        return f.state_frac + f_pre + self.cfg.lr_shifts[n] - self.cfg.beta_shift + sym - f.weight_frac

    def sh_b(self, n: int) -> int:
        f = self.cfg.fixed
        sym = 1 if self.symmetric else 0
        return f.state_frac + self.cfg.lr_shifts[n] - self.cfg.beta_shift + sym - f.bias_frac

    # ---- schedule ------------------------------------------------------------------------
    @property
    def last_depth(self) -> int:
        """Depth of the pipeline's last effect: the saturation counters, or the argmax merge (one
        level of the max tree a stage from the state write)."""
        return max(UPDATE_LAST_DEPTH, STATE_WRITE_DEPTH + max(0, (self.P - 1).bit_length()) + 1)

    @property
    def drain(self) -> int:
        """FINISH cycles: every op has left the pipeline before the sample counts."""
        return self.last_depth + 1

    def step_cycles(self) -> int:
        """Cycles of one synchronous step (all layers) including its bubble cycles."""
        s, N, cyc = self.sizes, self.N, STEP_BUBBLES
        for k in range(1, N + 1):
            cyc += self.blocks(k)                                   # FIN, one per block
            if k >= 2:
                cyc += s[k] * self.row_words(k - 1)                 # forward rows
            if k < N:
                cyc += self.blocks(k) * s[k + 1]                    # feedback columns
        return cyc

    def step_slots(self, learn: bool = True) -> list:
        """(phase, step, slot) of every step of a sample in order: phase "free" / "nudged" /
        "negative", step 1..T1 or 1..T2, slot the state slot holding the states after that step
        (the controller's ping-pong; ``memory_map.state_index``)."""
        cfg = self.cfg
        out = [("free", t, (t - 1) % 2) for t in range(1, cfg.T1 + 1)]
        if learn:
            out += [("nudged", t, 2 + (t - 1) % 2) for t in range(1, cfg.T2 + 1)]
            if self.symmetric:
                na, nb = self.neg_slots
                out += [("negative", t, na if t % 2 == 1 else nb) for t in range(1, cfg.T2 + 1)]
        return out

    def state_ready_offsets(self, nnz: int, learn: bool = True) -> list:
        """Per step, in the order of ``step_slots``: the cycle offset (the core's ``cycles`` counter,
        counted from the sample's start) at which all the step's states are in the state memories:
        the step's bubble cycle + SNAP_DELAY."""
        cfg = self.cfg
        parts = self.sample_cycles(nnz, learn=learn)
        base = parts["load"] + parts["key"] + parts["input_drive"]
        steps = cfg.T1 + ((cfg.T2 * (2 if self.symmetric else 1)) if learn else 0)
        return [base + t * self.step_cycles() + SNAP_DELAY for t in range(1, steps + 1)]

    def update_cycles(self, nnz: int) -> int:
        s, cyc = self.sizes, self.blocks(1) * (2 + nnz)
        for n in range(1, self.N):
            cyc += s[n + 1] * (1 + self.row_words(n)) + self.blocks(n + 1)
        return cyc

    def sample_cycles(self, nnz: int, learn: bool = True) -> dict:
        """Cycles of one sample, per part, as the controller schedules them (counted by ``cycles``)."""
        cfg = self.cfg
        steps = cfg.T1 + ((cfg.T2 * (2 if self.symmetric else 1)) if learn else 0)
        parts = {
            "load": self.sizes[0] + 1,
            "key": KEY_CYCLES,
            "input_drive": self.blocks(1) * (nnz + 1) + D0_BUBBLES,
            "steps": steps * self.step_cycles(),
            "update": self.update_cycles(nnz) if learn else 0,
            "drain_and_result": self.drain + 1,
        }
        parts["total"] = sum(parts.values())
        return parts

    def macs_per_step(self) -> int:
        """Products of one step, input drive excluded (forward + feedback for layers >= 1)."""
        s = self.sizes
        return sum(2 * s[n] * s[n + 1] for n in range(1, self.N))

    def ideal_cycles(self, nnz: int, learn: bool = True) -> int:
        """ceil((nnz*H + steps*MACs per step + update RMWs) / P): the bound of P products a cycle."""
        cfg, s = self.cfg, self.sizes
        steps = cfg.T1 + ((cfg.T2 * (2 if self.symmetric else 1)) if learn else 0)
        work = nnz * s[1] + steps * self.macs_per_step()
        if learn:
            work += nnz * s[1] + sum(s[n] * s[n + 1] for n in range(1, self.N)) + sum(s[1:])
        return math.ceil(work / self.P)
