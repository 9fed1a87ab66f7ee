"""The float golden model: discrete-time EqProp, the equations below.

States are post-activation values, one tensor per layer after the input, shape (batch, width).
One step is synchronous (every layer from the previous step's states):

  hidden n:  s_n <- rho(W_{n-1} s_{n-1} + b_{n-1} + W_n^T s_{n+1})
  output:    s_N <- rho(W_{N-1} s_{N-1} + b_{N-1} + beta (y - s_N))     nudge_placement = "inside"
             s_N <- rho(W_{N-1} s_{N-1} + b_{N-1}) + beta (y - s_N)     nudge_placement = "outside"

The EP update is *added* to the parameters and averaged over the minibatch:
  dW_n = (eta_n / beta) (s_{n+1}^b s_n^b^T - s_{n+1}^0 s_n^0^T),  db_n = (eta_n / beta)(s_{n+1}^b - s_{n+1}^0)
with s_0 = x in every phase; symmetric nudging uses (eta_n / 2 beta)(+beta phase - (-beta) phase).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import EPConfig
from .fixedpoint import beta_sign_negative, sample_key


def hard_sigmoid(x):
    return x.clamp(0.0, 1.0)


def smooth_sigmoid(x):
    """Ernoult's sigmoid 1 / (1 + exp(-4 (x - 1/2))): slope 1 at 1/2, like the hard sigmoid."""
    return torch.sigmoid(4.0 * (x - 0.5))


ACTIVATION_FUNCTIONS = {"hard_sigmoid": hard_sigmoid, "sigmoid": smooth_sigmoid}


def init_params(cfg: EPConfig, dtype=torch.float32, seed: int | None = None):
    """torch.nn.Linear's default init, seeded: W_n, b_n ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    g = torch.Generator().manual_seed(cfg.seed if seed is None else seed)
    weights, biases = [], []
    for n in range(cfg.n_layers):
        fan_in, fan_out = cfg.sizes[n], cfg.sizes[n + 1]
        bound = 1.0 / math.sqrt(fan_in)
        weights.append((torch.rand(fan_out, fan_in, generator=g, dtype=torch.float64) * 2 - 1) * bound)
        biases.append((torch.rand(fan_out, generator=g, dtype=torch.float64) * 2 - 1) * bound)
    return [w.to(dtype) for w in weights], [b.to(dtype) for b in biases]


@dataclass
class Phases:
    """States at the end of each phase (lists of (batch, width) tensors, hidden layers first)."""
    free: list
    nudged: list                 # the +beta phase (beta signed for random-sign nudging)
    negative: list | None = None  # the -beta phase (symmetric nudging only)
    beta: float = 0.0            # the signed beta of the nudged phase


class FloatEP:
    """Float EqProp network. ``weights[n]`` has shape (sizes[n+1], sizes[n]) as torch.nn.Linear."""

    def __init__(self, cfg: EPConfig, dtype=torch.float32, weights=None, biases=None):
        self.cfg = cfg
        self.dtype = dtype
        if weights is None:
            weights, biases = init_params(cfg, dtype)
        self.weights = [w.to(dtype).clone() for w in weights]
        self.biases = [b.to(dtype).clone() for b in biases]
        self.rho = ACTIVATION_FUNCTIONS[cfg.activation]
        self.batches_seen = 0   # counts minibatches: the random sign of beta is a function of it

    # ---- dynamics ----------------------------------------------------------------------------
    def zero_states(self, batch: int):
        return [torch.zeros(batch, n, dtype=self.dtype) for n in self.cfg.sizes[1:]]

    def step(self, x, states, beta: float = 0.0, y=None):
        """One synchronous step: every layer from the previous step's states."""
        W, b, N = self.weights, self.biases, self.cfg.n_layers
        below = [x] + states[:-1]
        new = []
        for k in range(N):                       # k indexes states[k] = s_{k+1}
            pre = below[k] @ W[k].T + b[k]
            if k + 1 < N:
                pre = pre + states[k + 1] @ W[k + 1]
                new.append(self.rho(pre))
            elif beta == 0.0:
                new.append(self.rho(pre))
            elif self.cfg.nudge_placement == "inside":
                new.append(self.rho(pre + beta * (y - states[k])))
            else:
                new.append(self.rho(pre) + beta * (y - states[k]))
        return new

    def relax(self, x, states, steps: int, beta: float = 0.0, y=None):
        for _ in range(steps):
            states = self.step(x, states, beta, y)
        return states

    def free_phase(self, x):
        return self.relax(x, self.zero_states(x.shape[0]), self.cfg.T1)

    def phases(self, x, y, beta_sign: int = 1) -> Phases:
        """Free phase from zero, then the nudged phase(s) from the free fixed point."""
        cfg = self.cfg
        free = self.free_phase(x)
        beta = beta_sign * cfg.beta
        nudged = self.relax(x, free, cfg.T2, beta, y)
        negative = self.relax(x, free, cfg.T2, -cfg.beta, y) if cfg.nudging == "symmetric" else None
        return Phases(free, nudged, negative, beta)

    # ---- learning ----------------------------------------------------------------------------
    def ep_update(self, x, ph: Phases):
        """(dW, db) lists to be added: the EP rule averaged over the batch."""
        if ph.negative is not None:
            a, c, scale = ph.nudged, ph.negative, 1.0 / (2.0 * self.cfg.beta)
        else:
            a, c, scale = ph.nudged, ph.free, 1.0 / ph.beta
        return self._contrast(x, a, c, scale)

    def _contrast(self, x, a, c, scale):
        B = x.shape[0]
        dW, db = [], []
        for n in range(self.cfg.n_layers):
            pre_a = x if n == 0 else a[n - 1]
            pre_c = x if n == 0 else c[n - 1]
            eta = self.cfg.lrs[n] * scale / B
            dW.append(eta * (a[n].T @ pre_a - c[n].T @ pre_c))
            db.append(eta * (a[n] - c[n]).sum(0))
        return dW, db

    def apply(self, dW, db):
        for n in range(self.cfg.n_layers):
            self.weights[n] += dW[n]
            self.biases[n] += db[n]

    def beta_sign(self) -> int:
        if self.cfg.nudging != "random_sign":
            return 1
        return -1 if beta_sign_negative(sample_key(self.cfg.seed, self.batches_seen)) else 1

    def train_batch(self, x, y):
        """One training step on a minibatch (x: (B, in), y: one-hot (B, out)); returns the free output."""
        x, y = x.to(self.dtype), y.to(self.dtype)
        sign = self.beta_sign()
        if self.cfg.continual:
            out = self._train_batch_continual(x, y, sign)
        else:
            ph = self.phases(x, y, sign)
            self.apply(*self.ep_update(x, ph))
            out = ph.free[-1]
        self.batches_seen += 1
        return out

    def _train_batch_continual(self, x, y, sign):
        """C-EP: the weights move at every nudged step by the change of the local products."""
        free = self.free_phase(x)
        beta = sign * self.cfg.beta
        s = free
        for _ in range(self.cfg.T2):
            s_next = self.step(x, s, beta, y)
            self.apply(*self._contrast(x, s_next, s, 1.0 / beta))
            s = s_next
        return free[-1]

    @torch.no_grad()
    def predict(self, x):
        return self.free_phase(x.to(self.dtype))[-1].argmax(1)

    # ---- energy, for checks ------------------------------------------------------------------
    def phi(self, x, states, beta: float = 0.0, y=None, weights=None, biases=None):
        """Primitive function Phi summed over the batch: sum_n s_{n+1}.(W_n s_n + b_n) - beta L."""
        W = self.weights if weights is None else weights
        b = self.biases if biases is None else biases
        below = [x] + states[:-1]
        total = sum(((below[n] @ W[n].T + b[n]) * states[n]).sum() for n in range(self.cfg.n_layers))
        if beta:
            total = total - beta * 0.5 * ((states[-1] - y) ** 2).sum()
        return total

    def state_dict(self):
        d = {}
        for n in range(self.cfg.n_layers):
            d[f"W{n}"], d[f"b{n}"] = self.weights[n], self.biases[n]
        return d
