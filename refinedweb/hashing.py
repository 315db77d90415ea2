"""splitmix64 (Steele et al. 2014), the one 64-bit mixer of the project: shuffle keys that are not hashes
(ordinals), a fixed code per symbol for the exact-substring window hashes, and MinHash's seeded parameters."""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 of each value (its state advanced once from the value, then finalised)."""
    with np.errstate(over="ignore"):
        z = np.asarray(values, dtype=np.uint64) + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def splitmix64_stream(seed: int, count: int) -> np.ndarray:
    """The first `count` outputs of splitmix64 seeded with `seed` (fixed across numpy versions)."""
    with np.errstate(over="ignore"):
        return splitmix64(np.uint64(seed) + np.arange(count, dtype=np.uint64) * GOLDEN)
