"""Work trafilatura does in precision mode whose result it cannot use, skipped: the same text, less time.

* The readability comparison (`try_readability`, ~15% of extraction) is run on every page, but in precision mode
  its output replaces trafilatura's own only when it is empty, more than twice as long, or the own extraction is
  structurally deficient and readability's is longer than 2 × `min_extracted_size`. readability's output is
  a part of the pruned raw tree's text (it moves and drops nodes, never adds text, once the elements whose
  contents the HTML parser reads as raw text are ruled out), so its length after `trim` is at most that
  tree's: when that bound already rules out every winning case, readability is not run. The bound is tried first on
  the raw tree before `OVERALL_DISCARD_XPATH` prunes it for readability (the prune only removes text): when it
  rules readability out there, the prune is skipped too (a third of the shared pages; the prune is ~12% of extraction).
* In precision mode the raw tree is not read after the comparison, so it is not copied for it.
* jusText (`try_justext`, run on short or unclean extractions: ~10 ms a call) gets its paragraphs from a walk of the
  tree that fires the events `lxml.sax.saxify` would, into the same state `ParagraphMaker` keeps, minus what
  nothing reads (each paragraph's XPath); each paragraph's text is built once instead of at every test of
  `classify_paragraphs`, whose tests run as a copy given the all-languages stoplist as the frozenset jusText makes
  of it, made once (its `lru_cache` hashed the 154k-word tuple on every call, ~3 ms).
* The same work, cheaper: readability's link lengths computed once per link (`score_paragraphs`) and its removal
  verdicts looked up by class and id (`remove_unlikely_candidates`); the invalid-XML-character regex run only on a
  page holding one (`Prescreened`); a cleaned tag walked only when present (`tree_cleaning`); an element's trimmed
  text length in the link-density test read only as far as its comparisons need (`link_density_test`); `text_content()` read
  as the text of an element without children, else from libxml2's text serialization, and the sanitized-tags test
  from one walk (`TextContentElement`).

Installed only on the trafilatura and jusText whose functions these arguments were made for (their source hashes),
the lxml whose saxify the walk copies, and the libxml2 whose HTML parser they were checked with (which elements it
reads as raw text); anything else runs stock. tests/test_extract.py checks the bound, the paragraphs and the text
on real pages, benchmarks/extraction_identity.py the text on every shared page.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import threading
from copy import copy
from functools import partial
from pathlib import Path

from justext.core import PARAGRAPH_TAGS, define_stoplist, revise_paragraph_classification
from justext.paragraph import Paragraph
from justext.utils import normalize_whitespace
from lxml import etree
from lxml.html import HtmlElement
from trafilatura.htmlprocessing import LOGGER as LINK_LOGGER
from trafilatura.htmlprocessing import collect_link_info, is_paragraph_listing
from trafilatura.utils import LINK_FARM_RATIO, trim

# source sha256 (first 16 hex) of every function the reasoning above reads: trafilatura 2.3.1, jusText 3.0.2, lxml 6
PINNED = {
    "core._extract_and_compare": "f7d056c2118222e8",
    "core.trafilatura_sequence": "f03dc4d2946dacbd",
    "core.bare_extraction": "2e57adb3062086f9",
    "external.compare_extraction": "2d3d1ffea3ba469f",
    "external._prefer_readability": "f6ee688e9ae60074",
    "external.try_readability": "538e3c8e5ab7e4d4",
    "readability_lxml.Document": "fe2ad9d1920eed29",
    "readability_lxml.text_length": "74f7faf7008b34b4",
    "utils.repair_faulty_html": "7e68c7a3cb24910c",
    "htmlprocessing.tree_cleaning": "828e83a7393082de",
    "htmlprocessing.link_density_test": "0b3d71f252bf1963",
    "utils.trim": "b82ffd884c0dc230",
    "utils.fromstring_bytes": "c5ee8713366ea137",
    "external.try_justext": "6f0fa6cffc365def",
    "external.justext_rescue": "43d803082a76d38a",
    "justext.core.ParagraphMaker": "b41fe77fbc5b6a64",
    "justext.core.classify_paragraphs": "37149c0348a99b3c",
    "justext.core.revise_paragraph_classification": "cdb816fa335044f0",
    "justext.core.define_stoplist": "9149bbf4aa8ac519",
    "justext.paragraph.Paragraph": "638810ac2d88e31c",
    "justext.utils.normalize_whitespace": "9bffba6a89181d2c",
}
# lxml.sax is compiled: its events (what saxify fires, in which order) are pinned by the text of the sax.py it ships
PINNED_FILES = {"lxml/sax.py": "5f96e114e133dda2"}

# elements whose contents libxml2's HTML parser reads as raw text: readability's serialized output, parsed
# again, would read their escaped `&lt;` as four characters (script and style it drops itself)
RAW_TEXT = ("iframe", "xmp", "noembed", "noframes", "plaintext")
LIBXML2 = (2, 14)          # the parser RAW_TEXT was read off (lxml 6.x bundles it)
READABILITY_DROPS = ("script", "style", "fencedframe")   # the first thing Document.summary does


def fingerprints() -> dict[str, str]:
    out = {}
    for name in PINNED:
        module, attr = name.rsplit(".", 1)
        obj = getattr(importlib.import_module(module if "." in module else f"trafilatura.{module}"), attr)
        out[name] = hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
    for name in PINNED_FILES:
        path = Path(etree.__file__).parent.parent / name
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "missing"
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


class _Paragraph(Paragraph):
    """jusText's paragraph with its text built once, when it is complete (the base class joins and normalizes
    its text nodes again at every read of `.text`, six or more times per paragraph in `classify_paragraphs`)."""

    text = None      # shadows the base class's property: an instance attribute

    def __init__(self, dom_path: str, text: str, chars_count_in_links: int):
        self.dom_path, self.text, self.chars_count_in_links = dom_path, text, chars_count_in_links
        self.class_type = ""


def justext_paragraphs(root) -> list[_Paragraph]:
    """`ParagraphMaker.make_paragraphs(root)`: the same paragraphs (dom path, text, characters in links), from a
    walk firing the events `lxml.sax.saxify` fires, in its order, into ParagraphMaker's state."""
    paragraphs: list[_Paragraph] = []
    path: list[str] = []
    nodes: list[str] = []
    state = {"links": 0, "dom": "", "link": False, "br": False}

    def new_paragraph():
        # ParagraphMaker keeps a paragraph when `paragraph and paragraph.contains_text()`: its text is not empty
        if nodes:
            text = normalize_whitespace("".join(nodes).strip())
            if text:
                paragraphs.append(_Paragraph(state["dom"], text, state["links"]))
            nodes.clear()
        state["links"] = 0
        state["dom"] = ".".join(path)

    def characters(content):
        if not content or content.isspace():
            return
        text = normalize_whitespace(content)
        nodes.append(text)
        if state["link"]:
            state["links"] += len(text)
        state["br"] = False

    def walk(element):
        tag = element.tag
        if not isinstance(tag, str):
            if tag is not etree.Comment and tag is not etree.ProcessingInstruction:
                raise TypeError(f"no SAX events for {tag!r}")    # an entity: left to jusText itself
            characters(element.tail)
            return
        name = tag.split("}", 1)[1] if tag[:1] == "{" else tag
        path.append(name)                                        # startElementNS
        if name in PARAGRAPH_TAGS or (name == "br" and state["br"]):
            new_paragraph()
        else:
            state["br"] = name == "br"
            if state["br"]:
                nodes.append(" ")                                # append_text(" "): not counted in links
            elif name == "a":
                state["link"] = True
        characters(element.text)
        for child in element:
            walk(child)
        path.pop()                                               # endElementNS
        if name in PARAGRAPH_TAGS:
            new_paragraph()
        if name == "a":
            state["link"] = False
        characters(element.tail)

    siblings = []
    sibling = root.getprevious()
    while getattr(sibling, "tag", None) is etree.ProcessingInstruction:
        siblings.append(sibling)
        sibling = sibling.getprevious()
    for sibling in (*siblings[::-1], root):
        walk(sibling)
    sibling = root.getnext()
    while getattr(sibling, "tag", None) is etree.ProcessingInstruction:
        walk(sibling)
        sibling = sibling.getnext()
    new_paragraph()                                              # endDocument
    return paragraphs


_stoplists: dict = {}     # id of trafilatura's all-languages stoplist tuple -> (that tuple, jusText's frozenset of it)


def all_languages_stoplist(words: tuple) -> frozenset:
    """The frozenset `define_stoplist(words)` makes, made once and kept here, not in its `lru_cache` (whose key is
    the 154k-word tuple, hashed again on every call)."""
    kept = _stoplists.get(id(words))
    if kept is None or kept[0] is not words:
        kept = _stoplists[id(words)] = (words, define_stoplist.__wrapped__(words))
    return kept[1]


def classify(paragraphs: list[_Paragraph], stoplist: frozenset) -> None:
    """`classify_paragraphs(paragraphs, stoplist, 50, 150, 0.1, 0.2, 0.25, True)` as trafilatura calls it, minus its
    `define_stoplist` lookup: jusText's context-free classes, the same tests in the same order."""
    for paragraph in paragraphs:
        text = paragraph.text
        length = len(text)
        stopword_density = paragraph.stopwords_density(stoplist)
        link_density = paragraph.links_density()
        paragraph.heading = False                    # no_headings=True
        if link_density > 0.25:
            paragraph.cf_class = "bad"
        elif "\xa9" in text or "&copy" in text:
            paragraph.cf_class = "bad"
        elif "select" in paragraph.dom_path:
            paragraph.cf_class = "bad"
        elif length < 50:
            paragraph.cf_class = "bad" if paragraph.chars_count_in_links > 0 else "short"
        elif stopword_density >= 0.2:
            paragraph.cf_class = "good" if length > 150 else "neargood"
        elif stopword_density >= 0.1:
            paragraph.cf_class = "neargood"
        else:
            paragraph.cf_class = "bad"


def faster_try_justext(tree, url, target_language, stock_try_justext):
    """trafilatura's `try_justext` with `justext_paragraphs`; anything unusual (a language of its own stoplist, an
    element saxify has no events for, an error) is left to the stock function."""
    import trafilatura.external as external

    if target_language in external.JUSTEXT_LANGUAGES:
        return stock_try_justext(tree, url, target_language)
    try:
        paragraphs = justext_paragraphs(tree)
        stoplist = all_languages_stoplist(external.JT_STOPLIST or external.jt_stoplist_init())
        classify(paragraphs, stoplist)
        revise_paragraph_classification(paragraphs, 150)
    except Exception:
        return stock_try_justext(tree, url, target_language)
    result_body = etree.Element("body")
    for paragraph in paragraphs:
        if not paragraph.is_boilerplate:
            etree.SubElement(result_body, "p").text = paragraph.text
    return result_body


# what trafilatura's `INVALID_XML_CHARS` matches (`repair_faulty_html` deletes them from every page before parsing)
INVALID_XML_PATTERN = r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
INVALID_XML_CHARS = tuple(map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF]))


class Prescreened:
    """trafilatura's `INVALID_XML_CHARS` whose `sub` first looks for the characters with `in` (a C scan per character,
    ~3x faster than the regex over a page that holds none of them, as nearly every page does)."""

    def __init__(self, pattern: re.Pattern):
        self.pattern = pattern

    def sub(self, repl: str, string: str) -> str:
        if any(char in string for char in INVALID_XML_CHARS):
            return self.pattern.sub(repl, string)
        return string


def score_paragraphs(self) -> dict:
    """readability's `Document.score_paragraphs` with each link's text length computed once: stock computes it again
    for every candidate holding the link (~4 times: 174k lengths for 42k links on the shared pages). The tree does not
    change in between, so every sum, and every score, is the same."""
    from trafilatura.readability_lxml import text_length

    candidates = {}
    for elem in self.doc.iter("p", "pre", "td"):
        parent_node = elem.getparent()
        if parent_node is None:
            continue
        elem_text = elem.text_content()
        if len(elem_text) < self.min_text_length:            # trim never lengthens: too short either way
            continue
        elem_text = trim(elem_text)
        elem_text_len = len(elem_text)
        if elem_text_len < self.min_text_length:
            continue
        grand_parent_node = parent_node.getparent()
        for node in (parent_node, grand_parent_node):
            if node is not None and node not in candidates:
                candidates[node] = self.score_node(node)
        score = 1 + len(elem_text.split(",")) + min((elem_text_len / 100), 3)
        candidates[parent_node].score += score
        if grand_parent_node is not None:
            candidates[grand_parent_node].score += score / 2
    link_lengths: dict = {}
    for elem, candidate in candidates.items():
        total_length = text_length(elem) or 1                  # get_link_density, its link lengths remembered
        link_length = 0
        for link in elem.findall(".//a"):
            length = link_lengths.get(link)
            if length is None:
                length = link_lengths[link] = text_length(link)
            link_length += length
        candidate.score *= 1 - link_length / total_length
    return candidates


_EXACT_BELOW = 2_000     # a text shorter than this is trimmed at once, as stock does: no bound would save much


def link_density_test(element, favor_precision: bool = False) -> tuple[bool, bool]:
    """trafilatura's `link_density_test` reading the trimmed length of a long text only as far as its tests need it:
    stock trims the whole text of every element holding a link (nested divs: the page's text again at each level)
    but compares its length only with a link's length, `limitlen` (30-300) or the links' length. The trimmed length
    lies between that of any prefix and the untrimmed length (`trim` joins the words with one space and never
    lengthens; rounding keeps that order once multiplied by a ratio), so a bound decides a test the way the exact
    length would; the exact length is taken otherwise."""
    links_xpath = element.findall(".//ref")
    if not links_xpath:
        return False, False
    if element.find(".//graphic") is not None:
        return False, False
    raw = element.text_content()
    elemlen = len(trim(raw)) if len(raw) < _EXACT_BELOW else None      # None: only bounded so far
    if len(links_xpath) == 1:
        len_threshold = 10 if favor_precision else 100
        link_len = len(trim(links_xpath[0].text_content()))
        if link_len > len_threshold:
            if elemlen is None and link_len <= len(raw) * 0.9:
                elemlen = len(trim(raw))
            if link_len > (len(raw) if elemlen is None else elemlen) * 0.9:
                return True, False
    if element.tag == "p":
        limitlen = 60 if element.getnext() is None else 30
    elif element.getnext() is None:
        limitlen = 300
    else:
        limitlen = 100
    if elemlen is None and len(trim(raw[: 2 * limitlen + 64])) < limitlen:
        elemlen = len(trim(raw))
    if elemlen is not None and elemlen < limitlen:
        linklen, elemnum, shortelems, _ = collect_link_info(links_xpath)
        if elemnum == 0:
            return True, False
        LINK_LOGGER.debug("list link text/total: %s/%s – short elems/total: %s/%s", linklen, elemlen, shortelems,
                          elemnum)
        return linklen > elemlen * 0.8 or (elemnum > 1 and shortelems / elemnum > 0.8), True
    if len(links_xpath) > 4:
        linklen, elemnum, _, _ = collect_link_info(links_xpath)
        if linklen < 100 * elemnum and not is_paragraph_listing(links_xpath):
            if elemlen is None and linklen <= len(raw) * LINK_FARM_RATIO:
                if len(trim(raw[: 2 * int(linklen / LINK_FARM_RATIO) + 64])) * LINK_FARM_RATIO >= linklen:
                    return False, False
                elemlen = len(trim(raw))
            if linklen > (len(raw) if elemlen is None else elemlen) * LINK_FARM_RATIO:
                return True, False
    return False, False


def remove_unlikely_candidates(self) -> None:
    """readability's `Document.remove_unlikely_candidates` with its verdict looked up by the (class, id) pair: an
    element with neither is passed over before its attribute string is built (stock joins one for every element)."""
    from trafilatura.readability_lxml import FRAME_TAGS, REGEXES

    unlikely, maybe = REGEXES["unlikelyCandidatesRe"], REGEXES["okMaybeItsACandidateRe"]
    verdicts: dict = {}
    for elem in self.doc.findall(".//*"):
        cls, ident = elem.get("class"), elem.get("id")
        if cls is None and ident is None:
            continue
        verdict = verdicts.get((cls, ident))
        if verdict is None:
            attrs = " ".join(filter(None, (cls, ident)))
            low = attrs.lower()
            verdict = verdicts[(cls, ident)] = len(attrs) >= 2 and bool(unlikely.search(low)) and not maybe.search(low)
        if verdict and elem.tag not in FRAME_TAGS:
            elem.drop_tree()


_DESCENDANTS = re.compile(r"\.//([a-z]+)")


def descendant_tags(path: str) -> tuple[str, ...] | None:
    """The tags of an XPath that is a union of descendant tags (`.//a|.//b|…`), else None."""
    parts = path.split("|")
    tags = tuple(m.group(1) for part in parts if (m := _DESCENDANTS.fullmatch(part)))
    return tags if len(tags) == len(parts) else None


class TextContentElement(HtmlElement):
    """The element class of trafilatura's parser: `text_content()` as libxml2's text serialization (the same
    `xmlNodeGetContent` the stock XPath `string()` reads, ~1.5 us a call less: ~800 calls a page), as a plain str,
    and as `.text` for an element without children (most links and cells), with no serialization at all.
    The union of `.//tag` XPaths that `compare_extraction` asks of readability's output (`SANITIZED_XPATH`: libxml2
    walks the tree once per tag, then sorts; 70 ms on a 35,000-element output) is the same elements in the same
    document order from one walk."""

    union: tuple[str | None, tuple[str, ...]] = (None, ())     # (that XPath, its tags), set by install()

    def text_content(self) -> str:
        if not len(self):               # no children (most links and cells): the text node is the whole text
            text = self.text
            return "" if text is None else text
        return etree.tostring(self, method="text", encoding=str, with_tail=False)

    def xpath(self, _path, **kwargs):
        if _path is self.union[0] and not kwargs:
            return list(self.iterdescendants(*self.union[1]))
        return HtmlElement.xpath(self, _path, **kwargs)


def tree_cleaning(tree, options):
    """trafilatura's `tree_cleaning`, walking the tree for a cleaned tag only when the tree holds one: one walk
    for all ~50 tags finds the dozen present (deleting never adds an element), where stock walks once per tag."""
    from trafilatura import htmlprocessing as hp

    hp.recover_math(tree)
    cleaning_list, stripping_list = hp.MANUALLY_CLEANED.copy(), hp.MANUALLY_STRIPPED.copy()
    clean_forms = "form" in cleaning_list
    if clean_forms:
        cleaning_list.remove("form")
    if not options.tables:
        cleaning_list.extend(["table", "td", "th", "tr"])
    else:
        for elem in tree.iter("figure", "table"):
            if elem.find(".//table") is not None if elem.tag == "figure" else elem.get("role") in ("presentation", "none"):
                elem.tag = "div"
    if options.images:
        cleaning_list = [e for e in cleaning_list if e not in hp.PRESERVE_IMG_CLEANING]
        stripping_list.remove("img")
    hp.strip_tags(tree, stripping_list)
    tcopy = None
    if (
        options.focus == "recall"
        and tree.find(".//p") is not None
        and ("p" in cleaning_list or not any(next(p.iterancestors(cleaning_list), tree) is tree for p in tree.iter("p")))
    ):
        tcopy = hp.deepcopy(tree)
    present = {element.tag for element in tree.iter(*cleaning_list)} if cleaning_list else set()
    for expression in cleaning_list:
        if expression in present or expression != expression.lower():     # (an odd name: walk, as stock)
            for element in tree.iter(expression):
                hp.delete_element(element)
    if tcopy is not None and tree.find(".//p") is None:
        tree = tcopy
    if clean_forms:
        hp._handle_forms(tree)
    return hp.prune_html(tree, options.focus)


_pending = threading.local()   # .stack: (body, len_text, options) of the comparisons under way in this thread
stock: dict = {}      # the stock functions replaced, for tests


def install() -> bool:
    """Patch the pinned trafilatura in place (once); False, and nothing patched, on any other version."""
    import trafilatura.core as core
    import trafilatura.external as external
    import trafilatura.htmlprocessing as htmlprocessing
    import trafilatura.readability_lxml as readability_lxml
    import trafilatura.utils as utils

    if getattr(core, "_refinedweb_shortcuts", False):
        return True
    if fingerprints() != {**PINNED, **PINNED_FILES} or etree.LIBXML_VERSION[:2] != LIBXML2:
        return False
    stock_compare, stock_readability = external.compare_extraction, external.try_readability
    stock_prune = external.prune_unwanted_nodes
    stock.update(try_readability=stock_readability, try_justext=external.try_justext, prune=stock_prune)
    extract_content = core.extract_content

    def compare_extraction(cleaned_tree, raw_tree, body, text, options):
        stack = _pending.__dict__.setdefault("stack", [])
        # decided first on the raw tree before its prune: the prune only removes text, so a bound that rules
        # readability out there rules it out after the prune too, and then neither is run
        decided = readability_cannot_win(raw_tree, body, len(text), options)
        stack.append((body, len(text), options, decided))
        try:
            return stock_compare(cleaned_tree, raw_tree, body, text, options)
        finally:
            stack.pop()

    def prune_for_readability(tree, nodelist, with_backup=False):     # only compare_extraction calls it
        stack = getattr(_pending, "stack", None)
        if stack and stack[-1][3] and nodelist is external.OVERALL_DISCARD_XPATH:
            return tree                       # its only reader, readability, is not run
        return stock_prune(tree, nodelist, with_backup)

    def try_readability(raw_tree):
        stack = getattr(_pending, "stack", None)
        if stack and (stack[-1][3] or readability_cannot_win(raw_tree, *stack[-1][:3])):
            return external.HtmlElement()     # what a failed readability returns: length 0, never preferred
        return stock_readability(raw_tree)

    def _extract_and_compare(cleaned_tree, cleaned_tree_backup, tree, options):
        postbody, temp_text = extract_content(cleaned_tree, options)
        if not options.fast:
            raw = tree if options.focus == "precision" else copy(tree)
            postbody, temp_text = compare_extraction(cleaned_tree_backup, raw, postbody, temp_text, options)
        return postbody, temp_text

    external.try_readability = try_readability
    external.prune_unwanted_nodes = prune_for_readability
    stock.update(score_paragraphs=readability_lxml.Document.score_paragraphs, tree_cleaning=core.tree_cleaning,
                 remove_unlikely_candidates=readability_lxml.Document.remove_unlikely_candidates)
    core.tree_cleaning = external.tree_cleaning = tree_cleaning
    stock["link_density_test"] = htmlprocessing.link_density_test
    htmlprocessing.link_density_test = link_density_test     # its one caller, delete_by_link_density, reads it here
    readability_lxml.Document.score_paragraphs = score_paragraphs
    readability_lxml.Document.remove_unlikely_candidates = remove_unlikely_candidates
    if utils.INVALID_XML_CHARS.pattern == INVALID_XML_PATTERN:
        utils.INVALID_XML_CHARS = Prescreened(utils.INVALID_XML_CHARS)
    external.try_justext = partial(faster_try_justext, stock_try_justext=stock["try_justext"])
    tags = descendant_tags(external.SANITIZED_XPATH)
    if tags:
        TextContentElement.union = (external.SANITIZED_XPATH, tags)
    core._extract_and_compare = _extract_and_compare
    core._refinedweb_shortcuts = True
    return True
