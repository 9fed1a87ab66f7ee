"""The fixed-point golden model: integer tensors computing exactly what the hardware computes.

docs/fixed-point.md is the written spec; this module is its executable form. Training runs one
sample at a time, as on chip; besides EP it runs continual EP (``cfg.continual``, the parameters move at
every nudged step) and vector-field EP (``cfg.feedback == "learned"``, feedback matrices B learned by
the VF rule), each bit-exact as the spec defines it. Several independent nets (``M``, e.g. a precision study over weight
widths and rounding modes) can run side by side in one tensor computation: every tensor carries a
leading net axis, and per-net format parameters are (M, 1, 1) tensors.

Integer matrix products are computed in float64, which is exact while every partial sum stays below
2**53; ``EPConfig.check_fixed`` limits the accumulator to 48 bits, so this always holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .config import EPConfig
from .fixedpoint import (BIAS_INDEX, arx_hash, beta_sign_negative, bytes_to_lsbs, feedback_key, owner_index,
                         random_counter, sample_key, shift_round, step_key)


def _max_abs_diff(a, b):
    """(M,) largest |a - b| over all layers, batch entries and neurons."""
    return torch.stack([(p - q).abs().flatten(1).amax(1) for p, q in zip(a, b)]).amax(0)


def _col(values):
    return torch.tensor(values, dtype=torch.int64).view(-1, 1, 1)


def quantise(t, frac, lo, hi):
    """Float -> integer LSBs of a format: round to nearest (ties to even), then saturate."""
    return torch.round(t.double() * (2.0 ** frac)).clamp(lo, hi).to(torch.int64)


def imatmul(a, b):
    """Exact integer matrix product via float64 (operands and partial sums below 2**53)."""
    return torch.matmul(a.double(), b.double()).to(torch.int64)


def _ints(states):
    return [s.to(torch.int64) for s in states]


def _add_saturating(p, d, ulo, uhi, plo, phi):
    """p + sat(d, [ulo, uhi]) saturated to [plo, phi]; returns (new p, (M,) update sats, (M,) p sats)."""
    dc = torch.maximum(torch.minimum(d, uhi), ulo)
    s = p + dc
    sc = torch.maximum(torch.minimum(s, phi), plo)
    return sc, (dc != d).flatten(1).sum(1), (sc != s).flatten(1).sum(1)


@dataclass
class Counters:
    """Event counters, summed over nets unless read per net. Each is a (M,) int64 tensor."""
    samples: torch.Tensor
    act_low: list           # per layer: hard-sigmoid clamps at 0
    act_high: list          # per layer: clamps at 1
    weight_sat: list        # per layer: weights that hit their range
    bias_sat: list
    update_sat: list        # per layer: rounded updates that hit the update range
    unsettled: torch.Tensor   # samples whose free phase had not settled after T1 steps
    cycling: torch.Tensor     # ...of which the states repeat with period 2 (integer limit cycle)

    @classmethod
    def zeros(cls, M, L):
        z = lambda: torch.zeros(M, dtype=torch.int64)  # noqa: E731
        return cls(z(), [z() for _ in range(L)], [z() for _ in range(L)], [z() for _ in range(L)],
                   [z() for _ in range(L)], [z() for _ in range(L)], z(), z())

    @classmethod
    def from_dict(cls, d: dict):
        """One net's counters back from ``as_dict`` (a checkpoint's history keeps them)."""
        t = lambda v: torch.tensor([v], dtype=torch.int64)  # noqa: E731
        return cls(**{k: [t(x) for x in v] if isinstance(v, list) else t(v) for k, v in d.items()})

    def as_dict(self, net: int = 0) -> dict:
        out = {}
        for k, v in self.__dict__.items():
            out[k] = [int(t[net]) for t in v] if isinstance(v, list) else int(v[net])
        return out


@dataclass
class FixedPhases:
    free: list
    nudged: list
    negative: list | None
    sign: torch.Tensor         # (M,) +1 / -1: the sign of beta in the nudged phase
    residual: torch.Tensor     # (M,) max |s_T1 - s_{T1-1}| of the free phase, in state LSBs
    cycling: torch.Tensor      # (M,) bool: unsettled, and s_T1 == s_{T1-2} (period-2 limit cycle)
    trace: list = field(default_factory=list)


@dataclass
class Differences:
    """The exact integer differences D of one update (docs/fixed-point.md, "Update"): per weight layer
    ``w[n]`` (M, out, in) and ``b[n]`` (M, out), VF's ``fb[k]`` for B_{k+1}; layer 0's D only over the
    input columns ``cols`` (the others are zero). ``+`` sums the D of several steps (same input)."""
    cols: torch.Tensor
    w: list
    b: list
    fb: list

    def __add__(self, other):
        add = lambda p, q: [u + v for u, v in zip(p, q)]  # noqa: E731
        return Differences(self.cols, add(self.w, other.w), add(self.b, other.b), add(self.fb, other.fb))


class FixedEP:
    """Integer EqProp, bit-exact spec of the hardware. ``weights[n]``: (M, out, in) int64 LSBs.

    With ``cfg.feedback == "learned"``, ``feedback[k]`` is B_{k+1} (M, sizes[k+1], sizes[k+2]) in W's
    format, the top-down matrix into hidden layer k+1, as ``FloatEP.feedback[k]``; [] otherwise.
    """

    def __init__(self, cfg: EPConfig, fixed: list | None = None, weights=None, biases=None, feedback=None):
        cfg.check_fixed()
        fixed = fixed or [cfg.fixed]
        for f in fixed:
            cfg.replace(fixed=f).check_fixed()
            if (f.input_frac, f.state_frac) != (fixed[0].input_frac, fixed[0].state_frac):
                raise ValueError("nets run side by side must share input_frac and state_frac")
        self.cfg, self.fixed, self.M = cfg, list(fixed), len(fixed)
        f0 = fixed[0]
        self.fx, self.fs, self.one = f0.input_frac, f0.state_frac, f0.state_one
        self.kb, self.ke = cfg.beta_shift, cfg.lr_shifts
        self.sym = 1 if cfg.nudging == "symmetric" else 0
        self.fw = _col([f.weight_frac for f in fixed])
        self.fb = _col([f.bias_frac for f in fixed])
        self.wmin, self.wmax = _col([f.weight_min for f in fixed]), _col([f.weight_max for f in fixed])
        self.bmin, self.bmax = _col([f.bias_min for f in fixed]), _col([f.bias_max for f in fixed])
        self.umin, self.umax = _col([f.update_min for f in fixed]), _col([f.update_max for f in fixed])
        self.state_off = _col([(1 << f.weight_frac) >> 1 if f.state_rounding == "nearest" else 0
                               for f in fixed])
        self.update_mode = [f.update_rounding for f in fixed]
        self._is_nearest = torch.tensor([m == "nearest" for m in self.update_mode])
        self._is_stochastic = torch.tensor([m == "stochastic" for m in self.update_mode])
        self._any_stochastic = bool(self._is_stochastic.any())
        if weights is None:
            from .float_model import init_feedback, init_params
            wf, bf = init_params(cfg, torch.float64)
            weights = [torch.stack([quantise(w, f.weight_frac, f.weight_min, f.weight_max) for f in fixed])
                       for w in wf]
            biases = [torch.stack([quantise(b, f.bias_frac, f.bias_min, f.bias_max) for f in fixed])
                      for b in bf]
            if feedback is None:    # FloatEP's B (float64), quantised as W is: both start from one net
                feedback = [torch.stack([quantise(m, f.weight_frac, f.weight_min, f.weight_max) for f in fixed])
                            for m in init_feedback(cfg, wf, torch.float64)]
        self.weights = [w.to(torch.int64).clone().reshape(self.M, *w.shape[-2:]) for w in weights]
        self.biases = [b.to(torch.int64).clone().reshape(self.M, -1) for b in biases]
        if feedback is None and cfg.feedback == "learned":
            feedback = self._feedback_for_weights()
        self.feedback = [m.to(torch.int64).clone().reshape(self.M, *m.shape[-2:]) for m in feedback or []]
        want = cfg.n_layers - 1 if cfg.feedback == "learned" else 0
        if len(self.feedback) != want:
            raise ValueError(f"feedback = {cfg.feedback!r} needs {want} feedback matrices, not {len(self.feedback)}")
        self.samples_seen = 0
        self.counters = Counters.zeros(self.M, cfg.n_layers)
        self._ctr = None
        self._wcache = {}

    def _feedback_for_weights(self):
        """B for given integer weights, drawn as FloatEP draws it for the same (float) weights."""
        from .float_model import init_feedback
        nets = []
        for m, f in enumerate(self.fixed):
            wf = [w[m].double() / 2 ** f.weight_frac for w in self.weights]
            nets.append([quantise(b, f.weight_frac, f.weight_min, f.weight_max)
                         for b in init_feedback(self.cfg, wf, torch.float64)])
        return [torch.stack(per_net) for per_net in zip(*nets)]

    @classmethod
    def from_float(cls, cfg, weights, biases, fixed: list | None = None, feedback=None):
        """Quantise float parameters (round to nearest, saturate) into a fixed-point net; B as W."""
        fixed = fixed or [cfg.fixed]
        W = [torch.stack([quantise(w, f.weight_frac, f.weight_min, f.weight_max) for f in fixed]) for w in weights]
        B = [torch.stack([quantise(b, f.bias_frac, f.bias_min, f.bias_max) for f in fixed]) for b in biases]
        F = None if feedback is None else [
            torch.stack([quantise(m, f.weight_frac, f.weight_min, f.weight_max) for f in fixed]) for m in feedback]
        return cls(cfg, fixed, W, B, F)

    def float_params(self, net: int = 0):
        """The parameters as floats (value = LSBs * 2**-frac)."""
        f = self.fixed[net]
        return ([w[net].double() / 2 ** f.weight_frac for w in self.weights],
                [b[net].double() / 2 ** f.bias_frac for b in self.biases])

    def float_feedback(self, net: int = 0):
        """The feedback matrices B as floats ([] for symmetric feedback)."""
        return [m[net].double() / 2 ** self.fixed[net].weight_frac for m in self.feedback]

    # ---- inputs ------------------------------------------------------------------------------
    def bytes_to_lsbs(self, b):
        """MNIST bytes (value b / 256) -> UQ(0, input_frac) LSBs: floor(b * 2**(input_frac - 8))."""
        return bytes_to_lsbs(torch.as_tensor(b).to(torch.int64), self.fx)

    def encode_input(self, x):
        """Pixels in [0, 1) -> UQ(0, input_frac) LSBs, truncating (MNIST bytes/256 are exact at 8).

        Integer pixels are taken as UQ(0, input_frac) LSBs already (MNIST bytes when input_frac = 8)
        and must lie in [0, 2**input_frac - 1]: the accumulator width is checked for that range.
        """
        if x.dtype in (torch.int64, torch.int32, torch.uint8):
            xi = x.to(torch.int64)
            if xi.numel() and (int(xi.min()) < 0 or int(xi.max()) > (1 << self.fx) - 1):
                raise ValueError(f"integer pixels are UQ(0, {self.fx}) LSBs (fixed.input_frac = {self.fx}), "
                                 f"0..{(1 << self.fx) - 1}, but range over {int(xi.min())}..{int(xi.max())}; "
                                 "pass floats in [0, 1) or bytes with input_frac = 8")
            return xi
        return torch.floor(x.double() * (1 << self.fx)).clamp(0, (1 << self.fx) - 1).to(torch.int64)

    def encode_target(self, labels):
        """Labels -> one-hot targets in state LSBs (1.0 = 2**state_frac)."""
        y = torch.zeros(labels.shape[0], self.cfg.sizes[-1], dtype=torch.int64)
        y[torch.arange(labels.shape[0]), labels.long()] = self.one
        return y

    # ---- dynamics ----------------------------------------------------------------------------
    # The dynamics run on integer-valued float64 tensors: every operand and partial sum is an
    # integer below 2**48, so +, * and division by a power of two are exact, and floor(a / 2**k)
    # equals the arithmetic shift a >> k. Results are handed out as int64.
    def input_drive(self, xi):
        """W_0 x aligned to the accumulator's fraction (fw + fs): computed once per sample."""
        return torch.matmul(xi.double(), self._dbl(0).transpose(1, 2)).to(torch.int64) << (self.fs - self.fx)

    def zero_states(self, B):
        return [torch.zeros(self.M, B, n, dtype=torch.float64) for n in self.cfg.sizes[1:]]

    def _dbl(self, n, fb=False):
        """float64 copy of weights[n] (feedback[n] when ``fb``), cached until the tensor is replaced or
        modified in place."""
        w = (self.feedback if fb else self.weights)[n]
        key = (id(w), w._version)
        hit = self._wcache.get((fb, n))
        if hit is None or hit[0] != key:
            hit = self._wcache[(fb, n)] = (key, w.double())
        return hit[1]

    def _prepare(self):
        """Constants of the steps to come, until the parameters change (once a sample but for C-EP)."""
        N = self.cfg.n_layers
        self._W = [self._dbl(n) for n in range(N)]
        self._Wt = [w.transpose(1, 2) for w in self._W]                   # for forward products
        # hidden layer k+1's top-down drive is states[k + 1] @ _top[k]: W_{k+1}^T s, or B_{k+1} s
        self._top = [self._dbl(k, True).transpose(1, 2) for k in range(N - 1)] if self.feedback else self._W[1:]
        self._bias = [(b.unsqueeze(1) << (self.fw + self.fs - self.fb)).double() for b in self.biases]
        self._off = self.state_off.double()
        self._inv = 2.0 ** (-self.fw.double())
        self._nudge_scale = 2.0 ** (self.fw - self.kb).double()

    def step(self, d0, states, sign=None, y=None, stats=False):
        """One synchronous step; ``sign`` (M,) is +-1 for nudged steps, None when free."""
        N = self.cfg.n_layers
        new = []
        for k in range(N):
            acc = d0 if k == 0 else torch.matmul(states[k - 1], self._Wt[k])
            acc = acc + self._bias[k]
            if k + 1 < N:
                acc = acc + torch.matmul(states[k + 1], self._top[k])
            elif sign is not None:
                acc = acc + sign.view(-1, 1, 1) * (y.unsqueeze(0) - states[k]) * self._nudge_scale
            pre = torch.floor((acc + self._off) * self._inv)
            if stats:
                self.counters.act_low[k] += (pre < 0).sum((1, 2))
                self.counters.act_high[k] += (pre > self.one).sum((1, 2))
            new.append(pre.clamp(0, self.one))
        return new

    def relax(self, d0, states, steps, sign=None, y=None, trace=None, stats=False):
        """``steps`` steps; returns the last three state lists (s_T, s_{T-1}, s_{T-2})."""
        prev = prev2 = states
        for _ in range(steps):
            prev2, prev, states = prev, states, self.step(d0, states, sign, y, stats)
            if trace is not None:
                trace.append([s.to(torch.int64) for s in states])
        return states, prev, prev2

    def _free_phase(self, d0, batch, trace):
        """T1 steps from zero: (states, residual, cycling)."""
        free, before, before2 = self.relax(d0, self.zero_states(batch), self.cfg.T1, trace=trace, stats=True)
        residual = _max_abs_diff(free, before).to(torch.int64)
        # integer dynamics can fall into a period-2 cycle instead of settling: s_T1 == s_{T1-2}
        cycling = (residual > 0) & (_max_abs_diff(free, before2) == 0) & (self.cfg.T1 >= 2)
        return free, residual, cycling

    def _start(self, xi, y, keep_trace):
        """What both kinds of phases begin with: the input drive, y, the trace, the free phase."""
        self._prepare()
        d0 = self.input_drive(xi).double()
        trace = [] if keep_trace else None
        return d0, y.double(), trace, self._free_phase(d0, xi.shape[0], trace)

    def phases(self, xi, y, sign, keep_trace=False) -> FixedPhases:
        """Free phase from zero (T1 steps), nudged phase(s) from the free states (T2 steps), with the
        parameters held (C-EP's phases, which move them: ``continual_phases``)."""
        cfg = self.cfg
        d0, y, trace, (free, residual, cycling) = self._start(xi, y, keep_trace)
        nudged = self.relax(d0, free, cfg.T2, sign, y, trace=trace, stats=True)[0]
        negative = None
        if cfg.nudging == "symmetric":
            negative = _ints(self.relax(d0, free, cfg.T2, -sign, y, trace=trace, stats=True)[0])
        return FixedPhases(_ints(free), _ints(nudged), negative, sign, residual, cycling, trace or [])

    def continual_phases(self, xi, y, sign, sample: int, keep_trace=False, on_step=None) -> FixedPhases:
        """C-EP / C-VF (docs/fixed-point.md, "Continual EP"): the free phase, then T2 nudged steps, each
        followed at once by the rule's update from (s_t, s_{t+1}) under step t's key. ``on_step(t, s_t,
        s_{t+1})``, when given, is called instead of the update (a hook for checks: nothing moves)."""
        cfg = self.cfg
        d0, y, trace, (free, residual, cycling) = self._start(xi, y, keep_trace)
        key = sample_key(cfg.seed, sample)
        s, s_int = free, _ints(free)
        vf = bool(self.feedback)        # C-VF: the pre-synaptic factor is s_t
        for t in range(cfg.T2):
            s_next = self.step(d0, s, sign, y, stats=True)
            nxt = _ints(s_next)
            if trace is not None:
                trace.append(nxt)
            if on_step is not None:
                on_step(t, s_int, nxt)
            else:
                D = self.differences(xi, nxt, s_int, sign, s_int if vf else None)
                self.apply_differences(D, step_key(key, t))
                self._prepare()                               # the next step reads the new parameters
                d0 = self.input_drive(xi).double()
            s, s_int = s_next, nxt
        return FixedPhases(_ints(free), s_int, None, sign, residual, cycling, trace or [])

    def sign_for_sample(self, sample: int) -> torch.Tensor:
        neg = self.cfg.nudging == "random_sign" and beta_sign_negative(sample_key(self.cfg.seed, sample))
        return torch.full((self.M,), -1 if neg else 1, dtype=torch.int64)

    # ---- learning ----------------------------------------------------------------------------
    def _owners_for(self, n):
        """(u, v) index grids of layer n's random source (``fixedpoint.owner_index``): weights
        (out, in), biases (out,) and B_n (sizes[n], sizes[n+1]; u = its row, None for n = 0)."""
        if self._ctr is None:
            self._ctr = []
            grid = lambda r, c: (torch.arange(r, dtype=torch.int64).view(-1, 1).expand(r, c),  # noqa: E731
                                 torch.arange(c, dtype=torch.int64).view(1, -1).expand(r, c))
            for m in range(self.cfg.n_layers):
                out, inp = self.cfg.sizes[m + 1], self.cfg.sizes[m]
                bu = torch.arange(out, dtype=torch.int64)
                self._ctr.append((owner_index(m, *grid(out, inp)), (bu, torch.full_like(bu, BIAS_INDEX)),
                                  grid(inp, out) if m > 0 else None))
        return self._ctr[n]

    def _round_update(self, diff, sh, key, layer, uv):
        """Round each net's update with its own shift and mode; stochastic bits from the hash word
        of (layer, u, v), a piece of share_bits(m) bits each (``fixedpoint.update_random``)."""
        shape = (-1,) + (1,) * (diff.dim() - 1)
        sh = sh.view(shape)
        rsh = sh.clamp(min=0)
        offset = torch.zeros_like(rsh)
        offset = torch.where(self._is_nearest.view(shape), (1 << rsh) >> 1, offset)
        if self._any_stochastic:
            u, v = uv
            share = torch.where(rsh <= 8, 8, torch.where(rsh <= 16, 16, 32))
            stoch = self._is_stochastic.view(shape) & (rsh > 0)
            for b in sorted(set(share[stoch].tolist())):
                per_word = 32 // b
                word = arx_hash(key, random_counter(layer, u, v, b))
                piece = ((word >> (b * (u % per_word))) & ((1 << b) - 1)).unsqueeze(0)
                offset = torch.where(stoch & (share == b), piece & ((1 << rsh) - 1), offset)
        return shift_round(diff, sh, offset=offset)

    def differences(self, xi, a, c, g, pre=None) -> Differences:
        """The rule's exact integer differences (docs/fixed-point.md), g (M,) the sign: EP's change of
        s_{n+1} s_n^T from states c to a (s_0 = x); with ``pre`` (VF), (a_{n+1} - c_{n+1}) pre_n^T for
        W_n and (a_n - c_n) pre_{n+1}^T for B_n. Lists of (M, batch, width) int64 states, layers 1..N."""
        # Input layer: D is (a_1 - c_1) x^T, zero in every zero-pixel column, and a zero D gives a
        # zero update in every rounding mode; so only the nonzero columns are computed (as on chip).
        cols = torch.nonzero(xi.ne(0).any(0)).view(-1)
        x = xi[:, cols].unsqueeze(0).expand(self.M, -1, -1)
        g3, dw, db = g.view(-1, 1, 1), [], []
        for n in range(self.cfg.n_layers):
            post = a[n] - c[n]
            if n == 0 or pre is not None:
                d = imatmul(post.transpose(1, 2), x if n == 0 else pre[n - 1])
            else:
                d = imatmul(a[n].transpose(1, 2), a[n - 1]) - imatmul(c[n].transpose(1, 2), c[n - 1])
            dw.append(g3 * d)
            db.append(g.view(-1, 1) * post.sum(1))
        fb = [] if pre is None else [
            g3 * imatmul((a[k] - c[k]).transpose(1, 2), pre[k + 1]) for k in range(self.cfg.n_layers - 1)]
        return Differences(cols, dw, db, fb)

    def _add_update(self, p, d, n, lo, hi, sat):
        """p + sat_ub(d), saturated to [lo, hi]; counts both saturations as layer n's."""
        shape = (-1,) + (1,) * (p.dim() - 1)
        p, us, ps = _add_saturating(p, d, self.umin.view(shape), self.umax.view(shape), lo.view(shape),
                                    hi.view(shape))
        self.counters.update_sat[n] += us
        sat[n] += ps
        return p

    def apply_differences(self, D: Differences, key: int):
        """Round every D (the update shift of its parameter, random bits under ``key``; B's under
        ``feedback_key(key)``), saturate to update_bits, add, saturate to the parameter's range."""
        cols, c = D.cols, self.counters
        for n in range(self.cfg.n_layers):
            wuv, buv, fuv = self._owners_for(n)
            base = self.ke[n] - self.kb + self.sym
            frac_pre = self.fx if n == 0 else self.fs
            sh_w = (self.fs + frac_pre + base) - self.fw.view(-1)
            if n == 0:
                dW = self._round_update(D.w[0], sh_w, key, 0, tuple(t[:, cols] for t in wuv))
                W = self._add_update(self.weights[0][:, :, cols], dW, 0, self.wmin, self.wmax, c.weight_sat)
                cached = self._dbl(0)
                self.weights[0][:, :, cols] = W
                cached[:, :, cols] = W.double()    # keep the float64 copy in step
                self._wcache[(False, 0)] = ((id(self.weights[0]), self.weights[0]._version), cached)
            else:
                dW = self._round_update(D.w[n], sh_w, key, n, wuv)
                self.weights[n] = self._add_update(self.weights[n], dW, n, self.wmin, self.wmax, c.weight_sat)
            sh_b = (self.fs + base) - self.fb.view(-1)
            db = self._round_update(D.b[n], sh_b, key, n, buv)
            self.biases[n] = self._add_update(self.biases[n], db, n, self.bmin, self.bmax, c.bias_sat)
            if n > 0 and D.fb:       # B_n: W_n's shift (both D have fraction 2 fs), a key of its own
                dB = self._round_update(D.fb[n - 1], sh_w, feedback_key(key), n, fuv)
                self.feedback[n - 1] = self._add_update(self.feedback[n - 1], dB, n, self.wmin, self.wmax,
                                                        c.weight_sat)

    def update(self, xi, ph: FixedPhases, sample: int):
        """The EP rule (VF's for learned feedback) on every parameter: round, saturate the update, add,
        saturate."""
        a = ph.nudged
        c = ph.negative if ph.negative is not None else ph.free
        g = torch.ones_like(ph.sign) if ph.negative is not None else ph.sign
        pre = ph.free if self.feedback else None
        self.apply_differences(self.differences(xi, a, c, g, pre), sample_key(self.cfg.seed, sample))

    def train_sample(self, x, label, keep_trace=False) -> FixedPhases:
        """Train every net on one sample (x: (in,) pixels, label: int); returns the phases."""
        xi = self.encode_input(x.reshape(1, -1))
        y = self.encode_target(torch.as_tensor([int(label)]))
        sample, sign = self.samples_seen, self.sign_for_sample(self.samples_seen)
        if self.cfg.continual:
            ph = self.continual_phases(xi, y, sign, sample, keep_trace)
            self._count_settling(ph)
        else:
            ph = self.phases(xi, y, sign, keep_trace)
            self._count_settling(ph)
            self.update(xi, ph, sample)
        self.samples_seen += 1
        self.counters.samples += 1
        return ph

    def _count_settling(self, ph):
        self.counters.unsettled += (ph.residual > 0).to(torch.int64)
        self.counters.cycling += ph.cycling.to(torch.int64)

    # ---- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def free_states(self, x):
        """Free-phase states for a batch of samples (no learning): list of (M, B, width)."""
        xi = self.encode_input(x.reshape(x.shape[0], -1))
        self._prepare()
        d0 = self.input_drive(xi).double()
        free = self.relax(d0, self.zero_states(xi.shape[0]), self.cfg.T1)[0]
        return [s.to(torch.int64) for s in free]

    def predict(self, x):
        """(M, B) predicted labels: argmax of the free output (lowest index wins a tie)."""
        return self.free_states(x)[-1].argmax(-1)

    def error_rate(self, images, labels, batch: int = 2000):
        """(M,) fraction of misclassified samples, evaluated in batches."""
        wrong = torch.zeros(self.M, dtype=torch.int64)
        for i in range(0, images.shape[0], batch):
            p = self.predict(images[i:i + batch])
            wrong += (p != labels[i:i + batch].view(1, -1)).sum(1)
        return wrong.double() / images.shape[0]

    def state_dict(self, net: int = 0):
        d = {}
        for n in range(self.cfg.n_layers):
            d[f"W{n}"], d[f"b{n}"] = self.weights[n][net].clone(), self.biases[n][net].clone()
        for k, m in enumerate(self.feedback):
            d[f"B{k + 1}"] = m[net].clone()
        return d
