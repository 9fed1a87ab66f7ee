"""EPConfig / FixedConfig: validation names the field, JSON round trips, presets, check_fixed."""
import json
import math
from importlib import resources

import pytest
import torch

from eqfpga.golden.config import (OMITTED_AT_DEFAULT, RUNTIME_FIELDS, ConfigError, EPConfig, FixedConfig,
                                  load_config, power_of_two_shift, preset_names)
from eqfpga.golden.fixed_model import FixedEP

# A config the fixed-point model accepts: the base for the check_fixed cases.
GOOD = dict(name="t", sizes=(6, 5, 3), activation="hard_sigmoid", T1=5, T2=3, beta=0.5,
            nudging="one_sided", nudge_placement="inside", lrs=(0.25, 0.125), batch_size=1)

# (field, bad value, name that must appear in the message)
BAD_TOP = [
    ("name", "", "name"), ("name", 3, "name"),
    ("sizes", (784, 10), "sizes"), ("sizes", (0, 5, 3), "sizes"), ("sizes", (4, 1 << 14, 3), "sizes"),
    ("sizes", (4.0, 5, 3), "sizes"), ("sizes", (4, True, 3), "sizes"), ("sizes", (3,) * 16, "sizes"),
    ("sizes", 5, "sizes"), ("sizes", "abc", "sizes"),
    ("activation", "relu", "activation"), ("activation", None, "activation"),
    ("T1", 0, "T1"), ("T1", 100001, "T1"), ("T1", 2.0, "T1"), ("T1", True, "T1"),
    ("T2", 0, "T2"), ("T2", "8", "T2"),
    ("beta", 0, "beta"), ("beta", -0.5, "beta"), ("beta", 16.5, "beta"), ("beta", True, "beta"),
    ("beta", "0.5", "beta"), ("beta", math.nan, "beta"), ("beta", math.inf, "beta"),
    ("nudging", "both", "nudging"), ("nudge_placement", "middle", "nudge_placement"),
    ("lrs", (0.1,), "lrs"), ("lrs", (0.1, 0.1, 0.1), "lrs"), ("lrs", (-0.1, 0.1), "lrs[0]"),
    ("lrs", (0.1, 17), "lrs[1]"), ("lrs", (0.1, True), "lrs[1]"), ("lrs", (0.1, math.nan), "lrs[1]"),
    ("lrs", 0.1, "lrs"),
    ("continual", 1, "continual"), ("continual", "yes", "continual"),
    ("feedback", "random", "feedback"), ("feedback", None, "feedback"),
    ("feedback_angle", 45.0, "feedback_angle"),        # an angle needs feedback = "learned"
    ("batch_size", 0, "batch_size"), ("batch_size", 100001, "batch_size"), ("batch_size", 1.0, "batch_size"),
    ("epochs", 0, "epochs"), ("epochs", -1, "epochs"),
    ("parallelism", 0, "parallelism"), ("parallelism", 1025, "parallelism"),
    ("seed", -1, "seed"), ("seed", 2**32, "seed"), ("seed", 1.5, "seed"),
    ("fixed", 5, "fixed"), ("fixed", "x", "fixed"),
]

BAD_FIXED = [
    ("input_frac", -1, "fixed.input_frac"), ("input_frac", 25, "fixed.input_frac"),
    ("input_frac", 9, "fixed.input_frac"),            # > state_frac = 8
    ("state_frac", -1, "fixed.state_frac"), ("state_frac", 25, "fixed.state_frac"),
    ("weight_frac", 2.0, "fixed.weight_frac"), ("weight_frac", 16, "fixed.weight_frac"),  # >= weight_bits
    ("bias_frac", 24, "fixed.bias_frac"), ("bias_frac", 16, "fixed.bias_frac"),
    ("weight_bits", 1, "fixed.weight_bits"), ("weight_bits", 33, "fixed.weight_bits"),
    ("bias_bits", 1, "fixed.bias_bits"), ("bias_bits", 33, "fixed.bias_bits"),
    ("acc_bits", 7, "fixed.acc_bits"), ("acc_bits", 49, "fixed.acc_bits"),
    ("update_bits", 1, "fixed.update_bits"), ("update_bits", 33, "fixed.update_bits"),
    ("update_bits", 17, "fixed.update_bits"),         # > weight_bits = 16
    ("state_rounding", "stochastic", "fixed.state_rounding"),
    ("update_rounding", "up", "fixed.update_rounding"),
]


@pytest.mark.parametrize("field,value,named", BAD_TOP, ids=[f"{f}={v!r}"[:40] for f, v, _ in BAD_TOP])
def test_bad_top_level_value_names_field(field, value, named):
    with pytest.raises(ConfigError) as e:
        EPConfig(**{field: value})
    assert repr(named) in str(e.value) or named in str(e.value)


@pytest.mark.parametrize("field,value,named", BAD_FIXED, ids=[f"{f}={v!r}" for f, v, _ in BAD_FIXED])
def test_bad_fixed_value_names_field(field, value, named):
    with pytest.raises(ConfigError) as e:
        FixedConfig(**{field: value})
    assert repr(named) in str(e.value)
    # the same error through the JSON path
    d = EPConfig().to_dict()
    d["fixed"][field] = value
    with pytest.raises(ConfigError) as e:
        EPConfig.from_json(json.dumps(d))
    assert repr(named) in str(e.value)


def test_continual_symmetric_rejected():
    with pytest.raises(ConfigError, match="continual"):
        EPConfig(continual=True, nudging="symmetric")


@pytest.mark.parametrize("field,value,named", [f for f in BAD_TOP if f[0] != "fixed" and not (
    isinstance(f[1], float) and not math.isfinite(f[1]))])          # JSON has no NaN / inf
def test_bad_value_through_json(field, value, named):
    d = EPConfig().to_dict()
    d[field] = list(value) if isinstance(value, tuple) else value
    with pytest.raises(ConfigError) as e:
        EPConfig.from_json(json.dumps(d))
    assert named in str(e.value)


def test_defaults_valid_and_lists_become_tuples():
    c = EPConfig(sizes=[4, 3, 2], lrs=[0.5, 0.25])
    assert c.sizes == (4, 3, 2) and c.lrs == (0.5, 0.25)
    assert c.n_layers == 2
    hash(c)


@pytest.mark.parametrize("name", preset_names())
def test_preset_json_round_trip(name):
    c = load_config(name)
    assert c.name == name
    text = c.to_json()
    c2 = EPConfig.from_json(text)
    assert c2 == c
    assert c2.to_dict() == json.loads(text)
    assert load_config(c) is c


@pytest.mark.parametrize("name", preset_names())
def test_preset_files_are_canonical_json(name):
    """A preset file is its config's to_json() byte for byte: fields added since (OMITTED_AT_DEFAULT) left
    the JSON, and so the config ROM, INFO's config_crc and the build caches' keys, unchanged."""
    text = (resources.files("eqfpga.golden") / "presets" / f"{name}.json").read_text()
    assert text.strip() == load_config(name).to_json()


def test_fields_omitted_at_default_are_written_when_set():
    assert set(OMITTED_AT_DEFAULT) == {"feedback", "feedback_angle"}
    assert not set(OMITTED_AT_DEFAULT) & set(EPConfig().to_dict())
    c = EPConfig(feedback="learned", feedback_angle=30.0)
    assert c.to_dict()["feedback"] == "learned" and c.to_dict()["feedback_angle"] == 30.0
    assert c.elaborated_dict()["feedback_angle"] == 30.0 and not set(OMITTED_AT_DEFAULT) & set(RUNTIME_FIELDS)
    assert "feedback_angle" not in EPConfig(feedback="learned").to_dict()
    for cfg in (c, EPConfig(feedback="learned"), EPConfig()):
        assert EPConfig.from_json(cfg.to_json()) == cfg
    assert EPConfig().elaborated_json() != EPConfig(feedback="learned").elaborated_json()


def test_presets_exist():
    names = preset_names()
    assert {"tiny", "mnist-1h"} <= set(names)


def _runs_one_sample(c):
    """FixedEP trains one sample of ``c``: states in [0, 1], parameters moved and within their formats."""
    net = FixedEP(c)
    before = [w.clone() for w in net.weights + net.biases]
    x = (torch.arange(c.sizes[0]) * 37 % 256) >> (8 - c.fixed.input_frac)    # bytes-like pixels, some 0
    ph = net.train_sample(x, c.sizes[-1] - 1)
    for s in ph.free + ph.nudged:
        assert int(s.min()) >= 0 and int(s.max()) <= c.fixed.state_one
    f = c.fixed
    for w in net.weights:
        assert f.weight_min <= int(w.min()) and int(w.max()) <= f.weight_max
    for b in net.biases:
        assert f.bias_min <= int(b.min()) and int(b.max()) <= f.bias_max
    assert any(not torch.equal(p, q) for p, q in zip(before, net.weights + net.biases))


def test_tiny_preset_runs_in_fixed_point():
    c = load_config("tiny")
    assert c.check_fixed() is None
    # the preset's accumulator holds the worst case, and its shifts are the spec's
    assert c.acc_bits_needed() == _acc_bits_brute(c) <= c.fixed.acc_bits
    assert (c.beta_shift, c.lr_shifts) == (1, (2, 3))
    assert c.update_shifts() == [(8 + 8 + 2 - 1 - 8, 8 + 2 - 1 - 8), (8 + 8 + 3 - 1 - 8, 8 + 3 - 1 - 8)]
    _runs_one_sample(c)


def test_load_config_json_path(tmp_path):
    c = EPConfig(name="mine", sizes=(5, 4, 2), lrs=(0.5, 0.25), T1=7, fixed={"weight_bits": 10,
                                                                              "weight_frac": 6, "update_bits": 8})
    p = tmp_path / "mine.json"
    p.write_text(c.to_json())
    assert load_config(p) == c
    assert load_config(str(p)) == c
    assert c.fixed.weight_bits == 10 and isinstance(c.fixed, FixedConfig)
    # a file without the .json suffix is still a path when it exists
    q = tmp_path / "mine.cfg"
    q.write_text(c.to_json())
    assert load_config(q) == c


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("no-such-preset")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="object"):
        load_config(bad)


def test_unknown_fields_rejected():
    d = EPConfig().to_dict()
    d["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match="learning_rate"):
        EPConfig.from_dict(d)
    d = EPConfig().to_dict()
    d["fixed"]["mantissa"] = 3
    with pytest.raises(ConfigError, match="mantissa"):
        EPConfig.from_dict(d)
    d = EPConfig().to_dict()
    d["fixed"] = [1, 2]
    with pytest.raises(ConfigError, match="fixed"):
        EPConfig.from_dict(d)


def test_missing_fields_take_defaults():
    c = EPConfig.from_json('{"sizes": [4, 3, 2], "lrs": [0.5, 0.5], "fixed": {"acc_bits": 30}}')
    assert c.T1 == EPConfig().T1 and c.fixed.weight_bits == FixedConfig().weight_bits
    assert c.fixed.acc_bits == 30


def test_replace_merges_fixed_dict():
    c = EPConfig().replace(T1=3, fixed={"weight_bits": 14})
    assert c.T1 == 3 and c.fixed.weight_bits == 14 and c.fixed.weight_frac == FixedConfig().weight_frac
    with pytest.raises(ConfigError, match="T2"):
        EPConfig().replace(T2=0)


# ---- check_fixed ----------------------------------------------------------------------------
# GOOD with the default formats (fx = fs = 8, fw = fb = 12): beta = 2^-1, lrs = 2^-2, 2^-3.
# update_shifts: sh_W = fs + f_pre + ke - kb + sym - fw, sh_b = fs + ke - kb + sym - fb.
ACCEPTED = [
    ({}, [(5, -3), (6, -2)]),
    ({"nudging": "symmetric"}, [(6, -2), (7, -1)]),                  # sym = 1: one more bit of shift
    ({"nudging": "random_sign", "beta": 1.0, "lrs": (1.0, 2.0 ** -12)}, [(4, -4), (16, 8)]),
    ({"lrs": (0.25, 2.0 ** -29)}, [(5, -3), (32, 24)]),               # the largest shift allowed
    ({"fixed": {"input_frac": 6}}, [(3, -3), (6, -2)]),              # f_pre = fx for W_0 only
]


@pytest.mark.parametrize("change,shifts", ACCEPTED, ids=["one_sided", "symmetric", "random_sign", "shift-32", "fx-6"])
def test_check_fixed_accepts_good(change, shifts):
    c = EPConfig(**{**GOOD, **change})
    assert c.check_fixed() is None
    assert c.update_shifts() == shifts
    _runs_one_sample(c)


def test_check_fixed_refuses_one_past_the_largest_shift():
    with pytest.raises(ConfigError, match=r"'lrs\[1\]'.*update shift of 33"):
        EPConfig(**{**GOOD, "lrs": (0.25, 2.0 ** -30)}).check_fixed()


@pytest.mark.parametrize("change,named", [
    (dict(beta=0.3), "beta"), (dict(beta=0.75), "beta"), (dict(lrs=(0.1, 0.125)), "lrs[0]"),
    (dict(lrs=(0.25, 0.2)), "lrs[1]"), (dict(lrs=(0.0, 0.25)), "lrs[0]"),
    (dict(activation="sigmoid"), "activation"), (dict(nudge_placement="outside"), "nudge_placement"),
    (dict(batch_size=2), "batch_size"),
    (dict(beta=2.0 ** -13), "beta"),                  # kb > weight_frac (12)
    (dict(beta=2.0), "beta"),                         # kb < 0
])
def test_check_fixed_refuses(change, named):
    c = EPConfig(**{**GOOD, **change})
    with pytest.raises(ConfigError) as e:
        c.check_fixed()
    assert repr(named) in str(e.value)


@pytest.mark.parametrize("change,named", [
    (dict(continual=True), "continual"), (dict(feedback="learned"), "feedback"),
    (dict(continual=True, feedback="learned", nudging="random_sign"), "continual"),
])
def test_check_hardware_refuses_what_only_the_golden_models_run(change, named):
    """C-EP and learned feedback: the fixed-point golden model runs them, the hardware not yet."""
    c = EPConfig(**{**GOOD, **change})
    assert c.check_fixed() is None
    with pytest.raises(ConfigError) as e:
        c.check_hardware()
    assert f"config field {named!r}" in str(e.value) and "not implemented in the hardware yet" in str(e.value)


@pytest.mark.parametrize("change,named", [(dict(batch_size=2), "batch_size"), (dict(beta=0.3), "beta"),
                                          (dict(nudge_placement="outside"), "nudge_placement")])
def test_check_hardware_refuses_what_check_fixed_refuses(change, named):
    with pytest.raises(ConfigError) as e:
        EPConfig(**{**GOOD, **change}).check_hardware()
    assert repr(named) in str(e.value)


def test_check_hardware_accepts_good():
    assert EPConfig(**GOOD).check_hardware() is None


def test_check_fixed_non_power_suggests_neighbours():
    with pytest.raises(ConfigError, match=r"0\.25 or 0\.5"):
        EPConfig(**{**GOOD, "beta": 0.3}).check_fixed()


def test_check_fixed_acc_bits_message_says_needed_width():
    c = EPConfig(**GOOD)
    need = c.acc_bits_needed()
    c.replace(fixed={"acc_bits": need}).check_fixed()
    small = c.replace(fixed={"acc_bits": need - 1})
    with pytest.raises(ConfigError) as e:
        small.check_fixed()
    assert "'fixed.acc_bits'" in str(e.value) and str(need) in str(e.value)
    # a wide net needs more bits
    assert EPConfig(**{**GOOD, "sizes": (784, 512, 10)}).acc_bits_needed() > need


def _acc_bits_brute(cfg):
    """Worst |accumulator| from the spec's step equation, maximising each term separately."""
    f = cfg.fixed
    wabs = 1 << (f.weight_bits - 1)
    xmax = ((1 << f.input_frac) - 1) << (f.state_frac - f.input_frac)
    babs = (1 << (f.bias_bits - 1)) << (f.weight_frac + f.state_frac - f.bias_frac)
    kb = cfg.beta_shift
    worst = 0
    N = cfg.n_layers
    for k in range(1, N + 1):
        t = cfg.sizes[k - 1] * wabs * (xmax if k == 1 else f.state_one) + babs
        if k < N:
            t += cfg.sizes[k + 1] * wabs * f.state_one
        else:
            t += f.state_one << (f.weight_frac - kb)
        worst = max(worst, t)
    bits = 2
    while worst > (1 << (bits - 1)) - 1:      # signed range [-2^(A-1), 2^(A-1) - 1] must hold +-worst
        bits += 1
    return bits


@pytest.mark.parametrize("sizes", [(6, 5, 3), (784, 128, 10), (3, 4, 5, 2), (1, 1, 1)])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0 ** -8])
def test_acc_bits_needed_matches_worst_case(sizes, beta):
    c = EPConfig(**{**GOOD, "sizes": sizes, "lrs": (0.5,) * (len(sizes) - 1), "beta": beta},
                 fixed={"weight_bits": 12, "weight_frac": 8, "bias_bits": 10, "bias_frac": 6})
    assert c.acc_bits_needed() == _acc_bits_brute(c)


def test_power_of_two_shift():
    assert power_of_two_shift(1.0, "x") == 0
    assert power_of_two_shift(0.125, "x") == 3
    assert power_of_two_shift(4, "x") == -2
    for bad in (0, -0.5, 0.3, "0.5"):
        with pytest.raises(ConfigError, match="'x'"):
            power_of_two_shift(bad, "x")


def test_fixed_ranges():
    f = FixedConfig(weight_bits=12, weight_frac=8, bias_bits=10, bias_frac=4, update_bits=6, state_frac=7,
                    input_frac=7)
    assert (f.weight_min, f.weight_max) == (-2048, 2047)
    assert (f.bias_min, f.bias_max) == (-512, 511)
    assert (f.update_min, f.update_max) == (-32, 31)
    assert f.state_one == 128


def test_runtime_fields_are_left_out_of_the_elaborated_config():
    """RUNTIME_FIELDS (seed, epochs, name) are config fields; elaborated_dict / elaborated_json leave
    exactly them out, so configs that differ only there have the same elaborated JSON."""
    cfg = load_config("mnist-1h")
    assert set(RUNTIME_FIELDS) == {"seed", "epochs", "name"}
    assert set(RUNTIME_FIELDS) <= set(cfg.to_dict())
    assert set(cfg.to_dict()) - set(cfg.elaborated_dict()) == set(RUNTIME_FIELDS)
    other = cfg.replace(seed=12345, epochs=9, name="another")
    assert other.elaborated_json() == cfg.elaborated_json() and other.to_json() != cfg.to_json()
    for change in ({"T1": cfg.T1 + 1}, {"parallelism": 4}, {"fixed": {"update_rounding": "nearest"}}):
        assert cfg.replace(**change).elaborated_json() != cfg.elaborated_json(), change
    assert json.loads(cfg.elaborated_json()) == cfg.elaborated_dict()
