"""FloatEP against the EP-NOTES equations: an independent numpy reimplementation and autograd on Phi."""
import itertools

import numpy as np
import pytest
import torch

from eqfpga.golden.config import EPConfig
from eqfpga.golden.fixedpoint import beta_sign_negative, sample_key
from eqfpga.golden.float_model import FloatEP, init_params

SIZES = {1: (6, 5, 3), 2: (6, 5, 4, 3)}
LRS = (0.1, 0.05, 0.02)
TOL = 1e-9


def make_cfg(hidden=1, **kw):
    sizes = SIZES[hidden]
    base = dict(name="t", sizes=sizes, T1=15, T2=6, beta=0.3, lrs=LRS[:len(sizes) - 1], batch_size=3,
                seed=11)
    base.update(kw)
    return EPConfig(**base)


def make_params(cfg, seed=0):
    """Random float64 parameters scaled so that most states sit inside (0, 1)."""
    g = np.random.default_rng(seed)
    W = [g.uniform(-1, 1, (cfg.sizes[n + 1], cfg.sizes[n])) * 1.2 / np.sqrt(cfg.sizes[n])
         for n in range(cfg.n_layers)]
    b = [g.uniform(0.0, 0.6, cfg.sizes[n + 1]) for n in range(cfg.n_layers)]
    return W, b


def make_batch(cfg, B=3, seed=1):
    g = np.random.default_rng(seed)
    x = g.uniform(0, 1, (B, cfg.sizes[0]))
    y = np.eye(cfg.sizes[-1])[g.integers(0, cfg.sizes[-1], B)]
    return x, y


def t64(a):
    return torch.tensor(a, dtype=torch.float64)


# ---- the reference: EP-NOTES written out in numpy ---------------------------------------------
def rho(name, v):
    if name == "hard_sigmoid":
        return np.minimum(np.maximum(v, 0.0), 1.0)
    return 1.0 / (1.0 + np.exp(-4.0 * (v - 0.5)))


def ref_step(W, b, x, s, act, place, beta=0.0, y=None):
    """s_n <- rho(W_{n-1} s_{n-1} + b_{n-1} + W_n^T s_{n+1}); the output gets the nudge beta (y - s_N)."""
    N = len(W)
    layers = [x] + list(s)                         # layers[n] = s_n, batch-major rows
    out = []
    for n in range(1, N + 1):
        drive = layers[n - 1] @ W[n - 1].T + b[n - 1]
        if n < N:
            out.append(rho(act, drive + layers[n + 1] @ W[n]))
        elif y is None:                            # free phase
            out.append(rho(act, drive))
        elif place == "inside":
            out.append(rho(act, drive + beta * (y - layers[n])))
        else:
            out.append(rho(act, drive) + beta * (y - layers[n]))
    return out


def ref_relax(W, b, x, s, steps, act, place, beta=0.0, y=None):
    for _ in range(steps):
        s = ref_step(W, b, x, s, act, place, beta, y)
    return s


def ref_contrast(x, a, c, lrs, scale):
    """(eta_n * scale) * batch mean of (a_{n+1} a_n^T - c_{n+1} c_n^T), s_0 = x in both."""
    A, C = [x] + list(a), [x] + list(c)
    dW, db = [], []
    for n in range(len(lrs)):
        B = x.shape[0]
        dW.append(lrs[n] * scale * (np.einsum("bi,bj->ij", A[n + 1], A[n])
                                    - np.einsum("bi,bj->ij", C[n + 1], C[n])) / B)
        db.append(lrs[n] * scale * (A[n + 1] - C[n + 1]).mean(0))
    return dW, db


def ref_phases(cfg, W, b, x, y, sign=1):
    act, place = cfg.activation, cfg.nudge_placement
    s0 = [np.zeros((x.shape[0], n)) for n in cfg.sizes[1:]]
    free = ref_relax(W, b, x, s0, cfg.T1, act, place)
    if cfg.nudging == "symmetric":
        plus = ref_relax(W, b, x, free, cfg.T2, act, place, cfg.beta, y)
        minus = ref_relax(W, b, x, free, cfg.T2, act, place, -cfg.beta, y)
        return free, plus, minus, ref_contrast(x, plus, minus, cfg.lrs, 1.0 / (2 * cfg.beta))
    nudged = ref_relax(W, b, x, free, cfg.T2, act, place, sign * cfg.beta, y)
    return free, nudged, None, ref_contrast(x, nudged, free, cfg.lrs, 1.0 / (sign * cfg.beta))


def ref_continual(cfg, W, b, x, y, sign=1):
    """C-EP: every nudged step moves the weights by the change of the local products."""
    W, b = [w.copy() for w in W], [v.copy() for v in b]
    act, place = cfg.activation, cfg.nudge_placement
    s = ref_relax(W, b, x, [np.zeros((x.shape[0], n)) for n in cfg.sizes[1:]], cfg.T1, act, place)
    beta = sign * cfg.beta
    for _ in range(cfg.T2):
        s_next = ref_step(W, b, x, s, act, place, beta, y)
        dW, db = ref_contrast(x, s_next, s, cfg.lrs, 1.0 / beta)
        W = [w + d for w, d in zip(W, dW)]
        b = [v + d for v, d in zip(b, db)]
        s = s_next
    return W, b


def ref_sign(cfg, t):
    if cfg.nudging != "random_sign":
        return 1
    return -1 if beta_sign_negative(sample_key(cfg.seed, t)) else 1


def close(a, b, tol=TOL):
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return np.max(np.abs(a - np.asarray(b))) <= tol


def all_close(xs, ys, tol=TOL):
    return len(xs) == len(ys) and all(close(p, q, tol) for p, q in zip(xs, ys))


CASES = list(itertools.product([1, 2], ["one_sided", "symmetric", "random_sign"], ["inside", "outside"],
                               ["hard_sigmoid", "sigmoid"]))


@pytest.mark.parametrize("hidden,nudging,place,act", CASES)
def test_matches_independent_reference(hidden, nudging, place, act):
    cfg = make_cfg(hidden, nudging=nudging, nudge_placement=place, activation=act)
    W, b = make_params(cfg, seed=hidden)
    x, y = make_batch(cfg)
    net = FloatEP(cfg, torch.float64, [t64(w) for w in W], [t64(v) for v in b])
    for sign in ([1, -1] if nudging == "random_sign" else [1]):
        free, nudged, minus, (dW, db) = ref_phases(cfg, W, b, x, y, sign)
        # the reference dynamics are not trivial: some states strictly inside (0, 1)
        assert any(((s > 1e-3) & (s < 1 - 1e-3)).any() for s in free)
        assert max(np.abs(p - q).max() for p, q in zip(nudged, free)) > 1e-4
        ph = net.phases(t64(x), t64(y), sign)
        assert all_close(ph.free, free)
        assert all_close(ph.nudged, nudged)
        assert ph.beta == sign * cfg.beta
        if minus is None:
            assert ph.negative is None
        else:
            assert all_close(ph.negative, minus)
        gW, gb = net.ep_update(t64(x), ph)
        assert all_close(gW, dW) and all_close(gb, db)


@pytest.mark.parametrize("hidden,nudging,place,act", CASES)
def test_train_batch_matches_reference(hidden, nudging, place, act):
    """Three minibatches of training: the weights follow the reference (random sign from the counter)."""
    cfg = make_cfg(hidden, nudging=nudging, nudge_placement=place, activation=act)
    W, b = make_params(cfg, seed=5)
    net = FloatEP(cfg, torch.float64, [t64(w) for w in W], [t64(v) for v in b])
    for t in range(3):
        x, y = make_batch(cfg, seed=10 + t)
        free, _, _, (dW, db) = ref_phases(cfg, W, b, x, y, ref_sign(cfg, t))
        out = net.train_batch(t64(x), t64(y))
        assert close(out, free[-1])
        W = [w + d for w, d in zip(W, dW)]
        b = [v + d for v, d in zip(b, db)]
        assert all_close(net.weights, W) and all_close(net.biases, b)
    assert net.batches_seen == 3


@pytest.mark.parametrize("hidden,nudging,place,act",
                         list(itertools.product([1, 2], ["one_sided", "random_sign"], ["inside", "outside"],
                                                ["hard_sigmoid", "sigmoid"])))
def test_continual_matches_reference(hidden, nudging, place, act):
    cfg = make_cfg(hidden, nudging=nudging, nudge_placement=place, activation=act, continual=True)
    W, b = make_params(cfg, seed=7)
    net = FloatEP(cfg, torch.float64, [t64(w) for w in W], [t64(v) for v in b])
    for t in range(3):
        x, y = make_batch(cfg, seed=20 + t)
        W, b = ref_continual(cfg, W, b, x, y, ref_sign(cfg, t))
        net.train_batch(t64(x), t64(y))
        assert all_close(net.weights, W) and all_close(net.biases, b)


def test_continual_total_change_equals_ep_update_at_frozen_weights_limit():
    """With a tiny learning rate C-EP's summed update approaches the EP update (the sum telescopes)."""
    cfg = make_cfg(1, lrs=(1e-7, 1e-7), continual=True)
    W, b = make_params(cfg, seed=3)
    x, y = make_batch(cfg)
    net = FloatEP(cfg, torch.float64, [t64(w) for w in W], [t64(v) for v in b])
    net.train_batch(t64(x), t64(y))
    _, _, _, (dW, _) = ref_phases(cfg.replace(continual=False), W, b, x, y)
    got = [(w - t64(w0)).numpy() for w, w0 in zip(net.weights, W)]
    for g, d in zip(got, dW):
        assert np.abs(g - d).max() <= 1e-4 * np.abs(d).max()


def test_random_sign_sequence_follows_counter():
    cfg = make_cfg(1, nudging="random_sign", seed=3)
    net = FloatEP(cfg, torch.float64)
    signs = []
    for t in range(40):
        assert net.beta_sign() == ref_sign(cfg, t)
        signs.append(net.beta_sign())
        net.batches_seen += 1
    assert set(signs) == {1, -1}
    # other nudgings never flip the sign
    assert FloatEP(make_cfg(1, nudging="one_sided")).beta_sign() == 1
    assert FloatEP(make_cfg(1, nudging="symmetric")).beta_sign() == 1


def test_random_sign_training_visits_both_signs():
    """The train_batch test above covers random_sign; make sure its 3 batches see both signs for seed 11."""
    cfg = make_cfg(1, nudging="random_sign")
    assert {ref_sign(cfg, t) for t in range(3)} == {1, -1}


# ---- EP update = difference of Phi's parameter gradients ---------------------------------------
def phi_grads(net, x, states):
    W = [w.clone().requires_grad_(True) for w in net.weights]
    b = [v.clone().requires_grad_(True) for v in net.biases]
    phi = net.phi(x, states, weights=W, biases=b)
    g = torch.autograd.grad(phi, W + b)
    return g[:len(W)], g[len(W):]


@pytest.mark.parametrize("hidden,nudging,place,act",
                         list(itertools.product([1, 2], ["one_sided", "symmetric", "random_sign"],
                                                ["inside", "outside"], ["hard_sigmoid", "sigmoid"])))
def test_update_is_scaled_phi_gradient_difference(hidden, nudging, place, act):
    cfg = make_cfg(hidden, nudging=nudging, nudge_placement=place, activation=act)
    W, b = make_params(cfg, seed=2)
    x, y = (t64(a) for a in make_batch(cfg, B=4, seed=3))
    net = FloatEP(cfg, torch.float64, [t64(w) for w in W], [t64(v) for v in b])
    sign = -1 if nudging == "random_sign" else 1
    ph = net.phases(x, y, sign)
    dW, db = net.ep_update(x, ph)
    if nudging == "symmetric":
        (gaW, gab), (gcW, gcb), scale = phi_grads(net, x, ph.nudged), phi_grads(net, x, ph.negative), 2 * cfg.beta
    else:
        (gaW, gab), (gcW, gcb), scale = phi_grads(net, x, ph.nudged), phi_grads(net, x, ph.free), ph.beta
    B = x.shape[0]
    for n in range(cfg.n_layers):
        eta = cfg.lrs[n] / (scale * B)
        assert close(dW[n], eta * (gaW[n] - gcW[n]), 1e-12)
        assert close(db[n], eta * (gab[n] - gcb[n]), 1e-12)
        assert dW[n].abs().max() > 1e-6


def test_phi_value_and_nudge_term():
    cfg = make_cfg(2)
    W, b = make_params(cfg)
    x, y = make_batch(cfg)
    net = FloatEP(cfg, torch.float64, [t64(w) for w in W], [t64(v) for v in b])
    g = np.random.default_rng(4)
    s = [g.uniform(0, 1, (3, n)) for n in cfg.sizes[1:]]
    layers = [x] + s
    want = sum(np.sum(layers[n + 1] * (layers[n] @ W[n].T + b[n])) for n in range(cfg.n_layers))
    assert abs(float(net.phi(t64(x), [t64(a) for a in s])) - want) < 1e-12
    want_b = want - 0.25 * 0.5 * np.sum((s[-1] - y) ** 2)
    assert abs(float(net.phi(t64(x), [t64(a) for a in s], 0.25, t64(y))) - want_b) < 1e-12


def test_hidden_dynamics_is_gradient_of_phi():
    """Before rho, each layer's pre-activation is dPhi/ds_n (symmetric feedback through W^T)."""
    cfg = make_cfg(2, activation="hard_sigmoid")
    W, b = make_params(cfg)
    x, y = (t64(a) for a in make_batch(cfg))
    net = FloatEP(cfg, torch.float64, [t64(w) for w in W], [t64(v) for v in b])
    g = torch.Generator().manual_seed(0)
    s = [torch.rand(3, n, generator=g, dtype=torch.float64).requires_grad_(True) for n in cfg.sizes[1:]]
    beta = 0.2
    grads = torch.autograd.grad(net.phi(x, s, beta, y), s)
    new = net.step(x, [t.detach() for t in s], beta, y)
    for gr, st in zip(grads, new):
        assert close(st, gr.clamp(0, 1), 1e-12)


def test_init_params_is_seeded_linear_init():
    cfg = make_cfg(2, seed=4)
    W1, b1 = init_params(cfg, torch.float64)
    W2, b2 = init_params(cfg, torch.float64)
    W3, _ = init_params(cfg, torch.float64, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(W1 + b1, W2 + b2))
    assert not torch.equal(W1[0], W3[0])
    for n, (w, v) in enumerate(zip(W1, b1)):
        assert w.shape == (cfg.sizes[n + 1], cfg.sizes[n]) and v.shape == (cfg.sizes[n + 1],)
        bound = 1 / np.sqrt(cfg.sizes[n])
        assert w.abs().max() <= bound and v.abs().max() <= bound
    W32, _ = init_params(cfg)
    assert W32[0].dtype == torch.float32 and torch.allclose(W32[0].double(), W1[0], atol=1e-7)


def test_float32_tracks_float64():
    cfg = make_cfg(1)
    W, b = make_params(cfg)
    x, y = make_batch(cfg)
    n64 = FloatEP(cfg, torch.float64, [t64(w) for w in W], [t64(v) for v in b])
    n32 = FloatEP(cfg, torch.float32, [t64(w) for w in W], [t64(v) for v in b])
    for _ in range(3):
        n64.train_batch(t64(x), t64(y))
        n32.train_batch(t64(x).float(), t64(y).float())
    assert n32.weights[0].dtype == torch.float32
    assert all_close([w.double() for w in n32.weights], [w.numpy() for w in n64.weights], 1e-4)


def test_predict_and_state_dict():
    cfg = make_cfg(1)
    W, b = make_params(cfg)
    x, _ = make_batch(cfg, B=5)
    net = FloatEP(cfg, torch.float64, [t64(w) for w in W], [t64(v) for v in b])
    free = ref_relax(W, b, x, [np.zeros((5, n)) for n in cfg.sizes[1:]], cfg.T1, cfg.activation,
                     cfg.nudge_placement)
    assert net.predict(t64(x)).tolist() == free[-1].argmax(1).tolist()
    sd = net.state_dict()
    assert sorted(sd) == ["W0", "W1", "b0", "b1"] and sd["W1"] is net.weights[1]
    # the constructor copies: the caller's tensors are not trained in place
    w0 = t64(W[0])
    net2 = FloatEP(cfg, torch.float64, [w0, t64(W[1])], [t64(v) for v in b])
    net2.train_batch(t64(x), torch.eye(3, dtype=torch.float64)[[0, 1, 2, 0, 1]])
    assert torch.equal(w0, t64(W[0]))


def test_hard_sigmoid_states_stay_in_unit_interval_inside_nudge():
    cfg = make_cfg(2, beta=2.0, nudge_placement="inside")
    net = FloatEP(cfg, torch.float64)
    x, y = (t64(a) for a in make_batch(cfg))
    ph = net.phases(x, y)
    for s in ph.free + ph.nudged:
        assert float(s.min()) >= 0 and float(s.max()) <= 1
