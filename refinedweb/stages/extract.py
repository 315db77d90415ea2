"""Extract: main-content text from HTML (RW §3.1), then the paper's clean-up.

trafilatura in precision mode, main content only, no comments; then at most two consecutive newlines
and no URLs. Each document gets a time limit enforced with SIGALRM in the worker's main thread, so a
pathological page costs at most `timeout_seconds` and no extra process per document.
"""

from __future__ import annotations

import re
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..documents import Drop


@dataclass(frozen=True, slots=True)
class ExtractConfig:
    backend: str
    favor_precision: bool
    include_comments: bool
    include_tables: bool
    fallback: bool
    timeout_seconds: float
    max_html_bytes: int
    max_newlines: int
    remove_urls: bool
    min_chars: int

    @classmethod
    def from_config(cls, section: dict) -> "ExtractConfig":
        backend = str(section["backend"])
        if backend not in ("trafilatura", "resiliparse"):
            from ..errors import UserError

            raise UserError(f"extract.backend must be trafilatura or resiliparse, not '{backend}'")
        return cls(
            backend=backend,
            favor_precision=bool(section["favor_precision"]),
            include_comments=bool(section["include_comments"]),
            include_tables=bool(section["include_tables"]),
            fallback=bool(section["fallback"]),
            timeout_seconds=float(section["timeout_seconds"]),
            max_html_bytes=int(section["max_html_bytes"]),
            max_newlines=int(section["max_newlines"]),
            remove_urls=bool(section["remove_urls"]),
            min_chars=int(section["min_chars"]),
        )


class ExtractTimeout(Exception):
    pass


def _on_alarm(signum, frame):  # pragma: no cover - exercised through time_limit
    raise ExtractTimeout()


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ExtractTimeout in the block after `seconds` (main thread only; elsewhere no limit)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# URLs as they appear in running text: with a scheme, or starting with www.
_URL = re.compile(r"""(?:\b[a-zA-Z][a-zA-Z0-9+.\-]{1,15}://|\bwww\.)[^\s<>"'\])}]*""")
_SPACES_BEFORE_NEWLINE = re.compile(r"[ \t]+\n")
_INNER_SPACES = re.compile(r"[ \t]{2,}")


def clean_text(text: str, max_newlines: int = 2, remove_urls: bool = True) -> str:
    """RW §3.1 clean-up: URLs removed, at most `max_newlines` consecutive newlines."""
    if remove_urls and ("://" in text or "www." in text):
        text = _URL.sub("", text)
        text = _INNER_SPACES.sub(" ", text)
    text = _SPACES_BEFORE_NEWLINE.sub("\n", text)
    if max_newlines > 0 and "\n" * (max_newlines + 1) in text:
        text = re.sub("\n{%d,}" % (max_newlines + 1), "\n" * max_newlines, text)
    return text.strip()


class Extractor:
    """Callable HTML -> (text, None) or ("", Drop)."""

    def __init__(self, cfg: ExtractConfig):
        self.cfg = cfg
        if cfg.backend == "trafilatura":
            import trafilatura  # imported here so that workers pay for it once, lazily

            self._extract = trafilatura.extract
        else:
            from resiliparse.extract.html2text import extract_plain_text
            from resiliparse.parse.html import HTMLTree

            self._resiliparse = (extract_plain_text, HTMLTree)

    def _run_backend(self, html: str) -> str | None:
        cfg = self.cfg
        if cfg.backend == "trafilatura":
            return self._extract(
                html,
                favor_precision=cfg.favor_precision,
                include_comments=cfg.include_comments,
                include_tables=cfg.include_tables,
                no_fallback=not cfg.fallback,
                deduplicate=False,
                with_metadata=False,
                output_format="txt",
            )
        extract_plain_text, html_tree = self._resiliparse
        tree = html_tree.parse(html)
        return extract_plain_text(tree, main_content=True, alt_texts=False, links=False, list_bullets=True,
                                  form_fields=False, noscript=False, comments=cfg.include_comments)

    def __call__(self, html: str) -> tuple[str, Drop | None]:
        cfg = self.cfg
        if len(html) > cfg.max_html_bytes:
            html = html[: cfg.max_html_bytes]
        try:
            with time_limit(cfg.timeout_seconds):
                text = self._run_backend(html)
        except ExtractTimeout:
            return "", Drop("extract", "timeout")
        except RecursionError:
            return "", Drop("extract", "too_deep")
        if not text:
            return "", Drop("extract", "empty")
        text = clean_text(text, cfg.max_newlines, cfg.remove_urls)
        if len(text) < cfg.min_chars:
            return "", Drop("extract", "empty")
        return text, None
