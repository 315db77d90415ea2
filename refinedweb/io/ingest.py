"""JSONL inputs made Parquet for the stages that read Parquet by its footers (dedup numbers every document from
the row counts; mix takes row groups at random): each JSONL file becomes Parquet files of at most `ROWS` rows under
a work folder, in its order, the text field as `text`, every other field a column, `id` (`<file>:<line>` when the
line has none) and `url` (null when it has none) always there. A bad line is counted and listed (file and line),
the rest kept. A file already ingested (its record exists) is not read again, so a resumed stage does not pay twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .remote import FetchConfig, redact
from .storage import open_storage, safe_name
from .tables import ReadNotes, is_jsonl, iter_tables

ROWS = 200_000                      # rows per Parquet file made from JSONL (a dedup part reads batches of them)
BATCH = 2_000


def ingested_name(uri: str) -> str:
    stem = safe_name(uri.split("?", 1)[0].rsplit("/", 1)[-1], 60)
    return f"{stem}-{hashlib.sha1(uri.encode('utf-8')).hexdigest()[:10]}"


def ingest_file(uri: str, folder: str, output: str, text_field: str, fetch: FetchConfig) -> dict[str, Any]:
    """`uri` as Parquet files `<folder>/<name>-NNNNN.parquet` of the output root; their paths and the notes."""
    storage = open_storage(output, fetch)
    name = ingested_name(uri)
    record = storage.read_text(f"{folder}/{name}.json")
    if record:
        return json.loads(record)
    notes = ReadNotes()
    paths: list[str] = []
    rows: list[pa.Table] = []
    count = line = 0

    def flush() -> None:
        nonlocal rows
        if not rows:
            return
        table = pa.concat_tables(rows, promote_options="permissive")
        relpath = f"{folder}/{name}-{len(paths):05d}.parquet"
        tmp = storage.temp_path(relpath)
        pq.write_table(table, tmp, compression="zstd")
        storage.commit(tmp, relpath)
        paths.append(relpath)
        rows = []

    for table in iter_tables(uri, fetch, BATCH, notes, text_field):
        n = table.num_rows
        if "text" not in table.column_names:
            table = table.append_column("text", pa.nulls(n, pa.string()))
        ids = [f"{redact(uri)}:{line + i + 1}" for i in range(n)]
        if "id" not in table.column_names:
            table = table.append_column("id", pa.array(ids, pa.string()))
        else:
            values = table.column("id").to_pylist()
            table = table.set_column(table.column_names.index("id"), "id",
                                     pa.array([str(v) if v is not None else d for v, d in zip(values, ids)], pa.string()))
        if "url" not in table.column_names:
            table = table.append_column("url", pa.nulls(n, pa.string()))
        line += n
        rows.append(table)
        count += n
        if sum(t.num_rows for t in rows) >= ROWS:
            flush()
    flush()
    result = {"uri": redact(uri), "paths": paths, "rows": count, "notes": dict(notes.counts),
              "bad_lines": notes.bad_lines}
    storage.write_json(f"{folder}/{name}.json", result)
    return result


def ingest_inputs(files: list[str], folder: str, output: str, text_field: str, fetch: FetchConfig, runtime,
                  retries: int, log) -> tuple[list[str], list[dict[str, Any]]]:
    """The input list with every JSONL file replaced by its Parquet files (in place, in order), and the records
    of the JSONL files (one Ray task each)."""
    jsonl = [f for f in files if is_jsonl(f)]
    if not jsonl:
        return files, []
    storage = open_storage(output, fetch)
    log(f"[ingest] {len(jsonl)} JSONL file(s) -> Parquet under {storage.uri}/{folder}/")
    records = dict(zip(jsonl, runtime.map(ingest_file, [(f, folder, output, text_field, fetch) for f in jsonl], retries)))
    for record in records.values():
        for line in record["bad_lines"]:
            log(f"[ingest] skipped a bad line: {line}")
    out: list[str] = []
    for f in files:
        out.extend(f"{storage.uri}/{p}" for p in records[f]["paths"]) if f in records else out.append(f)
    return out, list(records.values())
