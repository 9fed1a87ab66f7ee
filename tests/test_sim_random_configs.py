"""Configurations nobody tuned the core on: seeded random valid configs (sizes, hidden layers,
P, formats, rounding and nudging modes, T1/T2, beta, learning rates) train beside FixedEP in the
free-running harness, bit for bit, and classify held-out samples with learn = 0."""
import random

import numpy as np
import pytest

from eqfpga.golden.config import ConfigError, load_config
from eqfpga.sim.prebuild import design
from eqfpga.sim.verify import verify


def random_valid_config(rng: random.Random, name: str, wide: bool = False):
    """``wide``: hidden layers of 20-60 neurons and P from 16 to the widest layer (many lanes, P
    rarely dividing the sizes); else small layers, 1-3 hidden, P from 1 to 7."""
    base = load_config("tiny")
    while True:
        nh = rng.choice([1, 1, 2, 3])
        hidden = (20, 60) if wide else (1, 12)
        sizes = (rng.randint(3, 20),) + tuple(rng.randint(*hidden) for _ in range(nh)) + (rng.randint(2, 6),)
        wb = rng.randint(6, 16)
        wf = rng.randint(3, wb - 2)
        fx = rng.randint(2, 8)
        cfg = base.replace(
            name=name, sizes=sizes, lrs=tuple(2.0 ** -rng.randint(0, 5) for _ in sizes[1:]),
            beta=2.0 ** -rng.randint(0, 3), T1=rng.randint(1, 9), T2=rng.randint(1, 5),
            nudging=rng.choice(["one_sided", "random_sign", "symmetric"]),
            parallelism=rng.randint(16, max(sizes[1:])) if wide else rng.randint(1, 7),
            seed=rng.randint(0, 1000),
            fixed=dict(input_frac=fx, state_frac=rng.randint(fx, 9), weight_bits=wb, weight_frac=wf,
                       bias_bits=rng.randint(wf + 1, 16), bias_frac=wf, acc_bits=40,
                       update_bits=rng.randint(2, wb), state_rounding=rng.choice(["truncate", "nearest"]),
                       update_rounding=rng.choice(["truncate", "nearest", "stochastic"])))
        try:
            cfg.check_hardware()
        except ConfigError:
            continue
        return cfg


SEEDS = [2026, 4242, 77]
WIDE = {77}          # many lanes (P >= 16)
PREBUILD = [design("fastsim", random_valid_config(random.Random(seed), f"rand{seed}", seed in WIDE)) for seed in SEEDS]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_config_bit_exact(seed):
    cfg = random_valid_config(random.Random(seed), f"rand{seed}", seed in WIDE)
    r = np.random.default_rng(seed)
    x = r.integers(0, 1 << cfg.fixed.input_frac, size=(60, cfg.sizes[0]))
    x[r.random(x.shape) < 0.3] = 0
    y = r.integers(0, cfg.sizes[-1], 60)
    rep = verify(cfg, samples=45, data=(x[:45], y[:45]), check_every=15, batch=15, test=(x[45:], y[45:]), log=None)
    assert rep["bit_exact"], (cfg.to_json(indent=None), rep["first_mismatch"])
    assert rep["test"]["equal"]
