"""Document stages over Parquet that already exists (`refinedweb run --stage quality,mystage --input out/dedup`):
one streaming pass over one input file, no WARC, no Ray here (`ray_runner.py` calls `documents_file` in a task
per file, as it calls `filter_pass.filter_file`).

Every input column passes through; `text` comes back as the stages left it, `language`/`language_score` when
`langid` ran, `token_count` when `tokens` ran, and the stages' SIGNALS as new columns. Rows are read row group
by row group in batches; a row without text is dropped as `read:no_text`. Kept rows go to
`<output>/<last stage>/[lang=xx/]` (the input's `lang=xx` folder kept), dropped ones to `<output>/dropped/`
when `output.write_dropped` is on, with the same accounting, markers and stats as the filter stage.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa

from ..documents import Document
from ..io.parquet import DROPPED_SCHEMA, ShardLimits, ShardWriter, conform
from ..io.random_access import open_parquet
from ..io.remote import FetchConfig, redact
from ..io.storage import open_storage
from ..stages.contract import DETAIL, READ
from ..stats import FileAccount
from .filter_pass import DROPPED_DIR, Chunk, Pipeline, close_file, file_failure, shard_prefix, with_signals
from .run_state import write_marker

LANGUAGE_FOLDER = re.compile(r"(?:^|/)(lang=[^/]+)/")
WRITES = {"langid": ("language", "language_score"), "tokens": ("token_count",)}
TYPES = {"language": pa.string(), "language_score": pa.float32(), "token_count": pa.int32()}


def output_schema(schema: pa.Schema, stages: Pipeline) -> pa.Schema:
    """The input's columns, the document fields the stages write when the input lacks them, the signals."""
    names = {s.name for s in stages.stages}
    for stage, fields in WRITES.items():
        if stage in names:
            for name in fields:
                if name not in schema.names:
                    schema = schema.append(pa.field(name, TYPES[name]))
    return with_signals(schema, {k: v for k, v in stages.signals.items() if k not in schema.names})


def documents_file(uri: str, cfg: dict[str, Any], output: str, stages: Pipeline, folder: str) -> dict[str, Any]:
    """Run the stages over one Parquet file into `<output>/<folder>/`; its accounting (as `filter_file`'s)."""
    account = FileAccount(redact(uri), stages.names)
    fetch = FetchConfig.from_config(cfg)
    storage = open_storage(output, fetch)
    prefix = shard_prefix(uri)
    source = redact(uri)
    language = LANGUAGE_FOLDER.search(uri)
    target = f"{folder}/{language.group(1)}" if language else folder
    limits = ShardLimits.from_config(cfg["output"])
    write_dropped = bool(cfg["output"]["write_dropped"])
    writers: dict[str, ShardWriter] = {}
    status, error = "ok", None
    try:
        parquet = open_parquet(uri, fetch)
        schema = output_schema(parquet.schema_arrow, stages)
        writers[target] = ShardWriter(storage, target, prefix, schema, limits)
        if write_dropped:
            writers[DROPPED_DIR] = ShardWriter(storage, DROPPED_DIR, prefix, DROPPED_SCHEMA, limits)
        run = stages.start(account)

        def write(decided: list[Chunk]) -> None:
            for chunk in decided:
                _write_chunk(chunk, stages, account, schema, writers, target, source)

        for batch in parquet.iter_batches(batch_size=stages.chunk, use_threads=False):
            account.bytes_in += batch.nbytes
            write(run.feed(_read_chunk(pa.Table.from_batches([batch]), account, source)))
        close_file(run, write, stages, account, writers)
    except Exception as exc:
        status, error = "failed", file_failure(exc, writers)
    result = account.to_dict(status, error)
    if status == "ok":
        write_marker(storage, folder, prefix, result)        # last: a file with a marker is never redone
    return result


def _column(table: pa.Table, name: str, default: Any) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [default] * table.num_rows


def _read_chunk(table: pa.Table, account: FileAccount, source: str) -> Chunk:
    """Account a batch of rows (read: a row without text is dropped); its documents, for the stages."""
    texts = table.column("text").to_pylist()
    ids, urls = _column(table, "id", ""), _column(table, "url", "")
    sources, dates = _column(table, "source", source), _column(table, "date", "")
    languages, scores = _column(table, "language", ""), _column(table, "language_score", 0.0)
    tokens = _column(table, "token_count", 0)
    docs, has_text = [], []
    for i, text in enumerate(texts):
        account.records += 1
        account.enter(READ)
        if not text:
            account.drop(READ, "no_text")
            has_text.append(False)
            continue
        account.keep(READ, 0.0, len(text))
        has_text.append(True)
        docs.append(Document(id=ids[i] or "", url=urls[i] or "", source=sources[i] or source, date=dates[i] or "",
                             text=text, language=languages[i] or "", language_score=scores[i] or 0.0,
                             token_count=tokens[i] or 0))
    return Chunk((table, has_text), docs)


def _write_chunk(chunk: Chunk, stages: Pipeline, account: FileAccount, schema: pa.Schema,
                 writers: dict[str, ShardWriter], target: str, source: str) -> None:
    """A decided batch in input order: the kept rows with every input column, what the stages changed and their
    signals; the dropped ones (with the read stage's) to dropped/ when asked."""
    table, has_text = chunk.items
    keep = np.zeros(table.num_rows, dtype=bool)
    docs, dropped = [], []
    verdicts, documents = iter(chunk.verdicts), iter(chunk.docs)
    for i, present in enumerate(has_text):
        if not present:
            dropped.append((i, READ, "no_text", None))
            continue
        doc, drop = next(documents), next(verdicts)
        if drop is None:
            keep[i] = True
            docs.append(doc)
        else:
            dropped.append((i, drop.stage, drop.reason, doc))
    if docs:
        kept = table.filter(pa.array(keep))
        columns = {"text": [d.text for d in docs]}
        names = {s.name for s in stages.stages}
        if "langid" in names:
            columns["language"] = [d.language for d in docs]
            columns["language_score"] = [d.language_score for d in docs]
        if "tokens" in names:
            columns["token_count"] = [d.token_count for d in docs]
        for name in stages.signals:
            columns[name] = [d.metadata.get(name) for d in docs]
        for name, values in columns.items():
            array = pa.array(values, schema.field(name).type)
            kept = kept.set_column(kept.column_names.index(name), name, array) if name in kept.column_names \
                else kept.append_column(name, array)
        writers[target].add_table(conform(kept, schema))
        account.kept += len(docs)
        account.tokens += sum(d.token_count for d in docs)
    if DROPPED_DIR in writers and dropped:
        ids, urls = _column(table, "id", ""), _column(table, "url", "")
        rows = {"id": [ids[i] for i, *_ in dropped], "url": [urls[i] for i, *_ in dropped],
                "source": [d.source if d else source for *_, d in dropped], "stage": [s for _, s, _, _ in dropped],
                "reason": [r for _, _, r, _ in dropped], "text": [d.text if d else "" for *_, d in dropped],
                "detail": [d.metadata.get(DETAIL) if d else None for *_, d in dropped]}
        writers[DROPPED_DIR].add_table(pa.table(rows, schema=DROPPED_SCHEMA))


def text_column_missing(schema: pa.Schema) -> bool:
    return "text" not in schema.names or not (pa.types.is_string(schema.field("text").type)
                                              or pa.types.is_large_string(schema.field("text").type))
