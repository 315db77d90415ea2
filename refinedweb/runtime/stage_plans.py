"""The driver's work for stages before any task (stage contract: `files` and `plan`), no Ray here.

`file_identities` hashes every file a configured stage loads (a model): the hashes join the resume fingerprint,
and the workers check them. `make_plans` calls each stage's `plan` hook with a `PlanContext`, whose `sample`
draws documents from the Parquet input and runs the stages before that one over them, so that a plan sees what
its stage will see, `count` sums a function over the whole input (a task per file), and `put` stores a file the
tasks load (an index). The plans are stored with the run (`StageState.plans`): a resume reuses them.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from ..documents import Document
from ..io.cache import cached_file
from ..io.random_access import open_parquet
from ..io.remote import FetchConfig, redact
from ..stages.contract import PLANS, READ, section_name, stage_modules
from ..stats import FileAccount

READERS = 8


def _enabled(cfg: dict[str, Any]):
    for index, module in enumerate(stage_modules(cfg)):
        section = cfg.get(section_name(module)) or {}
        if section.get("enabled", True) is not False:
            yield index, module, section


def file_identities(cfg: dict[str, Any], fetch: FetchConfig) -> dict[str, dict[str, dict[str, Any]]]:
    """stage -> file name -> {uri, path (local copy), sha256, size[, mtime_ns]}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for _, module, section in _enabled(cfg):
        if hasattr(module, "files"):
            out[module.NAME] = {}
            for name, uri in module.files(section).items():
                path, identity = cached_file(uri, fetch)
                out[module.NAME][name] = {"uri": redact(uri), "path": path, **identity}
    return out


def fingerprint_entries(identities: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    return {f"{stage}.{name}": f["sha256"] for stage, files in identities.items() for name, f in files.items()}


@dataclass
class PlanContext:
    kind: str                                   # "filter" (WARC input) or "documents" (Parquet input)
    files: dict[str, dict[str, Any]]            # this stage's files: name -> identity with a local `path`
    fetch: FetchConfig
    inputs: list[str]
    log: Callable[[str], None]
    before: Callable[[list[Document]], list[Document]] = field(repr=False, default=lambda docs: docs)
    needs_all_columns: bool = False
    stage: str = ""
    earlier: dict[str, Any] = field(repr=False, default_factory=dict)    # the config of the stages before this one
    runtime: Any = field(repr=False, default=None)                     # runs `count`'s tasks
    storage: Any = field(repr=False, default=None)                     # the output root (`put`)
    folder: str = ""

    def put(self, name: str, local_path: str) -> dict[str, Any]:
        """Store a file the tasks load (an index) with the run, `<folder>/.refinedweb/plans/<stage>/<name>` (gone
        with --overwrite); its {uri, sha256, size} for `cached_file` in the tasks."""
        from ..io.cache import sha256_file

        relpath = f"{self.folder}/.refinedweb/plans/{self.stage}/{name}"
        identity = {"sha256": sha256_file(local_path), "size": os.path.getsize(local_path)}
        tmp = self.storage.temp_path(relpath)
        shutil.copyfile(local_path, tmp)
        self.storage.commit(tmp, relpath)
        return {"uri": f"{self.storage.uri}/{relpath}", **identity}

    def count(self, fn: Callable[..., dict[str, int]], *args: Any) -> dict[str, int]:
        """The sum over the whole input of `fn(docs, *args) -> {name: n}`, `docs` a batch of documents as they
        reach this stage: one task per input file (a first pass that reads and writes nothing else)."""
        if self.kind != "documents":
            raise ValueError("count() needs Parquet input")
        calls = [(uri, self.fetch, self.earlier, self.needs_all_columns, fn, args) for uri in self.inputs]
        total: dict[str, int] = {}
        every, last, done = float(self.earlier["run"]["progress_every_seconds"]), time.monotonic(), 0

        def arrived(_: int, part: dict[str, Any]) -> None:
            nonlocal last, done
            done += 1
            for name, n in part["counts"].items():
                total[name] = total.get(name, 0) + n
            if time.monotonic() - last >= every and done < len(calls):
                last = time.monotonic()
                self.log(f"[{self.stage}] counting: {done}/{len(calls)} file(s)")

        self.runtime.map(_count_file, calls, int(self.earlier["run"]["max_retries"]), on_result=arrived)
        return total

    def sample(self, documents: int, row_groups: int, seed: int) -> list[Document]:
        """A seeded sample of the input's documents as they reach this stage (after the stages before it).

        Two-stage and self-weighting: `row_groups` draws of a row group with probability proportional to its
        rows (with replacement), then `ceil(documents / row_groups)` rows per draw taken uniformly from it; every
        input row has the same chance. When the input holds no more than `documents` rows, all are taken. Only
        one row group is held at a time per reader thread."""
        if self.kind != "documents":
            raise ValueError("sample() needs Parquet input")
        with ThreadPoolExecutor(READERS) as pool:
            counts = list(pool.map(self._row_groups, self.inputs))
        groups = [(uri, g, rows) for uri, sizes in zip(self.inputs, counts) for g, rows in enumerate(sizes) if rows]
        total = sum(rows for *_, rows in groups)
        rng = np.random.default_rng([seed, 17])
        if total <= documents:
            takes = {i: None for i in range(len(groups))}            # every row
        else:
            per_draw = math.ceil(documents / row_groups)
            drawn = rng.choice(len(groups), size=row_groups, p=np.array([r for *_, r in groups]) / total)
            takes = {int(i): int(c) * per_draw for i, c in zip(*np.unique(drawn, return_counts=True))}
        seeds = {i: int(rng.integers(1 << 62)) for i in sorted(takes)}
        columns = None if self.needs_all_columns else ["text"]

        def read(i: int) -> list[Document]:
            from .documents_pass import _read_chunk

            uri, group, rows = groups[i]
            table = open_parquet(uri, self.fetch).read_row_group(group, columns=columns)
            if takes[i] is not None and takes[i] < rows:
                picked = np.sort(np.random.default_rng(seeds[i]).choice(rows, size=takes[i], replace=False))
                table = table.take(picked)
            return _read_chunk(table, FileAccount(redact(uri), [READ]), redact(uri)).docs

        with ThreadPoolExecutor(READERS) as pool:
            docs = [d for part in pool.map(read, sorted(takes)) for d in part]
        return self.before(docs)

    def _row_groups(self, uri: str) -> list[int]:
        meta = open_parquet(uri, self.fetch).metadata
        return [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]


def _count_file(uri: str, fetch: FetchConfig, earlier: dict[str, Any], all_columns: bool, fn: Callable,
                args: tuple) -> dict[str, dict[str, int]]:
    """Inside a task: `PlanContext.count` over one Parquet file, batch by batch ({"counts": ...}: the runtime
    adds its own keys to a task's result)."""
    from .documents_pass import _read_chunk
    from .filter_pass import Pipeline

    pipeline = Pipeline.build(earlier) if earlier["filter"]["stages"] else None
    parquet = open_parquet(uri, fetch)
    total: dict[str, int] = {}
    for batch in parquet.iter_batches(batch_size=1000, columns=None if all_columns else ["text"], use_threads=False):
        docs = _read_chunk(pa.Table.from_batches([batch]), FileAccount(redact(uri), [READ]), redact(uri)).docs
        if pipeline is not None:
            docs = pipeline.kept(docs, redact(uri))
        for name, n in fn(docs, *args).items():
            total[name] = total.get(name, 0) + n
    return {"counts": total}


def make_plans(cfg: dict[str, Any], identities: dict[str, dict[str, dict[str, Any]]], inputs: list[str],
               fetch: FetchConfig, kind: str, log: Callable[[str], None], runtime: Any = None, storage: Any = None,
               folder: str = "") -> dict[str, Any]:
    """stage -> its plan: `{"files": identities, ...what its plan hook returned}`."""
    from .filter_pass import Pipeline

    plans: dict[str, Any] = {}
    entries = list(cfg["filter"]["stages"])
    for index, module, section in _enabled(cfg):
        files = identities.get(module.NAME, {})
        if files:
            plans[module.NAME] = {"files": {n: {k: v for k, v in f.items() if k != "path"} for n, f in files.items()}}
        if not hasattr(module, "plan"):
            continue
        earlier = {**cfg, "filter": {**cfg["filter"], "stages": entries[:index]}, PLANS: dict(plans)}

        def before(docs: list[Document], earlier=earlier) -> list[Document]:
            if not earlier["filter"]["stages"]:
                return docs
            return Pipeline.build(earlier).kept(docs, "sample")

        context = PlanContext(kind, files, fetch, inputs, log, before, needs_all_columns=bool(index), stage=module.NAME,
                              earlier=earlier, runtime=runtime, storage=storage, folder=folder)
        plans[module.NAME] = {**plans.get(module.NAME, {}), **(module.plan(section, context) or {})}
    return plans
