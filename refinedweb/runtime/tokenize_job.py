"""Driver side of `refinedweb tokenize`: plan the shards, run the scan and write phases of `tokenize/phases.py`
through the run-units helper (resumable after a crash, identical output), then `tokenized/.refinedweb/`
(manifest with documents and tokens per shard and per corpus, stats) and, for Megatron, `data_path.txt`: the
`--data-path` a Megatron run takes, every shard weighted by its tokens (so Megatron's blending samples the mix
with the shares it was built with)."""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

import numpy as np

from ..dedup.shuffle import unpack_array
from ..errors import UserError
from ..io.inputs import expand_inputs
from ..io.manifest import counts_by, write_manifest
from ..io.random_access import open_parquet
from ..io.remote import FetchConfig, is_remote, redact
from ..io.storage import open_storage
from ..io.tables import TABLE_SUFFIXES, is_jsonl
from ..stats import STATS
from ..tokenize import formats
from ..tokenize.phases import TOKENIZED, WORK, scan_file, shard_name, tokenizer_of, write_shard, write_table
from .memory import memory_report
from .ray_runner import RayRuntime
from .run_state import StageState, digest, write_marker
from .units import Units

BYTES_PER_TOKEN = 2.0            # a low estimate of text bytes per token (multilingual web text: 1.9-4.5): more shards rather than too big ones
DATA_PATH = "data_path.txt"


def check_tokenize_config(cfg: dict[str, Any]) -> None:
    t = cfg["tokenize"]
    if t["format"] not in formats.FORMATS:
        raise UserError(f"tokenize.format must be {' or '.join(formats.FORMATS)}, not {t['format']!r}")
    value = t["shard_max_tokens"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"tokenize.shard_max_tokens must be a whole number >= 1, got {value!r}")


def run_tokenize(inputs: list[str], output: str, cfg: dict[str, Any], *, workers: int | None = None,
                 ray_address: str | None = None, limit: int | None = None, log: Callable[[str], None] = print,
                 runtime: RayRuntime | None = None, overwrite: bool = False) -> dict[str, Any]:
    check_tokenize_config(cfg)
    t = cfg["tokenize"]
    fetch = FetchConfig.from_config(cfg)
    tokenizer = tokenizer_of(cfg, fetch)              # a bad tokenizer is one line here, before any work
    files = expand_inputs(inputs, suffixes=TABLE_SUFFIXES, limit=limit, fetch=fetch)
    storage = open_storage(output, fetch)
    state = StageState(storage, TOKENIZED, cfg, ("tokenize", "inputs"), {"tokenizer": tokenizer.identity})
    state.prepare(overwrite, log, extra_folders=(WORK,), inputs_digest=digest([redact(f) for f in files]))
    started = time.time()
    max_tokens = int(t["shard_max_tokens"])
    plan = state.completed("plan-").get("plan-all")
    if plan is None:
        estimate = sum(_text_bytes(f, fetch, str(cfg["inputs"]["text_field"])) for f in files) / BYTES_PER_TOKEN
        plan = {"scan_shards": max(1, math.ceil(estimate / max_tokens)) if t["shuffle"] else 1}
        write_marker(storage, TOKENIZED, "plan-all", plan)
    log(f"[tokenize] {len(files)} input file(s), tokenizer {tokenizer.identity} (vocabulary {tokenizer.vocab_size:,}, "
        f"eos {tokenizer.eos_id}, bos {tokenizer.bos_id}), {t['format']} -> {storage.uri}/{TOKENIZED}/")
    uri = storage.uri
    owned = runtime is None
    runtime = runtime or RayRuntime.for_config(cfg, workers, ray_address)
    every = float(cfg["run"]["progress_every_seconds"])

    def progress(phase: str, what: str):
        last = [0.0]

        def report(done: int, total: int) -> None:
            if time.time() - last[0] >= every or done == total:
                last[0] = time.time()
                log(f"[tokenize] {phase}: {done:,}/{total:,} {what}, {time.time() - started:.0f}s")
        return report

    with runtime.session(owned) as runtime:
        units = Units(runtime, state, fetch, int(cfg["run"]["max_retries"]))
        scans = units.run("scan", scan_file, {f"f={i:05d}": (i, f, plan["scan_shards"], cfg, uri)
                                              for i, f in enumerate(files)}, progress("scan", "input file(s)"))
        for scan in scans:
            for line in scan["bad_lines"]:
                log(f"[tokenize] skipped a bad line: {line}")
        docs = np.stack([unpack_array(s["docs"]).astype(np.int64) for s in scans]) if scans else np.zeros((0, 1), np.int64)
        tokens = np.stack([unpack_array(s["tokens"]).astype(np.int64) for s in scans]) if scans else docs
        corpora = {s["file"]: s["corpora"] for s in scans}
        total = int(tokens.sum())
        if not total:
            raise UserError("the inputs hold no document with text: nothing to tokenize")
        if t["shuffle"]:
            shards = plan["scan_shards"]
            keys = {f"s={k:05d}": (k, len(files), shard_name(k, shards), corpora, cfg, uri) for k in range(shards)}
            if not units.finished("write", keys):
                write_table(storage, docs, tokens)
        else:
            shards = max(1, math.ceil(total / max_tokens))
            file_tokens = tokens[:, 0]
            firsts = np.concatenate(([0], np.cumsum(file_tokens)[:-1]))
            bounds = [total * k // shards for k in range(shards + 1)]
            keys = {}
            for k in range(shards):
                lo, hi = bounds[k], bounds[k + 1]
                spools = [(f, int(firsts[f]), int(file_tokens[f]), int(docs[f, 0])) for f in range(len(files))
                          if file_tokens[f] and firsts[f] < hi and firsts[f] + file_tokens[f] > lo]
                keys[f"s={k:05d}"] = (k, len(files), shard_name(k, shards), corpora, cfg, uri, (lo, hi), spools)
        written = units.run("write", write_shard, keys, progress("write", "shard(s)"))
    if units.resumed:
        log(f"[tokenize] resumed: {units.resumed} unit(s) of work were already done by an earlier run")
    entries = [e for w in written for e in w["entries"] if e["rows"]]
    extra = {"tokenizer": tokenizer.identity, "vocab_size": tokenizer.vocab_size, "eos_id": tokenizer.eos_id,
             "bos_id": tokenizer.bos_id, "format": t["format"], "shuffle": bool(t["shuffle"]), "seed": int(t["seed"]),
             "token_dtype": formats.token_dtype(t["format"], tokenizer.vocab_size).name}
    manifest = write_manifest(storage, "tokenize", TOKENIZED, entries, config_fingerprint=state.fingerprint,
                              corpora=counts_by(entries, "corpora"), **extra)
    data_path = None
    if t["format"] == "megatron":
        data_path = " ".join(f"{e['tokens']} {storage.uri}/{e['path']}" for e in entries)
        storage.write_text(f"{TOKENIZED}/{DATA_PATH}", data_path + "\n")
    summary = {"stage": "tokenize", **extra, "config_fingerprint": state.fingerprint, "units_resumed": units.resumed,
               "output": f"{storage.uri}/{TOKENIZED}",
               "totals": {"files": len(files), "rows": sum(s["rows"] for s in scans),
                          "no_text": sum(s["no_text"] for s in scans),
                          "bad_lines": sum(s["notes"].get("bad_line", 0) for s in scans),
                          "truncated_inputs": sum(s["notes"].get("truncated_input", 0) for s in scans),
                          "documents": manifest["totals"]["rows"], "tokens": manifest["totals"]["tokens"],
                          "shards": len(entries), "wall_seconds": round(time.time() - started, 3)},
               "bad_lines": [line for s in scans for line in s["bad_lines"]][:100],
               "files": [{k: v for k, v in s.items() if k not in ("docs", "tokens")} for s in scans],
               **memory_report(units.results, cfg, "tokenize", log)}
    if data_path is not None:
        summary["megatron_data_path"] = f"{storage.uri}/{TOKENIZED}/{DATA_PATH}"
    storage.write_json(f"{TOKENIZED}/{STATS}", summary)
    storage.delete_tree(WORK)
    return summary


def _text_bytes(uri: str, fetch: FetchConfig, text_field: str) -> float:
    """About how many bytes of text a file holds, from its footer (Parquet) or its size (JSONL)."""
    if not is_jsonl(uri):
        meta = open_parquet(uri, fetch).metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        if text_field not in names:
            raise UserError(f"Parquet input {redact(uri)} has no column '{text_field}' (inputs.text_field)")
        column = names.index(text_field)
        return float(sum(meta.row_group(g).column(column).total_uncompressed_size for g in range(meta.num_row_groups)))
    if is_remote(uri):
        return 4.0e9                   # unknown without a request; a shard count estimate only
    size = os.path.getsize(uri.removeprefix("file://"))
    return size * (4.0 if uri.split("?", 1)[0].endswith((".gz", ".zst")) else 1.0)
