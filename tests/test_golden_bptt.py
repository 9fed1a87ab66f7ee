"""Ernoult et al. 2019, Theorem (GDU): with primitive-function dynamics s_{t+1} = dPhi/ds and a free
phase at its steady state, EP's updates in the nudged phase equal BPTT's gradients step by step as
beta -> 0. A test-local toy model (the paper's toy setting), float64, autograd for both sides.

  Phi(x, s, W, Wx) = 1/2 (1 - eps) ||s||^2 + eps (rho(s)^T W rho(s) / 2 + rho(s)^T Wx x)
  free:   s_{t+1} = dPhi/ds(s_t)                          from 0 until steady (s*)
  nudged: s_{t+1} = dPhi/ds(s_t) - beta dL/ds(s_t)        from s*, L = 1/2 ||s_out - y||^2
  EP(t)   = (1/beta) (dPhi/dtheta(s^beta_t) - dPhi/dtheta(s*))
  BPTT(t) = dL(s_T)/dtheta through the last t steps of the free phase (s_{T-t} = s* held fixed)
"""
import torch

EPS, N_IN, N_S, N_OUT, K = 0.5, 4, 7, 2, 8
BETAS = (0.1, 0.01, 0.001)


def rho(s):
    return torch.sigmoid(s)


def phi(x, s, W, Wx):
    r = rho(s)
    return 0.5 * (1 - EPS) * (s * s).sum() + EPS * (0.5 * r @ W @ r + r @ (Wx @ x))


def loss(s, y):
    return 0.5 * ((s[-N_OUT:] - y) ** 2).sum()


def F(x, s, W, Wx, create_graph=False):
    """One step of the primitive-function dynamics: dPhi/ds at s."""
    if not s.requires_grad:
        s = s.detach().requires_grad_(True)
    return torch.autograd.grad(phi(x, s, W, Wx), s, create_graph=create_graph)[0]


def dphi_dtheta(x, s, W, Wx):
    W, Wx = W.detach().requires_grad_(True), Wx.detach().requires_grad_(True)
    return torch.cat([g.flatten() for g in torch.autograd.grad(phi(x, s.detach(), W, Wx), (W, Wx))])


def toy():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(N_S, N_S, generator=g, dtype=torch.float64)
    W = 0.5 * (A + A.T) / N_S ** 0.5
    Wx = torch.randn(N_S, N_IN, generator=g, dtype=torch.float64)
    x = torch.rand(N_IN, generator=g, dtype=torch.float64)
    y = torch.tensor([1.0, 0.0], dtype=torch.float64)
    s = torch.zeros(N_S, dtype=torch.float64)
    for _ in range(400):
        s_new = F(x, s, W, Wx).detach()
        if float((s_new - s).abs().max()) == 0.0:
            break
        s = s_new
    assert float((F(x, s, W, Wx) - s).abs().max()) < 1e-14, "free phase did not reach its steady state"
    return x, y, W, Wx, s.detach()


def bptt(x, y, W, Wx, s_star, t):
    """-dL/dtheta through the last t steps (the state t steps before the end is the fixed point)."""
    W, Wx = W.clone().requires_grad_(True), Wx.clone().requires_grad_(True)
    s = s_star.clone()
    for _ in range(t):
        s = F(x, s, W, Wx, create_graph=True)
    gW, gWx = torch.autograd.grad(loss(s, y), (W, Wx))
    return -torch.cat([gW.flatten(), gWx.flatten()])


def bptt_neural(y, x, W, Wx, s_star, t):
    """-dL/ds_{T-t}: the gradient with respect to the state t steps before the end."""
    s0 = s_star.clone().requires_grad_(True)
    s = s0
    for _ in range(t):
        s = F(x, s, W, Wx, create_graph=True)
    return -torch.autograd.grad(loss(s, y), s0)[0]


def ep(x, y, W, Wx, s_star, beta):
    """Cumulative EP weight updates and neural updates after each nudged step t = 1..K."""
    base = dphi_dtheta(x, s_star, W, Wx)
    s, weights, neural = s_star.clone(), [], []
    for _ in range(K):
        s_in = s.detach().requires_grad_(True)
        s_new = (F(x, s_in, W, Wx) - beta * torch.autograd.grad(loss(s_in, y), s_in)[0]).detach()
        neural.append((s_new - s) / beta)
        s = s_new
        weights.append((dphi_dtheta(x, s, W, Wx) - base) / beta)
    return weights, neural


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_ep_approaches_bptt_as_beta_shrinks():
    x, y, W, Wx, s_star = toy()
    ref_w = [bptt(x, y, W, Wx, s_star, t) for t in range(1, K + 1)]
    ref_n = [bptt_neural(y, x, W, Wx, s_star, t) for t in range(K)]
    errs = []
    for beta in BETAS:
        w, n = ep(x, y, W, Wx, s_star, beta)
        # step by step: the t-th nudged step matches BPTT through the last t steps (relative error of
        # the whole sequence of updates: late neural updates decay like J^t and are tiny)
        errs.append(max(rel(torch.stack(w), torch.stack(ref_w)), rel(torch.stack(n), torch.stack(ref_n))))
    assert all(float(r.norm()) > 1e-3 for r in ref_w)        # the gradients are not trivially zero
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[-1] < 1e-2, errs
    # the discrepancy is first order in beta
    assert errs[1] / errs[0] < 0.2 and errs[2] / errs[1] < 0.2, errs


def test_ep_total_update_is_truncated_bptt_gradient():
    """The whole nudged phase (K steps) gives the truncated BPTT gradient; with a long enough phase it
    converges to the full gradient of L at the steady state (the recurrent backprop / implicit gradient)."""
    x, y, W, Wx, s_star = toy()
    w, _ = ep(x, y, W, Wx, s_star, 1e-4)
    assert rel(w[-1], bptt(x, y, W, Wx, s_star, K)) < 1e-3
    # implicit-function gradient at the fixed point: (I - J)^T lambda = dL/ds, grad = (dF/dtheta)^T lambda
    s = s_star.clone().requires_grad_(True)
    J = torch.autograd.functional.jacobian(lambda v: F(x, v, W, Wx, create_graph=True), s)
    gL = torch.zeros(N_S, dtype=torch.float64)
    gL[-N_OUT:] = s_star[-N_OUT:] - y
    lam = torch.linalg.solve((torch.eye(N_S, dtype=torch.float64) - J).T, gL)
    assert torch.allclose(J, J.T, atol=1e-12)                 # dF/ds = Hessian of Phi: symmetric
    assert float(torch.linalg.eigvalsh(J).abs().max()) < 1    # contracting, so the free phase settles
    full = bptt(x, y, W, Wx, s_star, 80)
    Wr, Wxr = W.clone().requires_grad_(True), Wx.clone().requires_grad_(True)
    implicit = -torch.cat([g.flatten() for g in torch.autograd.grad(F(x, s_star, Wr, Wxr, True) @ lam,
                                                                    (Wr, Wxr))])
    assert rel(full, implicit) < 1e-8
