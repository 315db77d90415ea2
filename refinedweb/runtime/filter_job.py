"""Driver side of `--stage filter` (WARC -> filtered/) and of document stages over existing Parquet
(`--stage quality,mystage` -> <last stage>/): expand inputs, load shared resources, run a task per input file,
write stats and the manifest."""

from __future__ import annotations

import time
from typing import Any, Callable

import pyarrow as pa

from ..errors import UserError
from ..io.ingest import ingest_inputs
from ..io.inputs import expand_inputs
from ..io.manifest import MANIFEST, write_manifest
from ..io.random_access import open_parquet
from ..io.remote import FetchConfig, redact
from ..io.storage import open_storage
from ..io.tables import TABLE_SUFFIXES
from ..stages.blocklist import load_blocklist
from ..stages.contract import PLANS, TOKENS, check_stages, labels, section_name, stage_entries, stage_modules, versions
from ..stats import META, STATS, summarise
from .documents_pass import text_column_missing
from .filter_pass import DROPPED_DIR, FILTERED_DIR, max_error_fraction, shard_prefix
from .memory import memory_report
from .progress import Progress
from .ray_runner import RayRuntime
from .run_state import StageState, filter_sections
from .stage_plans import file_identities, fingerprint_entries, make_plans
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
    return _run_pass(files, output, cfg, FILTERED_DIR, "filter", fetch=fetch, workers=workers,
                     ray_address=ray_address, log=log, runtime=runtime, overwrite=overwrite, progress=progress)


def run_document_stages(entries: list[str], inputs: list[str], output: str, cfg: dict[str, Any], *,
                        workers: int | None = None, ray_address: str | None = None, limit: int | None = None,
                        log: Callable[[str], None] = print, runtime: RayRuntime | None = None, overwrite: bool = False,
                        progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run document stages (`--stage quality,mystage`) over existing Parquet with a `text` column into
    `<output>/<last stage>/` (`documents_pass.py`): the same accounting, resume, progress and stats as filter."""
    cfg = {**cfg, "filter": {**cfg["filter"], "stages": list(entries)}}
    modules = stage_modules(cfg)
    html = [m.NAME for m in modules if getattr(m, "READS_HTML", False)]
    if html:
        raise UserError(f"--stage {','.join(entries)}: {', '.join(html)} read the page's HTML, which Parquet input "
                        "does not have (run them in the filter stage on WARCs)")
    check_stages(cfg)
    max_error_fraction(cfg)
    fetch = FetchConfig.from_config(cfg)
    files = expand_inputs(inputs, suffixes=TABLE_SUFFIXES, limit=limit, fetch=fetch)
    folder = modules[-1].NAME
    owned = runtime is None
    runtime = runtime or RayRuntime.for_config(cfg, workers, ray_address)
    files, ingested = ingest_inputs(files, f"_work/{folder}/jsonl", open_storage(output, fetch).uri,
                                    str(cfg["inputs"]["text_field"]), fetch, runtime, int(cfg["run"]["max_retries"]), log)
    recount = False
    for uri in files:                            # a file without text is refused before any work
        try:
            schema = open_parquet(uri, fetch).schema_arrow
        except (OSError, pa.ArrowInvalid) as exc:
            raise UserError(f"cannot read Parquet input {redact(uri)}: {exc}") from None
        if text_column_missing(schema):
            raise UserError(f"Parquet input {redact(uri)} has no string column 'text' for the document stages "
                            "(inputs.text_field renames the text of JSONL inputs only)")
        recount = recount or "token_count" in schema.names
    edits = [m.NAME for m in modules if getattr(m, "EDITS_TEXT", False)]
    if edits and TOKENS not in entries and files and recount:
        # the input's token_count would be stale where a stage edited the text: counted again, after the stages
        cfg = {**cfg, "filter": {**cfg["filter"], "stages": [*entries, TOKENS]}}
        log(f"[{folder}] {', '.join(edits)} edit(s) the text of input with token_count: {TOKENS} runs last to "
            "count it again")
    if folder in (FILTERED_DIR, DROPPED_DIR, "dedup", "mix", "tokenized"):
        raise UserError(f"--stage {','.join(entries)}: the last stage's name '{folder}' is another stage's folder")
    with runtime.session(owned) as runtime:
        summary = _run_pass(files, output, cfg, folder, "documents", fetch=fetch, workers=workers,
                            ray_address=ray_address, log=log, runtime=runtime, overwrite=overwrite, progress=progress)
    if ingested and not summary["totals"]["files_failed"]:
        open_storage(output, fetch).delete_tree(f"_work/{folder}")
    return summary


def _run_pass(files: list[str], output: str, cfg: dict[str, Any], folder: str, kind: str, *, fetch: FetchConfig,
              workers, ray_address, log, runtime, overwrite, progress) -> dict[str, Any]:
    """One task per input file (`kind`: filter_file or documents_file) into `<output>/<folder>/`, resumable."""
    tag = "filter" if kind == "filter" else folder          # the log lines' prefix
    storage = open_storage(output, fetch)
    sections = (*filter_sections(cfg), "inputs") if kind == "documents" else filter_sections(cfg)
    identities = file_identities(cfg, fetch)
    state = StageState(storage, folder, cfg, sections, versions(cfg), fingerprint_entries(identities))
    state.prepare(overwrite, log, extra_folders=(DROPPED_DIR,))
    owned = runtime is None
    runtime = runtime or RayRuntime.for_config(cfg, workers, ray_address)
    with runtime.session(owned) as runtime:        # Ray starts with the first task (a plan's count, or the pass)
        return _run_planned(files, storage, cfg, folder, kind, state, identities, fetch=fetch, log=log,
                            runtime=runtime, progress=progress, tag=tag)


def _run_planned(files: list[str], storage, cfg: dict[str, Any], folder: str, kind: str, state: StageState,
                 identities: dict[str, Any], *, fetch: FetchConfig, log, runtime, progress, tag: str) -> dict[str, Any]:
    plans = state.plans(lambda: make_plans(cfg, identities, files, fetch, kind, log, runtime, storage, folder))
    cfg = {**cfg, PLANS: plans}
    done = state.completed()
    finished = {uri: done[shard_prefix(uri)] for uri in files if shard_prefix(uri) in done}
    todo = [uri for uri in files if uri not in finished]
    url_cfg = cfg["url_filter"]
    wants_blocklist = bool(todo and "url_filter" in stage_entries(cfg) and url_cfg["enabled"] and url_cfg["blocklist"])
    blocklist = load_blocklist(url_cfg["blocklist"], url_cfg["categories"]) if wants_blocklist else None
    log(f"[{tag}] {len(files)} input file(s) -> {storage.uri}/{folder}/")
    if finished:
        log(f"[{tag}] resuming: {len(finished)} file(s) already done, {len(todo)} to go")
    started = time.time()
    results: list[dict[str, Any]] = [{**r, "resumed": True} for r in finished.values()]
    tracker = Progress(len(todo), float(cfg["run"]["progress_every_seconds"]), log, emit=progress, stage=tag)

    batch: dict[str, dict[str, Any]] = {}        # markers of finished files, gathered into one file every BATCH

    def on_result(result: dict[str, Any], uri: str) -> None:
        results.append(result)
        tracker.update(result)
        if result["status"] != "ok":
            log(f"[{tag}] FAILED {result['uri']}: {result['error']}")
        else:
            batch[shard_prefix(uri)] = result
            if len(batch) >= BATCH:
                state.consolidate(f"files-{min(batch)}", dict(batch))
                batch.clear()

    if todo:
        runtime.start()
        log(f"[{tag}] Ray: {runtime.slots} worker slot(s) {runtime.describe()}")
        runtime.map_files(todo, cfg, storage.uri, blocklist, on_result, per_host=fetch.max_concurrent_per_host,
                          kind=kind, folder=folder)
    if batch:
        state.consolidate(f"files-{min(batch)}", batch)
    order = {redact(uri): i for i, uri in enumerate(files)}
    results.sort(key=lambda r: order.get(r["uri"], 0))
    summary = summarise(results, time.time() - started,
                        extra={"stage": kind, "config_fingerprint": state.fingerprint, "labels": labels(cfg),
                               **({"plans": plans} if plans else {}),
                               "files_resumed": len(finished), "output": f"{storage.uri}/{folder}",
                               **memory_report(results, cfg, tag, log)})
    storage.write_json(f"{folder}/{STATS}", summary)
    for module in stage_modules(cfg):              # what a stage found over the whole run (its `summary` hook)
        section = cfg.get(section_name(module)) or {}
        if hasattr(module, "summary") and section.get("enabled", True) is not False:
            found = module.summary(section, plans.get(module.NAME, {}), summary["stages"].get(module.NAME, {}),
                                   identities.get(module.NAME, {}))
            storage.write_json(f"{folder}/{META}/{section_name(module)}.json", found)
    if not summary["totals"]["files_failed"]:
        # the manifest says "complete": only when every input file is in
        entries = [e for r in results for e in r.get("shards", []) if e["path"].startswith(folder + "/")]
        write_manifest(storage, kind, folder, entries, config_fingerprint=state.fingerprint)
    else:
        storage.delete(f"{folder}/{MANIFEST}")
    return summary
