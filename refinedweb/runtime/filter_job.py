"""Driver side of `--stage filter`: expand inputs, load shared resources, run the tasks, write stats."""

from __future__ import annotations

import time
from typing import Any, Callable

from ..io.inputs import expand_inputs
from ..io.manifest import MANIFEST, write_manifest
from ..io.remote import FetchConfig, redact
from ..io.storage import open_storage
from ..stages.blocklist import load_blocklist
from ..stages.contract import check_stages, labels, stage_entries, versions
from ..stats import STATS, summarise
from .filter_pass import DROPPED_DIR, FILTERED_DIR, max_error_fraction, shard_prefix
from .ray_runner import Progress, RayRuntime, memory_report
from .run_state import StageState, filter_sections
from .units import BATCH


def run_filter_stage(inputs: list[str], output: str, cfg: dict[str, Any], *, workers: int | None = None,
                     ray_address: str | None = None, limit: int | None = None,
                     log: Callable[[str], None] = print, runtime: RayRuntime | None = None,
                     overwrite: bool = False, progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Filter every input file into `<output>/filtered/`. Files finished by an earlier run of the same
    config (they have a completion marker) are not redone: their stored results go into the stage's stats."""
    check_stages(cfg)
    max_error_fraction(cfg)
    fetch = FetchConfig.from_config(cfg)
    files = expand_inputs(inputs, limit=limit, fetch=fetch)
    storage = open_storage(output, fetch)
    state = StageState(storage, FILTERED_DIR, cfg, filter_sections(cfg), versions(cfg))
    state.prepare(overwrite, log, extra_folders=(DROPPED_DIR,))
    done = state.completed()
    finished = {uri: done[shard_prefix(uri)] for uri in files if shard_prefix(uri) in done}
    todo = [uri for uri in files if uri not in finished]
    url_cfg = cfg["url_filter"]
    wants_blocklist = bool(todo and "url_filter" in stage_entries(cfg) and url_cfg["enabled"] and url_cfg["blocklist"])
    blocklist = load_blocklist(url_cfg["blocklist"], url_cfg["categories"]) if wants_blocklist else None
    log(f"[filter] {len(files)} input file(s) -> {storage.uri}/{FILTERED_DIR}/")
    if finished:
        log(f"[filter] resuming: {len(finished)} file(s) already done, {len(todo)} to go")
    started = time.time()
    results: list[dict[str, Any]] = [{**r, "resumed": True} for r in finished.values()]
    tracker = Progress(len(todo), float(cfg["run"]["progress_every_seconds"]), log, emit=progress)

    batch: dict[str, dict[str, Any]] = {}        # markers of finished files, gathered into one file every BATCH

    def on_result(result: dict[str, Any], uri: str) -> None:
        results.append(result)
        tracker.update(result)
        if result["status"] != "ok":
            log(f"[filter] FAILED {result['uri']}: {result['error']}")
        else:
            batch[shard_prefix(uri)] = result
            if len(batch) >= BATCH:
                state.consolidate(f"files-{min(batch)}", dict(batch))
                batch.clear()

    owned = runtime is None
    if todo:
        with (runtime or RayRuntime.for_config(cfg, workers, ray_address)).session(owned) as runtime:
            runtime.start()
            log(f"[filter] Ray: {runtime.slots} worker slot(s) {runtime.describe()}")
            runtime.map_files(todo, cfg, storage.uri, blocklist, on_result, per_host=fetch.max_concurrent_per_host)
    if batch:
        state.consolidate(f"files-{min(batch)}", batch)
    order = {redact(uri): i for i, uri in enumerate(files)}
    results.sort(key=lambda r: order.get(r["uri"], 0))
    summary = summarise(results, time.time() - started,
                        extra={"stage": "filter", "config_fingerprint": state.fingerprint, "labels": labels(cfg),
                               "files_resumed": len(finished), "output": f"{storage.uri}/{FILTERED_DIR}",
                               **memory_report(results, cfg, "filter", log)})
    storage.write_json(f"{FILTERED_DIR}/{STATS}", summary)
    if not summary["totals"]["files_failed"]:
        # the manifest says "complete": only when every input file is in
        entries = [e for r in results for e in r.get("shards", []) if e["path"].startswith(FILTERED_DIR + "/")]
        write_manifest(storage, "filter", FILTERED_DIR, entries, config_fingerprint=state.fingerprint)
    else:
        storage.delete(f"{FILTERED_DIR}/{MANIFEST}")
    return summary
