"""C-EP's Theorem 1 (Ernoult et al. 2020), checked numerically on FloatEP.

With dynamics that derive from a primitive function (s_{t+1} = dPhi/ds) and a settled free phase,
taking eta -> 0 first and beta -> 0 second, C-EP's nudged step t = 0, 1, ... gives
  (1/eta)  (theta_{t+1} - theta_t) -> -dL/dtheta at BPTT's step T - t
  (1/beta) (s_{t+1} - s_t)         -> -dL/ds     at BPTT's time T - t
where BPTT unrolls the free dynamics from the fixed point s* (truncated BPTT, as for EP in
tests/test_golden_bptt.py) with one copy of the parameters per step: dL/dtheta at step T - t is the
gradient with respect to the copy of the step from time T - t - 1 to T - t (t = 0: the last step),
and L = mean over the batch of 1/2 ||s_N - y||^2 at time T.

FloatEP's hard sigmoid is the identity on [0, 1]: with small weights, inputs and biases near 1/2,
every pre-activation stays strictly inside (0, 1) and the net is linear, where
Phi = sum_n s_{n+1}.(W_n s_n + b_n) is exactly the primitive function of the dynamics (and the
inside nudge beta (y - s_N) is -beta dL/ds_N). A state strictly inside (0, 1) is exactly a
pre-activation strictly inside (0, 1), so ``Run.clamped`` (the fraction of states at 0 or 1 over every
step of both phases) is 0 exactly when the whole run is linear.
The "hard" regime uses larger weights and biases spread over [-1/2, 1]: units saturate, the dynamics
have no primitive function, and the match is only approximate (reported, not gated). Saturated units
drop out of both sides of the parameter comparison, but not of the neural one: C-EP leaves them still
while BPTT's dL/ds of a saturated unit is not zero.

Two error terms: beta's (the nudged trajectory is EP's to first order only) and eta's (each step's
weight change moves the next step's states by about eta |increment| sum_j s_j, which 1/beta
amplifies): it is small against beta only for eta << beta^2 / sum_j s_j (about 1e-5 for 20 inputs
at beta = 0.01), so the beta sweep runs at eta = 1e-7 and the eta sweep shows eta's term.

``python -m eqfpga.golden.cep_theorem`` prints the study table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import EPConfig
from .float_model import FloatEP

F64 = torch.float64

# name -> layer sizes: a toy net, a one-hidden "prototypical" net and a two-hidden one.
NETS = {"toy": (5, 4, 3), "1h": (20, 16, 10), "2h": (20, 12, 8, 4)}
# regime -> (weight scale times 1/sqrt(fan_in), input range, bias range)
REGIMES = {"linear": (0.3, (0.0, 0.5), (0.4, 0.6)), "hard": (1.5, (0.0, 1.0), (-0.5, 1.0))}
T1 = 200          # free steps: the linear nets settle to float64 precision well before
STEPS = 10        # nudged steps compared (T2)
BATCH = 4
BETAS = (0.1, 0.03, 0.01)      # at eta = ETA_FOR_BETAS
ETA_FOR_BETAS = 1e-7
ETAS = (1e-3, 1e-4, 1e-5)      # at beta = BETAS[-1]: the range where eta's error term dominates


@dataclass
class Run:
    """One comparison: per-tensor relative errors of the stacked per-step updates, and more."""
    net: str
    regime: str
    beta: float
    eta: float
    tensors: dict          # "W0", "b0", ... -> ||CEP - BPTT|| / max(||CEP||, ||BPTT||) over the T2 steps
    sign_errors: float     # fraction of entries (all tensors and steps, BPTT's non-zero ones) of opposite sign
    neural: float          # the same relative error for (1/beta)(s_{t+1} - s_t) against -dL/ds
    clamped: float         # fraction of states at 0 or 1 over every step of both phases (0: linear)
    residual: float        # max |s_T1 - s_{T1-1}| of the free phase

    @property
    def worst(self) -> float:
        return max(self.tensors.values())


def make_problem(sizes, regime: str, seed: int = 0):
    """Parameters, a batch and its one-hot targets, float64, for a net of ``sizes`` in ``regime``."""
    scale, (x_lo, x_hi), (b_lo, b_hi) = REGIMES[regime]
    g = torch.Generator().manual_seed(seed)

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=F64)
    W = [uniform((sizes[n + 1], sizes[n]), -1.0, 1.0) * scale / math.sqrt(sizes[n]) for n in range(len(sizes) - 1)]
    b = [uniform((sizes[n + 1],), b_lo, b_hi) for n in range(len(sizes) - 1)]
    x = uniform((BATCH, sizes[0]), x_lo, x_hi)
    y = torch.eye(sizes[-1], dtype=F64)[torch.randint(0, sizes[-1], (BATCH,), generator=g)]
    return W, b, x, y


def config(sizes, beta: float, eta: float) -> EPConfig:
    """C-EP with one-sided nudging inside the hard sigmoid, one learning rate for every layer."""
    return EPConfig(name="cep-theorem", sizes=tuple(sizes), activation="hard_sigmoid", T1=T1, T2=STEPS,
                    beta=beta, nudging="one_sided", nudge_placement="inside", lrs=(eta,) * (len(sizes) - 1),
                    continual=True, batch_size=BATCH)


def _flat(weights, biases):
    """[W0, b0, W1, b1, ...]."""
    return [p for pair in zip(weights, biases) for p in pair]


def clamped_count(states) -> tuple:
    """(states at 0 or 1, states): outside the hard sigmoid's identity region."""
    return (sum(int(((s <= 0) | (s >= 1)).sum()) for s in states), sum(s.numel() for s in states))


def cep_steps(cfg: EPConfig, W, b, x, y):
    """C-EP's nudged phase with FloatEP.continual_step: per step t, the increments (1/eta_n) of every
    tensor [W0, b0, W1, ...] and (1/beta)(s_{t+1} - s_t); plus the fixed point, the clamped fraction
    and the free phase's residual."""
    net = FloatEP(cfg, F64, W, b)
    lrs = [lr for lr in cfg.lrs for _ in ("W", "b")]
    s, counts = net.zero_states(BATCH), []
    for _ in range(cfg.T1):
        s_prev, s = s, net.step(x, s)
        counts.append(clamped_count(s))
    s_star = s
    residual = max(float((p - q).abs().max()) for p, q in zip(s, s_prev))
    params, neural = [], []
    for _ in range(cfg.T2):
        before = [p.clone() for p in _flat(net.weights, net.biases)]
        s_next = net.continual_step(x, s, cfg.beta, y)
        counts.append(clamped_count(s_next))
        params.append([(p - q) / lr for p, q, lr in zip(_flat(net.weights, net.biases), before, lrs)])
        neural.append(torch.cat([(p - q).flatten() for p, q in zip(s_next, s)]) / cfg.beta)
        s = s_next
    clamped = sum(c for c, _ in counts) / sum(n for _, n in counts)
    return params, neural, s_star, clamped, residual


def bptt_steps(cfg: EPConfig, W, b, x, y, s_star):
    """Truncated BPTT from the fixed point over T2 free steps, one parameter copy per step: per C-EP
    step t, -dL/dtheta of the copy used t steps before the end (same tensor order as ``cep_steps``)
    and -dL/ds at time T - t for the per-sample loss (the neural updates are per sample)."""
    copies = [[p.clone().requires_grad_(True) for p in _flat(W, b)] for _ in range(cfg.T2)]
    s, times = s_star, []
    for theta in copies:
        s = FloatEP(cfg, F64, theta[0::2], theta[1::2]).step(x, s)
        times.append(s)                                    # times[k]: the states after k + 1 steps
    loss = 0.5 * ((s[-1] - y) ** 2).sum()
    n_p, n_s = len(copies[0]), len(s_star)
    grads = torch.autograd.grad(loss, [p for theta in copies for p in theta] + [t for st in times for t in st],
                                materialize_grads=True)
    params = [[-g / BATCH for g in grads[k * n_p:(k + 1) * n_p]] for k in reversed(range(cfg.T2))]
    off = cfg.T2 * n_p
    neural = [-torch.cat([g.flatten() for g in grads[off + k * n_s:off + (k + 1) * n_s]])
              for k in reversed(range(cfg.T2))]
    return params, neural


def relative_error(a, b) -> float:
    """||a - b|| / max(||a||, ||b||) (0 when both are 0)."""
    den = max(float(a.norm()), float(b.norm()))
    return float((a - b).norm()) / den if den else 0.0


def compare(net: str, regime: str, beta: float, eta: float, seed: int = 0) -> Run:
    sizes = NETS[net]
    cfg = config(sizes, beta, eta)
    W, b, x, y = make_problem(sizes, regime, seed)
    cep_p, cep_n, s_star, clamped, residual = cep_steps(cfg, W, b, x, y)
    bp_p, bp_n = bptt_steps(cfg, W, b, x, y, s_star)
    names = [f"{k}{n}" for n in range(cfg.n_layers) for k in ("W", "b")]
    tensors, wrong, counted = {}, 0, 0
    for i, name in enumerate(names):
        a = torch.stack([step[i] for step in cep_p])
        g = torch.stack([step[i] for step in bp_p])
        tensors[name] = relative_error(a, g)
        nonzero = g.abs() > 1e-12 * float(g.abs().max())
        wrong += int((torch.sign(a) != torch.sign(g))[nonzero].sum())
        counted += int(nonzero.sum())
    neural = relative_error(torch.stack(cep_n), torch.stack(bp_n))
    return Run(net, regime, beta, eta, tensors, wrong / max(counted, 1), neural, clamped, residual)


def sweeps(net: str, regime: str = "linear") -> tuple:
    """(the beta sweep, the eta sweep) of one net: lists of Run."""
    return ([compare(net, regime, beta, ETA_FOR_BETAS) for beta in BETAS],
            [compare(net, regime, BETAS[-1], eta) for eta in ETAS])


def study(nets=tuple(NETS), regimes=("linear", "hard")) -> list:
    """Both sweeps for every net and regime, as one list of Run."""
    runs = []
    for regime in regimes:
        for net in nets:
            beta_runs, eta_runs = sweeps(net, regime)
            runs += beta_runs + eta_runs
    return runs


def table(runs) -> str:
    """A Markdown table of the runs: one row each, a column per tensor name of the widest net."""
    names = max((list(r.tensors) for r in runs), key=len)
    head = ["regime", "net", "beta", "eta", *names, "sign err.", "neural", "clamped", "free residual"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        cells = [r.regime, f"{r.net} ({'-'.join(map(str, NETS[r.net]))})", f"{r.beta:g}", f"{r.eta:g}",
                 *[f"{r.tensors[n]:.2e}" if n in r.tensors else "" for n in names],
                 f"{100 * r.sign_errors:.1f}%", f"{r.neural:.2e}", f"{100 * r.clamped:.1f}%", f"{r.residual:.0e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    torch.set_num_threads(1)        # tiny matrices: the thread pool only adds overhead
    print(f"C-EP per-step updates against truncated BPTT from the fixed point ({STEPS} nudged steps, batch "
          f"{BATCH}, T1 = {T1}); relative error ||CEP - BPTT|| / max(||CEP||, ||BPTT||) per tensor over the "
          "steps; sign errors over BPTT's non-zero entries; 'neural' compares (1/beta)(s_t+1 - s_t) with "
          "-dL/ds; 'clamped': states at 0 or 1 over both phases (0%: the net is linear)\n")
    print(table(study()))


if __name__ == "__main__":
    main()
