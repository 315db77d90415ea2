"""Shuffling fixed-size records to buckets on disk/S3, and reading one bucket within a memory budget.

Every corpus-wide dedup decision (which band keys, 50-token windows or URLs are shared) is a group-by over
a 64-bit key. A scan task routes its records to `buckets` by key (`key % buckets`) and writes one file per
bucket (`<folder>/b=BBBBB/p=PPPPP.bin`, raw little-endian records, the part in the name); a bucket task
reads every part's file of its bucket, so records with one key always meet in one task. A bucket larger
than the task's memory budget is read in several passes, each taking the keys of one slice of the key
space (`(key >> 32) % passes`), so equal keys still meet: the budget changes the number of passes, never
the result.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any, Iterator

import numpy as np

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads keys that are not hashes themselves (ordinals) over 64 bits."""
    z = np.asarray(values, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def bucket_of(keys: np.ndarray, buckets: int) -> np.ndarray:
    return (np.asarray(keys, dtype=np.uint64) % np.uint64(buckets)).astype(np.int64)


def bucket_file(folder: str, bucket: int, part: int) -> str:
    return f"{folder}/b={bucket:05d}/p={part:05d}.bin"


class BucketWriter:
    """Appends records (a numpy structured array with a uint64 `key` field) to one file per bucket;
    `close` commits the files (atomically, deterministic names) and returns records per bucket."""

    def __init__(self, storage, folder: str, part: int, buckets: int, dtype: np.dtype):
        self.storage, self.folder, self.part, self.buckets, self.dtype = storage, folder, part, buckets, dtype
        self.counts = np.zeros(buckets, dtype=np.int64)
        self.temps: dict[int, str] = {}

    def add(self, records: np.ndarray, buckets: np.ndarray | None = None) -> None:
        """Route `records` by key (or by the given bucket of each record) and append them."""
        if not len(records):
            return
        target = bucket_of(records["key"], self.buckets) if buckets is None else buckets
        order = np.argsort(target, kind="stable")
        target = target[order]
        records = records[order]
        bounds = np.searchsorted(target, np.arange(self.buckets + 1))
        for b in np.flatnonzero(np.diff(bounds)):
            chunk = records[bounds[b]:bounds[b + 1]]
            if b not in self.temps:
                self.temps[b] = self.storage.temp_path(bucket_file(self.folder, int(b), self.part))
            with open(self.temps[b], "ab") as fh:
                chunk.tofile(fh)
            self.counts[b] += len(chunk)

    def close(self) -> list[int]:
        for b, tmp in sorted(self.temps.items()):
            self.storage.commit(tmp, bucket_file(self.folder, int(b), self.part))
        self.temps = {}
        return self.counts.tolist()

    def abort(self) -> None:
        for tmp in self.temps.values():
            self.storage.discard(tmp)
        self.temps = {}


def passes_for(records: int, bytes_per_record: int, budget_bytes: int) -> int:
    return max(1, -(-records * bytes_per_record // max(1, budget_bytes)))


def read_bucket(storage, folder: str, bucket: int, dtype: np.dtype, passes: int = 1
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each pass: (records, part of each record), the records of every part's file of the bucket
    whose key falls in the pass's slice of the key space. Files are memory-mapped (S3: downloaded to a
    temporary file first), so a pass holds only its own records."""
    files = storage.list(f"{folder}/b={bucket:05d}", "p=*.bin")
    with ExitStack() as stack:
        maps = []
        for relpath in files:
            path = stack.enter_context(storage.local_copy(relpath))
            if os.path.getsize(path):
                part = int(relpath.rsplit("p=", 1)[1].split(".")[0])
                maps.append((part, np.memmap(path, dtype=dtype, mode="r")))
        for k in range(passes):
            chunks, parts = [], []
            for part, records in maps:
                if passes == 1:
                    chosen = np.array(records)
                else:
                    chosen = _select(records, k, passes)
                chunks.append(chosen)
                parts.append(np.full(len(chosen), part, dtype=np.int64))
            if chunks:
                yield np.concatenate(chunks), np.concatenate(parts)
            else:
                yield np.empty(0, dtype=dtype), np.empty(0, dtype=np.int64)


def _select(records: np.ndarray, k: int, passes: int, step: int = 1 << 20) -> np.ndarray:
    out = []
    for s in range(0, len(records), step):
        chunk = records[s:s + step]
        out.append(np.array(chunk[(chunk["key"] >> np.uint64(32)) % np.uint64(passes) == np.uint64(k)]))
    return np.concatenate(out) if out else np.empty(0, dtype=records.dtype)


def save_array(storage, relpath: str, array: np.ndarray) -> None:
    tmp = storage.temp_path(relpath)
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))
    storage.commit(tmp, relpath)


def load_arrays(storage, folder: str, pattern: str = "*.npy") -> list[np.ndarray]:
    out = []
    for relpath in storage.list(folder, pattern):
        with storage.local_copy(relpath) as path:
            out.append(np.load(path))
    return out


def task_budget_bytes(cfg: dict[str, Any]) -> int:
    """Bytes a dedup task may spend on its arrays: `dedup.task_memory_mb`, or else `run.worker_memory_mb` less
    the worker's own footprint (Python, Ray, numpy, pyarrow: ~400 MB), halved for sort temporaries."""
    explicit = cfg["dedup"].get("task_memory_mb")
    if explicit is not None:
        if float(explicit) <= 0:
            from ..errors import UserError

            raise UserError(f"dedup.task_memory_mb must be > 0, got {explicit}")
        return max(1, int(float(explicit) * (1 << 20)))
    cap = int(cfg["run"].get("worker_memory_mb") or 4000)
    return max(32, (cap - 400) // 2) << 20
