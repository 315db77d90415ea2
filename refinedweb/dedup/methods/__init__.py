"""The dedup methods, one module each (`minhash`, `exact_substring`, `url`), run in `dedup.stages` order.

A method module exports `NAME`, its phases (plain functions: scans, buckets, …), `run(ctx)` (the order of
its phases, scheduled through the run-units helper; returns its statistics), `decision(storage, cfg, part,
stack)` (applies what it decided to a part's batches, for later methods' scans and the output),
`BUCKET_BYTES`, `planned_records(cfg, corpus)` and `min_buckets(cfg, parts)` (how its shuffle is sized),
and optionally `check(cfg, corpus)` (refuses a bad setting before any work).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ...errors import UserError

PACKAGED = ("minhash", "exact_substring", "url")


def dedup_method(name: str) -> ModuleType:
    if name not in PACKAGED:
        raise UserError(f"unknown dedup stage '{name}': dedup.stages takes {', '.join(PACKAGED)}")
    return importlib.import_module(f"{__name__}.{name}")
