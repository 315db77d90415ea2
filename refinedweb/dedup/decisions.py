"""How a method's decisions reach the parts and are applied to them: the files a bucket task sends to the
parts (`PartFiles`, `to_parts`), a method's decision on one part (`RemovedRows`, or the method's own, e.g.
exact-substring `Cuts`), all of them applied in `dedup.methods` order (`Decisions`), and the token recount of a
document whose text was cut (`replace_text`)."""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..io.scratch import scratch_folder
from .corpus import Corpus
from .methods import configured
from .plan import WORK
from .shuffle import load_arrays, save_array


class PartFiles:
    """What one bucket task sends to the parts (removed rows, marks), gathered over all its passes in local spool
    files and written at the end as one sorted file per part, `<folder>/p=P/from=<name>.npy`. The names do not
    depend on the number of passes, so a redo with another memory budget replaces an interrupted attempt's files."""

    def __init__(self, storage, folder: str, name: str, dtype):
        self.storage, self.folder, self.name, self.dtype = storage, folder, name, np.dtype(dtype)
        self.spool = scratch_folder("parts")
        self.parts: set[int] = set()

    def add(self, parts: np.ndarray, values: np.ndarray) -> None:
        """Send `values[i]` to part `parts[i]`."""
        for p in np.unique(parts).tolist():
            with open(os.path.join(self.spool, f"{p}.bin"), "ab") as fh:
                np.ascontiguousarray(values[parts == p], dtype=self.dtype).tofile(fh)
            self.parts.add(p)

    def close(self) -> None:
        try:
            for p in sorted(self.parts):
                values = np.sort(np.fromfile(os.path.join(self.spool, f"{p}.bin"), dtype=self.dtype))
                save_array(self.storage, f"{self.folder}/p={p:05d}/from={self.name}.npy", values)
        finally:
            shutil.rmtree(self.spool, ignore_errors=True)

    def __enter__(self) -> "PartFiles":
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is None:
            self.close()
        else:
            shutil.rmtree(self.spool, ignore_errors=True)


def to_parts(storage, corpus: Corpus, folder: str, name: str, ordinals: np.ndarray) -> None:
    """Save the sorted part-local rows of `ordinals` under `<folder>/p=P/from=<name>.npy`, a file per part."""
    ordinals = np.sort(np.asarray(ordinals, dtype=np.int64))
    parts = corpus.part_of(ordinals)
    starts = corpus.part_starts
    for p in np.unique(parts):
        rows = (ordinals[parts == p] - starts[p]).astype(np.uint32)
        save_array(storage, f"{folder}/p={p:05d}/from={name}.npy", rows)


class RemovedRows:
    """A method's decision that removes whole documents: the part's rows listed under
    `<work>/<method>/removed/p=P/`."""

    extra_stats: tuple[str, ...] = ()

    def __init__(self, storage, method: str, part: int):
        arrays = load_arrays(storage, f"{WORK}/{method}/removed/p={part:05d}")
        self.removed = np.unique(np.concatenate(arrays)) if arrays else np.empty(0, np.uint32)

    def __call__(self, rows: np.ndarray, table: pa.Table) -> tuple[np.ndarray, pa.Table, dict[str, int]]:
        removed = self.removed
        keep = ~np.isin(rows, removed, assume_unique=False) if len(removed) else np.ones(len(rows), bool)
        return rows[keep], table.filter(pa.array(keep)), {}


COUNT = np.dtype([("row", "<u4"), ("count", "<u4")])


class CountedRows(RemovedRows):
    """A decision that removes rows and gives each kept row how many documents it stood for, as `column` (1 for a
    row without a count): the part's `(row, count)` records under `<work>/<method>/counts/p=P/`."""

    def __init__(self, storage, method: str, part: int, column: str):
        super().__init__(storage, method, part)
        self.column = column
        arrays = load_arrays(storage, f"{WORK}/{method}/counts/p={part:05d}")
        counts = np.sort(np.concatenate(arrays)) if arrays else np.empty(0, COUNT)
        self.rows, self.counts = counts["row"], counts["count"]

    def __call__(self, rows: np.ndarray, table: pa.Table) -> tuple[np.ndarray, pa.Table, dict[str, int]]:
        rows, table, extra = super().__call__(rows, table)
        values = np.ones(len(rows), dtype=np.int32)
        if len(self.rows) and len(rows):
            at = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
            hit = self.rows[at] == rows
            values[hit] = self.counts[at[hit]]
        array = pa.array(values, pa.int32())
        if self.column in table.column_names:
            table = table.set_column(table.column_names.index(self.column), self.column, array)
        else:
            table = table.append_column(self.column, array)
        return rows, table, extra


class Decisions:
    """What some methods decided for one part, applied to its batches in `dedup.methods` order (a context
    manager: files a decision maps, such as the exact-substring marks, are released on exit)."""

    def __init__(self, storage, cfg: dict[str, Any], part: int, methods: list[str]):
        """`methods`: names, in `dedup.methods` order."""
        self.methods = methods
        self.stack = ExitStack()
        modules = configured(cfg)
        self.appliers = {m: modules[m].decision(storage, cfg, part, self.stack) for m in methods}
        self.stats = {m: {"docs_in": 0, "docs_out": 0, "chars_removed": 0,
                          **dict.fromkeys(self.appliers[m].extra_stats, 0)} for m in methods}

    def __enter__(self) -> "Decisions":
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def apply(self, rows: np.ndarray, table: pa.Table) -> tuple[np.ndarray, pa.Table]:
        """The batch's surviving rows and their table (text edited where a method cut it)."""
        for method in self.methods:
            st = self.stats[method]
            st["docs_in"] += len(rows)
            before = text_chars(table)
            rows, table, extra = self.appliers[method](rows, table)
            for key, value in extra.items():
                st[key] += value
            st["docs_out"] += len(rows)
            st["chars_removed"] += before - text_chars(table)
        return rows, table


def replace_text(table: pa.Table, texts: list[str | None], cfg: dict[str, Any]) -> pa.Table:
    old = table.column("text").to_pylist()
    index = table.column_names.index("text")
    if "token_count" in table.column_names and cfg["tokens"]["enabled"]:
        # a document with spans cut out has fewer tokens: count again (only those)
        from ..stages.tokens import count_tokens

        counts = table.column("token_count").to_pylist()
        for i, (a, b) in enumerate(zip(old, texts)):
            if a != b and b is not None:
                counts[i] = count_tokens(b, cfg["tokens"]["encoding"])
        column = table.column_names.index("token_count")
        table = table.set_column(column, "token_count", pa.array(counts, table.schema.field("token_count").type))
    return table.set_column(index, "text", pa.array(texts, table.schema.field("text").type))


def text_chars(table: pa.Table) -> int:
    """Characters of the text column, counted in Arrow (no Python strings)."""
    if not table.num_rows or "text" not in table.column_names:
        return 0
    return int(pc.sum(pc.utf8_length(table.column("text"))).as_py() or 0)
