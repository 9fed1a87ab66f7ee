"""The spread of configs the hardware is proved on: all derived from the ``tiny`` preset.

Sizes are not multiples of P; P in {1, 2, 3, 4}; one and two hidden layers; every nudging mode,
every state and update rounding mode; odd and even T1/T2 (the phase slots differ); two configs
(``SATURATING``) that saturate updates, weights and biases and drive states to 1.0.
"""
from __future__ import annotations

from eqfpga.golden.config import load_config


def _fit_acc(cfg):
    return cfg.replace(fixed={"acc_bits": max(cfg.fixed.acc_bits, cfg.acc_bits_needed())})


SATURATING = ("edge-sat", "sat-onesided")


def spread() -> dict:
    tiny = load_config("tiny")
    cfgs = {
        "tiny": tiny,
        "p3-random-stoch": tiny.replace(name="p3rs", sizes=(10, 5, 4), parallelism=3, T1=5, T2=3,
                                        nudging="random_sign",
                                        fixed={"update_rounding": "stochastic", "state_rounding": "truncate"}),
        "p1-sym-trunc": tiny.replace(name="p1st", sizes=(6, 4, 3), parallelism=1, T1=4, T2=2,
                                     nudging="symmetric", fixed={"update_rounding": "truncate"}),
        "2h-p4-random-stoch": tiny.replace(name="h2rs", sizes=(9, 6, 5, 3), lrs=(0.25, 0.125, 0.125),
                                           parallelism=4, T1=7, T2=3, nudging="random_sign",
                                           fixed={"update_rounding": "stochastic"}),
        "2h-p3-sym-nearest": tiny.replace(name="h2sn", sizes=(11, 5, 7, 2), lrs=(0.5, 0.25, 0.125),
                                          parallelism=3, T1=6, T2=4, nudging="symmetric", beta=0.25,
                                          fixed={"state_rounding": "truncate", "weight_bits": 16,
                                                 "weight_frac": 11, "bias_bits": 16, "bias_frac": 12,
                                                 "update_bits": 12}),
        # saturation everywhere: 5-bit weights, lr 16, 4-bit states: left-shifted updates (sh < 0)
        "edge-sat": tiny.replace(name="edge", sizes=(8, 5, 3), parallelism=4, lrs=(16.0, 16.0), beta=0.5,
                                 T1=5, T2=3, nudging="random_sign",
                                 fixed={"input_frac": 4, "state_frac": 4, "weight_bits": 5, "weight_frac": 4,
                                        "bias_bits": 5, "bias_frac": 4, "update_bits": 5,
                                        "update_rounding": "stochastic"}),
        # saturation again, otherwise built: P = 2, one-sided nudging with beta = 1 (the nudge
        # pulls the target output to exactly 1.0), 5-bit weights and biases with 3 fraction bits,
        # 5-bit updates rounded to nearest, truncated 5-bit states, even T1 = T2 = 4
        "sat-onesided": tiny.replace(name="sat1", sizes=(6, 7, 4), parallelism=2, lrs=(16.0, 8.0), beta=1.0,
                                     T1=4, T2=4, nudging="one_sided",
                                     fixed={"input_frac": 3, "state_frac": 5, "weight_bits": 5, "weight_frac": 3,
                                            "bias_bits": 5, "bias_frac": 3, "update_bits": 5,
                                            "update_rounding": "nearest", "state_rounding": "truncate"}),
    }
    return {k: _fit_acc(v) for k, v in cfgs.items()}


def fast_spread() -> dict:
    """More corners, run in the free-running harness: three hidden layers with P = 5; a hidden
    layer of one neuron with T1 = T2 = 1; T1 = 2 (the cycling check compares with zero states)."""
    tiny = load_config("tiny")
    cfgs = {
        "3h-p5-sym-stoch": tiny.replace(name="h3ss", sizes=(13, 7, 9, 6, 4), lrs=(0.25, 0.25, 0.125, 0.125),
                                        parallelism=5, nudging="symmetric", fixed={"update_rounding": "stochastic"}),
        "h1-p2-T1": tiny.replace(name="h1t1", sizes=(5, 1, 2), parallelism=2, nudging="random_sign", T1=1, T2=1,
                                 seed=3, lrs=(1.0, 1.0)),
        "p3-T2-trunc": tiny.replace(name="p3t2", sizes=(7, 4, 5), parallelism=3, T1=2, T2=2,
                                    fixed={"state_rounding": "truncate", "update_rounding": "truncate",
                                           "input_frac": 4, "state_frac": 6, "bias_bits": 14, "bias_frac": 10}),
    }
    return {k: _fit_acc(v) for k, v in cfgs.items()}
