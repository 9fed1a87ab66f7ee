"""The float golden model: discrete-time EqProp, the equations below.

States are post-activation values, one tensor per layer after the input, shape (batch, width).
One step is synchronous (every layer from the previous step's states):

  hidden n:  s_n <- rho(W_{n-1} s_{n-1} + b_{n-1} + W_n^T s_{n+1})    feedback = "symmetric"
             s_n <- rho(W_{n-1} s_{n-1} + b_{n-1} + B_n s_{n+1})      feedback = "learned"
  output:    s_N <- rho(W_{N-1} s_{N-1} + b_{N-1} + beta (y - s_N))     nudge_placement = "inside"
             s_N <- rho(W_{N-1} s_{N-1} + b_{N-1}) + beta (y - s_N)     nudge_placement = "outside"

Updates are *added* to the parameters and averaged over the minibatch, with s_0 = x in every phase.
EP (symmetric feedback):
  dW_n = (eta_n / beta) (s_{n+1}^b s_n^b^T - s_{n+1}^0 s_n^0^T),  db_n = (eta_n / beta)(s_{n+1}^b - s_{n+1}^0)
VF (learned feedback; B_n has W_n^T's shape (size_n, size_{n+1}) and W_n's learning rate):
  dW_n = (eta_n / beta) (s_{n+1}^b - s_{n+1}^0) s_n^0^T,          db_n as EP's
  dB_n = (eta_n / beta) (s_n^b - s_n^0) s_{n+1}^0^T               n = 1 .. N-1
Symmetric nudging puts (+beta phase - (-beta) phase) / 2 beta in place of (s^b - s^0) / beta (VF's
pre-synaptic factor stays s^0). Continual EP (C-EP / C-VF) applies the same rule at every nudged step
with s_{t+1} in place of s^b and s_t in place of s^0.
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


# B's generator is seeded with cfg.seed + this: above every seed a config can hold (< 2**32), so B's
# random stream never coincides with the W, b stream of any seed.
FEEDBACK_SEED_OFFSET = 1 << 32


def init_feedback(cfg: EPConfig, weights, dtype=torch.float32):
    """The learned feedback matrices [B_1 .. B_{N-1}] (B_n shaped as W_n^T) for ``cfg.feedback_angle``.

    None: drawn as W_n is (its own generator), then transposed: about 90 degrees from W_n^T.
    Psi degrees: W_n^T with each sign flipped with probability (1 - cos Psi) / 2, so the expected
    cosine between B_n and W_n^T is cos Psi. [] for symmetric feedback.
    """
    if cfg.feedback == "symmetric":
        return []
    g = torch.Generator().manual_seed(cfg.seed + FEEDBACK_SEED_OFFSET)
    out = []
    for n in range(1, cfg.n_layers):
        w = weights[n].to(torch.float64)
        if cfg.feedback_angle is None:
            bound = 1.0 / math.sqrt(cfg.sizes[n])
            b = (torch.rand(w.shape, generator=g, dtype=torch.float64) * 2 - 1) * bound
        else:
            flip = (1.0 - math.cos(math.radians(cfg.feedback_angle))) / 2.0
            b = torch.where(torch.rand(w.shape, generator=g, dtype=torch.float64) < flip, -w, w)
        out.append(b.T.contiguous().to(dtype))
    return out


def angle_degrees(a, b) -> float:
    """The angle between two tensors seen as vectors (for B_n against W_n^T)."""
    a, b = a.flatten().double(), b.flatten().double()
    cos = float(a @ b / (a.norm() * b.norm()))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


@dataclass
class Phases:
    """States at the end of each phase (lists of (batch, width) tensors, hidden layers first)."""
    free: list
    nudged: list                 # the +beta phase (beta signed for random-sign nudging)
    negative: list | None = None  # the -beta phase (symmetric nudging only)
    beta: float = 0.0            # the signed beta of the nudged phase


class FloatEP:
    """Float EqProp network. ``weights[n]`` has shape (sizes[n+1], sizes[n]) as torch.nn.Linear.

    With ``cfg.feedback == "learned"``, ``feedback[k]`` is B_{k+1}, the top-down matrix into
    ``states[k]`` (hidden layer k+1) from ``states[k+1]``, shaped as W_{k+1}^T: (sizes[k+1], sizes[k+2]),
    so the drive is ``states[k+1] @ feedback[k].T`` and a board could store it row-major as a forward
    matrix. ``feedback`` is [] for symmetric feedback.
    """

    def __init__(self, cfg: EPConfig, dtype=torch.float32, weights=None, biases=None, feedback=None):
        self.cfg = cfg
        self.dtype = dtype
        if weights is None:
            weights, biases = init_params(cfg, dtype)
        self.weights = [w.to(dtype).clone() for w in weights]
        self.biases = [b.to(dtype).clone() for b in biases]
        if feedback is None:
            feedback = init_feedback(cfg, self.weights, dtype)
        want = cfg.n_layers - 1 if cfg.feedback == "learned" else 0
        if len(feedback) != want:
            raise ValueError(f"feedback = {cfg.feedback!r} needs {want} feedback matrices, not {len(feedback)}")
        self.feedback = [m.to(dtype).clone() for m in feedback]
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
                top = states[k + 1] @ self.feedback[k].T if self.feedback else states[k + 1] @ W[k + 1]
                new.append(self.rho(pre + top))
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
    def _contrast_pair(self, ph: Phases):
        """(a, c, scale): the phases whose difference, times scale, is the update's post-synaptic factor."""
        if ph.negative is not None:
            return ph.nudged, ph.negative, 1.0 / (2.0 * self.cfg.beta)
        return ph.nudged, ph.free, 1.0 / ph.beta

    def ep_update(self, x, ph: Phases):
        """(dW, db) lists to be added: the EP rule (the VF rule for learned feedback) averaged over the batch."""
        a, c, scale = self._contrast_pair(ph)
        if self.feedback:
            return self._vf_forward(x, a, c, ph.free, scale)
        return self._contrast(x, a, c, scale)

    def feedback_update(self, ph: Phases):
        """The dB list to be added ([] for symmetric feedback): VF's rule for B_1 .. B_{N-1}."""
        if not self.feedback:
            return []
        a, c, scale = self._contrast_pair(ph)
        return self._vf_feedback(a, c, ph.free, scale)

    def _contrast(self, x, a, c, scale):
        """EP: the change of the local products s_{n+1} s_n^T between states a and c."""
        B = x.shape[0]
        dW, db = [], []
        for n in range(self.cfg.n_layers):
            pre_a = x if n == 0 else a[n - 1]
            pre_c = x if n == 0 else c[n - 1]
            eta = self.cfg.lrs[n] * scale / B
            dW.append(eta * (a[n].T @ pre_a - c[n].T @ pre_c))
            db.append(eta * (a[n] - c[n]).sum(0))
        return dW, db

    def _vf_forward(self, x, a, c, free, scale):
        """VF for W_n, b_n: the post-synaptic change a - c times the pre-synaptic state of ``free``."""
        B = x.shape[0]
        dW, db = [], []
        for n in range(self.cfg.n_layers):
            pre = x if n == 0 else free[n - 1]
            eta = self.cfg.lrs[n] * scale / B
            dW.append(eta * ((a[n] - c[n]).T @ pre))
            db.append(eta * (a[n] - c[n]).sum(0))
        return dW, db

    def _vf_feedback(self, a, c, free, scale):
        """VF for B_{k+1} (into states[k]): the change of states[k] times states[k+1] of ``free``."""
        batch = free[0].shape[0]
        return [self.cfg.lrs[k + 1] * scale / batch * ((a[k] - c[k]).T @ free[k + 1])
                for k in range(self.cfg.n_layers - 1)]

    def apply(self, dW, db, dB=()):
        for n in range(self.cfg.n_layers):
            self.weights[n] += dW[n]
            self.biases[n] += db[n]
        for k, d in enumerate(dB):
            self.feedback[k] += d

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
            self.apply(*self.ep_update(x, ph), self.feedback_update(ph))
            out = ph.free[-1]
        self.batches_seen += 1
        return out

    def _train_batch_continual(self, x, y, sign):
        """C-EP / C-VF: the parameters move at every nudged step (see ``continual_step``)."""
        free = self.free_phase(x)
        beta = sign * self.cfg.beta
        s = free
        for _ in range(self.cfg.T2):
            s = self.continual_step(x, s, beta, y)
        return free[-1]

    def continual_step(self, x, s, beta: float, y):
        """One nudged step of C-EP (C-VF): s_{t+1} with the current parameters, then at once the update
        of the rule with s_{t+1} for the nudged and s_t for the free states. Returns s_{t+1}."""
        s_next = self.step(x, s, beta, y)
        if self.feedback:
            scale = 1.0 / beta
            self.apply(*self._vf_forward(x, s_next, s, s, scale), self._vf_feedback(s_next, s, s, scale))
        else:
            self.apply(*self._contrast(x, s_next, s, 1.0 / beta))
        return s_next

    @torch.no_grad()
    def predict(self, x):
        return self.free_phase(x.to(self.dtype))[-1].argmax(1)

    # ---- energy, for checks ------------------------------------------------------------------
    def phi(self, x, states, beta: float = 0.0, y=None, weights=None, biases=None):
        """Primitive function Phi summed over the batch: sum_n s_{n+1}.(W_n s_n + b_n) - beta L.

        Only symmetric feedback has one: learned feedback makes the dynamics a vector field that is
        not a gradient."""
        if self.cfg.feedback != "symmetric":
            raise ValueError(f"phi is defined only for feedback = 'symmetric' (this net has feedback = "
                             f"{self.cfg.feedback!r}, whose dynamics derive from no primitive function)")
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
        for k, m in enumerate(self.feedback):
            d[f"B{k + 1}"] = m
        return d

    def feedback_angles(self) -> list:
        """Degrees between each B_n and W_n^T (n = 1 .. N-1): how far learned feedback is from EP's."""
        return [angle_degrees(m, self.weights[k + 1].T) for k, m in enumerate(self.feedback)]
