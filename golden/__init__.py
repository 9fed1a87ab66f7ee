"""eqfpga.golden: the specification.

The configuration (:mod:`.config`) and the fixed-point primitives (:mod:`.fixedpoint`) import
without torch, because the gateware uses them; the models (:mod:`.float_model`,
:mod:`.fixed_model`) need torch and are imported explicitly.
"""
from .config import RUNTIME_FIELDS, EPConfig, FixedConfig, load_config, preset_names, ConfigError

__all__ = ["EPConfig", "FixedConfig", "load_config", "preset_names", "ConfigError", "RUNTIME_FIELDS"]
__version__ = "0.1.0"
