"""Driver side of `--stage dedup`: phase 1 per input file, phases 2 and 3 per part, then the URL store."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import pyarrow.parquet as pq

from ..dedup.phases import (DEDUP_DIR, REQUIRED_COLUMNS, WORK, load_npz, phase_band_edges, phase_finish,
                            phase_merge_tails, phase_minhash, phase_partition, plan_tail_merges)
from ..io.manifest import write_manifest
from ..io.parquet import ShardLimits
from ..dedup.urls import update_seen_store
from ..errors import UserError
from ..io.inputs import PARQUET_SUFFIXES, expand_inputs
from ..io.remote import FetchConfig, is_remote, redact
from ..io.storage import open_storage
from ..stats import STATS
from .ray_runner import RayRuntime, memory_report
from .run_state import DEDUP_SECTIONS, StageState, digest, write_marker

SUB_STAGES = ("minhash", "exact_substring", "url")


def run_dedup_stage(inputs: list[str], output: str, cfg: dict[str, Any], *, workers: int | None = None,
                    ray_address: str | None = None, limit: int | None = None,
                    log: Callable[[str], None] = print, runtime: RayRuntime | None = None,
                    overwrite: bool = False) -> dict[str, Any]:
    """Deduplicate the Parquet inputs into `<output>/dedup/`. Each unit of each phase (an input file, a part,
    a part × band group) leaves a completion marker, so a re-run after a crash redoes only unfinished units."""
    dcfg = cfg["dedup"]
    unknown = [s for s in dcfg["stages"] if s not in SUB_STAGES]
    if unknown:
        raise UserError(f"unknown dedup stage(s) {', '.join(unknown)}: dedup.stages takes {', '.join(SUB_STAGES)}")
    parts = int(dcfg["parts"])
    if parts < 1:
        raise UserError("dedup.parts must be >= 1")
    if not 1 <= int(dcfg["minhash"]["band_groups"]) <= int(dcfg["minhash"]["bands"]):
        raise UserError("dedup.minhash.band_groups must be between 1 and dedup.minhash.bands")
    fetch = FetchConfig.from_config(cfg)
    files = expand_inputs(inputs, suffixes=PARQUET_SUFFIXES, limit=limit, fetch=fetch)
    storage = open_storage(output, fetch)
    for uri in files:          # a missing column is a user error: say so before any work starts
        if not is_remote(uri):
            missing = [c for c in REQUIRED_COLUMNS if c not in pq.read_schema(uri).names]
            if missing:
                raise UserError(f"Parquet input {uri} is missing column(s) {', '.join(missing)} "
                                f"(dedup needs {', '.join(REQUIRED_COLUMNS)})")
    state = StageState(storage, DEDUP_DIR, cfg, DEDUP_SECTIONS)
    state.prepare(overwrite, log, extra_folders=(WORK,), inputs_digest=_inputs_digest(files, storage.uri))
    log(f"[dedup] {len(files)} Parquet file(s), {parts} part(s), stages {', '.join(dcfg['stages'])} -> {storage.uri}/{DEDUP_DIR}/")
    started = time.time()
    retries = int(cfg["run"]["max_retries"])
    done = state.completed()
    resumed = 0
    owned = runtime is None

    def phase(name: str, fn: Callable, units: dict[str, tuple]) -> list[dict[str, Any]]:
        """Run the units (marker key -> args) that have no marker yet; results of all, in key order."""
        nonlocal resumed
        todo = {key: args for key, args in units.items() if f"{name}-{key}" not in done}
        resumed += len(units) - len(todo)
        fresh = runtime.map(_marked, [(fn, f"{name}-{key}", cfg, storage.uri, args) for key, args in todo.items()],
                            retries) if todo else []
        results = dict(zip(todo, fresh))
        return [results[key] if key in results else done[f"{name}-{key}"] for key in units]

    with (runtime or RayRuntime.for_config(cfg, workers, ray_address)).session(owned) as runtime:
        t0 = time.time()
        partitioned = phase("partition", phase_partition,
                            {f"f={i:06d}": (i, uri, cfg, storage.uri) for i, uri in enumerate(files)})
        log(f"[dedup] phase 1 (partition + MinHash band keys): {sum(p['rows'] for p in partitioned):,} docs, {time.time() - t0:.1f}s")
        minhash = []
        if "minhash" in dcfg["stages"]:
            t0 = time.time()
            groups = int(dcfg["minhash"]["band_groups"])
            phase("edges", phase_band_edges,
                  {f"p={p:05d}-g={g:04d}": (p, g, cfg, storage.uri) for p in range(parts) for g in range(groups)})
            minhash = phase("components", phase_minhash, {f"p={p:05d}": (p, cfg, storage.uri) for p in range(parts)})
            log(f"[dedup] phase 2 (bands -> pairs -> components): {sum(m['clusters'] for m in minhash):,} clusters, "
                f"{sum(m['removed'] for m in minhash):,} near duplicates, {time.time() - t0:.1f}s")
        t0 = time.time()
        finished = phase("finish", phase_finish, {f"p={p:05d}": (p, cfg, storage.uri) for p in range(parts)})
        log(f"[dedup] phase 3 (remove, exact substrings, URLs, write): {time.time() - t0:.1f}s")
        t0 = time.time()
        bins = plan_tail_merges([f["tail"] for f in finished if f.get("tail")], ShardLimits.from_config(cfg["output"]))
        merged = phase("merge", phase_merge_tails, {f"b={i:05d}": (i, b, cfg, storage.uri) for i, b in enumerate(bins)})
        log(f"[dedup] phase 4 (merge {sum(len(b) for b in bins)} partly filled shard(s) into "
            f"{sum(len(m['shards']) for m in merged)}): {time.time() - t0:.1f}s")
    if resumed:
        log(f"[dedup] resumed: {resumed} unit(s) of work were already done by an earlier run")
    seen_path = dcfg["url"]["seen"]
    seen_size = None
    if seen_path and "url" in dcfg["stages"]:
        # a union: running it again after a crash adds nothing new, so it needs no marker
        new_hashes = [load_npz(storage, f["url_hashes"])["hashes"] for f in finished if f.get("url_hashes")]
        seen_size = update_seen_store(seen_path, new_hashes, fetch)
    summary = _summarise(files, partitioned, minhash, finished, time.time() - started)
    summary.update({"stage": "dedup", "config_fingerprint": state.fingerprint, "units_resumed": resumed,
                    "output": f"{storage.uri}/{DEDUP_DIR}", "url_seen_store_size": seen_size,
                    **memory_report([*partitioned, *minhash, *finished], cfg, "dedup", log)})
    storage.write_json(f"{DEDUP_DIR}/{STATS}", summary)
    entries = [e for r in (*finished, *merged) for e in r.get("shards", [])]
    write_manifest(storage, "dedup", DEDUP_DIR, entries, config_fingerprint=state.fingerprint)
    if not dcfg["keep_work"]:
        storage.delete_tree(WORK)
    return summary


def _marked(fn: Callable, key: str, cfg: dict[str, Any], output: str, args: tuple) -> dict[str, Any]:
    """Run one unit of a phase inside its task and record its completion marker after its files."""
    result = fn(*args)
    write_marker(open_storage(output, FetchConfig.from_config(cfg)), DEDUP_DIR, key, result)
    return result


def _inputs_digest(files: list[str], root: str) -> str:
    """Identity of the input list: names (relative to the output root when inside it, so a moved output
    keeps its identity) and, for local files, sizes."""
    inside = root.rstrip("/") + "/"

    def name(uri: str) -> str:
        uri = uri if is_remote(uri) else os.path.realpath(uri)
        return uri[len(inside):] if uri.startswith(inside) else redact(uri)

    return digest([[name(uri), None if is_remote(uri) else os.path.getsize(uri)] for uri in files])


def _summarise(files, partitioned, minhash, finished, wall) -> dict[str, Any]:
    stages: dict[str, dict[str, Any]] = {}
    for result in finished:
        for name, st in result["stages"].items():
            agg = stages.setdefault(name, {})
            for key, value in st.items():
                agg[key] = agg.get(key, 0) + value
    if minhash:
        agg = stages.setdefault("minhash", {})
        for key in ("candidate_pairs", "pairs_after_check", "clusters"):
            agg[key] = sum(m.get(key, 0) for m in minhash)
    docs_in = sum(p["rows"] for p in partitioned)
    docs_out = sum(f["docs_out"] for f in finished)
    return {
        "totals": {"files": len(files), "docs_in": docs_in, "docs_out": docs_out, "docs_removed": docs_in - docs_out,
                   "wall_seconds": round(wall, 3), "docs_per_second": round(docs_in / wall, 1) if wall else None},
        "stages": stages,
        "inputs": [redact(f) for f in files],
        "parts": [{k: v for k, v in f.items()} for f in finished],
    }
