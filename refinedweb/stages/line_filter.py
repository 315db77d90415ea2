"""RefinedWeb line-wise corrections (Penedo et al. 2023, App. G.2).

Extracted web text keeps bits of page furniture: navigation in capitals, page numbers, like counters,
"Read more" links. Each line (the text split on ``"\\n"``) is looked at on its own:

* **removed** when it is
  - mostly upper case: upper-case letters / letters > ``max_uppercase_fraction`` (only lines that have
    letters; ``str.isupper`` / ``str.isalpha``);
  - numeric (``remove_numeric_lines``): it has a decimal digit and no other letter or digit, only
    punctuation, symbols and spaces around the digits (``12``, ``3.5``, ``2023-01-02``, ``$1,299``, ``© 2024``);
  - a counter (``remove_counter_lines``): only ``<number> <counter word>`` or ``<counter word> <number>``,
    e.g. ``12 likes``, ``1.2k shares``, ``3,400 views``, ``Likes: 12``, where a number is digits with
    optional ``,``/``.`` groups and an optional ``k``/``m`` suffix and the counter words come from the config
    (case-insensitive). Several counters separated by punctuation (``12 likes · 3 comments``) and
    surrounding punctuation (``(12 comments)``) are still a counter line;
  - a single word (``remove_single_word_lines``): exactly one whitespace-separated token.
* **edited** when it has at most ``short_line_max_words`` words and contains a boilerplate pattern
  (case-insensitive, matched on word boundaries): a start pattern is cut from the start of the line
  (with punctuation before it, e.g. ``» Sign in``), an end pattern from the end (with punctuation after it,
  e.g. ``Read more »``), an anywhere pattern wherever it occurs (with punctuation right after it); start
  and end cuts repeat while they match, and separators left dangling at a cut (``| : - · » ,``) go too.
  The line goes when nothing alphanumeric is left, or when what is left would itself be removed by one
  of the rules above (``Posted by admin`` -> ``admin``, a single word; ``Posted on 2023-01-02`` -> numeric).
* kept otherwise. Empty (whitespace-only) lines are kept as they are: they separate paragraphs. Where
  removing lines would leave two blank lines in a row, or blank lines at the start or end of the text, the
  extra blank lines go too, so paragraphs stay separated by one blank line as before.

Counter words and patterns are per language (langid's label): a document gets the ``"*"`` lists (English page
furniture, found on pages in every language) plus those of its own language; a plain list is the ``"*"`` one.

Words are whitespace-separated tokens (``str.split()``). The words removed are all words of a removed line
plus, for an edited line, the difference in word count. If words removed / words of the document >
``max_removed_words_fraction`` the document is dropped with reason ``too_many_lines_removed`` (exactly at
the fraction it is kept). ``correct_lines`` then returns the original text unchanged, with the drop reason.

Per-line counts (words, letters, upper-case letters) are computed for all lines at once with numpy over the
text's code points; the regular expressions are compiled once per configuration and only run on the lines
that need them (digits without letters, short lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping

import numpy as np

from ..settings import EVERY_LANGUAGE, ByLanguage, from_section, setting, word_list
from ..text import code_point_table, code_points
from .contract import Stage

__all__ = ["LineFilterConfig", "LineFilter", "correct_lines", "uppercase_fraction", "REASONS"]

REASONS = ("too_many_lines_removed",)
DROP_REASON = "too_many_lines_removed"

# Line actions reported by LineFilter.classify.
UPPERCASE, NUMERIC, COUNTER, SINGLE_WORD, PATTERN = "uppercase", "numeric", "counter", "single_word", "pattern"

_WS, _ALPHA, _UPPER, _DIGIT = 1, 2, 4, 8
_TABLE_SIZE = 0x20000  # BMP and SMP; above that only uncased CJK ideographs (planes 2-3) are letters
_SEPARATORS = " \t|·•:;,/-–—>»<«~"
_NUMBER = r"\d+(?:[.,]\d+)*[km]?"
_WORD = re.compile(r"\w+").findall
_ALNUM_RUN = re.compile(r"[^\W_]+").findall
_ALNUM_RUNS = re.compile(r"[^\W_]+").finditer


@lru_cache(maxsize=1)
def _class_table() -> np.ndarray:
    """Code point -> bit set of _WS / _ALPHA / _UPPER / _DIGIT, for code points below _TABLE_SIZE."""
    return code_point_table(lambda ch: ch.isspace() | (ch.isalpha() << 1) | (ch.isupper() << 2) | (ch.isdecimal() << 3),
                            _TABLE_SIZE)


# character class bits -> per-line counters packed in 16-bit fields: letters, upper-case, digits
_FIELD = 16
_PACK = np.array([((c & _ALPHA) != 0) << _FIELD | ((c & _UPPER) != 0) << 2 * _FIELD | ((c & _DIGIT) != 0) << 3 * _FIELD
                  for c in range(16)], dtype=np.uint64)


def uppercase_fraction(line: str) -> float | None:
    """Upper-case letters / letters of `line`; None when it has no letter."""
    letters = sum(map(str.isalpha, line))
    if not letters:
        return None
    return sum(map(str.isupper, line)) / letters


def _words_list(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    out: dict[str, None] = {}
    for item in word_list(value, key):
        text = " ".join(item.split()).lower()
        if text:
            out[text] = None
    return tuple(out)


def _per_language(value: Any, key: str) -> Mapping[str, tuple[str, ...]]:
    """language -> words; a plain list is the "*" entry, which every document gets besides its language's."""
    return ByLanguage.parse(value, key, _words_list)


def _pattern_regex(patterns: tuple[str, ...]) -> str:
    """Alternation of `patterns` (longest first), with word boundaries where a pattern starts/ends with a word
    character, and any run of whitespace where it has a space."""
    parts = []
    for pattern in sorted(patterns, key=len, reverse=True):
        rx = r"\s+".join(re.escape(piece) for piece in pattern.split(" "))
        if re.match(r"\w", pattern[0]):
            rx = r"(?<!\w)" + rx
        if re.match(r"\w", pattern[-1]):
            rx += r"(?!\w)"
        parts.append(rx)
    return "|".join(parts)


class _Kind:
    """One kind of boilerplate pattern (start, end or anywhere): a compiled regex per pattern, longest pattern
    first, and an index to pick the few patterns that can match a line before running any regex.

    A pattern can only match where its longest word is a whole word of the lower-cased line; patterns without
    a word ("[...]") are looked for as plain text. A set intersection in C is far cheaper than letting a big
    alternation regex fail on every short line."""

    __slots__ = ("regexes", "by_trigger", "triggers", "bare", "span")

    def __init__(self, patterns: tuple[str, ...], build: Callable[[str], Any]) -> None:
        ordered = sorted(patterns, key=len, reverse=True)
        self.regexes = [build(_pattern_regex((pattern,))) for pattern in ordered]
        self.by_trigger: dict[str, list[int]] = {}
        self.bare: list[tuple[int, str]] = []
        for i, pattern in enumerate(ordered):
            words = _WORD(pattern)
            if words:
                self.by_trigger.setdefault(max(words, key=len), []).append(i)
            else:
                self.bare.append((i, pattern))
        self.triggers = frozenset(self.by_trigger)
        self.span = max(map(len, patterns)) + 1

    def candidates(self, lower: str, words: list[str]) -> list[Any]:
        """The regexes of the patterns that may occur in the line (`lower`, its `words`), longest first."""
        picked = [i for word in self.triggers.intersection(words) for i in self.by_trigger[word]]
        picked += [i for i, pattern in self.bare if pattern in lower]
        return [self.regexes[i] for i in sorted(picked)]


class _Rules:
    """The compiled regular expressions of one configuration."""

    __slots__ = ("numeric", "counter", "counter_words", "start", "end", "anywhere", "triggers", "bare")

    def __init__(self, counter_words: tuple[str, ...], start_patterns: tuple[str, ...], end_patterns: tuple[str, ...],
                 anywhere_patterns: tuple[str, ...]) -> None:
        flags = re.IGNORECASE
        self.numeric = re.compile(r"[\W_]*\d[\d\W_]*").fullmatch
        self.counter = None
        self.counter_words = frozenset(w for word in counter_words for w in _ALNUM_RUN(word))
        if counter_words:
            words = _pattern_regex(counter_words)
            unit = rf"(?:{_NUMBER}\s*(?:{words})|(?:{words})\W*{_NUMBER}(?!\w))"
            self.counter = re.compile(rf"[\W_]*{unit}(?:[\W_]+{unit})*[\W_]*", flags).fullmatch
        # start: any punctuation, the pattern, separators; end: separators, the pattern, any punctuation
        separators = "[" + re.escape(_SEPARATORS) + r"\s]*"
        self.start = self.end = self.anywhere = None
        if start_patterns:
            self.start = _Kind(start_patterns, lambda rx: re.compile(rf"[\W_]*(?:{rx}){separators}", flags).match)
        if end_patterns:
            self.end = _Kind(end_patterns, lambda rx: re.compile(rf"{separators}(?:{rx})[\W_]*$", flags).search)
        if anywhere_patterns:
            self.anywhere = _Kind(anywhere_patterns, lambda rx: re.compile(rf"(?:{rx})[^\w\s]*", flags).sub)
        kinds = [kind for kind in (self.start, self.end, self.anywhere) if kind is not None]
        self.triggers = frozenset().union(*(kind.triggers for kind in kinds))
        self.bare = tuple({pattern for kind in kinds for _, pattern in kind.bare})

    def maybe_counter(self, line: str) -> bool:
        """Cheap necessary condition for a counter line: every letter/digit run is a counter word or a
        number (with a k/m suffix)."""
        for match in _ALNUM_RUNS(line):  # stops at the first run that fails: usually the first one
            run = match.group().lower()
            if not (run in self.counter_words or run.isdigit() or (run[-1] in "km" and run[:-1].isdigit())):
                return False
        return True


@dataclass(frozen=True, slots=True)
class LineFilterConfig:
    """Settings of the line-wise corrections; ``None`` turns a threshold off."""

    max_uppercase_fraction: float | None = setting(min=0, max=1)
    remove_numeric_lines: bool = setting()
    remove_counter_lines: bool = setting()
    remove_single_word_lines: bool = setting()
    short_line_max_words: int = setting(min=0)
    max_removed_words_fraction: float | None = setting(min=0, max=1)
    # per language (langid's label); "*": every document, besides its own language's
    counter_words: Mapping[str, tuple[str, ...]] = setting(parse=_per_language)
    start_patterns: Mapping[str, tuple[str, ...]] = setting(parse=_per_language)
    end_patterns: Mapping[str, tuple[str, ...]] = setting(parse=_per_language)
    anywhere_patterns: Mapping[str, tuple[str, ...]] = setting(parse=_per_language)
    _rules: dict[str, _Rules] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rules", {})
        self.rules_for("")                    # compile the every-language rules now: a bad pattern fails here

    def rules_for(self, language: str) -> _Rules:
        """The compiled rules of a document in `language`: the "*" lists plus that language's (compiled once)."""
        key = language if any(language in kind for kind in self._kinds()) else ""
        rules = self._rules.get(key)
        if rules is None:
            rules = self._rules[key] = _Rules(*(tuple(dict.fromkeys(kind.get(EVERY_LANGUAGE, ()) + kind.get(key, ())))
                                                 for kind in self._kinds()))
        return rules

    def _kinds(self) -> tuple[Mapping[str, tuple[str, ...]], ...]:
        return self.counter_words, self.start_patterns, self.end_patterns, self.anywhere_patterns

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "LineFilterConfig":
        """Build from the ``line_filter`` config section (``enabled`` is the caller's business)."""

        return from_section(cls, section, "line_filter")


def _line_counts(text: str) -> tuple[list[int], list[int], list[int], list[int]]:
    """Per line (the text split on "\n"): words, letters, upper-case letters, decimal digits."""
    cp = code_points(text)
    size = cp.size
    table = _class_table()
    if size == 0 or int(cp.max()) < _TABLE_SIZE:
        classes = table[cp]  # (indexing with intp is several times faster than with uint32)
    else:
        high = np.where(cp < 0x40000, np.uint8(_ALPHA), np.uint8(0))
        classes = np.where(cp < _TABLE_SIZE, table[np.minimum(cp, _TABLE_SIZE - 1)], high)
    newlines = np.flatnonzero(cp == 10)
    starts = np.empty(newlines.size + 1, dtype=np.intp)
    starts[0] = 0
    starts[1:] = newlines + 1

    in_token = np.zeros(size + 1, dtype=bool)
    np.equal(classes & _WS, 0, out=in_token[1:])
    counts = np.zeros(size + 1, dtype=np.uint64)  # one spare element: a last empty line starts at `size`
    counts[:-1] = _PACK[(classes & (_ALPHA | _UPPER | _DIGIT)).astype(np.intp)]
    counts[:-1] += in_token[1:] & ~in_token[:-1]  # word starts
    if size < (1 << _FIELD) or int(np.diff(starts, append=size + 1).max()) < (1 << _FIELD):
        per_line = np.add.reduceat(counts, starts)
        mask = np.uint64((1 << _FIELD) - 1)
        fields = [((per_line >> np.uint64(shift)) & mask).tolist() for shift in range(0, 4 * _FIELD, _FIELD)]
        return fields[0], fields[1], fields[2], fields[3]
    # a line too long for 16-bit fields: sum each field on its own
    fields = [np.add.reduceat(((counts >> np.uint64(shift)) & np.uint64(1)).astype(np.int64), starts).tolist()
              for shift in range(0, 4 * _FIELD, _FIELD)]
    return fields[0], fields[1], fields[2], fields[3]


class LineFilter:
    """Line-wise corrections for one configuration (regexes compiled once, in the config)."""

    __slots__ = ("cfg", "rules")

    def __init__(self, cfg: LineFilterConfig, language: str = "") -> None:
        self.cfg = cfg
        self.rules = cfg.rules_for(language)

    def _removal(self, line: str, words: int, letters: int, uppers: int, digits: int) -> str | None:
        """Why `line` (stripped, with these counts) is removed as a whole, or None."""
        cfg = self.cfg
        if words == 1 and cfg.remove_single_word_lines:
            return SINGLE_WORD
        if letters:
            if cfg.max_uppercase_fraction is not None and uppers / letters > cfg.max_uppercase_fraction:
                return UPPERCASE
            rules = self.rules
            if digits and cfg.remove_counter_lines and rules.counter is not None and rules.maybe_counter(line) \
                    and rules.counter(line):
                return COUNTER
        elif digits and cfg.remove_numeric_lines and self.rules.numeric(line):
            return NUMERIC
        return None

    def _edit(self, line: str) -> str:
        """`line` (stripped) with the boilerplate patterns cut out."""
        rules = self.rules
        lower = line.lower()
        words = _WORD(lower)
        if rules.triggers.isdisjoint(words) and not any(map(lower.__contains__, rules.bare)):
            return line  # the usual case: no pattern can occur
        text = line
        if rules.start is not None and (regexes := rules.start.candidates(lower, words)):
            while text:
                m = next((m for regex in regexes if (m := regex(text))), None)
                if m is None:
                    break
                text = text[m.end():].lstrip(_SEPARATORS).lstrip()
        if rules.end is not None and text and (regexes := rules.end.candidates(lower, words)):
            span = rules.end.span
            while text:
                # a pattern ends within its own length of the last letter/digit: search only there
                last = len(text)
                while last and not text[last - 1].isalnum():
                    last -= 1
                m = next((m for regex in regexes if (m := regex(text, max(0, last - span)))), None)
                if m is None:
                    break
                text = text[:m.start()].rstrip(_SEPARATORS).rstrip()
        if rules.anywhere is not None and text and (regexes := rules.anywhere.candidates(lower, words)):
            cut = text
            for regex in regexes:
                cut = regex("", cut)
            if cut != text:
                text = " ".join(cut.split()).strip(_SEPARATORS)
        return text

    def classify(self, line: str) -> tuple[str | None, str]:
        """What happens to one line: (action, new line).

        action is None (kept as is; new line is `line`), one of the removal rules ``"uppercase"``,
        ``"numeric"``, ``"counter"``, ``"single_word"`` (new line ""), or ``"pattern"`` (edited: new line
        is what is left, "" when nothing worth keeping is left)."""
        stripped = line.strip()
        if not stripped:
            return None, line
        return self._classify(line, stripped, *_counts(stripped))

    def _classify(self, line: str, stripped: str, words: int, letters: int, uppers: int,
                  digits: int) -> tuple[str | None, str]:
        reason = self._removal(stripped, words, letters, uppers, digits)
        if reason is not None:
            return reason, ""
        if words > self.cfg.short_line_max_words:
            return None, line
        edited = self._edit(stripped)
        if edited == stripped:
            return None, line
        if not any(map(str.isalnum, edited)) or self._removal(edited, *_counts(edited)) is not None:
            return PATTERN, ""
        return PATTERN, edited

    def __call__(self, text: str) -> tuple[str, str | None, int]:
        lines = text.split("\n")
        words, letters, uppers, digits = _line_counts(text)
        short = self.cfg.short_line_max_words
        max_upper = self.cfg.max_uppercase_fraction
        out: list[str] = []
        removed_words = 0
        changed = False
        removed_since_emit = False  # a line was removed after the last line written to `out`
        for line, n_words, n_letters, n_uppers, n_digits in zip(lines, words, letters, uppers, digits):
            if n_words == 0:  # blank line: a paragraph separator
                if removed_since_emit and (not out or not out[-1].strip()):
                    continue
                out.append(line)
                removed_since_emit = False
                continue
            if n_words > short and n_words > 1 and n_letters and not n_digits and (
                    max_upper is None or n_uppers / n_letters <= max_upper):
                # ordinary prose (long, has letters, no digit, not upper case): no rule can apply
                out.append(line)
                removed_since_emit = False
                continue
            action, new = self._classify(line, line.strip(), n_words, n_letters, n_uppers, n_digits)
            if action is None:
                out.append(line)
                removed_since_emit = False
            elif new:
                changed = True
                removed_words += n_words - len(new.split())
                out.append(new)
                removed_since_emit = False
            else:
                changed = True
                removed_words += n_words
                removed_since_emit = True
        if not changed:
            return text, None, 0
        total = sum(words)
        limit = self.cfg.max_removed_words_fraction
        if limit is not None and total and removed_words / total > limit:
            return text, DROP_REASON, removed_words
        if removed_since_emit:
            while out and not out[-1].strip():
                out.pop()
        return "\n".join(out), None, removed_words


def _counts(line: str) -> tuple[int, int, int, int]:
    """words, letters, upper-case letters, decimal digits of one line (same definitions as _line_counts)."""
    return (len(line.split()), sum(map(str.isalpha, line)), sum(map(str.isupper, line)),
            sum(map(str.isdecimal, line)))


def correct_lines(text: str, cfg: LineFilterConfig, language: str = "") -> tuple[str, str | None, int]:
    """Apply the line-wise corrections for a document in `language`: (new text, drop reason or None, words
    removed). When the document is dropped (``too_many_lines_removed``) the text returned is the original one.
    """
    return LineFilter(cfg, language)(text)


# -- stage contract (stages/contract.py) ------------------------------------------------------------------
NAME = "line_filter"
EDITS_TEXT = True
VERSION = 1                # the resume fingerprint covers it: bump it when what the stage writes changes
LABEL = "line-wise corrections"
CONFIG = LineFilterConfig


def build(section: Mapping[str, Any], shared) -> Stage:
    cfg = LineFilterConfig.from_config(section)

    def apply(doc) -> str | None:
        text, reason, _removed_words = correct_lines(doc.text, cfg, doc.language)
        if reason:
            return reason
        if not text.strip():
            return "empty"
        doc.text = text
        return None

    return Stage(NAME, apply=apply)
