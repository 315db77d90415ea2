"""Code-point views of text for the numpy kernels of the stages: a string as an array of code points, and
lookup tables that give every code point below a size its character class (built once per process)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def code_points(text: str) -> np.ndarray:
    """The code points of `text` as `intp` (indexing a table with intp is several times faster than uint32)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.intp)


def code_point_table(classify: Callable[[str], int], size: int, dtype=np.uint8) -> np.ndarray:
    """`classify(chr(cp))` for every code point below `size`."""
    return np.fromiter((classify(chr(cp)) for cp in range(size)), dtype=dtype, count=size)
