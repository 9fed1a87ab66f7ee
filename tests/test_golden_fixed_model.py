"""FixedEP against docs/fixed-point.md written out in pure Python ints, and its behaviour."""
import itertools
import random

import pytest
import torch

from eqfpga.golden.config import EPConfig, FixedConfig
from eqfpga.golden.fixed_model import FixedEP, quantise
from eqfpga.golden.fixedpoint import arx_hash, beta_sign_negative, sample_key


def make_cfg(hidden=1, nudging="one_sided", T1=10, T2=4, beta=0.5, lrs=None, seed=3, sizes=None, **fixed):
    sizes = sizes or ((7, 5, 3) if hidden == 1 else (7, 5, 4, 3))
    f = dict(input_frac=6, state_frac=8, weight_bits=12, weight_frac=8, bias_bits=10, bias_frac=6,
             update_bits=8, state_rounding="nearest", update_rounding="stochastic")
    f.update(fixed)
    cfg = EPConfig(name="fx", sizes=sizes, T1=T1, T2=T2, beta=beta, nudging=nudging,
                   lrs=lrs or (0.5, 0.25, 0.125)[:len(sizes) - 1], seed=seed,
                   fixed=FixedConfig(acc_bits=48, **f))
    return cfg.replace(fixed={"acc_bits": max(8, cfg.acc_bits_needed())})


def make_net(cfg, seed=0, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    W = [(torch.rand(cfg.sizes[n + 1], cfg.sizes[n], generator=g, dtype=torch.float64) * 2 - 1)
         * scale / cfg.sizes[n] ** 0.5 for n in range(cfg.n_layers)]
    b = [torch.rand(cfg.sizes[n + 1], generator=g, dtype=torch.float64) * 0.6 for n in range(cfg.n_layers)]
    return FixedEP.from_float(cfg, W, b)


def make_input(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(cfg.sizes[0], generator=g, dtype=torch.float64)
    x[torch.rand(cfg.sizes[0], generator=g) < 0.3] = 0.0            # zero pixels
    return x


# ---- the spec in pure Python ------------------------------------------------------------------
def ints(t):
    return t.tolist()


def spec_step(cfg, f, W, b, x, s, sign=0, y=None):
    """One synchronous step ("One step" in the doc); s[k] for k = 1..N, s[0] = x (fraction fx)."""
    N, fs, fw, kb = cfg.n_layers, f.state_frac, f.weight_frac, cfg.beta_shift
    rs = (1 << (fw - 1)) if f.state_rounding == "nearest" and fw > 0 else 0
    new = [x]
    for k in range(1, N + 1):
        out = []
        for i in range(cfg.sizes[k]):
            if k == 1:
                acc = sum(W[0][i][j] * x[j] for j in range(cfg.sizes[0])) << (fs - f.input_frac)
            else:
                acc = sum(W[k - 1][i][j] * s[k - 1][j] for j in range(cfg.sizes[k - 1]))
            acc += b[k - 1][i] << (fw + fs - f.bias_frac)
            if k < N:
                acc += sum(W[k][j][i] * s[k + 1][j] for j in range(cfg.sizes[k + 1]))
            elif sign:
                acc += sign * ((y[i] - s[N][i]) << (fw - kb))
            out.append(min(max((acc + rs) >> fw, 0), 1 << fs))
        new.append(out)
    return new


def spec_phases(cfg, f, W, b, x, y, sign):
    s = [x] + [[0] * n for n in cfg.sizes[1:]]
    trace = []
    for _ in range(cfg.T1):
        s = spec_step(cfg, f, W, b, x, s)
        trace.append(s)
    free = s
    nudged = free
    for _ in range(cfg.T2):
        nudged = spec_step(cfg, f, W, b, x, nudged, sign, y)
        trace.append(nudged)
    negative = None
    if cfg.nudging == "symmetric":
        negative = free
        for _ in range(cfg.T2):
            negative = spec_step(cfg, f, W, b, x, negative, -sign, y)
            trace.append(negative)
    return free, nudged, negative, trace


def spec_update(cfg, f, W, b, x, free, nudged, negative, sign, sample, order_seed=0):
    """The "Update" section, one weight at a time, visiting the weights in a shuffled order."""
    W = [[row[:] for row in w] for w in W]
    b = [v[:] for v in b]
    sym = 1 if negative is not None else 0
    a, c, g = (nudged, negative, 1) if sym else (nudged, free, sign)
    key = sample_key(cfg.seed, sample)
    umin, umax = -(1 << (f.update_bits - 1)), (1 << (f.update_bits - 1)) - 1
    wmin, wmax = -(1 << (f.weight_bits - 1)), (1 << (f.weight_bits - 1)) - 1
    bmin, bmax = -(1 << (f.bias_bits - 1)), (1 << (f.bias_bits - 1)) - 1
    fs, fw, fb, kb = f.state_frac, f.weight_frac, f.bias_frac, cfg.beta_shift

    def rnd(D, sh, n, u, v):
        m = max(sh, 0)
        if f.update_rounding == "truncate":
            R = 0
        elif f.update_rounding == "nearest":
            R = (1 << (m - 1)) if m > 0 else 0
        else:
            # the lane that owns neuron u takes piece u mod S of one hash word shared by S neurons
            b = 8 if m <= 8 else 16 if m <= 16 else 32
            S = 32 // b
            word = arx_hash(key, (n << 28) | ((u // S) << 14) | v)
            R = (word >> (b * (u % S))) % (1 << m)
        return min(max(((D << max(-sh, 0)) + R) >> m, umin), umax)

    jobs = []
    for n in range(cfg.n_layers):
        for i in range(cfg.sizes[n + 1]):
            jobs += [(n, i, j) for j in range(cfg.sizes[n] + 1)]     # j == fan-in: the bias
    random.Random(order_seed).shuffle(jobs)
    for n, i, j in jobs:
        ke = cfg.lr_shifts[n]
        f_pre = f.input_frac if n == 0 else fs
        fan_in = cfg.sizes[n]
        if j < fan_in:
            D = g * (a[n + 1][i] * a[n][j] - c[n + 1][i] * c[n][j])
            u, v = (i, j) if n == 0 else (j, i)
            dW = rnd(D, fs + f_pre + ke - kb + sym - fw, n, u, v)
            W[n][i][j] = min(max(W[n][i][j] + dW, wmin), wmax)
        else:
            D = g * (a[n + 1][i] - c[n + 1][i])
            db = rnd(D, fs + ke - kb + sym - fb, n, i, 0x3FFF)
            b[n][i] = min(max(b[n][i] + db, bmin), bmax)
    return W, b


def net_params(net, m=0):
    return [ints(w[m]) for w in net.weights], [ints(v[m]) for v in net.biases]


def phase_ints(states, m=0, batch=0):
    return [ints(s[m, batch]) for s in states]


SPEC_CASES = list(itertools.product([1, 2], ["one_sided", "random_sign", "symmetric"],
                                    ["truncate", "nearest", "stochastic"], ["truncate", "nearest"]))


@pytest.mark.parametrize("hidden,nudging,upd,st", SPEC_CASES)
def test_train_sample_matches_spec(hidden, nudging, upd, st):
    """Dynamics, phases and update of three training samples against the pure-Python spec."""
    cfg = make_cfg(hidden, nudging, update_rounding=upd, state_rounding=st, update_bits=6,
                   lrs=(1.0, 0.5, 0.25)[:hidden + 1], beta=0.25)
    f = cfg.fixed
    net = make_net(cfg, seed=hidden)
    W, b = net_params(net)
    for t in range(3):
        x = make_input(cfg, seed=t)
        label = t % cfg.sizes[-1]
        xi = ints(net.encode_input(x.view(1, -1))[0])
        y = [(1 << f.state_frac) if i == label else 0 for i in range(cfg.sizes[-1])]
        sign = -1 if nudging == "random_sign" and beta_sign_negative(sample_key(cfg.seed, t)) else 1
        free, nudged, negative, trace = spec_phases(cfg, f, W, b, xi, y, sign)
        ph = net.train_sample(x, label, keep_trace=True)
        assert int(ph.sign[0]) == sign
        assert phase_ints(ph.free) == free[1:]
        assert phase_ints(ph.nudged) == nudged[1:]
        assert (ph.negative is None) == (negative is None)
        if negative is not None:
            assert phase_ints(ph.negative) == negative[1:]
        assert [phase_ints(s) for s in ph.trace] == [s[1:] for s in trace]
        W, b = spec_update(cfg, f, W, b, xi, free, nudged, negative, sign, t, order_seed=t)
        assert net_params(net) == (W, b)
    assert net.samples_seen == 3


@pytest.mark.parametrize("order_seed", [0, 1, 2])
def test_stochastic_update_independent_of_visiting_order(order_seed):
    """Per-weight updates in any order (pure Python) equal the vectorised update."""
    cfg = make_cfg(2, "one_sided", update_rounding="stochastic", lrs=(0.25, 0.125, 0.0625))
    f = cfg.fixed
    net = make_net(cfg, seed=9)
    x = make_input(cfg, seed=4)
    xi_t = net.encode_input(x.view(1, -1))
    y_t = net.encode_target(torch.tensor([1]))
    ph = net.phases(xi_t, y_t, net.sign_for_sample(5))
    W, b = net_params(net)
    xi = ints(xi_t[0])
    free, nudged = [xi] + phase_ints(ph.free), [xi] + phase_ints(ph.nudged)
    want = spec_update(cfg, f, W, b, xi, free, nudged, None, 1, 5, order_seed)
    net.update(xi_t, ph, 5)
    assert net_params(net) == want
    assert want != (W, b)
    # a different sample index gives different random bits, so (at this size) a different result
    net2 = make_net(cfg, seed=9)
    net2.update(xi_t, ph, 6)
    assert net_params(net2) != net_params(net)


def test_side_by_side_nets_equal_separate_nets():
    """M nets with different formats and rounding modes in one tensor computation == one at a time."""
    cfg = make_cfg(1, "random_sign", T1=6, T2=3)
    fixed = [cfg.fixed,
             cfg.fixed.__class__(**{**cfg.fixed.__dict__, "update_rounding": "nearest", "weight_bits": 10}),
             cfg.fixed.__class__(**{**cfg.fixed.__dict__, "update_rounding": "truncate", "weight_frac": 6,
                                    "state_rounding": "truncate", "update_bits": 5}),
             cfg.fixed.__class__(**{**cfg.fixed.__dict__, "bias_frac": 8, "bias_bits": 12})]
    fixed = [f.__class__(**{**f.__dict__, "acc_bits": 48}) for f in fixed]
    g = torch.Generator().manual_seed(1)
    Wf = [(torch.rand(cfg.sizes[n + 1], cfg.sizes[n], generator=g, dtype=torch.float64) - 0.5)
          for n in range(cfg.n_layers)]
    bf = [torch.rand(cfg.sizes[n + 1], generator=g, dtype=torch.float64) * 0.5 for n in range(cfg.n_layers)]
    together = FixedEP.from_float(cfg, Wf, bf, fixed)
    alone = [FixedEP.from_float(cfg.replace(fixed=f), Wf, bf) for f in fixed]
    for t in range(6):
        x = make_input(cfg, seed=t)
        together.train_sample(x, t % 3)
        for net in alone:
            net.train_sample(x, t % 3)
    for m, net in enumerate(alone):
        assert net_params(together, m) == net_params(net)
        assert together.counters.as_dict(m) == net.counters.as_dict(0)
    x = torch.stack([make_input(cfg, seed=s) for s in range(5)])
    p = together.predict(x)
    for m, net in enumerate(alone):
        assert p[m].tolist() == net.predict(x)[0].tolist()


# ---- behaviour --------------------------------------------------------------------------------
def test_saturation_counters_rise_on_edge_config():
    cfg = make_cfg(1, "one_sided", weight_bits=6, weight_frac=5, bias_bits=4, bias_frac=3, update_bits=6,
                   lrs=(16.0, 16.0), beta=1.0)
    net = make_net(cfg, seed=0, scale=0.7)
    for t in range(20):
        net.train_sample(make_input(cfg, seed=t), t % 3)
    c = net.counters.as_dict()
    assert c["samples"] == 20
    assert sum(c["update_sat"]) > 0 and sum(c["weight_sat"]) > 0 and sum(c["bias_sat"]) > 0
    assert sum(c["act_low"]) + sum(c["act_high"]) > 0
    for w in net.weights:
        assert int(w.min()) >= -32 and int(w.max()) <= 31
    for v in net.biases:
        assert int(v.min()) >= -8 and int(v.max()) <= 7
    # a roomy config on the same data saturates nothing
    roomy = make_cfg(1, "one_sided", weight_bits=16, weight_frac=8, bias_bits=16, bias_frac=8, update_bits=16,
                     lrs=(2.0 ** -6, 2.0 ** -6))
    net = make_net(roomy, seed=0, scale=0.5)
    for t in range(5):
        net.train_sample(make_input(roomy, seed=t), t % 3)
    c = net.counters.as_dict()
    assert sum(c["update_sat"]) == sum(c["weight_sat"]) == sum(c["bias_sat"]) == 0


def test_activation_counters_count_clamps():
    cfg = make_cfg(1, T1=3, T2=2)
    net = make_net(cfg)
    xi = net.encode_input(make_input(cfg).view(1, -1))
    ph = net.phases(xi, net.encode_target(torch.tensor([0])), net.sign_for_sample(0), keep_trace=True)
    # recount from the spec: a clamp happens where the unclamped rounded value leaves [0, 2^fs]
    f = cfg.fixed
    W, b = net_params(net)
    x = ints(xi[0])
    y = [1 << f.state_frac, 0, 0]
    low, high = [0] * cfg.n_layers, [0] * cfg.n_layers
    s = [x] + [[0] * n for n in cfg.sizes[1:]]
    for t in range(cfg.T1 + cfg.T2):
        sign = 1 if t >= cfg.T1 else 0
        raw = spec_step(cfg, f, W, b, x, s, sign, y)
        # unclamped: recompute with a huge state range by reading the accumulator's rounded value
        for k in range(1, cfg.n_layers + 1):
            for i in range(cfg.sizes[k]):
                if k == 1:
                    acc = sum(W[0][i][j] * x[j] for j in range(cfg.sizes[0])) << (f.state_frac - f.input_frac)
                else:
                    acc = sum(W[k - 1][i][j] * s[k - 1][j] for j in range(cfg.sizes[k - 1]))
                acc += b[k - 1][i] << (f.weight_frac + f.state_frac - f.bias_frac)
                if k < cfg.n_layers:
                    acc += sum(W[k][j][i] * s[k + 1][j] for j in range(cfg.sizes[k + 1]))
                elif sign:
                    acc += (y[i] - s[k][i]) << (f.weight_frac - cfg.beta_shift)
                v = (acc + (1 << (f.weight_frac - 1))) >> f.weight_frac
                low[k - 1] += v < 0
                high[k - 1] += v > 1 << f.state_frac
        s = raw
    c = net.counters.as_dict()
    assert c["act_low"] == low and c["act_high"] == high
    assert sum(low) + sum(high) > 0


def test_random_sign_gives_both_signs():
    cfg = make_cfg(1, "random_sign", T1=4, T2=2)
    net = make_net(cfg)
    signs = []
    for t in range(24):
        ph = net.train_sample(make_input(cfg, seed=t), t % 3)
        signs.append(int(ph.sign[0]))
        assert signs[-1] == (-1 if beta_sign_negative(sample_key(cfg.seed, t)) else 1)
    assert signs.count(1) > 3 and signs.count(-1) > 3
    assert all(s == 1 for s in (int(make_net(make_cfg(1, n)).sign_for_sample(t)[0])
                                for n in ("one_sided", "symmetric") for t in range(20)))


def test_negative_nudge_pushes_output_away_from_target():
    cfg = make_cfg(1, "one_sided", T1=12, T2=8, beta=1.0)
    net = make_net(cfg, seed=2)
    xi = net.encode_input(make_input(cfg).view(1, -1))
    y = net.encode_target(torch.tensor([0]))
    plus = net.phases(xi, y, torch.tensor([1]))
    minus = net.phases(xi, y, torch.tensor([-1]))
    dist = lambda s: float((s[-1][0, 0].double() - y.double()).abs().sum())  # noqa: E731
    assert dist(plus.nudged) < dist(plus.free) < dist(minus.nudged)


def test_symmetric_runs():
    cfg = make_cfg(2, "symmetric", T1=8, T2=3, update_rounding="nearest")
    net = make_net(cfg)
    before = [w.clone() for w in net.weights]
    ph = net.train_sample(make_input(cfg), 2, keep_trace=True)
    assert ph.negative is not None and len(ph.trace) == cfg.T1 + 2 * cfg.T2
    assert any(not torch.equal(p, q) for p, q in zip(before, net.weights))
    assert all(int(s.min()) >= 0 and int(s.max()) <= 1 << cfg.fixed.state_frac for s in ph.negative)


def test_training_changes_weights_and_learns():
    """A tiny net on a separable 2-class toy problem: weights move and the training error drops."""
    cfg = make_cfg(sizes=(4, 6, 2), T1=10, T2=4, beta=0.5, lrs=(0.25, 0.125), update_rounding="stochastic",
                   weight_bits=12, weight_frac=8)
    net = make_net(cfg, seed=5, scale=1.0)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (60,), generator=g)
    x = torch.rand(60, 4, generator=g) * 0.3
    x[labels == 0, :2] += 0.6
    x[labels == 1, 2:] += 0.6
    before = [w.clone() for w in net.weights]
    err0 = float(net.error_rate(x, labels)[0])
    for epoch in range(4):
        for i in range(60):
            net.train_sample(x[i], int(labels[i]))
    assert all(not torch.equal(p, q) for p, q in zip(before, net.weights))
    err1 = float(net.error_rate(x, labels)[0])
    assert err1 < 0.1 and err1 < err0 + 1e-9, (err0, err1)
    assert net.samples_seen == 240 and net.counters.as_dict()["samples"] == 240


def _two_neuron_net(w_out, T1):
    """1 input, 1 hidden, 1 output; hidden and output coupled by w_out, both biased to 1."""
    cfg = make_cfg(sizes=(1, 1, 1), T1=T1, T2=2, lrs=(0.5, 0.5), bias_frac=6)
    f = cfg.fixed
    W = [torch.zeros(1, 1, 1, dtype=torch.int64),
         torch.full((1, 1, 1), int(w_out * (1 << f.weight_frac)), dtype=torch.int64)]
    b = [torch.full((1, 1), 1 << f.bias_frac, dtype=torch.int64)] * 2
    return FixedEP(cfg, None, W, b)


def test_unsettled_and_cycling_diagnostics():
    # strong mutual inhibition, synchronous updates: (0, 0) -> (1, 1) -> (0, 0) ... a period-2 cycle
    for T1 in (4, 5):
        net = _two_neuron_net(-1.0, T1)
        ph = net.train_sample(torch.zeros(1), 0, keep_trace=True)
        one = 1 << net.cfg.fixed.state_frac
        assert [int(s[1][0, 0, 0]) for s in ph.trace[:T1]] == [one if t % 2 == 0 else 0 for t in range(T1)]
        assert int(ph.residual[0]) == one and bool(ph.cycling[0])
        c = net.counters.as_dict()
        assert c["unsettled"] == 1 and c["cycling"] == 1
    # no coupling: settles after one step
    net = _two_neuron_net(0.0, 3)
    ph = net.train_sample(torch.zeros(1), 0)
    assert int(ph.residual[0]) == 0 and not bool(ph.cycling[0])
    assert net.counters.as_dict()["unsettled"] == 0
    # one step from zero: unsettled (moved), but a single step cannot show a cycle
    net = _two_neuron_net(0.0, 1)
    ph = net.train_sample(torch.zeros(1), 0)
    assert int(ph.residual[0]) > 0 and not bool(ph.cycling[0])
    c = net.counters.as_dict()
    assert c["unsettled"] == 1 and c["cycling"] == 0
    # a slow approach (not settled, not cycling) counts as unsettled only
    cfg = make_cfg(sizes=(1, 1, 1), T1=3, T2=1, lrs=(0.5, 0.5))
    f = cfg.fixed
    W = [torch.zeros(1, 1, 1, dtype=torch.int64), torch.full((1, 1, 1), 1 << (f.weight_frac - 1))]
    b = [torch.full((1, 1), 1 << (f.bias_frac - 2))] * 2
    net = FixedEP(cfg, None, W, b)
    ph = net.train_sample(torch.zeros(1), 0)
    assert int(ph.residual[0]) > 0 and not bool(ph.cycling[0])


def test_encoding_and_float_params():
    cfg = make_cfg(1)
    net = make_net(cfg)
    x = torch.tensor([[0.0, 0.5, 0.999, 1.0, 0.0156, 0.0157, 0.3]])
    assert net.encode_input(x).tolist() == [[0, 32, 63, 63, 0, 1, 19]]
    assert net.encode_input(torch.tensor([[3, 63]], dtype=torch.uint8)).tolist() == [[3, 63]]
    # integers are UQ(0, input_frac) LSBs: out of range (e.g. raw bytes with input_frac = 6) is refused,
    # since the accumulator width (acc_bits_needed) assumes x <= 2^fx - 1
    for bad in ([[3, 200]], [[-1, 0]]):
        with pytest.raises(ValueError, match="input_frac"):
            net.encode_input(torch.tensor(bad))
        with pytest.raises(ValueError, match="input_frac"):
            net.train_sample(torch.tensor(bad[0]), 0)
    net8 = make_net(make_cfg(1, input_frac=8))
    assert net8.encode_input(torch.tensor([[0, 255]], dtype=torch.uint8)).tolist() == [[0, 255]]
    assert net.encode_target(torch.tensor([2, 0])).tolist() == [[0, 0, 256], [256, 0, 0]]
    Wf, bf = net.float_params()
    assert torch.equal(Wf[0] * 2 ** cfg.fixed.weight_frac, net.weights[0][0].double())
    assert torch.equal(bf[1] * 2 ** cfg.fixed.bias_frac, net.biases[1][0].double())
    assert torch.equal(FixedEP.from_float(cfg, Wf, bf).weights[0], net.weights[0])
    sd = net.state_dict()
    assert sorted(sd) == ["W0", "W1", "b0", "b1"] and sd["W0"].dtype == torch.int64


def test_quantise_rounds_half_even_and_saturates():
    t = torch.tensor([0.5, 1.5, 2.5, -0.5, 1000.0, -1000.0, 0.26]) / 4
    assert quantise(t, 2, -8, 7).tolist() == [0, 2, 2, 0, 7, -8, 0]


def test_default_init_is_quantised_float_init():
    from eqfpga.golden.float_model import init_params
    cfg = make_cfg(1)
    net = FixedEP(cfg)
    wf, bf = init_params(cfg, torch.float64)
    f = cfg.fixed
    assert torch.equal(net.weights[1][0], quantise(wf[1], f.weight_frac, f.weight_min, f.weight_max))
    assert torch.equal(net.biases[0][0], quantise(bf[0], f.bias_frac, f.bias_min, f.bias_max))


def test_predict_ties_to_lowest_index_and_error_rate():
    cfg = make_cfg(sizes=(2, 2, 3), T1=3, T2=1, lrs=(0.5, 0.5))
    f = cfg.fixed
    W = [torch.zeros(1, 2, 2, dtype=torch.int64), torch.zeros(1, 3, 2, dtype=torch.int64)]
    b = [torch.zeros(1, 2, dtype=torch.int64), torch.tensor([[0, 1 << f.bias_frac, 1 << f.bias_frac]])]
    net = FixedEP(cfg, None, W, b)
    x = torch.rand(4, 2)
    assert net.predict(x).tolist() == [[1, 1, 1, 1]]
    assert net.error_rate(x, torch.tensor([1, 1, 2, 0]), batch=3).tolist() == [0.5]


def test_constructor_rejects_bad_configs():
    with pytest.raises(Exception, match="activation"):
        FixedEP(make_cfg(1).replace(activation="sigmoid"))
    cfg = make_cfg(1)
    other = FixedConfig(**{**cfg.fixed.__dict__, "state_frac": 7, "input_frac": 6})
    with pytest.raises(ValueError, match="share"):
        FixedEP(cfg, [cfg.fixed, other])


def random_spec_case(seed):
    g = random.Random(seed)
    hidden = g.randint(1, 2)
    sizes = tuple([g.randint(1, 5)] + [g.randint(1, 4) for _ in range(hidden)] + [g.randint(1, 4)])
    fs = g.randint(2, 9)
    fx = g.randint(1, min(fs, 8))
    wb = g.randint(4, 16)
    fw = g.randint(1, wb - 1)
    bb = g.randint(3, 16)
    fb = g.randint(0, min(bb - 1, fw + fs))
    cfg = make_cfg(sizes=sizes, nudging=g.choice(["one_sided", "random_sign", "symmetric"]), T1=g.randint(1, 6),
                   T2=g.randint(1, 4), beta=2.0 ** -g.randint(0, min(fw, 4)),
                   lrs=tuple(2.0 ** -g.randint(-4, 6) for _ in range(len(sizes) - 1)), seed=g.randrange(2**32),
                   input_frac=fx, state_frac=fs, weight_bits=wb, weight_frac=fw, bias_bits=bb, bias_frac=fb,
                   update_bits=g.randint(2, wb), state_rounding=g.choice(["truncate", "nearest"]),
                   update_rounding=g.choice(["truncate", "nearest", "stochastic"]))
    return cfg, g.uniform(0.5, 3.0)


def test_random_formats_match_spec():
    """60 random formats (shifts of both signs, every rounding, saturation) against the pure-Python spec."""
    shifts = set()
    sats = 0
    for seed in range(60):
        cfg, scale = random_spec_case(seed)
        f = cfg.fixed
        net = make_net(cfg, seed=seed, scale=scale)
        W, b = net_params(net)
        for t in range(2):
            x = make_input(cfg, seed=100 * seed + t)
            label = (seed + t) % cfg.sizes[-1]
            xi = ints(net.encode_input(x.view(1, -1))[0])
            y = [(1 << f.state_frac) if i == label else 0 for i in range(cfg.sizes[-1])]
            sign = -1 if cfg.nudging == "random_sign" and beta_sign_negative(sample_key(cfg.seed, t)) else 1
            free, nudged, negative, trace = spec_phases(cfg, f, W, b, xi, y, sign)
            ph = net.train_sample(x, label, keep_trace=True)
            assert [phase_ints(s) for s in ph.trace] == [s[1:] for s in trace], (seed, t)
            W, b = spec_update(cfg, f, W, b, xi, free, nudged, negative, sign, t, order_seed=seed)
            assert net_params(net) == (W, b), (seed, t)
        sym = 1 if cfg.nudging == "symmetric" else 0
        for n, ke in enumerate(cfg.lr_shifts):
            f_pre = f.input_frac if n == 0 else f.state_frac
            shifts.add(f.state_frac + f_pre + ke - cfg.beta_shift + sym - f.weight_frac > 0)
            shifts.add(f.state_frac + ke - cfg.beta_shift + sym - f.bias_frac > 0)
        c = net.counters.as_dict()
        sats += sum(c["update_sat"]) + sum(c["weight_sat"]) + sum(c["bias_sat"]) > 0
    assert shifts == {True, False}          # right shifts (rounding) and exact left shifts both occur
    assert sats > 5                         # and saturation happens in some of them
