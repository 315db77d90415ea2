"""The filter stage for one input file: read → URL filter → extract → language ID → repetition →
quality → line-wise corrections → token count → Parquet. One streaming pass, no Ray here: the Ray
layer (`runtime/ray_runner.py`) calls `filter_file` in a task per input file.
"""

from __future__ import annotations

import hashlib
import re
import random
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Callable

from ..documents import Document, Drop
from ..io.inputs import open_input
from ..io.remote import FetchConfig, is_remote, redact, scrub
from ..io.parquet import DOCUMENT_SCHEMA, DROPPED_SCHEMA, ShardLimits, ShardWriter
from ..io.storage import open_storage, safe_name
from ..stages.extract import ExtractConfig, Extractor
from ..stages.langid import LangIdConfig, LanguageIdentifier, PreExtractionCheck
from ..stages.line_filter import LineFilterConfig, correct_lines
from ..stages.quality import QualityConfig, check_quality
from ..stages.read import Page, ReadConfig, Skip, iter_pages
from ..stages.repetition import RepetitionConfig, check_repetition
from ..stages.tokens import count_tokens
from ..stages.url_filter import UrlFilter, UrlFilterConfig
from ..stats import FileAccount
from .run_state import write_marker

FILTERED_DIR = "filtered"
DROPPED_DIR = "dropped"


@dataclass
class DocumentStages:
    """The configured per-document stages, built once per worker process and reused for every file."""

    read: ReadConfig
    url_filter: UrlFilter | None
    extractor: Extractor
    langid: LanguageIdentifier
    pre_langid: PreExtractionCheck | None
    repetition: RepetitionConfig | None
    quality: QualityConfig | None
    line_filter: LineFilterConfig | None
    token_encoding: str | None

    @classmethod
    def build(cls, cfg: dict[str, Any], blocklist=None) -> "DocumentStages":
        url_cfg = cfg["url_filter"]
        identifier = LanguageIdentifier(LangIdConfig.from_config(cfg["langid"]))
        return cls(
            read=ReadConfig.from_config(cfg["read"]),
            url_filter=UrlFilter(UrlFilterConfig.from_config(url_cfg), blocklist) if url_cfg["enabled"] else None,
            extractor=Extractor(ExtractConfig.from_config(cfg["extract"])),
            langid=identifier,
            # the pre-check saves trafilatura's time; with the resiliparse backend it would cost as much as it saves
            pre_langid=PreExtractionCheck.maybe(identifier) if cfg["extract"]["backend"] == "trafilatura" else None,
            repetition=RepetitionConfig.from_config(cfg["repetition"]) if cfg["repetition"]["enabled"] else None,
            quality=QualityConfig.from_config(cfg["quality"]) if cfg["quality"]["enabled"] else None,
            line_filter=LineFilterConfig.from_config(cfg["line_filter"]) if cfg["line_filter"]["enabled"] else None,
            token_encoding=cfg["tokens"]["encoding"] if cfg["tokens"]["enabled"] else None,
        )

    def steps(self) -> list[tuple[str, Callable[[Page, Document], str | None] | None]]:
        """(stage, step) in pipeline order; a step returns a drop reason or None; None = stage disabled."""
        return [
            ("url_filter", self._url_filter if self.url_filter is not None else None),
            ("pre_langid", self._pre_langid if self.pre_langid is not None else None),
            ("extract", self._extract),
            ("langid", self._langid),
            ("repetition", self._repetition if self.repetition is not None else None),
            ("quality", self._quality if self.quality is not None else None),
            ("line_filter", self._line_filter if self.line_filter is not None else None),
            ("tokens", self._tokens),
        ]

    def _url_filter(self, page: Page, doc: Document) -> str | None:
        return self.url_filter.check(page.url)

    def _pre_langid(self, page: Page, doc: Document) -> str | None:
        drop = self.pre_langid(page.html)
        return drop.reason if drop else None

    def _extract(self, page: Page, doc: Document) -> str | None:
        doc.text, drop = self.extractor(page.html)
        page.html = ""   # the HTML is not needed any more: free it early
        return drop.reason if drop else None

    def _langid(self, page: Page, doc: Document) -> str | None:
        doc.language, doc.language_score, drop = self.langid(doc.text)
        return drop.reason if drop else None

    def _repetition(self, page: Page, doc: Document) -> str | None:
        return check_repetition(doc.text, self.repetition)

    def _quality(self, page: Page, doc: Document) -> str | None:
        return check_quality(doc.text, self.quality)

    def _line_filter(self, page: Page, doc: Document) -> str | None:
        text, reason, _removed_words = correct_lines(doc.text, self.line_filter)
        if reason:
            return reason
        if not text.strip():
            return "empty"
        doc.text = text
        return None

    def _tokens(self, page: Page, doc: Document) -> str | None:
        if self.token_encoding:
            doc.token_count = count_tokens(doc.text, self.token_encoding)
        return None

    def process(self, page: Page, doc: Document, account: FileAccount) -> Drop | None:
        """Run the document stages on one page; returns the Drop that removed it, or None if kept.

        An exception inside a stage is counted as an error of that stage (and the document leaves),
        never propagated: one bad page must not cost the rest of the file. A disabled stage passes
        every document on, so each stage's input is the previous stage's output.
        """
        clock = time.perf_counter
        for stage, step in self._steps:
            account.enter(stage)
            t0 = clock()
            if step is not None:
                try:
                    reason = step(page, doc)
                except Exception as exc:
                    account.error(stage, exc, clock() - t0)
                    return Drop(stage, f"error:{type(exc).__name__}")
                if reason:
                    account.drop(stage, reason, clock() - t0)
                    return Drop(stage, reason)
            account.keep(stage, clock() - t0, len(doc.text) if doc.text else len(page.html))
        account.stages["tokens"]["tokens"] += doc.token_count
        return None

    def __post_init__(self) -> None:
        self._steps = self.steps()


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


def filter_file(uri: str, cfg: dict[str, Any], output: str, stages: DocumentStages) -> dict[str, Any]:
    """Process one input file end to end and return its accounting (a dict for the stage's stats)."""
    account = FileAccount(redact(uri))
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
            for item in iter_pages(stream, stages.read):
                if isinstance(item, Skip):
                    if not item.counts_as_record:
                        account.notes[item.reason] += 1
                        continue
                    account.records += 1
                    account.enter("read")
                    account.drop("read", item.reason)
                    if write_dropped:
                        writer_for(DROPPED_DIR, DROPPED_SCHEMA).add(
                            {"id": item.record_id, "url": item.url, "source": source, "stage": "read",
                             "reason": item.reason, "text": ""})
                    continue
                account.records += 1
                account.enter("read")
                account.keep("read", 0.0, len(item.html))
                account.bytes_in += item.raw_bytes
                if item.truncated:
                    account.notes["truncated_record"] += 1
                doc = Document(id=item.record_id, url=item.url, source=source, date=item.date)
                drop = stages.process(item, doc, account)
                if drop is None:
                    account.kept += 1
                    account.tokens += doc.token_count
                    folder = f"{FILTERED_DIR}/lang={safe_name(doc.language)}" if by_language else FILTERED_DIR
                    writer_for(folder, DOCUMENT_SCHEMA).add(
                        {"id": doc.id, "url": doc.url, "text": doc.text, "source": source, "date": doc.date,
                         "language": doc.language, "language_score": doc.language_score,
                         "token_count": doc.token_count})
                elif write_dropped:
                    writer_for(DROPPED_DIR, DROPPED_SCHEMA).add(
                        {"id": doc.id, "url": doc.url, "source": source, "stage": drop.stage,
                         "reason": drop.reason, "text": doc.text})
        for writer in writers.values():
            account.shards.extend(writer.close())
    except Exception as exc:
        _note_fetch(account, stream)
        for writer in writers.values():
            writer.abort()
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        status, error = "failed", scrub(f"{type(exc).__name__}: {exc}")
    else:
        _note_fetch(account, stream)
    result = account.to_dict(status, error)
    if status == "ok":
        # The completion marker comes last: a file with a marker is never redone by a re-run.
        write_marker(storage, FILTERED_DIR, prefix, result)
    return result


def _note_fetch(account: FileAccount, stream) -> None:
    """Retries and range resumes of a remote input, for the stage's stats."""
    raw = getattr(stream, "raw", None)
    if raw is not None and hasattr(raw, "retries"):
        account.notes["fetch_retries"] += raw.retries
        account.notes["range_resumes"] += raw.resumes
        account.notes["bytes_fetched"] += raw.offset
