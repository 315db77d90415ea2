"""Shuffling fixed-size records to buckets on disk/S3, and reading one bucket within a memory budget.

Every corpus-wide dedup decision (which band keys, 50-token windows or URLs are shared) is a group-by over
a 64-bit key. A scan task routes its records to `buckets` by key (`key % buckets`) and writes *one* file,
`<folder>/p=PPPPP.bin`: raw little-endian records, bucket after bucket (a sort-based shuffle: its
per-bucket counts, returned by the task, locate each bucket's segment). A bucket task reads its segment of
every part's file (a memory map, or one ranged GET on S3), so records with one key always meet in one
task, and the number of files grows with the parts, not with parts x buckets. A bucket larger than the
task's memory budget is read in several passes, each taking the keys of one slice of the key space
(`(key >> 32) % passes`), so equal keys still meet: the budget changes the number of passes, never the
result.

The driver keeps every part's per-bucket counts (1,000 parts x 8,192 buckets at dump scale) as one array and
writes each bucket's segments (first record, records, per part) as a row of one table under the work folder
(`segment_table`), so planning is linear and a bucket task reads its row with one ranged read.
"""

import base64
import os
import shutil
import zlib
from typing import Any, Iterator

import numpy as np

from ..hashing import splitmix64
from ..io.scratch import scratch_folder


def mix64(values: np.ndarray) -> np.ndarray:
    """Spreads keys that are not hashes themselves (ordinals) over 64 bits."""
    return splitmix64(values)


def bucket_of(keys: np.ndarray, buckets: int) -> np.ndarray:
    return (np.asarray(keys, dtype=np.uint64) % np.uint64(buckets)).astype(np.int64)


def key_range(keys: np.ndarray, ranges: int) -> np.ndarray:
    """The range of each key when the 64-bit key space is cut into `ranges` contiguous ranges of equal width
    (by the top 32 bits): unlike `bucket_of`, neighbouring keys share a range, so a sorted file of keys can be
    read range by range (the seen-URL store)."""
    return (((np.asarray(keys, dtype=np.uint64) >> np.uint64(32)) * np.uint64(ranges)) >> np.uint64(32)).astype(np.int64)


def range_start(index: int, ranges: int) -> int:
    """The smallest key of range `index` (2**64 for index == ranges)."""
    return -(-index * (1 << 32) // ranges) << 32


def records_file(folder: str, part: int) -> str:
    return f"{folder}/p={part:05d}.bin"


class BucketWriter:
    """Routes records (a numpy structured array with a uint64 `key` field) to buckets, in local temporary
    files per bucket; `close` writes the part's one file, bucket after bucket, commits it (atomically,
    deterministic name) and returns the records per bucket."""

    def __init__(self, storage, folder: str, part: int, buckets: int, dtype: np.dtype):
        self.storage, self.folder, self.part, self.buckets, self.dtype = storage, folder, part, buckets, dtype
        self.counts = np.zeros(buckets, dtype=np.int64)
        self.spool = scratch_folder("shuffle")

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
            with open(os.path.join(self.spool, f"{b}.bin"), "ab") as fh:
                records[bounds[b]:bounds[b + 1]].tofile(fh)
            self.counts[b] += bounds[b + 1] - bounds[b]

    def close(self) -> np.ndarray:
        relpath = records_file(self.folder, self.part)
        tmp = self.storage.temp_path(relpath)
        try:
            with open(tmp, "wb") as out:
                for b in np.flatnonzero(self.counts):
                    with open(os.path.join(self.spool, f"{b}.bin"), "rb") as fh:
                        shutil.copyfileobj(fh, out, 1 << 20)
            self.storage.commit(tmp, relpath)
        except BaseException:
            self.storage.discard(tmp)
            raise
        finally:
            shutil.rmtree(self.spool, ignore_errors=True)
        return self.counts

    def abort(self) -> None:
        shutil.rmtree(self.spool, ignore_errors=True)


def pack_array(values: np.ndarray) -> str:
    """Unsigned 64-bit values (a scan's records per bucket) compact in a task's JSON result: 8,192 counts as
    JSON numbers would cost the driver ~300 KB each in Python ints."""
    return base64.b64encode(zlib.compress(np.ascontiguousarray(values, dtype="<u8").tobytes(), 1)).decode("ascii")


def unpack_array(packed: str | list) -> np.ndarray:
    if isinstance(packed, list):                  # a marker of an earlier version
        return np.asarray(packed, dtype=np.uint64)
    return np.frombuffer(zlib.decompress(base64.b64decode(packed)), dtype="<u8")


def write_segment_table(storage, folder: str, counts: np.ndarray) -> None:
    """Write `<folder>/segments.bin` from the scans' records per bucket (`counts`: parts x buckets): for every
    bucket and part, the bucket's first record and record count in the part's file (int64, bucket-major: a
    bucket's row is 2 x parts values). Linear in parts x buckets."""
    firsts = np.cumsum(counts, axis=1)
    firsts -= counts
    relpath = f"{folder}/segments.bin"
    tmp = storage.temp_path(relpath)
    try:
        with open(tmp, "wb") as fh:
            for b in range(0, counts.shape[1], 256):               # (buckets, 2, parts), 256 buckets at a time
                np.stack([firsts[:, b:b + 256].T, counts[:, b:b + 256].T], axis=1).astype("<i8").tofile(fh)
        storage.commit(tmp, relpath)
    except BaseException:
        storage.discard(tmp)
        raise


def bucket_segments(storage, folder: str, bucket: int, parts: int) -> list[tuple[int, int, int]]:
    """(part, first record, records) of the bucket in every part's file that has some, from its row of the
    segment table (one ranged read)."""
    row = 2 * parts * 8
    with storage.local_range(f"{folder}/segments.bin", bucket * row, row) as (path, offset):
        with open(path, "rb") as fh:
            fh.seek(offset)
            firsts, counts = np.frombuffer(fh.read(row), dtype="<i8").reshape(2, parts)
    return [(int(p), int(firsts[p]), int(counts[p])) for p in np.flatnonzero(counts)]


def passes_for(records: int, bytes_per_record: int, budget_bytes: int) -> int:
    return max(1, -(-records * bytes_per_record // max(1, budget_bytes)))


def read_bucket(storage, folder: str, segments: list[tuple[int, int, int]], dtype: np.dtype,
                part_starts: np.ndarray, passes: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each pass: (records, ordinal of each record), the bucket's records from every part's file whose
    key falls in the pass's slice of the key space; a record's ordinal is its part's first ordinal plus its
    `row`. One segment is open at a time (a memory map, or on S3 one ranged GET into a temporary file), so
    neither memory nor open files grow with the number of parts; with one pass the records are read
    straight into one array (no second copy)."""
    dtype = np.dtype(dtype)

    def segment(part: int, first: int, count: int, k: int) -> np.ndarray:
        with storage.local_range(records_file(folder, part), first * dtype.itemsize,
                                 count * dtype.itemsize) as (path, offset):
            mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))
            try:
                return np.array(mapped) if passes == 1 else _select(mapped, k, passes)
            finally:
                del mapped

    for k in range(passes):
        if passes == 1:
            total = sum(count for _, _, count in segments)
            records = np.empty(total, dtype=dtype)
            ordinals = np.empty(total, dtype=np.int64)
            at = 0
            for part, first, count in segments:
                records[at:at + count] = segment(part, first, count, k)
                ordinals[at:at + count] = records["row"][at:at + count]
                ordinals[at:at + count] += int(part_starts[part])
                at += count
            yield records, ordinals
            continue
        chunks = [(part, segment(part, first, count, k)) for part, first, count in segments]
        records = np.concatenate([c for _, c in chunks]) if chunks else np.empty(0, dtype=dtype)
        ordinals = np.concatenate([c["row"].astype(np.int64) + int(part_starts[part]) for part, c in chunks]) \
            if chunks else np.empty(0, dtype=np.int64)
        del chunks
        yield records, ordinals


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


def save_npz(storage, relpath: str, **arrays: np.ndarray) -> None:
    tmp = storage.temp_path(relpath)
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
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
