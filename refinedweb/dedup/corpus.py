"""The dedup stage's view of its input: every document numbered in input order, the numbers cut into parts.

A document's *ordinal* is its position in the whole input (files in listing order, rows in file order): it
decides survivors everywhere ("the earliest copy wins"). Parts are contiguous ordinal ranges of about
equal size, so a part is a few row ranges of a few files, read as a stream of batches, and the part of
any ordinal is a binary search. Parts bound how much one task reads; they never decide what is found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Iterator

import numpy as np
import pyarrow as pa

from ..errors import UserError
from ..io.random_access import open_parquet
from ..io.remote import FetchConfig, redact

REQUIRED_COLUMNS = ("id", "url", "text")
BATCH_ROWS = 2048          # rows per batch read from a part: bounds a task's text in memory


@dataclass(frozen=True)
class Corpus:
    files: tuple[str, ...]
    rows: tuple[int, ...]          # rows per file
    parts: int
    schema_hex: str = ""           # the inputs' unified Arrow schema (IPC bytes, hex): every output row gets it
    text_bytes: int = 0            # uncompressed bytes of the text column (from the footers)
    buckets: dict = field(default_factory=dict)    # shuffle buckets per method (`runtime/dedup_job.plan_work`)

    @property
    def documents(self) -> int:
        return int(sum(self.rows))

    @property
    def file_starts(self) -> np.ndarray:
        starts = np.zeros(len(self.rows) + 1, dtype=np.int64)
        np.cumsum(self.rows, out=starts[1:])
        return starts

    @property
    def part_starts(self) -> np.ndarray:
        """P + 1 ordinals: part p holds ordinals part_starts[p] .. part_starts[p + 1] - 1."""
        n, p = self.documents, self.parts
        return np.array([i * n // p for i in range(p + 1)], dtype=np.int64)

    def part_of(self, ordinals: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.part_starts, np.asarray(ordinals, dtype=np.int64), side="right") - 1

    def slices(self, part: int) -> list[tuple[int, int, int]]:
        """(file index, first row, end row) of the part, in ordinal order."""
        lo, hi = (int(x) for x in self.part_starts[part:part + 2])
        starts = self.file_starts
        out = []
        for f in range(len(self.files)):
            a, b = max(lo, int(starts[f])), min(hi, int(starts[f + 1]))
            if a < b:
                out.append((f, a - int(starts[f]), b - int(starts[f])))
        return out

    @property
    def schema(self) -> pa.Schema:
        return pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(self.schema_hex)))

    def to_json(self) -> str:
        return json.dumps({"files": list(self.files), "rows": list(self.rows), "parts": self.parts,
                           "schema": self.schema_hex, "text_bytes": self.text_bytes, "buckets": self.buckets})

    @classmethod
    def from_json(cls, text: str) -> "Corpus":
        data = json.loads(text)
        return cls(tuple(data["files"]), tuple(data["rows"]), int(data["parts"]), data.get("schema", ""),
                   int(data.get("text_bytes", 0)), dict(data.get("buckets", {})))


def with_plan(corpus: Corpus, parts: int, buckets: dict[str, int]) -> Corpus:
    out = replace(corpus, parts=parts, buckets=dict(buckets))
    if out.documents and max(np.diff(out.part_starts)) >= 1 << 32:
        raise UserError(f"dedup.parts={parts} leaves more than 2**32 documents in a part: raise dedup.parts")
    return out


def plan_corpus(files: list[str], fetch: FetchConfig) -> Corpus:
    """Read every input's footer (row count, columns, text size): a missing column is a user error found
    before any work. The parts and buckets are planned afterwards (`with_plan`)."""
    rows, schemas = [], []
    text_bytes = 0
    for uri in files:
        try:
            meta = open_parquet(uri, fetch)
        except UserError:
            raise
        except (OSError, pa.ArrowInvalid) as exc:
            raise UserError(f"cannot read Parquet input {redact(uri)}: {exc}") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in meta.schema_arrow.names]
        if missing:
            raise UserError(f"Parquet input {redact(uri)} is missing column(s) {', '.join(missing)} "
                            f"(dedup needs {', '.join(REQUIRED_COLUMNS)})")
        rows.append(int(meta.metadata.num_rows))
        schemas.append(meta.schema_arrow)
        column = meta.schema_arrow.names.index("text")
        text_bytes += sum(meta.metadata.row_group(g).column(column).total_uncompressed_size
                          for g in range(meta.metadata.num_row_groups))
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UserError(f"the Parquet inputs' columns do not agree: {exc}") from None
    return Corpus(tuple(files), tuple(rows), 1, schema.serialize().to_pybytes().hex(), text_bytes)


@lru_cache(maxsize=4)
def _cached_corpus(storage_uri: str, text: str) -> Corpus:
    return Corpus.from_json(text)


def load_corpus(storage, relpath: str) -> Corpus:
    text = storage.read_text(relpath)
    if text is None:
        raise FileNotFoundError(relpath)
    return _cached_corpus(storage.uri, text)


def iter_part(corpus: Corpus, part: int, fetch: FetchConfig, columns: list[str] | None = None,
              batch_rows: int = BATCH_ROWS) -> Iterator[tuple[np.ndarray, pa.Table]]:
    """Batches of the part in ordinal order: (part-local row numbers as uint32, table of `columns`)."""
    base = int(corpus.part_starts[part])
    starts = corpus.file_starts
    for f, lo, hi in corpus.slices(part):
        source = open_parquet(corpus.files[f], fetch)
        meta = source.metadata
        names = columns if columns is None else [c for c in columns if c in source.schema_arrow.names]
        first = 0
        for g in range(meta.num_row_groups):
            count = meta.row_group(g).num_rows
            a, b = max(lo, first), min(hi, first + count)
            if a < b:
                row = first
                for batch in source.iter_batches(batch_size=batch_rows, row_groups=[g], columns=names,
                                                 use_threads=False):
                    x, y = max(a, row), min(b, row + batch.num_rows)
                    if x < y:
                        table = pa.Table.from_batches([batch.slice(x - row, y - x)])
                        local = np.arange(x, y, dtype=np.int64) + int(starts[f]) - base
                        yield local.astype(np.uint32), table
                    row += batch.num_rows
            first += count
