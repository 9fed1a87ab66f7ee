"""Vector-field EP (feedback = "learned"): FloatEP against an independent float64 reference of the VF
equations, the exact gap to EP when B = W^T, the alignment of the VF update with the true gradient
as the initial angle between B and W^T grows, and the config's validation and refusals.

The reference (VARIANTS.md, "Vector-field EP"), batch-major rows, B_n keyed by n = 1 .. N-1:
  hidden n: s_n <- rho(W_{n-1} s_{n-1} + b_{n-1} + B_n s_{n+1}),  output as EP's
  dW_n = (eta_n / beta) mean_batch (s^b_{n+1} - s^0_{n+1}) (s^0_n)^T,  db_n likewise
  dB_n = (eta_n / beta) mean_batch (s^b_n - s^0_n) (s^0_{n+1})^T
"""
import itertools
import math

import pytest
import torch

from eqfpga.golden.config import ConfigError, EPConfig
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.golden.fixedpoint import beta_sign_negative, sample_key
from eqfpga.golden.float_model import FloatEP, init_params
from eqfpga.golden.train import make_model
from eqfpga.golden.weights import NetParams, WeightsError, load_params, save_params

F64 = torch.float64
SIZES = {1: (6, 5, 3), 2: (6, 5, 4, 3)}
LRS = (0.1, 0.05, 0.02)
TOL = 1e-12


pytestmark = pytest.mark.usefixtures("torch_one_thread")   # tiny matrices (tests/conftest.py)


def make_cfg(hidden=1, **kw):
    sizes = SIZES[hidden]
    base = dict(name="vf", sizes=sizes, T1=15, T2=6, beta=0.3, lrs=LRS[:len(sizes) - 1], batch_size=3,
                seed=11, feedback="learned")
    base.update(kw)
    return EPConfig(**base)


def make_params(cfg, seed=0):
    """float64 W, b and an independent {n: B_n}, scaled so that most states sit inside (0, 1)."""
    g = torch.Generator().manual_seed(seed)

    def u(*shape, lo=-1.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=F64)
    s = cfg.sizes
    W = [u(s[n + 1], s[n]) * 1.2 / math.sqrt(s[n]) for n in range(cfg.n_layers)]
    b = [u(s[n + 1], lo=0.0, hi=0.6) for n in range(cfg.n_layers)]
    B = {n: u(s[n], s[n + 1]) * 1.2 / math.sqrt(s[n + 1]) for n in range(1, cfg.n_layers)}
    return W, b, B


def make_batch(cfg, B=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, cfg.sizes[0], generator=g, dtype=F64)
    y = torch.eye(cfg.sizes[-1], dtype=F64)[torch.randint(0, cfg.sizes[-1], (B,), generator=g)]
    return x, y


def net_of(cfg, W, b, B):
    return FloatEP(cfg, F64, W, b, [B[n] for n in range(1, cfg.n_layers)])


# ---- the reference ----------------------------------------------------------------------------
def rho(act, v):
    return v.clamp(0.0, 1.0) if act == "hard_sigmoid" else 1.0 / (1.0 + torch.exp(-4.0 * (v - 0.5)))


def ref_step(cfg, W, b, B, x, s, beta=0.0, y=None):
    """One synchronous step; s lists s_1 .. s_N."""
    N, act = len(W), cfg.activation
    layers = [x] + list(s)
    out = []
    for n in range(1, N + 1):
        drive = layers[n - 1] @ W[n - 1].T + b[n - 1]
        if n < N:
            out.append(rho(act, drive + layers[n + 1] @ B[n].T))
        elif y is None:
            out.append(rho(act, drive))
        elif cfg.nudge_placement == "inside":
            out.append(rho(act, drive + beta * (y - layers[n])))
        else:
            out.append(rho(act, drive) + beta * (y - layers[n]))
    return out


def ref_relax(cfg, W, b, B, x, s, steps, beta=0.0, y=None):
    for _ in range(steps):
        s = ref_step(cfg, W, b, B, x, s, beta, y)
    return s


def ref_free(cfg, W, b, B, x):
    return ref_relax(cfg, W, b, B, x, [torch.zeros(x.shape[0], n, dtype=F64) for n in cfg.sizes[1:]], cfg.T1)


def ref_vf(cfg, x, a, c, free, scale):
    """(dW, db, {n: dB_n}): post-synaptic a - c times the pre-synaptic free state, summed sample by sample."""
    A, C, P = [x] + list(a), [x] + list(c), [x] + list(free)
    batch = x.shape[0]
    dW, db, dB = [], [], {}
    for n in range(cfg.n_layers):
        k = cfg.lrs[n] * scale / batch
        dW.append(k * sum(torch.outer(A[n + 1][i] - C[n + 1][i], P[n][i]) for i in range(batch)))
        db.append(k * sum(A[n + 1][i] - C[n + 1][i] for i in range(batch)))
        if n >= 1:
            dB[n] = k * sum(torch.outer(A[n][i] - C[n][i], P[n + 1][i]) for i in range(batch))
    return dW, db, dB


def ref_add(W, b, B, dW, db, dB):
    return [w + d for w, d in zip(W, dW)], [v + d for v, d in zip(b, db)], {n: B[n] + dB[n] for n in B}


def ref_train(cfg, W, b, B, x, y, sign):
    """One minibatch of VF (or C-VF) training: the new (W, b, B)."""
    free = ref_free(cfg, W, b, B, x)
    beta = sign * cfg.beta
    if cfg.continual:
        s = free
        for _ in range(cfg.T2):
            s_next = ref_step(cfg, W, b, B, x, s, beta, y)
            W, b, B = ref_add(W, b, B, *ref_vf(cfg, x, s_next, s, s, 1.0 / beta))
            s = s_next
        return W, b, B
    plus = ref_relax(cfg, W, b, B, x, free, cfg.T2, beta, y)
    if cfg.nudging == "symmetric":
        minus = ref_relax(cfg, W, b, B, x, free, cfg.T2, -cfg.beta, y)
        return ref_add(W, b, B, *ref_vf(cfg, x, plus, minus, free, 1.0 / (2 * cfg.beta)))
    return ref_add(W, b, B, *ref_vf(cfg, x, plus, free, free, 1.0 / beta))


def ref_sign(cfg, t):
    if cfg.nudging != "random_sign":
        return 1
    return -1 if beta_sign_negative(sample_key(cfg.seed, t)) else 1


def max_diff(xs, ys):
    assert len(xs) == len(ys)
    return max(float((p - q).abs().max()) for p, q in zip(xs, ys))


# ---- FloatEP = the reference ------------------------------------------------------------------
CASES = [(h, nud, cont, place, act)
         for h, nud, cont in itertools.product([1, 2], ["one_sided", "symmetric", "random_sign"], [False, True])
         if not (cont and nud == "symmetric")
         for place, act in [("inside", "hard_sigmoid"), ("outside", "sigmoid")]]


@pytest.mark.parametrize("hidden,nudging,continual,place,act", CASES)
def test_training_matches_reference(hidden, nudging, continual, place, act):
    """Three minibatches: W, b and B follow the reference to 1e-12 (random sign from the counter)."""
    cfg = make_cfg(hidden, nudging=nudging, continual=continual, nudge_placement=place, activation=act)
    W, b, B = make_params(cfg, seed=hidden)
    net = net_of(cfg, W, b, B)
    signs = []
    for t in range(3):
        x, y = make_batch(cfg, seed=10 + t)
        free = ref_free(cfg, W, b, B, x)
        assert any(((s > 1e-3) & (s < 1 - 1e-3)).any() for s in free)     # not all saturated
        signs.append(ref_sign(cfg, t))
        W2, b2, B2 = ref_train(cfg, W, b, B, x, y, signs[-1])
        assert max_diff(B2.values(), B.values()) > 1e-5                     # B does learn
        out = net.train_batch(x, y)
        W, b, B = W2, b2, B2
        assert max_diff([out], [free[-1]]) <= TOL
        assert max_diff(net.weights, W) <= TOL and max_diff(net.biases, b) <= TOL
        assert max_diff(net.feedback, [B[n] for n in range(1, cfg.n_layers)]) <= TOL
    if nudging == "random_sign":
        assert set(signs) == {1, -1}


def test_feedback_enters_the_dynamics():
    """The hidden layer reads B, not W^T: changing B changes the free state, changing W^T's role does not."""
    cfg = make_cfg(1)
    W, b, B = make_params(cfg)
    x, _ = make_batch(cfg)
    net = net_of(cfg, W, b, B)
    other = net_of(cfg, W, b, {1: -B[1]})
    assert max_diff(net.free_phase(x), other.free_phase(x)) > 1e-3
    assert max_diff(net.free_phase(x), ref_free(cfg, W, b, B, x)) <= TOL


# ---- B = W^T: the dynamics are EP's, the updates differ by (eta / beta) ds ds^T ------------------
@pytest.mark.parametrize("hidden,nudging", list(itertools.product([1, 2], ["one_sided", "symmetric", "random_sign"])))
def test_aligned_feedback_is_ep_up_to_ds_ds(hidden, nudging):
    """With B_n = W_n^T (feedback_angle = 0), and d = s^b - s^0 (one-sided; d^+, d^- for symmetric):
      EP:  dW_n = (eta_n / beta) <s^b_{n+1} s^b_n^T - s^0_{n+1} s^0_n^T>
      VF:  dW_n = (eta_n / beta) <d_{n+1} s^0_n^T>,  dB_n^T = (eta_n / beta) <s^0_{n+1} d_n^T>
    so  dW_VF + dB_VF^T - dW_EP = -(eta_n / beta) <d_{n+1} d_n^T>  (symmetric nudging: -(eta_n / 2 beta)
    <d^+_{n+1} d^+_n^T - d^-_{n+1} d^-_n^T>) and W's update alone misses EP's by -(eta_n / beta) <s^b_{n+1} d_n^T>
    (d_0 = 0: the first layer's updates are equal)."""
    cfg = make_cfg(hidden, nudging=nudging, feedback_angle=0.0, activation="sigmoid")    # no unit saturates
    W, b, _ = make_params(cfg, seed=4)
    x, y = make_batch(cfg, B=4, seed=5)
    vf = FloatEP(cfg, F64, W, b)
    ep = FloatEP(cfg.replace(feedback="symmetric", feedback_angle=None), F64, W, b)
    for k, m in enumerate(vf.feedback):
        assert torch.equal(m, W[k + 1].T)
    sign = -1 if nudging == "random_sign" else 1
    ph, ph_ep = vf.phases(x, y, sign), ep.phases(x, y, sign)
    for got, want in ((ph.free, ph_ep.free), (ph.nudged, ph_ep.nudged), (ph.negative or [], ph_ep.negative or [])):
        assert len(got) == len(want) and (not got or max_diff(got, want) <= 1e-14)
    dW, db = vf.ep_update(x, ph)
    dB = [None] + vf.feedback_update(ph)               # dB[n] = B_n's update, n = 1 .. N-1
    dW_ep, db_ep = ep.ep_update(x, ph_ep)
    assert max_diff(db, db_ep) <= 1e-14
    Sb = [x] + ph.nudged
    d = [torch.zeros_like(x)] + [p - q for p, q in zip(ph.nudged, ph.free)]
    dm = [torch.zeros_like(x)] + ([p - q for p, q in zip(ph.negative, ph.free)] if ph.negative else [])
    batch = x.shape[0]
    for n in range(cfg.n_layers):
        if nudging == "symmetric":
            k = cfg.lrs[n] / (2 * cfg.beta * batch)
            gap = -k * (d[n + 1].T @ d[n] - dm[n + 1].T @ dm[n])
        else:
            k = cfg.lrs[n] / (ph.beta * batch)
            gap = -k * d[n + 1].T @ d[n]
            assert max_diff([dW[n] - dW_ep[n]], [-k * Sb[n + 1].T @ d[n]]) <= 1e-13
        if n == 0:
            assert max_diff([dW[0]], [dW_ep[0]]) <= 1e-14
            continue
        assert dB[n].shape == (cfg.sizes[n], cfg.sizes[n + 1])
        assert max_diff([dW[n] + dB[n].T - dW_ep[n]], [gap]) <= 1e-13
        assert float(gap.abs().max()) > 1e-6                       # the identity is not 0 = 0


def test_aligned_gap_scales_with_beta():
    """The ds ds^T gap between EP and VF (with B = W^T) is first order in beta, relative to EP's update."""
    cfg = make_cfg(1, feedback_angle=0.0, T1=60, T2=40, activation="sigmoid")
    W, b, _ = make_params(cfg, seed=4)
    x, y = make_batch(cfg, B=4, seed=5)
    rel = []
    for beta in (0.1, 0.01):
        c = cfg.replace(beta=beta)
        vf, ep = FloatEP(c, F64, W, b), FloatEP(c.replace(feedback="symmetric", feedback_angle=None), F64, W, b)
        ph = vf.phases(x, y)
        dW, _ = vf.ep_update(x, ph)
        dB = vf.feedback_update(ph)
        dW_ep, _ = ep.ep_update(x, ep.phases(x, y))
        rel.append(float((dW[1] + dB[0].T - dW_ep[1]).norm() / dW_ep[1].norm()))
    assert 0.05 < rel[1] / rel[0] < 0.2, rel


# ---- the angle between B and W^T against the alignment with the true gradient ------------------
ANGLES = (0.0, 22.5, 45.0, 67.5, 90.0)
ANGLE_SEEDS = range(6)


def true_gradient(cfg, net, x, y):
    """-dL/dW_n of the loss of the free phase's output, L = mean_batch 1/2 ||s_N - y||^2: BPTT through
    the reference's T1 steps from zero with this net's B (held fixed), i.e. the net's own dynamics."""
    W = [w.clone().requires_grad_(True) for w in net.weights]
    B = {n: net.feedback[n - 1] for n in range(1, cfg.n_layers)}
    s = ref_free(cfg, W, net.biases, B, x)
    loss = 0.5 * ((s[-1] - y) ** 2).sum() / x.shape[0]
    return [-g for g in torch.autograd.grad(loss, W)]


def cosine(a, b):
    a, b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    return float(a @ b / (a.norm() * b.norm()))


def alignment(sizes, psi, seed):
    """(cos(VF's dW, -grad) over all W, the same for W_0 alone, B_1's realised angle) at the initial
    parameters of a small sigmoid net, free phase settled, beta = 0.01."""
    cfg = EPConfig(name="angle", sizes=sizes, activation="sigmoid", T1=40, T2=30, beta=0.01,
                   lrs=(0.1,) * (len(sizes) - 1), batch_size=4, seed=seed, feedback="learned",
                   feedback_angle=psi)
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.rand(4, sizes[0], generator=g, dtype=F64)
    y = torch.eye(sizes[-1], dtype=F64)[torch.randint(0, sizes[-1], (4,), generator=g)]
    net = FloatEP(cfg, F64)
    ph = net.phases(x, y)
    assert max_diff(net.step(x, ph.free), ph.free) < 1e-6, "the free phase has not settled"
    dW, _ = net.ep_update(x, ph)
    grad = true_gradient(cfg, net, x, y)
    return cosine(dW, grad), cosine(dW[:1], grad[:1]), net.feedback_angles()[0]


@pytest.mark.parametrize("sizes", [(20, 16, 4), (20, 16, 8, 4)])
def test_alignment_falls_as_feedback_angle_grows(sizes):
    """Ernoult 2020 Fig. 5a: averaged over seeds, the cosine between VF's W update and the true gradient
    falls monotonically as Psi goes 0, 22.5, 45, 67.5, 90 degrees; at Psi = 0 (B = W^T) it is ~1."""
    rows = [[alignment(sizes, psi, seed) for seed in ANGLE_SEEDS] for psi in ANGLES]
    mean = [[sum(r[i] for r in row) / len(row) for i in range(3)] for row in rows]
    all_w, first_w, realised = zip(*mean)
    # the realised angles grow with Psi (B_1 has 64 or 128 entries: few flips, so only roughly Psi)
    assert realised[0] < 1e-3 and all(p < q for p, q in zip(realised, realised[1:])) and abs(realised[-1] - 90) < 15
    assert all_w[0] > 0.99 and first_w[0] > 0.99, mean
    assert all(p > q for p, q in zip(all_w, all_w[1:])), all_w
    assert all(p > q for p, q in zip(first_w, first_w[1:])), first_w
    assert first_w[-1] < 0.3, first_w                 # random feedback: the hidden layer's update is not aligned


# ---- init, state, refusals ------------------------------------------------------------------------
def test_init_keeps_the_symmetric_stream_and_seeds_b_apart():
    cfg = make_cfg(2, seed=7)
    W, b = init_params(cfg, F64)
    sym = FloatEP(cfg.replace(feedback="symmetric"), F64)
    vf = FloatEP(cfg, F64)
    assert all(torch.equal(p, q) for p, q in zip(W + b, sym.weights + sym.biases))
    assert all(torch.equal(p, q) for p, q in zip(W + b, vf.weights + vf.biases))   # B does not move W's stream
    assert sym.feedback == [] and len(vf.feedback) == 2
    for n, m in enumerate(vf.feedback, start=1):
        assert m.shape == (cfg.sizes[n], cfg.sizes[n + 1])
        bound = 1 / math.sqrt(cfg.sizes[n])
        assert float(m.abs().max()) <= bound
        assert not torch.equal(m.T, W[n]) and not torch.equal(m.T.abs(), W[n].abs())
    again = FloatEP(cfg, F64)
    assert all(torch.equal(p, q) for p, q in zip(vf.feedback, again.feedback))
    assert not torch.equal(FloatEP(cfg.replace(seed=8), F64).feedback[0], vf.feedback[0])


@pytest.mark.parametrize("psi", [0.0, 60.0, 90.0, 180.0])
def test_init_angle_flips_signs(psi):
    """B = W^T with signs flipped at rate (1 - cos Psi) / 2: same magnitudes, angle near Psi."""
    cfg = EPConfig(name="a", sizes=(60, 50, 40), lrs=(0.1, 0.1), feedback="learned", feedback_angle=psi)
    net = FloatEP(cfg, F64)
    B, W = net.feedback[0], net.weights[1]
    assert torch.equal(B.abs(), W.T.abs())
    flipped = float((B != W.T).double().mean())
    assert abs(flipped - (1 - math.cos(math.radians(psi))) / 2) < 0.03
    assert abs(net.feedback_angles()[0] - psi) < 4


def test_state_dict_and_phi():
    cfg = make_cfg(2)
    net = FloatEP(cfg, F64)
    sd = net.state_dict()
    assert sorted(sd) == ["B1", "B2", "W0", "W1", "W2", "b0", "b1", "b2"]
    assert sd["B1"] is net.feedback[0] and sd["B2"] is net.feedback[1]
    x, _ = make_batch(cfg)
    with pytest.raises(ValueError, match="phi is defined only for feedback = 'symmetric'"):
        net.phi(x, net.free_phase(x))
    with pytest.raises(ValueError, match="needs 2 feedback matrices"):
        FloatEP(cfg, F64, net.weights, net.biases, net.feedback[:1])


@pytest.mark.parametrize("ext", ["npz", "pt"])
def test_weights_files_carry_b(tmp_path, ext):
    """A checkpoint of a VF net holds B (layers.n.feedback); make_model rebuilds the same net from it."""
    cfg = make_cfg(2).replace(name="vfw")
    net = FloatEP(cfg, F64)
    save_params(tmp_path / f"w.{ext}", NetParams(cfg, "float", net.weights, net.biases, {}, net.feedback))
    p = load_params(tmp_path / f"w.{ext}")
    assert p.cfg == cfg and len(p.feedback) == 2
    again = make_model(p.cfg, "float", F64, p)
    assert all(torch.equal(a, b) for a, b in zip(again.feedback + again.weights, net.feedback + net.weights))
    with pytest.raises(WeightsError, match="feedback"):
        load_params(tmp_path / f"w.{ext}", cfg.replace(feedback="symmetric"))


BAD = [
    (dict(feedback="asymmetric"), "feedback", "must be one of"),
    (dict(feedback=None), "feedback", "must be one of"),
    (dict(feedback="learned", feedback_angle=-1.0), "feedback_angle", "from 0 to 180"),
    (dict(feedback="learned", feedback_angle=180.5), "feedback_angle", "from 0 to 180"),
    (dict(feedback="learned", feedback_angle=math.nan), "feedback_angle", "from 0 to 180"),
    (dict(feedback="learned", feedback_angle="45"), "feedback_angle", "from 0 to 180"),
    (dict(feedback="learned", feedback_angle=True), "feedback_angle", "from 0 to 180"),
    (dict(feedback_angle=45.0), "feedback_angle", "set feedback to 'learned'"),
    (dict(continual=True, nudging="symmetric", feedback="learned"), "continual", "one-sided or random-sign"),
]


@pytest.mark.parametrize("change,field,says", BAD)
def test_config_refuses(change, field, says):
    with pytest.raises(ConfigError) as e:
        EPConfig(**change)
    assert f"config field {field!r}" in str(e.value) and says in str(e.value)


def test_config_accepts_and_round_trips():
    for change in (dict(feedback="learned"), dict(feedback="learned", feedback_angle=0),
                   dict(feedback="learned", feedback_angle=180.0), dict(feedback="learned", continual=True)):
        c = EPConfig(**change)
        assert EPConfig.from_json(c.to_json()) == c
        assert c.elaborated_dict()["feedback"] == "learned"


def test_hardware_refuses_learned_feedback_fixed_point_runs_it():
    """check_hardware names the field; check_fixed, FixedEP and make_model(..., "fixed") accept it."""
    c = EPConfig(name="t", sizes=(6, 5, 3), T1=5, T2=3, beta=0.5, lrs=(0.25, 0.125), feedback="learned")
    assert c.replace(feedback="symmetric").check_hardware() is None
    assert c.check_fixed() is None
    assert len(FixedEP(c).feedback) == 1 and len(make_model(c, "fixed").feedback) == 1
    with pytest.raises(ConfigError) as e:
        c.check_hardware()
    assert "config field 'feedback'" in str(e.value) and "not implemented in the hardware yet" in str(e.value)
