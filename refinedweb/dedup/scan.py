"""The scan skeleton every method's scan phase uses: stream a part as the earlier methods left it and shuffle
the records a method makes of it to that method's buckets."""

from __future__ import annotations

from typing import Any

import numpy as np

from .corpus import iter_part
from .decisions import Decisions
from .plan import WORK, methods_before, open_work
from .shuffle import BucketWriter, pack_array


def scan_part(part: int, cfg: dict[str, Any], output: str, method: str, dtype: np.dtype, columns: list[str],
              produce, route=None) -> str:
    """Stream the part as the earlier methods left it; `produce(batches)` yields record arrays, which go
    to the method's buckets (by `key % buckets`, or `route(keys, buckets)`). Returns the records per bucket,
    packed (they locate each bucket in the part's file)."""
    storage, fetch, corpus = open_work(cfg, output)
    buckets = corpus.buckets[method]
    writer = BucketWriter(storage, f"{WORK}/{method}/records", part, buckets, dtype)
    try:
        with Decisions(storage, cfg, part, methods_before(cfg, method)) as decisions:
            batches = (decisions.apply(rows, table) for rows, table in iter_part(corpus, part, fetch, columns))
            for records in produce(batches):
                writer.add(records, None if route is None else route(records["key"], buckets))
        return pack_array(writer.close())
    except BaseException:
        writer.abort()
        raise
