"""Documents as Arrow tables, from Parquet or from JSONL (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`: one JSON object a
line, as Dolma and RedPajama ship curated corpora), local, S3 or HTTP(S), streamed batch by batch.

The text field is read as the `text` column whatever its name in the file (`text_field`); every other field
becomes a column. A JSONL line that is not a JSON object is counted and reported (file and line number), the
rest of the file is still read; a compressed file cut short yields what decompressed, counted as
`truncated_input`.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow as pa

from .inputs import PARQUET_SUFFIXES, open_input
from .random_access import open_parquet
from .remote import FetchConfig, redact

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst")
TABLE_SUFFIXES = PARQUET_SUFFIXES + JSONL_SUFFIXES
MAX_REPORTED = 20                       # bad lines listed per file (all are counted)


@dataclass
class ReadNotes:
    """What reading a file met that is not a document."""

    counts: Counter = field(default_factory=Counter)     # bad_line, truncated_input
    bad_lines: list[str] = field(default_factory=list)    # "file:line: why", the first MAX_REPORTED

    def bad(self, uri: str, line: int, why: str) -> None:
        self.counts["bad_line"] += 1
        if len(self.bad_lines) < MAX_REPORTED:
            self.bad_lines.append(f"{redact(uri)}:{line}: {why}")


def is_jsonl(uri: str) -> bool:
    return uri.split("?", 1)[0].endswith(JSONL_SUFFIXES)


def iter_tables(uri: str, fetch: FetchConfig, batch_rows: int, notes: ReadNotes, text_field: str = "text",
                columns: list[str] | None = None) -> Iterator[pa.Table]:
    """Tables of at most `batch_rows` rows, in file order, with the text as `text`; `columns` (with `text`)
    restricts what is read from Parquet."""
    if not is_jsonl(uri):
        parquet = open_parquet(uri, fetch)
        names = None if columns is None else [c for c in dict.fromkeys([text_field, *columns])
                                              if c in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=names, use_threads=False):
            table = pa.Table.from_batches([batch])
            yield _as_text(table, text_field)
        return
    rows: list[dict] = []
    for number, line in _lines(uri, fetch, notes):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            notes.bad(uri, number, f"not JSON ({str(exc)[:80]})")
            continue
        if not isinstance(row, dict):
            notes.bad(uri, number, f"a JSON {type(row).__name__}, not an object")
            continue
        if text_field != "text":
            row["text"] = row.pop(text_field, None)
        if row.get("text") is not None and not isinstance(row["text"], str):
            notes.bad(uri, number, f"'{text_field}' is a {type(row['text']).__name__}, not a string")
            continue
        if columns is not None:
            row = {k: row.get(k) for k in ("text", *columns)}
        rows.append(row)
        if len(rows) >= batch_rows:
            yield _table(rows, uri, notes)
            rows = []
    if rows:
        yield _table(rows, uri, notes)


def _as_text(table: pa.Table, text_field: str) -> pa.Table:
    if text_field != "text" and text_field in table.column_names:
        if "text" in table.column_names:
            table = table.drop_columns(["text"])
        table = table.rename_columns(["text" if n == text_field else n for n in table.column_names])
    return table


def _table(rows: list[dict], uri: str, notes: ReadNotes) -> pa.Table:
    """Rows as a table with every field any row has (missing: null); a field whose values do not share a type
    is kept as their JSON text."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values],
                                     pa.string())
    return pa.table(columns)


def _lines(uri: str, fetch: FetchConfig, notes: ReadNotes) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of the file, decompressed as its name says, streamed (a long line is joined
    once, not grown block by block)."""
    name = uri.split("?", 1)[0]
    codec = "gzip" if name.endswith(".gz") else "zstd" if name.endswith(".zst") else None
    with open_input(uri, fetch) as raw:
        # gzip's own reader yields what decompressed before a cut; pyarrow's zstd stream for .zst
        stream = gzip.GzipFile(fileobj=raw) if codec == "gzip" else \
            pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), codec) if codec else raw
        parts: list[bytes] = []
        number = 0
        try:
            while True:
                block = stream.read(1 << 16)      # small reads: a cut loses at most this much
                if not block:
                    break
                *lines, tail = block.split(b"\n")
                if lines:
                    lines[0] = b"".join(parts) + lines[0]
                    parts = []
                    for line in lines:
                        number += 1
                        yield number, line.decode("utf-8", "replace")
                parts.append(tail)
        except (OSError, EOFError, pa.ArrowInvalid):
            notes.counts["truncated_input"] += 1
            parts = []                           # a cut line is not a document
        rest = b"".join(parts)
        if rest.strip():
            yield number + 1, rest.decode("utf-8", "replace")
