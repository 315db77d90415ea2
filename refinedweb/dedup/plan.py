"""The plan of a dedup run and what every method's `run` schedules with (`DedupRun`): the work folder, the
corpus, the task budget, and the bucket units of a shuffle (`bucket_units`). No Ray here.

Words, used alike in code, YAML, stats and docs:
  stage    a stage of the pipeline: filter, dedup, mix (a folder of the output each)
  method   one way of finding duplicates inside the dedup stage: minhash, exact_substring, url, or a user's
           module (`dedup.methods`, `dedup/methods/`); methods run in that order, each seeing only what the
           earlier ones left
  phase    one step of a method or of the stage's output, a plain function: a scan, a bucket, a component
           round, finish, merge
  unit     one call of a phase (a part, a bucket, a key range), one Ray task with a completion marker

Layout under `<output>/_work/dedup/` (deleted after a successful run unless `dedup.keep_work`):
  corpus.json                              the input files, their row counts, the part count
  <method>/records/p=P.bin                 a scan's records of part P, bucket after bucket
  <method>/records/segments.bin            where each bucket's records are in the parts' files (`bucket_units`)
  minhash/cc/r=R/{ls,ss}/q=Q/from=X.npy    edges of component round R, partition Q
  minhash/check/{a,b}/p=P/from=X.(npy|npz) the Jaccard check's two hops
  <method>/removed/p=P/from=X.npy          part-local rows removed (minhash, url)
  exact_substring/bucket-marks/p=P/from=X.npy  part-local (row << 32 | token offset) of marked windows
  exact_substring/marks/p=P.npy            the same, merged into one sorted file per part
  url/kept/p=P.bin                         the URLs of part P's kept documents by key range (seen-URL store only)
  tails/[lang=L/]p=P.parquet               part P's last, partly filled shard (`output.py`)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..io.remote import FetchConfig
from ..io.storage import open_storage
from .corpus import Corpus, load_corpus
from .methods import configured
from .shuffle import passes_for, unpack_array, write_segment_table

DEDUP_DIR = "dedup"
WORK = f"_work/{DEDUP_DIR}"
CORPUS = f"{WORK}/corpus.json"


def open_work(cfg: dict[str, Any], output: str) -> tuple[Any, FetchConfig, Corpus]:
    fetch = FetchConfig.from_config(cfg)
    storage = open_storage(output, fetch)
    return storage, fetch, load_corpus(storage, CORPUS)


def methods_before(cfg: dict[str, Any], method: str) -> list[str]:
    """The names of the methods that run before `method` (`dedup.methods` order): what its scan sees applied."""
    names = list(configured(cfg))
    return names[:names.index(method)]


def timed(started: float, **values: Any) -> dict[str, Any]:
    return {**values, "seconds": round(time.time() - started, 3)}


@dataclass
class DedupRun:
    """What a method's `run` schedules with: the run-units helper and the plan of this run."""

    units: Any                       # runtime.units.Units: runs a phase's units, skipping finished ones
    cfg: dict[str, Any]
    uri: str                         # the output root
    corpus: Corpus
    budget: int                      # bytes a task may hold
    log: Callable[[str], None]
    storage: Any
    fetch: FetchConfig
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)   # what each method's `plan` recorded

    @property
    def parts(self) -> int:
        return self.corpus.parts

    @property
    def part_keys(self) -> dict[int, str]:
        return {p: f"p={p:05d}" for p in range(self.corpus.parts)}

    def spent(self, folder: str) -> None:
        """A shuffle's records are read by its bucket phase only: once that is done, free the disk early."""
        if not self.cfg["dedup"]["keep_work"]:
            self.storage.delete_tree(folder)


def bucket_units(ctx: "DedupRun", method: str, unit: str, scans: list[dict[str, Any]],
                 bytes_per_record: int) -> dict[str, tuple[int, int]]:
    """The bucket units of a shuffle: key -> (bucket, passes to stay within the task budget). Writes the
    segment table the bucket tasks read their segments from (unless every bucket is done already)."""
    counts = np.zeros((ctx.parts, ctx.corpus.buckets[method]), dtype=np.int64)
    for scan in scans:
        counts[int(scan["part"])] = unpack_array(scan["records"])
    units = {f"b={b:05d}": (b, passes_for(int(n), bytes_per_record, ctx.budget))
             for b, n in enumerate(counts.sum(axis=0).tolist())}
    if not ctx.units.finished(unit, units):
        write_segment_table(ctx.storage, f"{WORK}/{method}/records", counts)
    return units


def records_total(scans: list[dict[str, Any]]) -> int:
    return int(sum(int(unpack_array(s["records"]).sum()) for s in scans))


def bucket_stats(results: list[dict[str, Any]]) -> dict[str, int]:
    return {"buckets": len(results), "max_passes": max((r["passes"] for r in results), default=0)}
