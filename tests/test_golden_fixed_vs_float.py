"""docs/fixed-point.md, "Float vs fixed: the per-step error bound", on >= 100 random small nets.

FixedEP and FloatEP (float64) run on the SAME quantised parameters (FixedEP.float_params()) and the
same quantised input. With e_t = max_i |s_fixed_t / 2^fs - s_float_t|, the doc's bound is
    e_{t+1} <= L e_t + r,   e_0 = 0,   r = q (truncate) or q/2 (nearest), q = 2^-fs,
    L = max_k max_i (sum_j |W_{k-1}[i, j]| + sum_j |W_k[j, i]| (+ beta at the output in nudged steps)).
"""
import numpy as np
import pytest
import torch

from eqfpga.golden.config import EPConfig, FixedConfig
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.golden.float_model import FloatEP

N_NETS = 150
TOL = 1e-12      # float64 rounding in the float model


def random_case(seed):
    g = np.random.default_rng(seed)
    hidden = int(g.integers(1, 3))
    sizes = [int(g.integers(1, 11))] + [int(g.integers(1, 9)) for _ in range(hidden)] + [int(g.integers(1, 6))]
    fs = int(g.integers(3, 11))
    fx = int(g.integers(1, min(fs, 8) + 1))
    wb = int(g.integers(6, 17))
    fw = int(g.integers(2, wb - 1))
    bb = int(g.integers(6, 17))
    fb = int(g.integers(1, min(bb - 1, fw + fs) + 1))
    kb = int(g.integers(0, min(fw, 5) + 1))
    nudging = str(g.choice(["one_sided", "symmetric", "random_sign"]))
    fixed = FixedConfig(input_frac=fx, state_frac=fs, weight_bits=wb, weight_frac=fw, bias_bits=bb,
                        bias_frac=fb, acc_bits=48, update_bits=min(wb, 8),
                        state_rounding=str(g.choice(["truncate", "nearest"])), update_rounding="nearest")
    cfg = EPConfig(name=f"rnd{seed}", sizes=tuple(sizes), T1=int(g.integers(2, 25)), T2=int(g.integers(1, 12)),
                   beta=2.0 ** -kb, nudging=nudging, lrs=(0.5,) * (len(sizes) - 1), seed=seed, fixed=fixed)
    cfg = cfg.replace(fixed={"acc_bits": max(8, cfg.acc_bits_needed())})
    # weights on a scale where the bound's L is about 1 to 2 (weights within their format's range)
    scale = float(g.uniform(0.5, 2.5))
    W = []
    for n in range(len(sizes) - 1):
        fan = sizes[n] + (sizes[n + 2] if n + 2 < len(sizes) else 0)
        W.append(torch.tensor(g.uniform(-1, 1, (sizes[n + 1], sizes[n])) * scale / fan))
    b = [torch.tensor(g.uniform(-0.3, 0.8, sizes[n + 1])) for n in range(len(sizes) - 1)]
    B = int(g.integers(1, 4))
    x = torch.tensor(g.uniform(0, 1, (B, sizes[0])))
    x[torch.tensor(g.uniform(0, 1, x.shape) < 0.2)] = 0.0          # some zero pixels
    labels = torch.tensor(g.integers(0, sizes[-1], B))
    sign = -1 if (nudging == "random_sign" and g.uniform() < 0.5) else 1
    return cfg, W, b, x, labels, sign


def lipschitz(Wf, beta):
    """The doc's L_k for every layer k = 1..N, free and nudged."""
    N = len(Wf)
    Ls = []
    for k in range(1, N + 1):
        row = Wf[k - 1].abs().sum(1)                    # sum_j |W_{k-1}[i, j]|
        if k < N:
            row = row + Wf[k].abs().sum(0)              # sum_j |W_k[j, i]|
        Ls.append(row)
    free = max(float(r.max()) for r in Ls)
    nudged = max(free, float((Ls[-1] + beta).max()))
    return free, nudged


def run_both(cfg, W, b, x, labels, sign):
    fx_net = FixedEP.from_float(cfg, W, b)
    Wf, bf = fx_net.float_params()
    xi = fx_net.encode_input(x)
    y = fx_net.encode_target(labels)
    ph = fx_net.phases(xi, y, torch.tensor([sign]), keep_trace=True)
    one = fx_net.one
    fixed_traj = [[s[0].double() / one for s in states] for states in ph.trace]

    fl = FloatEP(cfg, torch.float64, Wf, bf)
    xf = xi.double() / 2 ** cfg.fixed.input_frac
    yf = y.double() / one
    float_traj, phases = [], []
    s = fl.zero_states(x.shape[0])
    for _ in range(cfg.T1):
        s = fl.step(xf, s)
        float_traj.append(s)
        phases.append(0.0)
    free = s
    # the fixed model's negative phase (symmetric nudging) runs with the opposite sign of the first
    betas = [sign * cfg.beta] + ([-sign * cfg.beta] if cfg.nudging == "symmetric" else [])
    for beta in betas:
        s = free
        for _ in range(cfg.T2):
            s = fl.step(xf, s, beta, yf)
            float_traj.append(s)
            phases.append(beta)
    assert len(fixed_traj) == len(float_traj)
    return fx_net, Wf, fixed_traj, float_traj, phases


def err(a, b):
    return max(float((p - q).abs().max()) for p, q in zip(a, b))


@pytest.fixture(scope="module")
def results():
    out = []
    for seed in range(N_NETS):
        cfg, W, b, x, labels, sign = random_case(seed)
        fx_net, Wf, ft, flt, phases = run_both(cfg, W, b, x, labels, sign)
        q = 2.0 ** -cfg.fixed.state_frac
        r = q / 2 if cfg.fixed.state_rounding == "nearest" else q
        out.append((cfg, Wf, ft, flt, phases, r))
    return out


def test_enough_nets_and_not_vacuous(results):
    assert len(results) >= 100
    kinds = {(c.n_layers, c.nudging, c.fixed.state_rounding) for c, *_ in results}
    assert len(kinds) == 12                                      # every combination occurs
    nonzero = sum(1 for _, _, ft, flt, _, _ in results if max(err(a, b) for a, b in zip(ft, flt)) > 0)
    assert nonzero > 0.9 * len(results)
    # states are not all clamped: the dynamics are exercised
    inside = sum(1 for _, _, _, flt, _, _ in results
                 if any(((s > 0.01) & (s < 0.99)).any() for s in flt[-1]))
    assert inside > 0.8 * len(results)


def test_per_step_bound(results):
    """e_{t+1} <= L e_t + r at every step, with L gaining +beta in nudged steps."""
    worst_ratio = 0.0
    for cfg, Wf, ft, flt, phases, r in results:
        L_free, L_nudged = lipschitz(Wf, cfg.beta)
        e_prev = 0.0
        for t, (a, b) in enumerate(zip(ft, flt)):
            if t == cfg.T1 or (t - cfg.T1) == cfg.T2:    # each nudged phase starts from the free states
                e_prev = err(ft[cfg.T1 - 1], flt[cfg.T1 - 1])
            L = L_free if phases[t] == 0.0 else L_nudged
            e = err(a, b)
            bound = L * e_prev + r
            assert e <= bound + TOL, (cfg.name, t, e, bound)
            worst_ratio = max(worst_ratio, e / bound)
            e_prev = e
    assert worst_ratio > 0.5          # the bound is not absurdly loose everywhere


def test_closed_form_bound(results):
    """e_T <= r (L^T - 1) / (L - 1) (r T when L = 1), counting steps from the zero start."""
    for cfg, Wf, ft, flt, phases, r in results:
        L_free, L_nudged = lipschitz(Wf, cfg.beta)
        for t, (a, b) in enumerate(zip(ft, flt)):
            if t < cfg.T1:
                T, L = t + 1, L_free
            else:
                T, L = cfg.T1 + (t - cfg.T1) % cfg.T2 + 1, L_nudged
            bound = r * T if L == 1 else r * (L ** T - 1) / (L - 1)
            assert err(a, b) <= bound + TOL, (cfg.name, t)


def test_per_neuron_bound(results):
    """A sharper form of the same argument, neuron by neuron: the input drive is exact, so
    |de_{t+1}[k][i]| <= sum_j |W_{k-1}[i,j]| e_t[k-1][j] (k > 1) + sum_j |W_k[j,i]| e_t[k+1][j]
    + beta e_t[N][i] (output, nudged) + r."""
    for cfg, Wf, ft, flt, phases, r in results:
        N = cfg.n_layers
        start = [torch.zeros_like(s) for s in flt[0]]
        prev = start
        for t, (a, b) in enumerate(zip(ft, flt)):
            if t == cfg.T1 or (t - cfg.T1) == cfg.T2:
                prev = [(p - q).abs() for p, q in zip(ft[cfg.T1 - 1], flt[cfg.T1 - 1])]
            beta = abs(phases[t])
            e = [(p - q).abs() for p, q in zip(a, b)]
            for k in range(N):                        # e[k] is layer k+1
                bound = torch.full_like(e[k], r)
                if k > 0:
                    bound = bound + prev[k - 1] @ Wf[k].abs().T
                if k + 1 < N:
                    bound = bound + prev[k + 1] @ Wf[k + 1].abs()
                elif beta:
                    bound = bound + beta * prev[k]
                assert bool((e[k] <= bound + TOL).all()), (cfg.name, t, k)
            prev = e


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("nudging", ["one_sided", "symmetric", "random_sign"])
@pytest.mark.parametrize("rounding", ["truncate", "nearest"])
def test_zero_error_when_float_lands_on_grid(rounding, nudging, sign):
    """A net whose float pre-activations stay on the state grid: the fixed model is exact at every step.

    Inputs have 2 fraction bits and W_0 2 more (fx + fw_0 = fs), biases are on the state grid, the
    weights that multiply states (W_1, feedback and forward) are integers and beta = 1: every sum
    the float model forms is a multiple of 2^-fs, so neither rounding mode may change it."""
    cfg = EPConfig(name="grid", sizes=(3, 3, 2), T1=8, T2=4, beta=1.0, lrs=(0.5, 0.5), nudging=nudging,
                   fixed=FixedConfig(input_frac=2, state_frac=4, weight_bits=8, weight_frac=2, bias_bits=8,
                                     bias_frac=4, acc_bits=24, update_bits=8, state_rounding=rounding))
    W = [torch.tensor([[0.5, 0.25, -0.75], [0.75, -0.5, 0.25], [-0.25, 1.0, 0.5]], dtype=torch.float64),
         torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]], dtype=torch.float64)]
    b = [torch.tensor([0.125, -0.0625, 0.25], dtype=torch.float64),
         torch.tensor([0.1875, -0.125], dtype=torch.float64)]
    x = torch.tensor([[0.5, 0.75, 0.25], [0.75, 0.0, 0.5]], dtype=torch.float64)
    fx_net, Wf, ft, flt, phases = run_both(cfg, W, b, x, torch.tensor([0, 1]), sign)
    assert all(torch.equal(p, q) for p, q in zip(Wf, W))           # the weights are representable as given
    steps = cfg.T1 + cfg.T2 * (2 if nudging == "symmetric" else 1)
    assert len(ft) == len(flt) == steps
    for t, (a, b_) in enumerate(zip(ft, flt)):
        for k, (p, q) in enumerate(zip(a, b_)):
            assert torch.equal(p, q), (t, k, p, q)                 # every state of every step, exactly
    # not vacuous: the states move, take values inside (0, 1), and the nudge changes the output
    assert len({tuple(torch.cat([s.flatten() for s in st]).tolist()) for st in flt}) >= 6
    assert any(((s > 0) & (s < 1)).any() for st in flt for s in st)
    assert any(not torch.equal(flt[t][-1], flt[cfg.T1 - 1][-1]) for t in range(cfg.T1, steps))
