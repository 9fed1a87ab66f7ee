"""C-EP's Theorem 1 (Ernoult et al. 2020) on FloatEP, through eqfpga.golden.cep_theorem (the study
``python -m eqfpga.golden.cep_theorem`` prints the same runs): in a linear net (hard sigmoid inside
its identity region), C-EP's per-step updates (1/eta)(theta_{t+1} - theta_t) match truncated BPTT's
-dL/dtheta at step T - t, with an error about linear in beta once eta is small."""
import pytest
import torch

from eqfpga.golden import cep_theorem as cep

NETS = list(cep.NETS)          # toy 5-4-3, 1h 20-16-10, 2h 20-12-8-4


pytestmark = pytest.mark.usefixtures("torch_one_thread")   # tiny matrices (tests/conftest.py)


@pytest.fixture(scope="module")
def linear_sweeps():
    return {net: cep.sweeps(net, "linear") for net in NETS}


@pytest.mark.parametrize("net", NETS)
def test_the_runs_test_what_they_say(linear_sweeps, net):
    """Every state of both phases strictly inside (0, 1) (so every pre-activation is, and the hard sigmoid
    is the identity), the free phase settled, and gradients that are not trivially small."""
    for run in linear_sweeps[net][0] + linear_sweeps[net][1]:
        assert run.clamped == 0.0 and run.residual < 1e-13, run
    cfg = cep.config(cep.NETS[net], 0.01, 1e-7)
    W, b, x, y = cep.make_problem(cep.NETS[net], "linear")
    _, _, s_star, _, _ = cep.cep_steps(cfg, W, b, x, y)
    bptt, _ = cep.bptt_steps(cfg, W, b, x, y, s_star)
    assert all(float(torch.stack([step[i] for step in bptt]).norm()) > 1e-3 for i in range(len(bptt[0])))


@pytest.mark.parametrize("net", NETS)
def test_error_falls_linearly_with_beta(linear_sweeps, net):
    runs = linear_sweeps[net][0]
    assert [r.beta for r in runs] == [0.1, 0.03, 0.01] and {r.eta for r in runs} == {1e-7}
    worst = [r.worst for r in runs]
    assert worst[0] > worst[1] > worst[2], worst
    assert worst[-1] <= 0.05, runs[-1]
    assert 5 < worst[0] / worst[-1] < 20, worst            # first order: beta / 10 gives error / 10
    assert runs[-1].neural <= 0.05 and runs[0].neural > runs[-1].neural
    assert runs[-1].sign_errors <= 0.05 and runs[0].sign_errors > runs[-1].sign_errors


@pytest.mark.parametrize("net", NETS)
def test_error_falls_with_eta(linear_sweeps, net):
    runs = linear_sweeps[net][1]
    assert [r.eta for r in runs] == [1e-3, 1e-4, 1e-5] and {r.beta for r in runs} == {0.01}
    worst = [r.worst for r in runs]
    assert worst[0] > worst[1] > worst[2], worst
    assert worst[-1] <= 0.05, runs[-1]


def test_the_match_is_step_by_step():
    """Pairing C-EP's step t with BPTT's step T - t - 1 instead (one step off) gives an O(1) error: the
    comparison resolves single steps."""
    cfg = cep.config(cep.NETS["1h"], 0.01, 1e-7)
    W, b, x, y = cep.make_problem(cep.NETS["1h"], "linear")
    ours, _, s_star, _, _ = cep.cep_steps(cfg, W, b, x, y)
    bptt, _ = cep.bptt_steps(cfg, W, b, x, y, s_star)
    for i in range(len(ours[0])):
        a = torch.stack([step[i] for step in ours])
        assert cep.relative_error(a, torch.stack([step[i] for step in bptt])) < 0.02
        assert cep.relative_error(a[:-1], torch.stack([step[i] for step in bptt[1:]])) > 0.3


def test_hard_regime_is_reported():
    """The nonlinear regime runs and is nonlinear (units clamped); its match is reported, not gated."""
    run = cep.compare("toy", "hard", 0.01, 1e-7)
    assert run.clamped > 0.1 and run.residual < 1e-12
    text = cep.table([run])
    assert text.startswith("| regime | net | beta | eta | W0 | b0 | W1 | b1 |") and "| hard | toy (5-4-3) | 0.01 |" in text
