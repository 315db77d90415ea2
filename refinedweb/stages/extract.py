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

import numpy as np

from ..documents import Drop
from ..settings import from_section, setting
from .contract import Stage


@dataclass(frozen=True, slots=True)
class ExtractConfig:
    backend: str = setting(choices=("trafilatura", "resiliparse"))
    favor_precision: bool = setting()
    include_comments: bool = setting()
    include_tables: bool = setting()
    fallback: bool = setting()
    timeout_seconds: float = setting(min=0)
    max_html_bytes: int = setting(min=1)
    max_newlines: int = setting(min=1)
    remove_urls: bool = setting()
    min_chars: int = setting(min=0)

    @classmethod
    def from_config(cls, section: dict) -> "ExtractConfig":
        return from_section(cls, section, "extract")


class ExtractTimeout(BaseException):
    """Not an Exception: trafilatura's `except Exception` around lxml parsing would swallow it, and the page
    would then run to the end without a limit (as KeyboardInterrupt, it passes such handlers)."""


class Deadline:
    expired = False


@contextmanager
def time_limit(seconds: float) -> Iterator[Deadline]:
    """Raise ExtractTimeout in the block after `seconds` (main thread only; elsewhere no limit). The yielded
    Deadline says whether the alarm went off, for callers that must not trust a handler to let it through."""
    deadline = Deadline()
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield deadline
        return

    def on_alarm(signum, frame):
        deadline.expired = True
        raise ExtractTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield deadline
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# URLs as they appear in running text: with a scheme, or starting with www.
_URL = re.compile(r"""(?:\b[a-zA-Z][a-zA-Z0-9+.\-]{1,15}://|\bwww\.)[^\s<>"'\])}]*""")
_SCHEME_CHARS = 16      # the most characters a match of _URL has before its "://"
_INNER_SPACES = re.compile(r"[ \t]{2,}")


def strip_urls(text: str) -> str:
    """`_URL.sub("", text)`, with the regex started only where a match can begin: at most _SCHEME_CHARS before a
    "://", or at a "www." (the regex engine costs ~25 ns a character wherever it runs; `str.find` finds these).
    The matches are the same, found in the same order, so the text is the same."""
    out, last = [], 0
    scheme, www = text.find("://"), text.find("www.")
    while True:
        if 0 <= scheme < last:
            scheme = text.find("://", last)
        if 0 <= www < last:
            www = text.find("www.", last)
        starts = ([scheme - _SCHEME_CHARS] if scheme >= 0 else []) + ([www] if www >= 0 else [])
        if not starts:
            break
        # no match starts in [last, min(starts)): it would hold a "://" or a "www." before the next one
        m = _URL.search(text, max(last, min(starts)))
        if m is None:
            break
        out.append(text[last:m.start()])
        last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def clean_text(text: str, max_newlines: int = 2, remove_urls: bool = True) -> str:
    """RW §3.1 clean-up: URLs removed, at most `max_newlines` consecutive newlines. Each regex runs only on a text
    holding what it replaces (`in` is a fast C scan)."""
    if remove_urls and ("://" in text or "www." in text):
        text = strip_urls(text)
        if "  " in text or " \t" in text or "\t " in text or "\t\t" in text:
            text = _INNER_SPACES.sub(" ", text)
    if " \n" in text or "\t\n" in text:          # `[ \t]+\n` -> "\n": every line but the last right-stripped
        lines = text.split("\n")
        last = lines.pop()
        text = "\n".join([line.rstrip(" \t") for line in lines] + [last])
    if max_newlines > 0 and "\n" * (max_newlines + 1) in text:
        text = re.sub("\n{%d,}" % (max_newlines + 1), "\n" * max_newlines, text)
    return text.strip()


# resiliparse's main-content pass is quadratic in nesting depth (1k levels ~25 ms, 10k ~2.6 s, 100k ~minutes),
# and C code cannot be interrupted by SIGALRM: deeper pages never reach it. libxml2 (trafilatura) stops at 256.
MAX_NESTING_DEPTH = 1000
_COUNT_BELOW = 100_000


def nesting_bound(html: str) -> int:
    """An upper bound of the page's element nesting depth, in numpy (~0.2 ms per 100 kB): opening tags minus
    closing and self-closing ones, the highest along the page. Void and unclosed elements only raise it. Summed
    over the tag events only (a few thousand), not over every byte. A short page is first bounded by its count of
    "<" (a page of 100k characters or more rarely has 1,000 or fewer: counting them would be a wasted pass)."""
    if len(html) < _COUNT_BELOW:
        tags = html.count("<")
        if tags <= MAX_NESTING_DEPTH:
            return tags
    raw = np.frombuffer(html.encode("utf-8", "replace"), dtype=np.uint8)
    lt = np.flatnonzero(raw[:-1] == 60)                          # "<"
    after = raw[lt + 1]
    letter = after | 0x20
    opens = lt[(letter >= 97) & (letter <= 122)]                # "<a".."<z": an element opens
    closes = lt[after == 47]                                    # "</": one closes
    gt = np.flatnonzero(raw[1:] == 62)                          # ">" at gt + 1
    self_closing = gt[raw[gt] == 47]                            # "/>": self-closing, at its "/"
    at = np.concatenate((opens, closes, self_closing))
    if not len(at):
        return 0
    order = np.argsort(at, kind="stable")
    steps = np.concatenate((np.ones(len(opens), np.int32), np.full(len(at) - len(opens), -1, np.int32)))
    best = int(np.cumsum(steps[order]).max())
    return best if at[order[0]] == 0 else max(best, 0)         # the depth is 0 before a first tag past the start


def tree_depth(root, limit: int) -> int:
    """Exact depth of a resiliparse DOM below `root` (explicit stack; stops once past `limit`)."""
    best = 0
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > best:
            best = depth
            if best > limit:
                return best
        child = node.first_child
        while child is not None:
            stack.append((child, depth + 1))
            child = child.next
    return best


def too_deep_for_resiliparse(html: str, tree) -> bool:
    return nesting_bound(html) > MAX_NESTING_DEPTH and tree_depth(tree.document, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH


class TooDeep(Exception):
    """The page is nested deeper than MAX_NESTING_DEPTH (counted as extract:too_deep)."""


_BLOCKS = frozenset(("p", "head", "list", "quote", "code", "table", "div"))


def flatten_tables(body) -> None:
    """Tables as lines, in place: a data row becomes one line of its cells joined by tabs; a layout row (a
    cell holding paragraphs, headings or lists, the way old pages put their whole text in table cells)
    gives its cells' blocks, each its own line. trafilatura would write ``| cell | cell |`` lines and join
    a layout cell's paragraphs into one line. Each row becomes a `div` in place (renamed, not replaced: no
    element is made or moved across documents for it). One pass over a row's cells finds both its kind and
    its line; a cell without children (most are) is read as its `.text`, not serialized: this function was
    ~5% of extraction on big pages."""
    from lxml import etree

    tostring, sub_element = etree.tostring, etree.SubElement
    for row in reversed(list(body.iter("row"))):   # innermost first: a nested table is a block of its cell
        cells = list(row.iterchildren("cell"))
        tail = row.tail
        texts = []
        layout = False
        for cell in cells:
            if len(cell):
                if not _BLOCKS.isdisjoint([child.tag for child in cell]):
                    layout = True
                    break
                text = tostring(cell, method="text", encoding=str, with_tail=False)
            else:
                text = cell.text
                if not text:
                    continue
            text = " ".join(text.split())
            if text:
                texts.append(text)
        if layout:
            former = list(row)
            for cell in cells:
                if cell.text and cell.text.strip():
                    sub_element(row, "p").text = cell.text
                for child in list(cell):
                    child_tail, child.tail = child.tail, None
                    row.append(child)
                    if child_tail and child_tail.strip():
                        sub_element(row, "p").text = child_tail
            for child in former:                    # the cells (and anything else the row held) go
                row.remove(child)
            row.text = None
            row.attrib.clear()
        else:
            row.clear()
            if texts:
                sub_element(row, "p").text = "\t".join(texts)
        row.tag = "div"
        row.tail = tail
    for table in body.iter("table"):                # (trafilatura sometimes leaves rows without their table)
        table.tag = "div"


# An EXSLT regex test on an attribute, as trafilatura writes them: re:test(@id, '...'), re:test(@id|@class, '...').
_REGEX_TEST = re.compile(r"re:test\((@[\w-]+(?:\|@[\w-]+)*),\s*'([^']*)'\)")
_EXSLT_REGEXP = "http://exslt.org/regular-expressions"


def guard_regex_tests(path: str) -> str:
    """The same XPath with each attribute regex test behind a test that the attribute exists.

    lxml runs `re:test` as a Python callback for every candidate element, with or without the attribute
    (an absent one reads as ""); the guard lets libxml2 skip the call. A pattern that can match "" is left
    as it is, so the result is the same node-set for every tree."""
    def guarded(m: re.Match) -> str:
        if re.search(m.group(2), "") is not None:
            return m.group(0)
        return f"(({' or '.join(m.group(1).split('|'))}) and {m.group(0)})"

    return _REGEX_TEST.sub(guarded, path)


def speed_up_trafilatura() -> None:
    """Make trafilatura's boilerplate XPaths cheaper without changing what they select (identical text:
    tests/test_extract.py), once per process.

    * the XPaths that prune the tree in precision mode become Python tests over the candidate elements
      (`boilerplate_selectors.py`: the same node-sets, ~2-3x faster than libxml2 calling back into Python for
      each `re:test`); every other XPath of `trafilatura.xpaths` is recompiled with `guard_regex_tests`, in
      place (the lists are shared by trafilatura's modules); results are elements, so no smart strings;
    * trafilatura's HTML parser gets lxml's C element-class lookup instead of `lxml.html`'s Python one
      (trafilatura uses no form-element classes); the tree is the same; with the shortcuts installed, its
      elements read `text_content()` from libxml2's text serialization (`TextContentElement`);
    * work whose result precision mode cannot use is skipped (`extraction_shortcuts.py`)."""
    import trafilatura.utils
    import trafilatura.xpaths
    from lxml import etree, html

    if getattr(trafilatura.xpaths, "_refinedweb_guarded", False):
        return
    from . import extraction_shortcuts
    from .boilerplate_selectors import selector

    for value in vars(trafilatura.xpaths).values():
        if isinstance(value, list) and value and all(isinstance(x, etree.XPath) for x in value):
            for i, xpath in enumerate(value):
                value[i] = selector(xpath) or etree.XPath(guard_regex_tests(xpath.path),
                                                          namespaces={"re": _EXSLT_REGEXP}, smart_strings=False)
    element = extraction_shortcuts.TextContentElement if extraction_shortcuts.install() else html.HtmlElement
    trafilatura.utils.HTML_PARSER.set_element_class_lookup(etree.ElementDefaultClassLookup(
        element=element, comment=html.HtmlComment, pi=html.HtmlProcessingInstruction, entity=html.HtmlEntity))
    trafilatura.xpaths._refinedweb_guarded = True


class Extractor:
    """Callable HTML -> (text, None) or ("", Drop)."""

    def __init__(self, cfg: ExtractConfig):
        self.cfg = cfg
        if cfg.backend == "trafilatura":
            # imported here so that workers pay for it once, lazily
            speed_up_trafilatura()
            from trafilatura import bare_extraction
            from trafilatura.utils import normalize_unicode
            from trafilatura.xml import xmltotxt

            self._bare, self._to_text, self._normalize = bare_extraction, xmltotxt, normalize_unicode
        else:
            from resiliparse.extract.html2text import extract_plain_text
            from resiliparse.parse.html import HTMLTree

            self._resiliparse = (extract_plain_text, HTMLTree)

    def _run_backend(self, html: str) -> str | None:
        cfg = self.cfg
        if cfg.backend == "trafilatura":
            # trafilatura.extract(output_format="txt") minus its table rendering: the same extraction, then the
            # tables turned into lines (`flatten_tables`) before the tree becomes text
            document = self._bare(
                html,
                favor_precision=cfg.favor_precision,
                include_comments=cfg.include_comments,
                include_tables=cfg.include_tables,
                no_fallback=not cfg.fallback,
                deduplicate=False,
                with_metadata=False,
                output_format="txt",
                as_dict=False,
            )
            if document is None or document.body is None:
                return None
            flatten_tables(document.body)
            text = self._to_text(document.body, False)
            if document.commentsbody is not None:
                text = f"{text}\n{self._to_text(document.commentsbody, False)}".strip()
            return self._normalize(text)
        extract_plain_text, html_tree = self._resiliparse
        tree = html_tree.parse(html)
        if too_deep_for_resiliparse(html, tree):
            raise TooDeep()
        return extract_plain_text(tree, main_content=True, alt_texts=False, links=False, list_bullets=True,
                                  form_fields=False, noscript=False, comments=cfg.include_comments)

    def __call__(self, html: str) -> tuple[str, Drop | None]:
        cfg = self.cfg
        if len(html) > cfg.max_html_bytes // 4:            # cheap: a character is at most 4 UTF-8 bytes
            raw = html.encode("utf-8", "surrogatepass")
            if len(raw) > cfg.max_html_bytes:
                html = raw[: cfg.max_html_bytes].decode("utf-8", "ignore")
        try:
            with time_limit(cfg.timeout_seconds) as deadline:
                text = self._run_backend(html)
        except ExtractTimeout:
            return "", Drop("extract", "timeout")
        except (RecursionError, TooDeep):
            return "", Drop("extract", "too_deep")
        if deadline.expired:        # the alarm went off but a handler in the backend swallowed it
            return "", Drop("extract", "timeout")
        if not text:
            # libxml2 silently cuts what lies deeper than 256 levels: name that cause when it is likely
            return "", Drop("extract", "too_deep" if nesting_bound(html) > MAX_NESTING_DEPTH else "empty")
        text = clean_text(text, cfg.max_newlines, cfg.remove_urls)
        if len(text) < cfg.min_chars:
            return "", Drop("extract", "empty")
        return text, None


# -- stage contract (stages/contract.py) ------------------------------------------------------------------
NAME = "extract"
EDITS_TEXT = True
READS_HTML = True          # needs the page: runs in the filter stage only, not over Parquet
VERSION = 1                # the resume fingerprint covers it: bump it when what the stage writes changes
LABEL = "text extraction"
CONFIG = ExtractConfig


def build(section: dict, shared) -> Stage:
    extractor = Extractor(ExtractConfig.from_config(section))

    def apply(doc) -> str | None:
        doc.text, drop = extractor(doc.html)
        doc.html = ""   # the HTML is not needed any more: free it early
        return drop.reason if drop else None

    return Stage(NAME, apply=apply)
