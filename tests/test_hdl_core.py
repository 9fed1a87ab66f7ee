"""The whole core in Verilator (cocotb) against the golden FixedEP: equality, never a tolerance.

For each config of the spread: states after every phase of every sample, predictions, counters and
every weight and bias after K training samples; the cycles of each sample equal the schedule.
The tests can fail: >= 10% of the parameters must change, the saturating configs must saturate
updates, weights and biases and drive a state to 1.0, and a flipped weight bit must be caught and
named.
"""
import pytest

from eqfpga.sim.configs import SATURATING, spread
from eqfpga.sim.prebuild import design
from eqfpga.sim.runner import run

CONFIGS = spread()
PREBUILD = ([design("cocotb", cfg) for cfg in CONFIGS.values()]
            + [design("cocotb", CONFIGS["p3-random-stoch"], train=False)])
TRAIN = 20          # training samples a config: cheap next to the start-up of a cocotb run


@pytest.mark.parametrize("name", list(CONFIGS))
def test_core_bit_exact(name):
    cfg = CONFIGS[name]
    rep = run(cfg, {"train": TRAIN, "infer": 2 if name == "tiny" else 0, "t0": 3, "seed": 7}, "exact")
    assert not rep["mismatches"], f"{name}: first mismatch: {rep['mismatches'][0]}"
    assert len([s for s in rep["samples"] if s["learn"]]) == TRAIN
    assert rep["weights_changed"] >= 0.10, f"only {rep['weights_changed']:.0%} of the weights changed"
    assert all(s["cycles"] == s["schedule"] for s in rep["samples"])
    assert rep["counters"]["t"] == 3 + TRAIN
    if name in SATURATING:
        for k in ("update_sat", "weight_sat", "bias_sat"):
            assert rep["counters"][k] > 0, f"{name} did not drive {k}"
        # the states read from the RTL (equal to the golden's, checked above) reach the clamp 1.0
        one = cfg.fixed.state_one
        top = max(v for s in rep["samples"] for phase in s["states"].values() for layer in phase for v in layer)
        assert top == one, f"{name}: no state reached 1.0 ({one} LSBs); the largest was {top}"
    if cfg.nudging == "random_sign":
        signs = {s["sign"] for s in rep["samples"] if s["learn"]}
        assert signs == {1, -1}, f"random sign never varied: {signs}"


def test_mutation_is_detected_and_named():
    """Flip one bit of W_0[2][5] in the RTL through the access port: the comparison must name it."""
    rep = run(CONFIGS["tiny"], {"train": 2, "t0": 0, "seed": 3, "mutate": [0, 2, 5, 3]}, "mutation")
    assert rep["first_param_diff_after_load"].startswith("W0[2][5]:"), rep["first_param_diff_after_load"]
    assert rep["mismatches"], "a flipped weight bit went unnoticed"
    later = [m for m in rep["mismatches"] if not m.startswith("after load")]
    assert later, "training with a flipped weight matched the golden model"


def test_inference_only_core():
    """train=False: no update unit; predictions and free states equal the golden, t never moves."""
    rep = run(CONFIGS["p3-random-stoch"], {"train": 0, "infer": 4, "t0": 9, "seed": 5}, "infer", train=False)
    assert not rep["mismatches"], rep["mismatches"][0]
    assert rep["counters"]["t"] == 9 and rep["counters"]["samples"] == 4


def test_unsettled_and_cycling_counters():
    """Large random weights make the integer dynamics cycle: both counters equal the golden, > 0."""
    rep = run(CONFIGS["tiny"], {"train": 8, "t0": 0, "seed": 7, "init_seed": 1}, "cycling")
    assert not rep["mismatches"], rep["mismatches"][0]
    assert rep["counters"]["cycling"] > 0 and rep["counters"]["unsettled"] >= rep["counters"]["cycling"]


def test_runtime_seed_one_build():
    """The seed is an input port: one build of the core runs two seeds, each bit-exact with the golden
    model of the config with that seed, from the same initial weights (so only the key H(seed, t)
    differs: random signs and stochastic rounding), and without rebuilding."""
    from eqfpga.sim.expect import expectations
    from eqfpga.sim.runner import build

    cfg = CONFIGS["p3-random-stoch"]
    _, folder = build(cfg)
    stamp = (folder / "build.sha256").stat().st_mtime_ns
    plan = {"train": 6, "t0": 2, "seed": 11, "init_seed": 4}
    finals = {}
    for s in (5, 0xC0FFEE12):
        assert s != cfg.seed
        rep = run(cfg, {**plan, "core_seed": s}, f"seed{s}")
        assert not rep["mismatches"], f"seed {s}: {rep['mismatches'][0]}"
        assert rep["core_seed"] == s and rep["counters"]["t"] == 2 + 6
        finals[s] = expectations(cfg, {**plan, "core_seed": s})["final"]
    assert finals[5] != finals[0xC0FFEE12], "the two seeds must train differently"
    assert (folder / "build.sha256").stat().st_mtime_ns == stamp, "the core was rebuilt for a seed"
