"""Driver side of `--stage dedup`: phase 1 per input file, phases 2 and 3 per part, then the URL store."""

from __future__ import annotations

import time
from typing import Any, Callable

from ..config import fingerprint
import pyarrow.parquet as pq

from ..dedup.phases import (DEDUP_DIR, REQUIRED_COLUMNS, phase_band_edges, phase_finish, phase_minhash,
                            phase_partition)
from ..dedup.urls import update_seen_store
from ..errors import UserError
from ..io.inputs import PARQUET_SUFFIXES, expand_inputs
from ..io.remote import FetchConfig, is_remote, redact
from ..io.storage import open_storage
from .ray_runner import RayRuntime

SUB_STAGES = ("minhash", "exact_substring", "url")


def run_dedup_stage(inputs: list[str], output: str, cfg: dict[str, Any], *, workers: int | None = None,
                    ray_address: str | None = None, limit: int | None = None,
                    log: Callable[[str], None] = print, runtime: RayRuntime | None = None) -> dict[str, Any]:
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
    log(f"[dedup] {len(files)} Parquet file(s), {parts} part(s), stages {', '.join(dcfg['stages'])} -> {storage.uri}/{DEDUP_DIR}/")
    started = time.time()
    retries = int(cfg["run"]["max_retries"])
    owned = runtime is None
    with (runtime or RayRuntime(workers, ray_address)).session(owned) as runtime:
        t0 = time.time()
        partitioned = runtime.map(phase_partition, [(i, uri, cfg, storage.uri) for i, uri in enumerate(files)], retries)
        log(f"[dedup] phase 1 (partition + MinHash band keys): {sum(p['rows'] for p in partitioned):,} docs, {time.time() - t0:.1f}s")
        minhash = []
        if "minhash" in dcfg["stages"]:
            t0 = time.time()
            groups = int(dcfg["minhash"]["band_groups"])
            runtime.map(phase_band_edges, [(p, g, cfg, storage.uri) for p in range(parts) for g in range(groups)], retries)
            minhash = runtime.map(phase_minhash, [(p, cfg, storage.uri) for p in range(parts)], retries)
            log(f"[dedup] phase 2 (bands -> pairs -> components): {sum(m['clusters'] for m in minhash):,} clusters, "
                f"{sum(m['removed'] for m in minhash):,} near duplicates, {time.time() - t0:.1f}s")
        t0 = time.time()
        finished = runtime.map(phase_finish, [(p, cfg, storage.uri) for p in range(parts)], retries)
        log(f"[dedup] phase 3 (remove, exact substrings, URLs, write): {time.time() - t0:.1f}s")
    new_hashes = [f.pop("new_url_hashes") for f in finished]
    seen_path = dcfg["url"]["seen"]
    seen_size = update_seen_store(seen_path, new_hashes) if seen_path and "url" in dcfg["stages"] else None
    summary = _summarise(files, partitioned, minhash, finished, time.time() - started)
    summary.update({"stage": "dedup", "config_fingerprint": fingerprint(cfg, ("dedup",)),
                    "output": f"{storage.uri}/{DEDUP_DIR}", "url_seen_store_size": seen_size})
    storage.write_json(f"{DEDUP_DIR}/stats.json", summary)
    return summary


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
