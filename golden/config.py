"""One serialisable configuration for golden, hdl, sim and boards.

An :class:`EPConfig` is plain data: it round-trips through JSON (``to_json`` / ``from_json``),
ships as named presets (``golden/presets/*.json``) and is validated on construction, with errors
that name the field and the allowed range. It imports without torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

ACTIVATIONS = ("hard_sigmoid", "sigmoid")
NUDGINGS = ("one_sided", "random_sign", "symmetric")
PLACEMENTS = ("inside", "outside")
STATE_ROUNDINGS = ("truncate", "nearest")
UPDATE_ROUNDINGS = ("truncate", "nearest", "stochastic")
FEEDBACKS = ("symmetric", "learned")

# Limits of the counter that addresses the random source (docs/fixed-point.md, "random source"):
# layer index in 4 bits (15 is reserved), neuron indices in 14 bits each.
MAX_LAYERS = 15
MAX_WIDTH = (1 << 14) - 1

# The config fields that the hardware does not elaborate (docs/hardware.md, "Runtime and elaborated
# config fields"); every other field is built into the gateware, and a board built for one value of
# it refuses a config with another. This tuple is the one list: the config check of a board against
# the host's config (INFO's config_crc, ``Device.check_config``), the build report's
# ``config_digest`` and the core simulators' build caches all leave these fields out.
#   seed    the random source's seed: a register of the board's link engine (reset to the build's
#           seed, written by the host with SET_SEED) drives the core's ``seed`` port; on the host it
#           also draws the initial weights and the per-epoch sample order
#   epochs  how many epochs the host runs
#   name    a label
RUNTIME_FIELDS = ("name", "epochs", "seed")

# Fields that ``to_dict`` (and so every JSON of a config) writes only when they differ from their
# default. They came after boards were built: leaving them out at their defaults keeps the canonical
# JSON of every config that does not use them byte for byte as before, and with it the config ROM,
# INFO's config_crc, the build report's config_digest, the build caches' keys and the bitstreams
# already built. ``from_dict`` restores the default of a missing field.
OMITTED_AT_DEFAULT = ("feedback", "feedback_angle")


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field and what is allowed."""


def _fail(field_name: str, value, allowed: str):
    raise ConfigError(f"config field {field_name!r} = {value!r} is invalid: {allowed}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def power_of_two_shift(value: float, field_name: str) -> int:
    """Return k with value == 2**-k, or raise ConfigError (fixed point turns these into shifts)."""
    if not isinstance(value, (int, float)) or value <= 0:
        _fail(field_name, value, "must be a positive power of two for fixed-point arithmetic")
    k = -math.log2(value)
    if abs(k - round(k)) > 1e-12:
        lo, hi = 2.0 ** math.floor(-k), 2.0 ** math.ceil(-k)
        _fail(field_name, value, f"fixed-point arithmetic needs a power of two (e.g. {lo:g} or {hi:g})")
    return int(round(k))


@dataclass(frozen=True)
class FixedConfig:
    """Fixed-point formats and their rounding/overflow rules (docs/fixed-point.md is the spec).

    Values are two's-complement integers with ``*_frac`` fractional bits:
    input pixels UQ(0, input_frac); states UQ(1, state_frac) clamped to [0, 1];
    weights SQ(weight_bits - 1 - weight_frac, weight_frac); biases likewise; the accumulator is
    ``acc_bits`` wide and checked here never to overflow; a rounded weight update is saturated to
    ``update_bits`` before it is added; weights and biases saturate at their width.
    """

    input_frac: int = 8
    state_frac: int = 8
    weight_bits: int = 16
    weight_frac: int = 12
    bias_bits: int = 16
    bias_frac: int = 12
    acc_bits: int = 40
    update_bits: int = 12
    state_rounding: str = "nearest"
    update_rounding: str = "nearest"

    def __post_init__(self):
        for name in ("input_frac", "state_frac", "weight_frac", "bias_frac"):
            v = getattr(self, name)
            if not _is_int(v) or not 0 <= v <= 24:
                _fail(f"fixed.{name}", v, "must be an integer from 0 to 24")
        for name, lo, hi in (("weight_bits", 2, 32), ("bias_bits", 2, 32), ("acc_bits", 8, 48),
                             ("update_bits", 2, 32)):
            v = getattr(self, name)
            if not _is_int(v) or not lo <= v <= hi:
                _fail(f"fixed.{name}", v, f"must be an integer from {lo} to {hi}")
        if self.weight_frac >= self.weight_bits:
            _fail("fixed.weight_frac", self.weight_frac,
                  f"must be below fixed.weight_bits = {self.weight_bits} (one bit is the sign)")
        if self.bias_frac >= self.bias_bits:
            _fail("fixed.bias_frac", self.bias_frac,
                  f"must be below fixed.bias_bits = {self.bias_bits} (one bit is the sign)")
        if self.input_frac > self.state_frac:
            _fail("fixed.input_frac", self.input_frac,
                  f"must not exceed fixed.state_frac = {self.state_frac} (the input drive is aligned "
                  "to the state's fraction by a left shift)")
        if self.bias_frac > self.weight_frac + self.state_frac:
            _fail("fixed.bias_frac", self.bias_frac,
                  f"must not exceed weight_frac + state_frac = {self.weight_frac + self.state_frac}")
        if self.update_bits > self.weight_bits:
            _fail("fixed.update_bits", self.update_bits,
                  f"must not exceed fixed.weight_bits = {self.weight_bits}")
        if self.state_rounding not in STATE_ROUNDINGS:
            _fail("fixed.state_rounding", self.state_rounding, f"must be one of {STATE_ROUNDINGS}")
        if self.update_rounding not in UPDATE_ROUNDINGS:
            _fail("fixed.update_rounding", self.update_rounding, f"must be one of {UPDATE_ROUNDINGS}")

    # Integer ranges, in LSBs of each format.
    @property
    def state_one(self) -> int:
        return 1 << self.state_frac

    @property
    def weight_min(self) -> int:
        return -(1 << (self.weight_bits - 1))

    @property
    def weight_max(self) -> int:
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def bias_min(self) -> int:
        return -(1 << (self.bias_bits - 1))

    @property
    def bias_max(self) -> int:
        return (1 << (self.bias_bits - 1)) - 1

    @property
    def update_min(self) -> int:
        return -(1 << (self.update_bits - 1))

    @property
    def update_max(self) -> int:
        return (1 << (self.update_bits - 1)) - 1


@dataclass(frozen=True)
class EPConfig:
    """Everything that defines an EqProp network, its training and its hardware.

    ``sizes`` lists the layers input first (``[784, 512, 10]``); ``lrs[n]`` is the learning rate of
    the weights and biases W_n, b_n mapping layer n to n+1 (and of the feedback weights B_n, when
    ``feedback = "learned"``).

    ``feedback``: a hidden layer's top-down weights are W_n^T (``"symmetric"``, EP) or a separate
    matrix B_n learned by the vector-field rule (``"learned"``, VF / C-VF; golden models only for now).
    ``feedback_angle``: the initial angle Psi between B_n and W_n^T in degrees: ``None`` draws B
    independently (about 90 degrees); a number in [0, 180] starts from W^T with each sign flipped
    with probability (1 - cos Psi) / 2.
    """

    name: str = "custom"
    sizes: tuple = (784, 128, 10)
    activation: str = "hard_sigmoid"
    T1: int = 20
    T2: int = 8
    beta: float = 0.5
    nudging: str = "one_sided"
    nudge_placement: str = "inside"
    lrs: tuple = (0.0625, 0.03125)
    continual: bool = False
    feedback: str = "symmetric"
    feedback_angle: float | None = None
    batch_size: int = 1
    epochs: int = 1
    seed: int = 0
    parallelism: int = 16
    fixed: FixedConfig = field(default_factory=FixedConfig)

    def __post_init__(self):
        # Accept lists from JSON; store tuples so the object stays hashable and immutable.
        for name in ("sizes", "lrs"):
            v = getattr(self, name)
            if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__iter__"):
                _fail(name, v, "must be a list of numbers")
            object.__setattr__(self, name, tuple(v))
        if isinstance(self.fixed, dict):
            object.__setattr__(self, "fixed", FixedConfig(**self.fixed))
        if not isinstance(self.fixed, FixedConfig):
            _fail("fixed", self.fixed, "must be an object of fixed-point fields")
        if not isinstance(self.name, str) or not self.name:
            _fail("name", self.name, "must be a non-empty string")
        if len(self.sizes) < 3 or not all(_is_int(s) and 1 <= s <= MAX_WIDTH for s in self.sizes):
            _fail("sizes", list(self.sizes),
                  f"must list at least 3 layer widths (input, hidden..., output), each from 1 to {MAX_WIDTH}")
        if len(self.sizes) - 1 > MAX_LAYERS - 1:
            _fail("sizes", list(self.sizes), f"at most {MAX_LAYERS - 1} weight layers are supported")
        if self.activation not in ACTIVATIONS:
            _fail("activation", self.activation, f"must be one of {ACTIVATIONS}")
        for name in ("T1", "T2"):
            v = getattr(self, name)
            if not _is_int(v) or not 1 <= v <= 100000:
                _fail(name, v, "must be an integer from 1 to 100000")
        if not isinstance(self.beta, (int, float)) or isinstance(self.beta, bool) or not 0 < self.beta <= 16:
            _fail("beta", self.beta, "must be a number in (0, 16]")
        if self.nudging not in NUDGINGS:
            _fail("nudging", self.nudging, f"must be one of {NUDGINGS}")
        if self.nudge_placement not in PLACEMENTS:
            _fail("nudge_placement", self.nudge_placement, f"must be one of {PLACEMENTS}")
        if len(self.lrs) != len(self.sizes) - 1:
            _fail("lrs", list(self.lrs), f"needs one learning rate per weight layer ({len(self.sizes) - 1})")
        for n, lr in enumerate(self.lrs):
            if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 <= lr <= 16:
                _fail(f"lrs[{n}]", lr, "must be a number in [0, 16]")
        if not isinstance(self.continual, bool):
            _fail("continual", self.continual, "must be true or false")
        if self.continual and self.nudging == "symmetric":
            _fail("continual", self.continual, "C-EP is defined for one-sided or random-sign nudging only")
        self._check_feedback()
        for name, hi in (("batch_size", 100000), ("epochs", 100000), ("parallelism", 1024)):
            v = getattr(self, name)
            if not _is_int(v) or not 1 <= v <= hi:
                _fail(name, v, f"must be an integer from 1 to {hi}")
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:
            _fail("seed", self.seed, "must be an integer from 0 to 2**32 - 1")

    def _check_feedback(self):
        if self.feedback not in FEEDBACKS:
            _fail("feedback", self.feedback, f"must be one of {FEEDBACKS}")
        a = self.feedback_angle
        if a is None:
            return
        if not isinstance(a, (int, float)) or isinstance(a, bool) or not 0 <= a <= 180:
            _fail("feedback_angle", a, "must be null (B drawn independently, about 90 degrees) or an angle "
                  "in degrees from 0 to 180")
        if self.feedback == "symmetric":
            _fail("feedback_angle", a, "it sets the initial angle of learned feedback weights, and "
                  "feedback = 'symmetric' has none: set feedback to 'learned' or feedback_angle to null")

    # ---- derived -------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of weight layers (W_0 .. W_{N-1})."""
        return len(self.sizes) - 1

    def replace(self, **changes) -> "EPConfig":
        if "fixed" in changes and isinstance(changes["fixed"], dict):
            changes["fixed"] = dataclasses.replace(self.fixed, **changes["fixed"])
        return dataclasses.replace(self, **changes)

    def check_fixed(self) -> None:
        """Raise ConfigError unless the fixed-point golden model can run this config (the hardware:
        ``check_hardware``)."""
        if self.activation != "hard_sigmoid":
            _fail("activation", self.activation,
                  "fixed-point arithmetic implements only 'hard_sigmoid' (the smooth sigmoid is float-only)")
        if self.nudge_placement != "inside":
            _fail("nudge_placement", self.nudge_placement,
                  "fixed-point arithmetic implements only 'inside' (states must stay in [0, 1])")
        if self.batch_size != 1:
            _fail("batch_size", self.batch_size, "fixed-point training is per sample, as on chip: use 1")
        kb = power_of_two_shift(self.beta, "beta")
        if not 0 <= kb <= self.fixed.weight_frac:
            _fail("beta", self.beta, f"fixed point needs beta = 2**-k with 0 <= k <= fixed.weight_frac "
                  f"= {self.fixed.weight_frac} (the nudge is an exact left shift)")
        for n, lr in enumerate(self.lrs):
            power_of_two_shift(lr, f"lrs[{n}]")
        for n, (sh_w, sh_b) in enumerate(self.update_shifts()):
            for what, sh in (("weight", sh_w), ("bias", sh_b)):
                if not -16 <= sh <= 32:
                    _fail(f"lrs[{n}]", self.lrs[n],
                          f"gives a {what} update shift of {sh}; it must lie in [-16, 32] (the random source "
                          "has 32 bits): choose a learning rate, beta or fraction nearer each other")
        need = self.acc_bits_needed()
        if self.fixed.acc_bits < need:
            _fail("fixed.acc_bits", self.fixed.acc_bits,
                  f"the worst-case pre-activation of this net needs {need} bits; raise it to at least {need}")

    def check_hardware(self) -> None:
        """Raise ConfigError unless the gateware can run this config: ``check_fixed``, then the variants
        that only the golden models implement so far (C-EP, learned feedback)."""
        self.check_fixed()
        if self.continual:
            _fail("continual", self.continual,
                  "C-EP is not implemented in the hardware yet (the float and fixed-point golden models run it)")
        if self.feedback != "symmetric":
            _fail("feedback", self.feedback, "separate feedback weights are not implemented in the hardware "
                  "yet (the float and fixed-point golden models run them)")

    @property
    def beta_shift(self) -> int:
        return power_of_two_shift(self.beta, "beta")

    @property
    def lr_shifts(self) -> tuple:
        return tuple(power_of_two_shift(lr, f"lrs[{n}]") for n, lr in enumerate(self.lrs))

    def update_shifts(self) -> list:
        """Per weight layer: the right shifts (sh_W, sh_b) of docs/fixed-point.md's update."""
        f, kb = self.fixed, self.beta_shift
        sym = 1 if self.nudging == "symmetric" else 0
        out = []
        for n, ke in enumerate(self.lr_shifts):
            f_pre = f.input_frac if n == 0 else f.state_frac
            out.append((f.state_frac + f_pre + ke - kb + sym - f.weight_frac,
                        f.state_frac + ke - kb + sym - f.bias_frac))
        return out

    def acc_bits_needed(self) -> int:
        """Bits (with sign) of an accumulator that cannot overflow for any weights and states."""
        f = self.fixed
        kb = max(0, round(-math.log2(self.beta))) if self.beta > 0 else 0
        wmax = 1 << (f.weight_bits - 1)
        x_max = ((1 << f.input_frac) - 1) << (f.state_frac - f.input_frac)
        s_max = f.state_one
        worst = 0
        for k in range(1, len(self.sizes)):           # layer k receives from k-1 (and k+1)
            below = self.sizes[k - 1] * wmax * (x_max if k == 1 else s_max)
            above = self.sizes[k + 1] * wmax * s_max if k + 1 < len(self.sizes) else 0
            bias = (1 << (f.bias_bits - 1)) << (f.weight_frac + f.state_frac - f.bias_frac)
            nudge = (s_max << f.weight_frac) >> kb if k == len(self.sizes) - 1 else 0
            worst = max(worst, below + above + bias + nudge)
        return worst.bit_length() + 1

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The fields as JSON-ready data; the ``OMITTED_AT_DEFAULT`` fields only when not at their default."""
        d = dataclasses.asdict(self)
        d["sizes"], d["lrs"] = list(self.sizes), list(self.lrs)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in OMITTED_AT_DEFAULT:
            if d[name] == defaults[name]:
                del d[name]
        return d

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def elaborated_dict(self) -> dict:
        """``to_dict()`` without the ``RUNTIME_FIELDS``: what a hardware build depends on."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    def elaborated_json(self) -> str:
        """The canonical JSON of ``elaborated_dict()`` (INFO's config_crc is its CRC-32)."""
        return json.dumps(self.elaborated_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "EPConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown config field(s) {sorted(unknown)}; known fields: {sorted(known)}")
        fixed = d.get("fixed", {})
        if not isinstance(fixed, dict):
            _fail("fixed", fixed, "must be an object of fixed-point fields")
        fknown = {f.name for f in dataclasses.fields(FixedConfig)}
        if set(fixed) - fknown:
            raise ConfigError(f"unknown field(s) {sorted(set(fixed) - fknown)} in 'fixed'; "
                              f"known: {sorted(fknown)}")
        return cls(**{**d, "fixed": FixedConfig(**fixed)})

    @classmethod
    def from_json(cls, text: str) -> "EPConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ConfigError("config JSON must be an object of fields")
        return cls.from_dict(d)


def preset_names() -> list:
    """Names of the presets shipped with the package."""
    root = resources.files("eqfpga.golden") / "presets"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


def load_config(name_or_path) -> EPConfig:
    """A preset name (``tiny``, ``mnist-1h``, ...) or a path to a JSON file, as an EPConfig."""
    if isinstance(name_or_path, EPConfig):
        return name_or_path
    s = str(name_or_path)
    p = Path(s)
    if p.suffix == ".json" or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file {s!r} does not exist")
        return EPConfig.from_json(p.read_text())
    res = resources.files("eqfpga.golden") / "presets" / f"{s}.json"
    if not res.is_file():
        raise ConfigError(f"unknown preset {s!r}: use one of {preset_names()} or a path to a JSON file")
    return EPConfig.from_json(res.read_text())
