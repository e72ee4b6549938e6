"""metarepro: re-pool published meta-analyses and say whether they reproduce.

The statistics engine agrees with R's metafor (see ``tests/reference``).

>>> import pandas as pd, metarepro
>>> frame = pd.DataFrame({"study": ["a", "b", "c"], "yi": [0.1, 0.3, -0.2],
...                       "vi": [0.04, 0.09, 0.05]})
>>> res = metarepro.pool(frame, measure="GEN", method="FE")
>>> # by hand: (0.1/0.04 + 0.3/0.09 - 0.2/0.05) / (1/0.04 + 1/0.09 + 1/0.05) = 1.8333/56.111
>>> round(res.estimate, 4)
0.0327
"""

from importlib import import_module

__all__ = [
    "FIELDS",
    "METHODS",
    "TESTS",
    "InputError",
    "MetareproWarning",
    "PoolResult",
    "PoolTable",
    "compute_effects",
    "pool",
    "pool_mv",
    "pool_subgroups",
    "read_table",
]
__version__ = "0.1.0"

# Imported on first use, so that light modules (metarepro.plan) load without the statistics stack.
_LAZY = {"pool": "pooling", "pool_subgroups": "pooling", "PoolResult": "pooling", "PoolTable": "pooling",
         "FIELDS": "pooling", "METHODS": "pooling", "TESTS": "pooling", "pool_mv": "multilevel",
         "read_table": "io", "compute_effects": "effects",
         "InputError": "errors", "MetareproWarning": "errors"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'metarepro' has no attribute {name!r}")
