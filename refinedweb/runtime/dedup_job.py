"""Driver side of `--stage dedup`: schedules the phases of `dedup/phases.py` (scans per part, buckets,
component rounds, output per part, tail merges) through the run-units helper, then the URL store,
`.refinedweb/stats.json` and `.refinedweb/manifest.json`."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from ..dedup import phases as ph
from ..dedup.corpus import Corpus, plan_corpus, with_plan
from ..dedup.shuffle import bucket_segments, passes_for, task_budget_bytes
from ..dedup.urls import update_seen_store
from ..errors import UserError
from ..io.inputs import PARQUET_SUFFIXES, expand_inputs
from ..io.manifest import write_manifest
from ..io.parquet import ShardLimits
from ..io.remote import FetchConfig, is_remote, redact
from ..io.storage import open_storage
from ..stats import STATS
from .ray_runner import RayRuntime, memory_report
from .run_state import DEDUP_SECTIONS, StageState, digest, write_marker
from .units import Units

DEDUP_DIR = ph.DEDUP_DIR
SUB_STAGES = ph.SUB_STAGES
# peak bytes per record while a bucket is grouped (record, ordinal, sort order and its temporaries, sorted
# copies), from the 2M-document benchmark's worker peaks
BUCKET_BYTES = {"minhash": 96, "exact_substring": 96, "url": 128}
CC_BYTES_PER_EDGE = 160      # union-find over all pairs at once: both ends, unique, inverse, parents
MAX_CC_ROUNDS = 200


def check_dedup_config(dcfg: dict[str, Any]) -> None:
    stages = list(dcfg["stages"])
    unknown = [s for s in stages if s not in SUB_STAGES]
    if unknown:
        raise UserError(f"unknown dedup stage(s) {', '.join(map(str, unknown))}: dedup.stages takes "
                        f"{', '.join(SUB_STAGES)}")
    if len(set(stages)) != len(stages):
        raise UserError("dedup.stages lists a stage twice")
    parts = dcfg["parts"]
    if parts != "auto" and (isinstance(parts, bool) or not isinstance(parts, int) or parts < 1):
        raise UserError(f"dedup.parts must be auto or an integer >= 1, got {parts!r}")
    if not 1 <= int(dcfg["minhash"]["band_groups"]) <= int(dcfg["minhash"]["bands"]):
        raise UserError("dedup.minhash.band_groups must be between 1 and dedup.minhash.bands")
    from ..dedup.exact_substring import ExactSubstringConfig
    from ..dedup.minhash import MinHashConfig

    MinHashConfig.from_config(dcfg["minhash"])
    ExactSubstringConfig.from_config(dcfg["exact_substring"])


def run_dedup_stage(inputs: list[str], output: str, cfg: dict[str, Any], *, workers: int | None = None,
                    ray_address: str | None = None, limit: int | None = None,
                    log: Callable[[str], None] = print, runtime: RayRuntime | None = None,
                    overwrite: bool = False) -> dict[str, Any]:
    """Deduplicate the Parquet inputs into `<output>/dedup/`, corpus-wide whatever `dedup.parts`. Every unit
    of every phase leaves a completion marker, so a re-run after a crash redoes only unfinished units."""
    dcfg = cfg["dedup"]
    check_dedup_config(dcfg)
    fetch = FetchConfig.from_config(cfg)
    files = expand_inputs(inputs, suffixes=PARQUET_SUFFIXES, limit=limit, fetch=fetch)
    corpus = plan_corpus(files, fetch)
    priority = dcfg["url"]["priority"]
    priority_type = None
    if priority and "url" in dcfg["stages"]:
        if priority not in corpus.schema.names:
            raise UserError(f"dedup.url.priority names column '{priority}', which the input does not have")
        field = corpus.schema.field(priority)
        ph.priority_dtype(field.type)
        import pyarrow as pa

        priority_type = pa.schema([field]).serialize().to_pybytes().hex()
    storage = open_storage(output, fetch)
    state = StageState(storage, DEDUP_DIR, cfg, DEDUP_SECTIONS)
    state.prepare(overwrite, log, extra_folders=(ph.WORK,), inputs_digest=_inputs_digest(files, storage.uri))
    started = time.time()
    owned = runtime is None
    runtime = runtime or RayRuntime.for_config(cfg, workers, ray_address)
    budget = task_budget_bytes(cfg)
    plan = state.completed("plan-").get("plan-all")
    if plan is None:            # a resumed run keeps the plan its intermediate data was made with
        plan = plan_work(cfg, corpus, budget, _cpus(runtime, cfg, workers))
        write_marker(storage, DEDUP_DIR, "plan-all", plan)
    corpus = with_plan(corpus, plan["parts"], plan["buckets"])
    parts = corpus.parts
    storage.write_text(ph.CORPUS, corpus.to_json())
    log(f"[dedup] {len(files)} Parquet file(s), {corpus.documents:,} documents in {parts} part(s), "
        f"stages {', '.join(dcfg['stages'])} -> {storage.uri}/{DEDUP_DIR}/")
    extras: dict[str, dict[str, Any]] = {}
    uri = storage.uri
    part_keys = {p: f"p={p:05d}" for p in range(parts)}
    with runtime.session(owned) as runtime:
        units = Units(runtime, state, fetch, int(cfg["run"]["max_retries"]))
        for stage in dcfg["stages"]:
            t0 = time.time()
            if stage == "minhash":
                extras[stage] = _minhash(units, cfg, uri, parts, budget, part_keys, log)
                _spent(storage, dcfg, f"{ph.WORK}/minhash/records")
                _spent(storage, dcfg, f"{ph.WORK}/minhash/cc")
            elif stage == "exact_substring":
                scans = units.run("exact-scan", ph.scan_exact, {k: (p, cfg, uri) for p, k in part_keys.items()})
                buckets = units.run("exact-bucket", ph.exact_bucket,
                                    {f"b={b:05d}": (b, n, seg, cfg, uri) for b, n, seg in _buckets(scans, stage, budget)})
                extras[stage] = {key: sum(r[key] for r in buckets)
                                 for key in ("windows", "repeated_windows", "marked_windows")}
                extras[stage]["tokens"] = sum(s["tokens"] for s in scans)
                extras[stage].update(_bucket_stats(buckets))
                _spent(storage, dcfg, f"{ph.WORK}/exact_substring/records")
                units.run("exact-marks", ph.merge_marks, {k: (p, cfg, uri) for p, k in part_keys.items()})
                _spent(storage, dcfg, f"{ph.WORK}/exact_substring/bucket-marks")
                log(f"[dedup] exact_substring: {extras[stage]['tokens']:,} tokens, "
                    f"{extras[stage]['repeated_windows']:,} windows repeated, {time.time() - t0:.1f}s")
            else:
                scans = units.run("url-scan", ph.scan_url,
                                  {k: (p, priority_type, cfg, uri) for p, k in part_keys.items()})
                buckets = units.run("url-bucket", ph.url_bucket,
                                    {f"b={b:05d}": (b, n, seg, priority_type, cfg, uri)
                                     for b, n, seg in _buckets(scans, stage, budget)})
                extras[stage] = {key: sum(r[key] for r in buckets) for key in ("duplicates_in_run", "seen_in_earlier_runs")}
                extras[stage].update(_bucket_stats(buckets))
                _spent(storage, dcfg, f"{ph.WORK}/url/records")
                log(f"[dedup] url: {extras[stage]['duplicates_in_run']:,} duplicate URL(s), "
                    f"{extras[stage]['seen_in_earlier_runs']:,} seen in earlier runs, {time.time() - t0:.1f}s")
        t0 = time.time()
        finished = units.run("finish", ph.finish_part, {k: (p, cfg, uri) for p, k in part_keys.items()})
        bins = ph.plan_tail_merges([f["tail"] for f in finished if f.get("tail")], ShardLimits.from_config(cfg["output"]))
        merged = units.run("merge", ph.merge_tails, {f"b={i:05d}": (i, b, cfg, uri) for i, b in enumerate(bins)})
        log(f"[dedup] output: {sum(f['docs_out'] for f in finished):,} documents, "
            f"{sum(len(f['shards']) for f in finished) + sum(len(m['shards']) for m in merged)} shard(s), "
            f"{time.time() - t0:.1f}s")
    if units.resumed:
        log(f"[dedup] resumed: {units.resumed} unit(s) of work were already done by an earlier run")
    seen_path = dcfg["url"]["seen"]
    seen_size = None
    if seen_path and "url" in dcfg["stages"]:
        # a union: running it again after a crash adds nothing new, so it needs no marker
        new_hashes = [ph.load_npz(storage, f["url_hashes"])["hashes"] for f in finished if f.get("url_hashes")]
        seen_size = update_seen_store(seen_path, new_hashes, fetch)
    summary = _summarise(files, corpus.documents, finished, extras, time.time() - started)
    summary.update({"stage": "dedup", "config_fingerprint": state.fingerprint, "units_resumed": units.resumed,
                    "output": f"{storage.uri}/{DEDUP_DIR}", "url_seen_store_size": seen_size,
                    **memory_report(units.results, cfg, "dedup", log)})
    storage.write_json(f"{DEDUP_DIR}/{STATS}", summary)
    entries = [e for r in (*finished, *merged) for e in r.get("shards", [])]
    write_manifest(storage, "dedup", DEDUP_DIR, entries, config_fingerprint=state.fingerprint)
    if not dcfg["keep_work"]:
        storage.delete_tree(ph.WORK)
    return summary



PARTS_AUTO_DOCUMENTS = 1_000_000     # `parts: auto`: at most this many documents per part...
PARTS_AUTO_PER_CPU = 2               # ...and at least two parts per CPU (so every core has scans to run)
MAX_BUCKETS, BUCKETS_PER_PART = 8192, 64
GPT2_BYTES_PER_TOKEN = 3.0           # a low estimate of web text's UTF-8 bytes per GPT-2 token


def plan_work(cfg: dict[str, Any], corpus: Corpus, budget: int, cpus: int) -> dict[str, Any]:
    """How the work is split: parts (scans and output, `dedup.parts`) and shuffle buckets per sub-stage,
    enough that a bucket's records fit the task budget in one pass (estimated from the footers). None of
    it changes what is found; it is stored with the first run so that a resumed run reuses it."""
    dcfg = cfg["dedup"]
    n = corpus.documents
    parts = dcfg["parts"]
    if parts == "auto":
        parts = max(PARTS_AUTO_PER_CPU * cpus, -(-n // PARTS_AUTO_DOCUMENTS))
        parts = max(1, min(parts, n // 1000))           # no tiny parts for a tiny corpus
    parts = int(parts)
    records = {"minhash": n * int(dcfg["minhash"]["bands"]), "url": n,
               "exact_substring": int(corpus.text_bytes / GPT2_BYTES_PER_TOKEN)}
    floor = {"minhash": parts * int(dcfg["minhash"]["band_groups"]), "exact_substring": parts, "url": parts}
    # more buckets than that only cost files and driver bookkeeping: a bigger bucket is read in passes
    cap = min(MAX_BUCKETS, BUCKETS_PER_PART * parts)
    buckets = {stage: max(floor[stage], min(cap, passes_for(records[stage], BUCKET_BYTES[stage], budget)))
               for stage in SUB_STAGES}
    return {"parts": parts, "buckets": buckets}


def _cpus(runtime, cfg: dict[str, Any], workers: int | None) -> int:
    if workers or cfg["run"].get("workers"):
        return int(workers or cfg["run"]["workers"])
    if runtime.address:                          # a cluster: the CPUs it has
        return int(runtime.start().slots)
    return os.cpu_count() or 1


def _bucket_stats(results: list[dict[str, Any]]) -> dict[str, int]:
    return {"buckets": len(results), "max_passes": max((r["passes"] for r in results), default=0)}


def _spent(storage, dcfg: dict[str, Any], folder: str) -> None:
    """A shuffle's records are read by its bucket phase only: once that is done, free the disk early."""
    if not dcfg["keep_work"]:
        storage.delete_tree(folder)


def _buckets(scans: list[dict[str, Any]], stage: str, budget: int) -> list[tuple[int, int, list]]:
    """(bucket, passes to stay within the task budget, its segments in the parts' record files)."""
    out = []
    for b in range(len(scans[0]["records"]) if scans else 0):
        segments = bucket_segments(scans, b)
        out.append((b, passes_for(sum(n for _, _, n in segments), BUCKET_BYTES[stage], budget), segments))
    return out


def _minhash(units: Units, cfg: dict[str, Any], uri: str, parts: int, budget: int,
             part_keys: dict[int, str], log: Callable[[str], None]) -> dict[str, Any]:
    t0 = time.time()
    mcfg = cfg["dedup"]["minhash"]
    scans = units.run("minhash-scan", ph.scan_minhash, {k: (p, cfg, uri) for p, k in part_keys.items()})
    buckets = units.run("minhash-bucket", ph.minhash_bucket,
                        {f"b={b:05d}": (b, n, seg, cfg, uri) for b, n, seg in _buckets(scans, "minhash", budget)})
    out: dict[str, Any] = {"band_keys": sum(sum(s["records"]) for s in scans),
                           "bucket_pairs": sum(b["pairs"] for b in buckets), **_bucket_stats(buckets)}
    edges = sum(b["edges"] for b in buckets)
    if mcfg["jaccard_check"]:
        units.run("check-a", ph.check_hop_a, {k: (p, cfg, uri) for p, k in part_keys.items()})
        checked = units.run("check-b", ph.check_hop_b, {k: (p, cfg, uri) for p, k in part_keys.items()})
        out["candidate_pairs"] = sum(c["candidate_pairs"] for c in checked)
        out["pairs_after_check"] = edges = sum(c["pairs_after_check"] for c in checked)
    if edges * CC_BYTES_PER_EDGE <= budget:
        result = units.run("cc-memory", ph.cc_in_memory, {"all": (cfg, uri)})[0]
        out.update(components="in_memory", clusters=result["clusters"], removed=result["removed"])
    else:
        round_, previous = 0, None
        while True:
            if round_ >= MAX_CC_ROUNDS:
                raise RuntimeError(f"connected components did not converge in {MAX_CC_ROUNDS} rounds")
            keys = {f"q={q:05d}": (round_, q, cfg, uri) for q in range(parts)}
            large = _checksum(units.run(f"cc-r={round_:03d}-ls", ph.cc_large_star, keys))
            small = _checksum(units.run(f"cc-r={round_:03d}-ss", ph.cc_small_star, keys))
            if previous == large == small:       # neither step changes the edges: stars around minima
                break
            previous = small
            round_ += 1
        found = units.run(f"cc-r={round_:03d}-extract", ph.cc_extract, keys)
        out.update(components=f"{round_ + 1} large/small-star round(s)", clusters=sum(f["clusters"] for f in found),
                   removed=sum(f["removed"] for f in found))
    log(f"[dedup] minhash: {out['band_keys']:,} band keys, {out['clusters']:,} clusters, {out['removed']:,} near "
        f"duplicates (components {out['components']}), {time.time() - t0:.1f}s")
    return out


def _checksum(results: list[dict[str, Any]]) -> tuple[int, int]:
    return sum(r["edges"] for r in results), sum(r["checksum"] for r in results) % (1 << 64)


def _inputs_digest(files: list[str], root: str) -> str:
    """Identity of the input list: names (relative to the output root when inside it, so a moved output
    keeps its identity) and, for local files, sizes."""
    inside = root.rstrip("/") + "/"

    def name(uri: str) -> str:
        uri = uri if is_remote(uri) else os.path.realpath(uri)
        return uri[len(inside):] if uri.startswith(inside) else redact(uri)

    return digest([[name(uri), None if is_remote(uri) else os.path.getsize(uri)] for uri in files])


def _summarise(files, documents: int, finished, extras, wall) -> dict[str, Any]:
    stages: dict[str, dict[str, Any]] = {}
    for result in finished:
        for name, st in result["stages"].items():
            agg = stages.setdefault(name, {})
            for key, value in st.items():
                agg[key] = agg.get(key, 0) + value
    for name, agg in stages.items():
        agg["docs_removed"] = agg["docs_in"] - agg["docs_out"]
        agg.update(extras.get(name, {}))
    docs_out = sum(f["docs_out"] for f in finished)
    return {
        "totals": {"files": len(files), "docs_in": documents, "docs_out": docs_out, "docs_removed": documents - docs_out,
                   "wall_seconds": round(wall, 3), "docs_per_second": round(documents / wall, 1) if wall else None},
        "stages": stages,
        "inputs": [redact(f) for f in files],
        "parts": [{k: v for k, v in f.items() if k != "stages"} for f in finished],
    }
