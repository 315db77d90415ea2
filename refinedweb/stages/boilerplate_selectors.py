"""trafilatura's boilerplate XPaths as Python tests over candidate elements: the same node-sets, in document order,
without an XPath engine calling back into Python for every `re:test`.

Each XPath of `trafilatura.xpaths` that prunes the tree in precision mode is matched against its known shape
(the XPath with its regex patterns blanked out); when it matches, a `Selector` replaces it, built from the
XPath's own patterns, so a new token in a pattern list changes nothing here. Any other shape (a trafilatura that
rewrote an XPath) keeps the XPath. The semantics kept, as libxml2 and lxml evaluate them: `.//*` is the
descendant elements of the context element; `re:test(@a|@b, p)` tests the value of whichever attribute comes
first on the element (an absent one reads as ""), with Python's `re.search`; `contains`, `starts-with`,
`translate` and `@a='v'` on attribute values. The regex part of a test is remembered per distinct attribute values
(`memoised`). Tested node-set for node-set against the XPaths on every shared page (tests/test_extract.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

BLOCKS = ("div", "item", "list", "p", "section", "span")
_PATTERN = re.compile(r"re:test\((@[\w-]+(?:\|@[\w-]+)*),\s*'([^']*)'\)")


def shape(path: str) -> str:
    """The XPath with its regex patterns blanked and its whitespace collapsed."""
    return " ".join(_PATTERN.sub(lambda m: f"re:test({m.group(1)}, '…')", path).split())


def patterns(path: str) -> list[re.Pattern]:
    """The XPath's `re:test` patterns, in order, compiled as lxml's EXSLT module compiles them."""
    return [re.compile(m.group(2), re.UNICODE) for m in _PATTERN.finditer(path)]


def value(el, name: str) -> str:
    v = el.get(name)
    return "" if v is None else v


def first(el, a: str, b: str) -> str:
    """The string value of `@a|@b`: the attribute of the two that comes first on the element."""
    return first_of(el, a, b, el.get(a), el.get(b))


def first_of(el, a: str, b: str, va: str | None, vb: str | None) -> str:
    """`first` given the two values already read (`el.get(a)`, `el.get(b)`)."""
    if va is None:
        return "" if vb is None else vb
    if vb is None:
        return va
    keys = el.keys()
    return va if keys.index(a) < keys.index(b) else vb


# The regex part of a test, remembered per distinct attribute values: a page repeats a few hundred class and id
# values over thousands of elements. Bounded in keys and in key size (a style attribute can hold a data URI), so
# at most ~3 MiB per test, whatever the crawl.
MEMO_LIMIT = 1 << 12
MEMO_VALUE_CHARS = 128


def memoised(compute: Callable[..., Any]) -> tuple[Callable[[tuple], Any], Callable[[tuple], Any]]:
    """(get, fill): `get(key)` is the remembered `compute(*key)` or None, `fill(key)` computes it and remembers it
    unless a value is longer than MEMO_VALUE_CHARS (cleared when MEMO_LIMIT keys are held). Two calls so the hot
    path is a single dict lookup."""
    memo: dict = {}

    def fill(key: tuple) -> Any:
        r = compute(*key)
        if all(v is None or len(v) <= MEMO_VALUE_CHARS for v in key):
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            memo[key] = r
        return r
    return memo.get, fill


def cached(compute: Callable[..., Any]) -> Callable[[tuple], Any]:
    get, fill = memoised(compute)

    def value_of(key: tuple) -> Any:
        r = get(key)
        return fill(key) if r is None else r
    return value_of


class Selector:
    """Callable as an `etree.XPath` is on an element: the descendants with one of `tags` (any element when
    empty) that pass `test`, in document order; `pick` "first" keeps the first (`(.//*[...])[1]`), "first_child"
    the first of each parent's children (`.//*[...][1]`)."""

    def __init__(self, xpath, tags: tuple[str, ...], test: Callable[[Any], bool], pick: str = "all"):
        self.xpath, self.path, self.tags, self.test, self.pick = xpath, xpath.path, tags, test, pick

    def __call__(self, tree) -> list:
        from lxml import etree

        if not isinstance(tree, etree._Element):            # a whole document: the XPath's own semantics
            return self.xpath(tree)
        found = filter(self.test, tree.iterdescendants(*(self.tags or (etree.Element,))))
        if self.pick == "first":
            return [el for el in [next(found, None)] if el is not None]
        if self.pick == "first_child":
            parents: set = set()
            out = []
            for el in found:
                parent = el.getparent()
                if parent not in parents:
                    parents.add(parent)
                    out.append(el)
            return out
        return list(found)


class FirstOfEither(Selector):
    """`(.//*[tags][test])[1]|(.//other)[1]`: the first of each, in document order."""

    def __init__(self, xpath, tags: tuple[str, ...], test: Callable[[Any], bool], other: str):
        super().__init__(xpath, tags, test)
        self.other = other

    def __call__(self, tree) -> list:
        from lxml import etree

        if not isinstance(tree, etree._Element):
            return self.xpath(tree)
        out: list = []
        first_test = first_other = False
        for el in tree.iterdescendants(*self.tags, self.other):
            if not first_other and el.tag == self.other:
                first_other = True
                out.append(el)
            elif not first_test and el.tag in self.tags and self.test(el):
                first_test = True
                out.append(el)
            if first_test and first_other:
                break
        return out


def _overall_0(p):
    cookie, ids, classes = p
    get, fill = memoised(lambda i, c, both: bool(cookie.search(both) or ids.search("" if i is None else i)
                                                 or classes.search("" if c is None else c)))

    def test(el) -> bool:
        if not el.keys():
            return False
        if el.get("data-lp-replacement-content") is not None:
            return True
        role = el.get("role")
        if role is not None and "nav" in role.replace("N", "n"):
            return True
        component = el.get("data-component")
        if component is not None and "MostPopularStories" in component:
            return True
        i, c = el.get("id"), el.get("class")
        if i is None and c is None:
            return False
        key = (i, c, first_of(el, "id", "class", i, c))
        r = get(key)
        return fill(key) if r is None else r
    return BLOCKS, test


def _overall_1(p):
    hidden, ids, classes = p
    # nothing but aria-hidden: every test but its own reads ""
    empty = bool(hidden.search("") or ids.search("") or classes.search(""))
    get, fill = memoised(lambda i, c, style, id_class, id_style: bool(
        c == "comments-title" or id_class.startswith("reply-") or hidden.search(id_style)
        or (style is not None and ("display:none" in style or "display: none" in style))
        or ids.search("" if i is None else i) or classes.search("" if c is None else c)))

    def test(el) -> bool:
        if not el.keys():
            return False
        i, c, style = el.get("id"), el.get("class"), el.get("style")
        if i is None and c is None and style is None:
            aria = el.get("aria-hidden")
            return aria is not None and (empty or aria == "true")
        key = (i, c, style, first_of(el, "id", "class", i, c), first_of(el, "id", "style", i, style))
        r = get(key)
        if r is None:
            r = fill(key)
        return r or el.get("aria-hidden") == "true"
    return (), test


def _two_stage(p):
    """(first test, second test) of `[re:test(@id) or re:test(@class)][... or re:test(@id) or re:test(@class)]`."""
    ids, classes, ids2, classes2 = p
    return cached(lambda i, c: (bool(ids.search(i) or classes.search(c)), bool(ids2.search(i) or classes2.search(c))))


def _comments_and_lists(p):
    regex = _two_stage(p)

    def test(el) -> bool:
        outer, inner = regex((value(el, "id"), value(el, "class")))
        return outer and (inner or el.tag not in ("ol", "ul"))
    return ("div", "list", "section", "details", "ol", "ul"), test


def _raw_prune_0(p):
    regex = _two_stage(p)

    def test(el) -> bool:
        outer, inner = regex((value(el, "id"), value(el, "class")))
        return outer and (inner or next(el.iterdescendants("h1"), None) is None)
    return ("div", "section", "aside"), test


def _raw_prune_1(p):
    return ("div", "section", "aside"), lambda el: "elementor-share-buttons" in value(el, "class")


def _header(p):
    return ("header",), lambda el: True


def _precision_1(p):
    bottom, link = p
    regex = cached(lambda both: bool(bottom.search(both) or link.search(both)))
    return BLOCKS, lambda el: regex((first(el, "id", "class"),)) or "border" in value(el, "style")


def _comments(p):
    ids, classes = p
    regex = cached(lambda i, c: bool(ids.search(i) or classes.search(c)))
    return ("div", "list", "section", "details"), lambda el: regex((value(el, "id"), value(el, "class")))


def _teaser(p):
    return BLOCKS, lambda el: "teaser" in value(el, "id").replace("T", "t") or "teaser" in value(el, "class").replace("T", "t")


def _caption(p):
    return BLOCKS, lambda el: "caption" in value(el, "id") or "caption" in value(el, "class")


_MAIN = ("article", "div", "main", "section")


def _body_0(p):
    ids, classes = p

    def test(el) -> bool:
        c, i = el.get("class"), el.get("id")
        if c in ("post", "entry") or el.get("itemprop") == "articleBody" or i == "articleContent":
            return True
        return bool(ids.search("" if i is None else i) or classes.search("" if c is None else c))
    return _MAIN, test, "first_child"


def _body_1(p):
    return ("article",), lambda el: True, "first"


_FULLTEXT = re.compile("fulltext", re.UNICODE | re.IGNORECASE)


def _body_2(p):
    ids, classes = p

    def test(el) -> bool:
        c, i = el.get("class"), el.get("id")
        if el.get("role") == "article" or i in ("article", "story") or c in ("postarea", "art-postcontent", "text",
                                                                             "cell", "story"):
            return True
        c = "" if c is None else c
        return bool(ids.search("" if i is None else i) or _FULLTEXT.search(c) or classes.search(c))
    return _MAIN, test, "first"


def _body_3(p):
    ids, classes = p

    def test(el) -> bool:
        i, c = value(el, "id"), value(el, "class")
        if el.get("id") == "content" or el.get("class") == "content" or ids.search(i) or classes.search(c):
            return True
        return ("main-content" in i.replace("C", "c").replace("M", "m") or "main-content" in
                c.replace("C", "c").replace("M", "m") or "page-content" in c.replace("C", "c").replace("P", "p"))
    return _MAIN, test, "first"


def _body_4(p):
    return ("article", "div", "section"), lambda el: (value(el, "class").startswith("main") or value(el, "id").startswith(
        "main") or value(el, "role").startswith("main")), "main"


_BLOCK_TEST = ".//*[self::div or self::item or self::list or self::p or self::section or self::span]"
KNOWN: dict[str, Callable] = {
    _BLOCK_TEST + "[ @data-lp-replacement-content or contains(translate(@role, 'N', 'n'), 'nav') or "
    "contains(@data-component, 'MostPopularStories') or re:test(@id|@class, '…') or re:test(@id, '…') or "
    "re:test(@class, '…')]": _overall_0,
    ".//*[@class='comments-title' or starts-with(@id|@class, 'reply-') or re:test(@id|@style, '…') or "
    "contains(@style, 'display:none') or contains(@style, 'display: none') or re:test(@id, '…') or "
    "re:test(@class, '…') or @aria-hidden='true']": _overall_1,
    ".//*[self::div or self::list or self::section or self::details or self::ol or self::ul][ re:test(@id, '…') or "
    "re:test(@class, '…')][ not(self::ol or self::ul) or re:test(@id, '…') or re:test(@class, '…')]": _comments_and_lists,
    ".//*[self::div or self::section or self::aside][ re:test(@id, '…') or re:test(@class, '…')][ not(.//h1) or "
    "re:test(@id, '…') or re:test(@class, '…')]": _raw_prune_0,
    ".//*[self::div or self::section or self::aside][contains(@class, 'elementor-share-buttons')]": _raw_prune_1,
    ".//header": _header,
    _BLOCK_TEST + "[ re:test(@id|@class, '…') or re:test(@id|@class, '…') or contains(@style, 'border')]": _precision_1,
    ".//*[self::div or self::list or self::section or self::details][ re:test(@id, '…') or "
    "re:test(@class, '…')]": _comments,
    _BLOCK_TEST + "[ contains(translate(@id, 'T', 't'), 'teaser') or contains(translate(@class, 'T', 't'), "
    "'teaser')]": _teaser,
    _BLOCK_TEST + "[ contains(@id, 'caption') or contains(@class, 'caption')]": _caption,
    ".//*[self::article or self::div or self::main or self::section][ @class='post' or @class='entry' or "
    "@itemprop='articleBody' or @id='articleContent' or re:test(@id, '…') or re:test(@class, '…') ][1]": _body_0,
    "(.//article)[1]": _body_1,
    "(.//*[self::article or self::div or self::main or self::section][ @role='article' or @id='article' or "
    "@id='story' or @class='postarea' or @class='art-postcontent' or @class='text' or @class='cell' or "
    "@class='story' or re:test(@id, '…') or re:test(@class, 'fulltext', 'i') or re:test(@class, '…') ])[1]": _body_2,
    "(.//*[self::article or self::div or self::main or self::section][ @id='content' or @class='content' or "
    "re:test(@id, '…') or re:test(@class, '…') or contains(translate(@id, 'CM','cm'), 'main-content') or "
    "contains(translate(@class, 'CM','cm'), 'main-content') or contains(translate(@class, 'CP','cp'), "
    "'page-content') ])[1]": _body_3,
    "(.//*[self::article or self::div or self::section][ starts-with(@class, 'main') or starts-with(@id, 'main') or "
    "starts-with(@role, 'main')])[1]|(.//main)[1]": _body_4,
}


def selector(xpath) -> Selector | None:
    """A Selector for an XPath of a known shape, else None (keep the XPath)."""
    make = KNOWN.get(shape(xpath.path))
    if make is None:
        return None
    tags, test, *pick = make(patterns(xpath.path))
    if pick and pick[0] not in ("first", "first_child"):
        return FirstOfEither(xpath, tags, test, pick[0])
    return Selector(xpath, tags, test, *pick)
