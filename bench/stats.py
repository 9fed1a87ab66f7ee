"""Summary statistics of repeated measurements."""
from __future__ import annotations

import numpy as np


def stats(values) -> dict:
    """Mean, sample standard deviation, min and max of a list (None entries dropped)."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "values": []}
    a = np.array(v)
    return {"n": len(v), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "values": v}
