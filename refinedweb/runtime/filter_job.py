"""Driver side of `--stage filter`: expand inputs, load shared resources, run the tasks, write stats."""

from __future__ import annotations

import time
from typing import Any, Callable

from ..config import fingerprint
from ..io.inputs import expand_inputs
from ..io.remote import FetchConfig, redact
from ..io.storage import open_storage
from ..stages.blocklist import load_blocklist
from ..stats import summarise
from .filter_pass import FILTERED_DIR
from .ray_runner import Progress, RayRuntime


def run_filter_stage(inputs: list[str], output: str, cfg: dict[str, Any], *, workers: int | None = None,
                     ray_address: str | None = None, limit: int | None = None,
                     log: Callable[[str], None] = print, runtime: RayRuntime | None = None) -> dict[str, Any]:
    fetch = FetchConfig.from_config(cfg)
    files = expand_inputs(inputs, limit=limit, fetch=fetch)
    storage = open_storage(output, fetch)
    url_cfg = cfg["url_filter"]
    blocklist = load_blocklist(url_cfg["blocklist"], url_cfg["categories"]) if url_cfg["enabled"] and url_cfg["blocklist"] else None
    log(f"[filter] {len(files)} input file(s) -> {storage.uri}/{FILTERED_DIR}/")
    started = time.time()
    results: list[dict[str, Any]] = []
    progress = Progress(len(files), float(cfg["run"]["progress_every_seconds"]), log)

    def on_result(result: dict[str, Any]) -> None:
        results.append(result)
        progress.update(result)
        if result["status"] != "ok":
            log(f"[filter] FAILED {result['uri']}: {result['error']}")

    owned = runtime is None
    with (runtime or RayRuntime(workers, ray_address)).session(owned) as runtime:
        log(f"[filter] Ray: {runtime.slots} worker slot(s){' on ' + ray_address if ray_address else ' (embedded)'}")
        runtime.map_files(files, cfg, storage.uri, blocklist, on_result, per_host=fetch.max_concurrent_per_host)
    order = {redact(uri): i for i, uri in enumerate(files)}
    results.sort(key=lambda r: order.get(r["uri"], 0))
    summary = summarise(results, time.time() - started,
                        extra={"stage": "filter", "config_fingerprint": fingerprint(cfg), "output": f"{storage.uri}/{FILTERED_DIR}"})
    storage.write_json(f"{FILTERED_DIR}/stats.json", summary)
    return summary
