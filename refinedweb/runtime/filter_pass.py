"""The filter stage for one input file: read → URL filter → extract → language ID → repetition →
quality → line-wise corrections → token count → Parquet. One streaming pass, no Ray here: the Ray
layer (`runtime/ray_runner.py`) calls `filter_file` in a task per input file.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from pathlib import PurePosixPath
from typing import Any, Callable

import pyarrow as pa

from ..documents import Document, Drop
from ..errors import UserError
from ..io.inputs import open_input
from ..io.parquet import DOCUMENT_SCHEMA, DROPPED_SCHEMA, ShardLimits, ShardWriter
from ..io.remote import FetchConfig, is_remote, redact, scrub
from ..io.storage import language_folder, open_storage, safe_name
from ..stages.contract import READ, Stage, build_stages
from ..stages.read import Page, ReadConfig, Skip, iter_pages
from ..stats import FileAccount
from .run_state import write_marker

FILTERED_DIR = "filtered"
DROPPED_DIR = "dropped"


class Pipeline:
    """The configured document stages (`filter.stages`), built once per worker process and reused for every
    file. Documents go through in chunks, stage by stage, so that a stage with a batch entry point (a
    model) sees many documents at once; results and output order are those of one document at a time."""

    def __init__(self, stages: list[Stage], read: ReadConfig, chunk: int, max_error_fraction: float = 0.01):
        self.stages = stages
        self.read = read
        self.chunk = chunk
        self.max_error_fraction = max_error_fraction
        self.names = [READ, *(s.name for s in stages)]
        self.signals: dict[str, Any] = {}
        for stage in stages:
            self.signals.update(stage.signals)
        self.schema = with_signals(DOCUMENT_SCHEMA, self.signals)

    @classmethod
    def build(cls, cfg: dict[str, Any], blocklist=None) -> "Pipeline":
        return cls(build_stages(cfg, blocklist), ReadConfig.from_config(cfg["read"]), int(cfg["filter"]["chunk_documents"]),
                   max_error_fraction(cfg))

    def process(self, docs: list[Document], account: FileAccount) -> list[Drop | None]:
        """Run every stage over `docs`; the Drop that removed each document, or None if it is kept.

        An exception inside a stage is counted as an error of that stage (and the document leaves), never
        propagated: one bad page must not cost the rest of the file (a stage that raises on more than
        `filter.max_error_fraction` of the file fails it, `filter_file`). A disabled stage passes every
        document on, so each stage's input is the previous stage's output.
        """
        clock = time.perf_counter
        verdicts: list[Drop | None] = [None] * len(docs)
        alive = list(range(len(docs)))
        for stage in self.stages:
            if not alive:
                break
            if stage.batch is not None:
                alive = self._batch(stage, docs, alive, verdicts, account)
                continue
            survivors = []
            for i in alive:
                doc = docs[i]
                account.enter(stage.name)
                t0 = clock()
                try:
                    reason = stage.apply(doc)
                except Exception as exc:
                    account.error(stage.name, exc, clock() - t0)
                    verdicts[i] = Drop(stage.name, f"error:{type(exc).__name__}")
                    continue
                if reason:
                    account.drop(stage.name, reason, clock() - t0)
                    verdicts[i] = Drop(stage.name, reason)
                    continue
                account.keep(stage.name, clock() - t0, len(doc.text) if doc.text else len(doc.html))
                survivors.append(i)
            alive = survivors
        if "tokens" in account.stages:
            account.stages["tokens"]["tokens"] += sum(docs[i].token_count for i in alive)
        return verdicts

    @staticmethod
    def _batch(stage: Stage, docs: list[Document], alive: list[int], verdicts: list[Drop | None],
               account: FileAccount) -> list[int]:
        t0 = time.perf_counter()
        batch = [docs[i] for i in alive]
        for _ in batch:
            account.enter(stage.name)
        try:
            reasons = stage.batch(batch)
        except Exception as exc:              # the whole batch leaves as errors of this stage
            share = (time.perf_counter() - t0) / len(batch)
            for i in alive:
                account.error(stage.name, exc, share)
                verdicts[i] = Drop(stage.name, f"error:{type(exc).__name__}")
            return []
        share = (time.perf_counter() - t0) / len(batch)
        survivors = []
        for i, reason in zip(alive, reasons):
            if reason:
                account.drop(stage.name, reason, share)
                verdicts[i] = Drop(stage.name, reason)
            else:
                doc = docs[i]
                account.keep(stage.name, share, len(doc.text) if doc.text else len(doc.html))
                survivors.append(i)
        return survivors


class StageErrors(Exception):
    """A stage raised on too large a share of a file's documents: the file fails."""


def max_error_fraction(cfg: dict[str, Any]) -> float:
    value = cfg["filter"]["max_error_fraction"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise UserError(f"filter.max_error_fraction must be a number from 0 to 1, got {value!r}")
    return float(value)


def with_signals(schema: pa.Schema, signals: dict[str, Any]) -> pa.Schema:
    """The output schema plus the columns stages declare (`SIGNALS`: name -> Arrow type or its name)."""
    for name, kind in signals.items():
        if name in schema.names:
            raise UserError(f"a stage's signal '{name}' would replace the output column of that name")
        schema = schema.append(pa.field(name, kind if isinstance(kind, pa.DataType) else pa.type_for_alias(kind)))
    return schema


# HF `datasets` (`load_dataset("parquet", data_dir=…)`) reads a file name holding one of these words between
# separators as a split, and then loads only the files so named: `test-crawl.warc.gz` would hide the rest.
_SPLIT_WORD = re.compile(r"(?<![^-._ 0-9])(train|training|validation|valid|dev|val|test|testing|eval|evaluation)"
                         r"(?![^-._ 0-9])")


def shard_prefix(uri: str) -> str:
    """Deterministic, collision-free shard name prefix for an input: readable stem + hash of the URI (a
    split word in the stem is capitalised, which HF's case-sensitive patterns do not match)."""
    name = PurePosixPath(uri.split("?", 1)[0]).name
    for ext in (".gz", ".warc", ".arc"):
        name = name.removesuffix(ext)
    digest = hashlib.sha1(uri.encode("utf-8")).hexdigest()[:10]
    return f"{_SPLIT_WORD.sub(lambda m: m.group(0).capitalize(), safe_name(name, 60))}-{digest}"


def filter_file(uri: str, cfg: dict[str, Any], output: str, stages: Pipeline) -> dict[str, Any]:
    """Process one input file end to end and return its accounting (a dict for the stage's stats)."""
    account = FileAccount(redact(uri), stages.names)
    fetch = FetchConfig.from_config(cfg)
    storage = open_storage(output, fetch)
    out_cfg = cfg["output"]
    by_language = bool(cfg["langid"]["partition_by_language"])
    prefix = shard_prefix(uri)
    writers: dict[str, ShardWriter] = {}

    def writer_for(folder: str, schema) -> ShardWriter:
        if folder not in writers:
            writers[folder] = ShardWriter(storage, folder, prefix, schema, ShardLimits.from_config(out_cfg))
        return writers[folder]

    write_dropped = bool(out_cfg["write_dropped"])
    status, error = "ok", None
    source = redact(uri)
    if is_remote(uri) and fetch.start_jitter_seconds:
        time.sleep(random.uniform(0, fetch.start_jitter_seconds))   # no stampede when a cluster starts
    stream = None
    try:
        with open_input(uri, fetch) as stream:
            chunk: list[Page | Skip] = []
            for item in iter_pages(stream, stages.read):
                chunk.append(item)
                if len(chunk) >= stages.chunk:
                    _process_chunk(chunk, stages, account, source, by_language, write_dropped, writer_for)
                    chunk = []
            _process_chunk(chunk, stages, account, source, by_language, write_dropped, writer_for)
        broken = account.error_share_exceeded(stages.max_error_fraction)
        if broken:
            raise StageErrors(broken)
        for writer in writers.values():
            account.shards.extend(writer.close())
    except Exception as exc:
        _note_fetch(account, stream)
        for writer in writers.values():
            writer.abort()
        status, error = "failed", scrub(str(exc) if isinstance(exc, StageErrors) else f"{type(exc).__name__}: {exc}")
    else:
        _note_fetch(account, stream)
    result = account.to_dict(status, error)
    if status == "ok":
        # The completion marker comes last: a file with a marker is never redone by a re-run.
        write_marker(storage, FILTERED_DIR, prefix, result)
    return result


def _process_chunk(chunk: list, stages: Pipeline, account: FileAccount, source: str, by_language: bool,
                   write_dropped: bool, writer_for: Callable) -> None:
    """Account and process a chunk of the input's records, then write them in input order."""
    docs: list[Document] = []
    for item in chunk:
        if isinstance(item, Skip):
            if item.counts_as_record:
                account.records += 1
                account.enter(READ)
                account.drop(READ, item.reason)
            else:
                account.notes[item.reason] += 1
            continue
        account.records += 1
        account.enter(READ)
        account.keep(READ, 0.0, len(item.html))
        account.bytes_in += item.raw_bytes
        if item.truncated:
            account.notes["truncated_record"] += 1
        docs.append(Document(id=item.record_id, url=item.url, source=source, date=item.date, html=item.html))
        item.html = ""
    verdicts = iter(stages.process(docs, account))
    documents = iter(docs)
    for item in chunk:
        if isinstance(item, Skip):
            if item.counts_as_record and write_dropped:
                writer_for(DROPPED_DIR, DROPPED_SCHEMA).add(
                    {"id": item.record_id, "url": item.url, "source": source, "stage": READ,
                     "reason": item.reason, "text": ""})
            continue
        doc, drop = next(documents), next(verdicts)
        if drop is None:
            account.kept += 1
            account.tokens += doc.token_count
            folder = f"{FILTERED_DIR}/{language_folder(doc.language)}" if by_language else FILTERED_DIR
            row = {"id": doc.id, "url": doc.url, "text": doc.text, "source": source, "date": doc.date,
                   "language": doc.language, "language_score": doc.language_score, "token_count": doc.token_count}
            for name in stages.signals:
                row[name] = doc.metadata.get(name)
            writer_for(folder, stages.schema).add(row)
        elif write_dropped:
            writer_for(DROPPED_DIR, DROPPED_SCHEMA).add(
                {"id": doc.id, "url": doc.url, "source": source, "stage": drop.stage,
                 "reason": drop.reason, "text": doc.text})


def _note_fetch(account: FileAccount, stream) -> None:
    """Retries and range resumes of a remote input, for the stage's stats."""
    raw = getattr(stream, "raw", None)
    if raw is not None and hasattr(raw, "retries"):
        account.notes["fetch_retries"] += raw.retries
        account.notes["range_resumes"] += raw.resumes
        account.notes["bytes_fetched"] += raw.offset
