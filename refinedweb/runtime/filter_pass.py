"""The filter stage for one input file: read (WARC records -> pages), then the document stages of
`filter.stages` in order (`PipelineRun`), then Parquet. One streaming pass, no Ray here: the Ray layer
(`runtime/ray_runner.py`) calls `filter_file` in a task per input file. `documents_pass.py` runs the same
stages over Parquet that already exists.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Callable

import pyarrow as pa

from ..documents import Document, Drop
from ..errors import UserError
from ..io.inputs import open_input
from ..io.parquet import DOCUMENT_SCHEMA, DROPPED_SCHEMA, ShardLimits, ShardWriter
from ..io.remote import FetchConfig, is_remote, redact, scrub
from ..io.storage import language_folder, open_storage, safe_name
from ..stages.contract import DETAIL, READ, TOKENS, Stage, build_stages, count_key
from ..stages.read import Page, ReadConfig, Skip, iter_pages
from ..stats import FileAccount, add_count
from .run_state import write_marker

FILTERED_DIR = "filtered"
DROPPED_DIR = "dropped"


class Pipeline:
    """The configured document stages (`filter.stages`), built once per worker process and reused for every
    file (`start` gives a file its run). Documents go through in chunks, stage by stage, so that a stage with a
    batch entry point (a model) sees many documents at once, in batches of its `batch_size` gathered across
    chunks when it asks for one; results, accounting and output order are those of one document at a time."""

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

    def start(self, account: FileAccount) -> "PipelineRun":
        return PipelineRun(self.stages, account)

    def process(self, docs: list[Document], account: FileAccount) -> list[Drop | None]:
        """The Drop that removed each of `docs`, or None if it is kept (all of them through every stage)."""
        run = self.start(account)
        decided = run.feed(Chunk(None, docs)) + run.flush()
        return decided[0].verdicts

    def kept(self, docs: list[Document], source: str) -> list[Document]:
        """The documents every stage keeps (a plan's view of its stage's input)."""
        verdicts = self.process(docs, FileAccount(source, self.names))
        return [d for d, v in zip(docs, verdicts) if v is None]


@dataclass
class Chunk:
    """Consecutive input records and their documents; `left` of them still being decided."""

    items: Any                           # what the caller writes the chunk from (records, rows)
    docs: list[Document]
    verdicts: list[Drop | None] = field(default_factory=list)
    left: int = 0

    def __post_init__(self) -> None:
        self.verdicts = [None] * len(self.docs)
        self.left = len(self.docs)


class PipelineRun:
    """One file through the stages: `feed` chunks in input order, get back the chunks whose documents are all
    decided, in input order; `flush` at the end (a batch stage's last, partial batch).

    An exception inside a stage is counted as an error of that stage (and the document leaves), never
    propagated: one bad page must not cost the rest of the file (a stage that raises on more than
    `filter.max_error_fraction` of the file fails it, `filter_file`). A disabled stage passes every document
    on, so each stage's input is the previous stage's output. A stage after `tokens` that changes the text is
    an error of that stage: token_count would be stale."""

    def __init__(self, stages: list[Stage], account: FileAccount):
        self.stages, self.account = stages, account
        names = [s.name for s in stages]
        self.after_tokens = names.index(TOKENS) + 1 if TOKENS in names else len(stages)
        self.waiting: deque[Chunk] = deque()
        self.queues: dict[int, list[tuple[Chunk, int]]] = {}

    def feed(self, chunk: Chunk) -> list[Chunk]:
        self.waiting.append(chunk)
        self._advance([(chunk, i) for i in range(len(chunk.docs))], 0)
        return self._decided()

    def flush(self) -> list[Chunk]:
        for k, stage in enumerate(self.stages):
            queue = self.queues.pop(k, [])
            while queue:
                batch, queue = queue[:stage.batch_size], queue[stage.batch_size:]
                self._advance(self._run(k, batch), k + 1)
        return self._decided()

    def _decided(self) -> list[Chunk]:
        out = []
        while self.waiting and self.waiting[0].left == 0:
            out.append(self.waiting.popleft())
        return out

    def _advance(self, entries: list[tuple[Chunk, int]], start: int) -> None:
        for k in range(start, len(self.stages)):
            if not entries:
                return
            size = self.stages[k].batch_size
            if size:                                  # wait for a whole batch, across chunks
                queue = self.queues.setdefault(k, [])
                queue.extend(entries)
                while len(queue) >= size:
                    batch = queue[:size]
                    del queue[:size]
                    self._advance(self._run(k, batch), k + 1)
                return
            entries = self._run(k, entries)
        account = self.account
        for chunk, i in entries:                      # through every stage: kept
            chunk.left -= 1
            if TOKENS in account.stages:
                account.stages[TOKENS]["tokens"] += chunk.docs[i].token_count

    def _run(self, k: int, entries: list[tuple[Chunk, int]]) -> list[tuple[Chunk, int]]:
        """Stage k over the entries; the survivors. Drops and errors are decided here."""
        stage, account, clock = self.stages[k], self.account, time.perf_counter
        watch = k >= self.after_tokens
        docs = [chunk.docs[i] for chunk, i in entries]
        texts = [doc.text for doc in docs] if watch else None
        for _ in entries:
            account.enter(stage.name)
        outcomes: list[tuple[str | None, BaseException | None, float]] = []
        if stage.batch is not None:
            t0 = clock()
            try:
                reasons = stage.batch(docs)
                failure = None
            except Exception as exc:                  # the whole batch leaves as errors of this stage
                reasons, failure = [None] * len(docs), exc
            share = (clock() - t0) / len(docs)
            outcomes = [(reason, failure, share) for reason in reasons]
        else:
            for doc in docs:
                t0 = clock()
                try:
                    outcomes.append((stage.apply(doc), None, clock() - t0))
                except Exception as exc:
                    outcomes.append((None, exc, clock() - t0))
        survivors = []
        for n, ((chunk, i), doc, (reason, failure, seconds)) in enumerate(zip(entries, docs, outcomes)):
            if failure is None and watch and doc.text is not texts[n] and doc.text != texts[n]:
                failure = RuntimeError(f"stage {stage.name} changed the text after {TOKENS} counted it; a stage "
                                       f"that edits text sets EDITS_TEXT = True and comes before {TOKENS}")
            if failure is not None:
                account.error(stage.name, failure, seconds)
                chunk.verdicts[i] = Drop(stage.name, f"error:{type(failure).__name__}")
                chunk.left -= 1
            elif reason:
                account.drop(stage.name, reason, seconds)
                chunk.verdicts[i] = Drop(stage.name, reason)
                chunk.left -= 1
            else:
                account.keep(stage.name, seconds, len(doc.text) if doc.text else len(doc.html))
                survivors.append((chunk, i))
            if stage.counts:
                tally = account.stages[stage.name].setdefault("counts", {})
                for kind in stage.counts:
                    add_count(tally, kind, doc.metadata.pop(count_key(kind), 0))
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
        run = stages.start(account)

        def write(decided: list[Chunk]) -> None:
            for done in decided:
                _write_chunk(done, stages, account, source, by_language, write_dropped, writer_for)

        with open_input(uri, fetch) as stream:
            items: list[Page | Skip] = []
            for item in iter_pages(stream, stages.read):
                items.append(item)
                if len(items) >= stages.chunk:
                    write(run.feed(_read_chunk(items, account, source)))
                    items = []
            write(run.feed(_read_chunk(items, account, source)))
        close_file(run, write, stages, account, writers)
    except Exception as exc:
        _note_fetch(account, stream)
        status, error = "failed", file_failure(exc, writers)
    else:
        _note_fetch(account, stream)
    result = account.to_dict(status, error)
    if status == "ok":
        # The completion marker comes last: a file with a marker is never redone by a re-run.
        write_marker(storage, FILTERED_DIR, prefix, result)
    return result


def close_file(run: PipelineRun, write: Callable[[list[Chunk]], None], stages: Pipeline, account: FileAccount,
               writers: dict[str, ShardWriter]) -> None:
    """The end of an input file: the stages' last batches written, the error share checked (a broken stage
    fails the file), the shards committed into the file's accounting."""
    write(run.flush())
    broken = account.error_share_exceeded(stages.max_error_fraction)
    if broken:
        raise StageErrors(broken)
    for writer in writers.values():
        account.shards.extend(writer.close())


def file_failure(exc: Exception, writers: dict[str, ShardWriter]) -> str:
    """A failed file leaves nothing behind (its committed shards deleted); the one line that says why."""
    for writer in writers.values():
        writer.abort()
    return scrub(str(exc) if isinstance(exc, StageErrors) else f"{type(exc).__name__}: {exc}")


def _read_chunk(items: list, account: FileAccount, source: str) -> Chunk:
    """Account a chunk of the input's records (read); its documents, for the stages."""
    docs: list[Document] = []
    for item in items:
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
    return Chunk(items, docs)


def _write_chunk(chunk: Chunk, stages: Pipeline, account: FileAccount, source: str, by_language: bool,
                 write_dropped: bool, writer_for: Callable) -> None:
    """Write a decided chunk's records in input order: kept documents, and (when asked) what was dropped."""
    verdicts = iter(chunk.verdicts)
    documents = iter(chunk.docs)
    for item in chunk.items:
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
                 "reason": drop.reason, "text": doc.text, "detail": doc.metadata.get(DETAIL)})


def _note_fetch(account: FileAccount, stream) -> None:
    """Retries and range resumes of a remote input, for the stage's stats."""
    raw = getattr(stream, "raw", None)
    if raw is not None and hasattr(raw, "retries"):
        account.notes["fetch_retries"] += raw.retries
        account.notes["range_resumes"] += raw.resumes
        account.notes["bytes_fetched"] += raw.offset
