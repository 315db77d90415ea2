"""Driver side of `--stage dedup`: plans the work (parts, buckets, what each method records for itself),
runs each method of `dedup.methods` (`dedup/methods/`), the output per part and the tail merges through the
run-units helper, then what a method does after the output (URL dedup's contribution to the seen-URL store),
`.refinedweb/stats.json` and `.refinedweb/manifest.json`."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from ..dedup import output as out_phases
from ..dedup import plan as ph
from ..dedup.corpus import Corpus, plan_corpus, with_plan
from ..dedup.methods import configured
from ..dedup.methods import versions as method_versions
from ..dedup.shuffle import passes_for, task_budget_bytes
from ..errors import UserError
from ..io.ingest import ingest_inputs
from ..io.inputs import expand_inputs
from ..io.manifest import write_manifest
from ..io.parquet import ShardLimits
from ..io.remote import FetchConfig, is_remote, redact
from ..io.storage import open_storage
from ..io.tables import TABLE_SUFFIXES, is_jsonl
from ..stats import STATS
from .memory import memory_report
from .ray_runner import RayRuntime
from .run_state import StageState, dedup_sections, digest, write_marker
from .units import Units

DEDUP_DIR = ph.DEDUP_DIR


def check_dedup_config(dcfg: dict[str, Any]) -> None:
    methods = list(dcfg["methods"])
    if len(set(methods)) != len(methods):
        raise UserError("dedup.methods lists a method twice")
    configured({"dedup": dcfg})                  # each one importable and a method: one line otherwise
    parts = dcfg["parts"]
    if parts != "auto" and (isinstance(parts, bool) or not isinstance(parts, int) or parts < 1):
        raise UserError(f"dedup.parts must be auto or an integer >= 1, got {parts!r}")
    if not 1 <= int(dcfg["minhash"]["band_groups"]) <= int(dcfg["minhash"]["bands"]):
        raise UserError("dedup.minhash.band_groups must be between 1 and dedup.minhash.bands")
    from ..dedup.kernels.minhash import MinHashConfig
    from ..dedup.kernels.windows import ExactSubstringConfig

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
    files = expand_inputs(inputs, suffixes=TABLE_SUFFIXES, limit=limit, fetch=fetch)
    if not any(is_jsonl(f) for f in files):      # Parquet: a missing column is refused before anything is written
        plan_corpus(files, fetch)
    methods = configured(cfg)
    storage = open_storage(output, fetch)
    state = StageState(storage, DEDUP_DIR, cfg, dedup_sections(cfg), method_versions(cfg))
    state.prepare(overwrite, log, extra_folders=(ph.WORK,), inputs_digest=_inputs_digest(files, storage.uri))
    started = time.time()
    owned = runtime is None
    runtime = runtime or RayRuntime.for_config(cfg, workers, ray_address)
    files, ingested = ingest_inputs(files, f"{ph.WORK}/jsonl", storage.uri, str(cfg["inputs"]["text_field"]), fetch,
                                    runtime, int(cfg["run"]["max_retries"]), log)
    corpus = plan_corpus(files, fetch)
    for method in methods.values():              # settings that need the input: refused before any work
        check = getattr(method, "check", None)
        if check is not None:
            check(cfg, corpus)
    budget = task_budget_bytes(cfg)
    plan = state.completed("plan-").get("plan-all")
    if plan is None:            # a resumed run keeps the plan its intermediate data was made with
        plan = plan_work(cfg, corpus, budget, _cpus(runtime, cfg, workers))
        for name, method in methods.items():    # e.g. the seen-URL store's contributions URL dedup will read
            if hasattr(method, "plan"):
                plan["methods"][name] = method.plan(cfg, corpus, budget, f"{storage.uri}/{DEDUP_DIR}", fetch)
                plan["buckets"].update(plan["methods"][name].get("buckets", {}))
        write_marker(storage, DEDUP_DIR, "plan-all", plan)
    else:
        _log_kept_plan(plan, cfg, corpus, budget, log)
    corpus = with_plan(corpus, plan["parts"], plan["buckets"])
    parts = corpus.parts
    storage.write_text(ph.CORPUS, corpus.to_json())
    log(f"[dedup] {len(files)} Parquet file(s), {corpus.documents:,} documents in {parts} part(s), "
        f"methods {', '.join(methods)} -> {storage.uri}/{DEDUP_DIR}/")
    extras: dict[str, dict[str, Any]] = {}
    uri = storage.uri
    with runtime.session(owned) as runtime:
        units = Units(runtime, state, fetch, int(cfg["run"]["max_retries"]))
        run = ph.DedupRun(units=units, cfg=cfg, uri=uri, corpus=corpus, budget=budget, log=log, storage=storage,
                          fetch=fetch, plans=plan.get("methods", {}))
        for name, method in methods.items():
            extras[name] = method.run(run)
        t0 = time.time()
        finished = units.run("finish", out_phases.finish_part, {k: (p, cfg, uri) for p, k in run.part_keys.items()})
        bins = out_phases.plan_tail_merges([t for f in finished for t in out_phases.part_tails(f)],
                                           ShardLimits.from_config(cfg["output"]))
        merged = units.run("merge", out_phases.merge_tails, {f"b={i:05d}": (i, b, cfg, uri) for i, b in enumerate(bins)})
        log(f"[dedup] output: {sum(f['docs_out'] for f in finished):,} documents, "
            f"{sum(len(f['shards']) for f in finished) + sum(len(m['shards']) for m in merged)} shard(s), "
            f"{time.time() - t0:.1f}s")
        for name, method in methods.items():     # e.g. URL dedup's contribution to the seen-URL store
            after = getattr(method, "after_output", None)
            if after is not None:
                extras[name].update(after(run, finished))
    if units.resumed:
        log(f"[dedup] resumed: {units.resumed} unit(s) of work were already done by an earlier run")
    summary = _summarise(files, corpus.documents, finished, extras, time.time() - started)
    if ingested:
        summary["jsonl"] = {"files": len(ingested), "rows": sum(r["rows"] for r in ingested),
                            "bad_lines": sum(r["notes"].get("bad_line", 0) for r in ingested),
                            "truncated_inputs": sum(r["notes"].get("truncated_input", 0) for r in ingested),
                            "bad_line_examples": [line for r in ingested for line in r["bad_lines"]][:100]}
    summary.update({"stage": "dedup", "config_fingerprint": state.fingerprint, "units_resumed": units.resumed,
                    "output": f"{storage.uri}/{DEDUP_DIR}", **memory_report(units.results, cfg, "dedup", log)})
    storage.write_json(f"{DEDUP_DIR}/{STATS}", summary)
    entries = [e for r in (*finished, *merged) for e in r.get("shards", [])]
    write_manifest(storage, "dedup", DEDUP_DIR, entries, config_fingerprint=state.fingerprint)
    if not dcfg["keep_work"]:
        storage.delete_tree(ph.WORK)
    return summary



PARTS_AUTO_DOCUMENTS = 1_000_000     # `parts: auto`: at most this many documents per part...
PARTS_AUTO_PER_CPU = 2               # ...and at least two parts per CPU (so every core has scans to run)
MAX_BUCKETS, BUCKETS_PER_PART = 8192, 64


def plan_work(cfg: dict[str, Any], corpus: Corpus, budget: int, cpus: int) -> dict[str, Any]:
    """How the work is split: parts (scans and output, `dedup.parts`) and shuffle buckets per method,
    enough that a bucket's records fit the task budget in one pass (estimated from the footers). None of
    it changes what is found; it is stored with the first run so that a resumed run reuses it."""
    dcfg = cfg["dedup"]
    n = corpus.documents
    parts = dcfg["parts"]
    if parts == "auto":
        parts = max(PARTS_AUTO_PER_CPU * cpus, -(-n // PARTS_AUTO_DOCUMENTS))
        parts = max(1, min(parts, n // 1000))           # no tiny parts for a tiny corpus
    parts = int(parts)
    # more buckets than that only cost files and driver bookkeeping: a bigger bucket is read in passes
    cap = min(MAX_BUCKETS, BUCKETS_PER_PART * parts)
    buckets = {}
    for name, method in configured(cfg).items():
        if not hasattr(method, "BUCKET_BYTES"):  # a method without a shuffle
            continue
        wanted = passes_for(method.planned_records(cfg, corpus), method.BUCKET_BYTES, budget)
        buckets[name] = max(method.min_buckets(cfg, parts), min(cap, wanted))
    return {"parts": parts, "buckets": buckets, "methods": {}}


def _log_kept_plan(plan: dict[str, Any], cfg: dict[str, Any], corpus: Corpus, budget: int,
                   log: Callable[[str], None]) -> None:
    """A resumed run keeps the split its intermediate data was made with; say so when the settings now ask for
    another (they apply to the next fresh start; the memory budget applies to the units left)."""
    if cfg["dedup"]["parts"] != "auto" and int(cfg["dedup"]["parts"]) != plan["parts"]:
        log(f"[dedup] resuming with the earlier run's {plan['parts']} part(s) and its buckets (dedup.parts="
            f"{cfg['dedup']['parts']} applies to a fresh start); task memory {budget >> 20} MB for the units left")


def _cpus(runtime, cfg: dict[str, Any], workers: int | None) -> int:
    if workers or cfg["run"].get("workers"):
        return int(workers or cfg["run"]["workers"])
    if runtime.address:                          # a cluster: the CPUs it has
        return int(runtime.start().slots)
    return os.cpu_count() or 1


def _inputs_digest(files: list[str], root: str) -> str:
    """Identity of the input list: names (relative to the output root when inside it, so a moved output
    keeps its identity) and, for local files, sizes."""
    inside = root.rstrip("/") + "/"

    def name(uri: str) -> str:
        uri = uri if is_remote(uri) else os.path.realpath(uri)
        return uri[len(inside):] if uri.startswith(inside) else redact(uri)

    return digest([[name(uri), None if is_remote(uri) else os.path.getsize(uri)] for uri in files])


def _summarise(files, documents: int, finished, extras, wall) -> dict[str, Any]:
    methods: dict[str, dict[str, Any]] = {}
    for result in finished:
        for name, st in result["methods"].items():
            agg = methods.setdefault(name, {})
            for key, value in st.items():
                agg[key] = agg.get(key, 0) + value
    for name, agg in methods.items():
        agg["docs_removed"] = agg["docs_in"] - agg["docs_out"]
        agg.update(extras.get(name, {}))
    docs_out = sum(f["docs_out"] for f in finished)
    return {
        "totals": {"files": len(files), "docs_in": documents, "docs_out": docs_out, "docs_removed": documents - docs_out,
                   "wall_seconds": round(wall, 3), "docs_per_second": round(documents / wall, 1) if wall else None},
        "methods": methods,
        "inputs": [redact(f) for f in files],
        "parts": [{k: v for k, v in f.items() if k != "methods"} for f in finished],
    }
