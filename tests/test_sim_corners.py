"""More corners in the free-running harness (sim.configs.fast_spread): three hidden layers with
P = 5 and symmetric stochastic updates; a hidden layer of one neuron with T1 = T2 = 1 and random
sign; T1 = 2 with truncation and input_frac != state_frac. An all-zero sample is mixed in, and the
test images are classified by the core with learn = 0. Cycles per sample must equal the schedule.
"""
import numpy as np
import pytest

from eqfpga.hdl.plan import Plan
from eqfpga.sim.configs import fast_spread
from eqfpga.sim.prebuild import design
from eqfpga.sim.verify import verify

CONFIGS = fast_spread()
PREBUILD = [design("fastsim", cfg) for cfg in CONFIGS.values()]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_corner_config_bit_exact(name):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(11)
    n, n_test = 40, 10
    x = rng.integers(1, 1 << cfg.fixed.input_frac, size=(n + n_test, cfg.sizes[0]))
    x[rng.random(x.shape) < 0.4] = 0
    x[3] = 0                                   # an all-zero sample
    y = rng.integers(0, cfg.sizes[-1], n + n_test)
    r = verify(cfg, samples=n, data=(x[:n], y[:n]), check_every=10, batch=10,
               test=(x[n:], y[n:]), log=None)
    assert r["bit_exact"], r["first_mismatch"]
    assert r["samples_compared"] == n and r["test"]["equal"]
    pl = Plan(cfg)
    expected = np.mean([pl.sample_cycles(int((row != 0).sum()), True)["total"] for row in x[:n]])
    assert r["cycles_per_sample"] == pytest.approx(expected, abs=0), "cycles differ from the schedule"
