"""Work trafilatura does in precision mode whose result it cannot use, skipped: the same text, less time.

* The readability comparison (`try_readability`, ~15% of extraction) is run on every page, but in precision mode
  its output replaces trafilatura's own only when it is empty, more than twice as long, or the own extraction is
  structurally deficient and readability's is longer than 2 × `min_extracted_size`. readability's output is
  a part of the pruned raw tree's text (it moves and drops nodes, never adds text, once the elements whose
  contents the HTML parser reads as raw text are ruled out), so its length after `trim` is at most that
  tree's: when that bound already rules out every winning case, readability is not run.
* In precision mode the raw tree is not read after the comparison, so it is not copied for it.

Installed only on the trafilatura whose functions these arguments were made for (their source hashes) and on the
libxml2 whose HTML parser they were checked with (which elements it reads as raw text); anything else runs
stock. tests/test_extract.py checks the bound and the text on real pages, benchmarks/extraction_identity.py the
text on every shared page.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from copy import copy

from lxml import etree
from trafilatura.utils import trim

# source sha256 (first 16 hex) of every function the reasoning above reads, for trafilatura 2.3.1
PINNED = {
    "core._extract_and_compare": "f7d056c2118222e8",
    "core.trafilatura_sequence": "f03dc4d2946dacbd",
    "core.bare_extraction": "2e57adb3062086f9",
    "external.compare_extraction": "2d3d1ffea3ba469f",
    "external._prefer_readability": "f6ee688e9ae60074",
    "external.try_readability": "538e3c8e5ab7e4d4",
    "readability_lxml.Document": "fe2ad9d1920eed29",
    "utils.trim": "b82ffd884c0dc230",
    "utils.fromstring_bytes": "c5ee8713366ea137",
}

# elements whose contents libxml2's HTML parser reads as raw text: readability's serialized output, parsed
# again, would read their escaped `&lt;` as four characters (script and style it drops itself)
RAW_TEXT = ("iframe", "xmp", "noembed", "noframes", "plaintext")
LIBXML2 = (2, 14)          # the parser RAW_TEXT was read off (lxml 6.x bundles it)
READABILITY_DROPS = ("script", "style", "fencedframe")   # the first thing Document.summary does


def fingerprints() -> dict[str, str]:
    import importlib

    out = {}
    for name in PINNED:
        module, attr = name.split(".")
        obj = getattr(importlib.import_module(f"trafilatura.{module}"), attr)
        out[name] = hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
    return out


def readability_bound(raw_tree) -> int | None:
    """An upper bound of the length of readability's text for `raw_tree` (after `trim`), or None when the tree holds
    raw-text elements. Drops script, style and fencedframe first, as readability itself would."""
    for elem in list(raw_tree.iter(*READABILITY_DROPS)):
        elem.drop_tree()
    if next(raw_tree.iter(*RAW_TEXT), None) is not None:
        return None
    return len(trim(etree.tostring(raw_tree, method="text", encoding=str)))


def readability_cannot_win(raw_tree, body, len_text: int, options) -> bool:
    """True when readability's output, whatever it is, would not replace the own extraction (precision mode)."""
    if options.focus != "precision" or len_text == 0:
        return False
    bound = readability_bound(raw_tree)
    if bound is None or bound > 2 * len_text:      # readability could come out more than twice as long
        return False
    if bound <= 2 * options.min_extracted_size:
        return True
    # the structural test of _prefer_readability, on the own extraction
    return not (not body.xpath(".//p//text()") or len(body.findall(".//table")) > len(body.findall(".//p")))


_pending = threading.local()   # .stack: (body, len_text, options) of the comparisons under way in this thread
stock: dict = {}      # the stock readability, for tests


def install() -> bool:
    """Patch the pinned trafilatura in place (once); False, and nothing patched, on any other version."""
    import trafilatura.core as core
    import trafilatura.external as external

    if getattr(core, "_refinedweb_shortcuts", False):
        return True
    if fingerprints() != PINNED or etree.LIBXML_VERSION[:2] != LIBXML2:
        return False
    stock_compare, stock_readability = external.compare_extraction, external.try_readability
    stock.update(try_readability=stock_readability)
    extract_content = core.extract_content

    def compare_extraction(cleaned_tree, raw_tree, body, text, options):
        stack = _pending.__dict__.setdefault("stack", [])
        stack.append((body, len(text), options))
        try:
            return stock_compare(cleaned_tree, raw_tree, body, text, options)
        finally:
            stack.pop()

    def try_readability(raw_tree):
        stack = getattr(_pending, "stack", None)
        if stack and readability_cannot_win(raw_tree, *stack[-1]):
            return external.HtmlElement()     # what a failed readability returns: length 0, never preferred
        return stock_readability(raw_tree)

    def _extract_and_compare(cleaned_tree, cleaned_tree_backup, tree, options):
        postbody, temp_text = extract_content(cleaned_tree, options)
        if not options.fast:
            raw = tree if options.focus == "precision" else copy(tree)
            postbody, temp_text = compare_extraction(cleaned_tree_backup, raw, postbody, temp_text, options)
        return postbody, temp_text

    external.try_readability = try_readability
    core._extract_and_compare = _extract_and_compare
    core._refinedweb_shortcuts = True
    return True
