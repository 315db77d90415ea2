"""Driver of `refinedweb mix`: scan the sources (a task per file), plan (driver), write shards (a task
per shard, with completion markers), then `mix/.refinedweb/manifest.json` and `mix_report.json`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import yaml

from ..errors import UserError
from ..io.ingest import ingest_inputs
from ..io.inputs import expand_inputs
from ..io.manifest import counts_by, write_manifest
from ..io.random_access import open_parquet
from ..io.remote import FetchConfig, redact
from ..io.storage import open_storage
from ..io.tables import TABLE_SUFFIXES
from ..mix.plan import MixConfig, RowGroup, apply_cut, assign, select
from ..mix.tasks import CORPUS, TOKENS, WORK, copy_tokens, row_tokens, scan_file, write_shard
from .memory import memory_report
from .ray_runner import RayRuntime
from .run_state import StageState
from .units import Units

MIX_DIR = "mix"
REPORT = "mix_report.json"


def load_mix_config(path: str) -> tuple[dict[str, Any], MixConfig]:
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"mix config not found: {path}") from None
    except yaml.YAMLError:
        raise UserError(f"mix config {path} is not valid YAML") from None
    return data, MixConfig.from_config(data)


def run_mix(config_path: str, output: str, base_cfg: dict[str, Any], *, workers: int | None = None,
            ray_address: str | None = None, overwrite: bool = False,
            log: Callable[[str], None] = print, runtime: RayRuntime | None = None) -> dict[str, Any]:
    data, mix = load_mix_config(config_path)
    fetch = FetchConfig.from_config(base_cfg)
    sources_files = [expand_inputs([s.input], suffixes=TABLE_SUFFIXES, fetch=fetch) for s in mix.sources]
    storage = open_storage(output, fetch)
    state = StageState(storage, MIX_DIR, {"mix": data["mix"]}, ("mix",))
    state.prepare(overwrite, log, extra_folders=(WORK,))
    started = time.time()
    owned = runtime is None
    runtime = runtime or RayRuntime.for_config(base_cfg, workers, ray_address)
    retries = int(base_cfg["run"]["max_retries"])
    with runtime.session(owned):
        ingested = []                          # JSONL sources as Parquet (row groups are taken at random)
        for i, source in enumerate(mix.sources):
            sources_files[i], records = ingest_inputs(sources_files[i], f"{WORK}/jsonl/s={i:03d}", storage.uri,
                                                      source.text_field, fetch, runtime, retries, log)
            ingested += records
        log(f"[mix] {len(mix.sources)} source(s), {sum(map(len, sources_files))} Parquet file(s), "
            f"{mix.total_tokens:,} tokens -> {storage.uri}/{MIX_DIR}/")
        jobs = [(s, i, uri, mix.encoding, fetch, storage.uri, mix.sources[s].repeat)
                for s, files in enumerate(sources_files) for i, uri in enumerate(files)]
        scans = runtime.map(scan_file, jobs, retries)
        groups = [RowGroup(**g) for scan in scans for g in scan["groups"]]
        plans = select(mix, groups)
        short = [p for p in plans if p.cut is None and p.shortfall > 0.005 * p.target_tokens]
        if short and not mix.allow_shortfall:
            detail = "; ".join(f"{p.name}: {p.tokens:,} of {p.target_tokens:,} tokens "
                               f"({p.available_tokens:,} available x max_epochs {p.max_epochs:g})" for p in short)
            raise UserError(f"sources too small for their share: {detail} "
                            "(raise max_epochs, lower total_tokens, or set allow_shortfall: true)")
        file_index = {f"{scan_job[0]}:{scan_job[2]}": scan_job[1] for scan_job in jobs}
        for plan in plans:                      # the last row group of each source is cut at its budget
            if plan.cut is not None:
                chunk = plan.chunks[plan.cut[0]]
                parquet = open_parquet(chunk.file, fetch)
                apply_cut(plan, copy_tokens(storage, parquet, chunk.source, file_index[f"{chunk.source}:{chunk.file}"],
                                            chunk.group, mix.sources[chunk.source].repeat, chunk.copy))
        schema = _output_schema(scans)
        for plan in plans:      # input bytes -> output bytes, so that the shard count fills shards
            _calibrate(plan, schema, fetch, storage, file_index, base_cfg["output"])
        shards = assign(mix, plans)
        settings = {"seed": mix.seed, "shard_max_bytes": mix.shard_max_bytes,
                    "shuffle_window_bytes": mix.shuffle_window_bytes, "repeats": [s.repeat for s in mix.sources],
                    "row_group_bytes": int(base_cfg["output"]["row_group_bytes"])}
        names = [s.name for s in mix.sources]
        index_by_uri = {f: file_index[f"{c.source}:{f}"] for shard in shards for c in shard for f in [c.file]}
        units = Units(runtime, state, fetch, retries)
        written = units.run("write", write_shard,
                            {f"s={i:05d}": (i, [c.__dict__ for c in shard], names, index_by_uri,
                                            schema.serialize().to_pybytes(), settings, fetch, storage.uri)
                             for i, shard in enumerate(shards)})
    entries = [e for result in written for e in result["shards"]]
    manifest = write_manifest(storage, "mix", MIX_DIR, entries, config_fingerprint=state.fingerprint,
                              corpora=counts_by(entries, "corpora"))
    report = _report(mix, plans, manifest, time.time() - started, units.resumed, scans, written)
    report.update(memory_report([*scans, *units.results], base_cfg, "mix", log))
    if ingested:
        report["jsonl"] = {"files": len(ingested), "rows": sum(r["rows"] for r in ingested),
                           "bad_lines": sum(r["notes"].get("bad_line", 0) for r in ingested),
                           "bad_line_examples": [line for r in ingested for line in r["bad_lines"]][:100]}
    storage.write_json(REPORT, report)
    storage.delete_tree(WORK)
    return report


def _calibrate(plan, schema: pa.Schema, fetch: FetchConfig, storage, file_index: dict[str, int],
               out_cfg: dict[str, Any]) -> None:
    """Scale the plan's chunk bytes by how one of its row groups compresses as output (row groups, codec and
    columns differ from the input's), measured by writing it to memory."""
    if not plan.chunks:
        return
    import io

    import pyarrow.parquet as pq

    from ..io.parquet import conform

    chunk = max(plan.chunks, key=lambda c: c.bytes)
    parquet = open_parquet(chunk.file, fetch)
    table = parquet.read_row_group(chunk.group)
    if TOKENS not in table.column_names:
        counts = row_tokens(storage, parquet, chunk.source, file_index[f"{chunk.source}:{chunk.file}"], chunk.group)
        table = table.append_column(TOKENS, pa.array(counts, pa.int64()))
    table = table.append_column(CORPUS, pa.array([plan.name] * table.num_rows, pa.string()))
    buffer = io.BytesIO()
    pq.write_table(conform(table, schema), buffer, compression=out_cfg["compression"],
                   compression_level=out_cfg["compression_level"])
    input_bytes = sum(parquet.metadata.row_group(chunk.group).column(c).total_compressed_size
                      for c in range(parquet.metadata.num_columns))
    ratio = buffer.tell() / max(1, input_bytes)
    for c in plan.chunks:
        c.bytes *= ratio


def _output_schema(scans: list[dict[str, Any]]) -> pa.Schema:
    schemas = [pa.ipc.read_schema(pa.py_buffer(s["schema"])) for s in scans]
    schemas = [pa.schema([f for f in sch if f.name != CORPUS]) for sch in schemas]
    unified = pa.unify_schemas(schemas + [pa.schema([(TOKENS, pa.int64())])], promote_options="permissive")
    return unified.append(pa.field(CORPUS, pa.string()))


def _bins(mix: MixConfig, index: int, scans: list[dict[str, Any]], written: list[dict[str, Any]]):
    """A weighted source's bins: documents and tokens available (once), written, and the effective epochs."""
    repeat = mix.sources[index].repeat
    available = np.zeros((2, len(repeat.maxes) + 1), dtype=np.int64)
    out = np.zeros_like(available)
    for scan in scans:
        if scan["source"] == index and scan["bins"]:
            available += np.array([scan["bins"]["documents"], scan["bins"]["tokens"]])
    for result in written:
        mine = (result.get("bins") or {}).get(str(index))
        if mine:
            out += np.array([mine["documents"], mine["tokens"]])
    rows = []
    for b, entry in enumerate(repeat.describe()):
        tokens = int(available[1, b])
        rows.append({**entry, "documents": int(available[0, b]), "tokens": tokens,
                     "documents_written": int(out[0, b]), "tokens_written": int(out[1, b]),
                     "epochs": round(int(out[1, b]) / tokens, 4) if tokens else 0.0})
    return {"column": repeat.column, "bins": rows}


def _report(mix: MixConfig, plans, manifest: dict[str, Any], wall: float, resumed: int,
            scans: list[dict[str, Any]], shard_results: list[dict[str, Any]]) -> dict[str, Any]:
    corpora = manifest.get("corpora", {})
    total = manifest["totals"]["tokens"]
    sources = []
    for index, plan in enumerate(plans):
        written = corpora.get(plan.name, {"rows": 0, "tokens": 0})
        sources.append({
            "name": plan.name, "weight": round(plan.weight, 6),
            "share": round(written["tokens"] / total, 6) if total else 0.0,
            "target_tokens": plan.target_tokens, "tokens": written["tokens"], "documents": written["rows"],
            "epochs": round(written["tokens"] / plan.available_tokens, 4) if plan.available_tokens else 0.0,
            "max_epochs": plan.max_epochs, "available_tokens": plan.available_tokens,
            "available_documents": plan.available_documents,
            "shortfall_tokens": max(0, plan.target_tokens - written["tokens"]),
        })
        if mix.sources[index].repeat is not None:
            # `available_tokens` and `epochs` count every copy; each bin's `epochs`: its tokens written / once
            sources[-1]["repeat"] = _bins(mix, index, scans, shard_results)
    return {"total_tokens_target": mix.total_tokens, "total_tokens": total,
            "documents": manifest["totals"]["rows"], "shards": manifest["totals"]["shards"],
            "bytes": manifest["totals"]["bytes"], "seed": mix.seed, "shards_resumed": resumed,
            "wall_seconds": round(wall, 2), "sources": sources,
            "inputs": {s.name: redact(s.input) for s in mix.sources}}
