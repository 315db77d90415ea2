"""Gopher quality filters (Rae et al. 2021, App. A.1.1), RefinedWeb's document-wise filtering (App. G.1).

Checks, in order; the first one that fails gives the reason code (bounds are inclusive: a value exactly at
a threshold is kept, only a value strictly beyond it removes the document):

==================== ================================================================================
``too_few_words``    word count < ``min_words``
``too_many_words``   word count > ``max_words``
``mean_word_length`` mean word length < ``min_mean_word_length`` or > ``max_mean_word_length``
``symbol_word_ratio`` ``"#"`` count / word count > ``max_symbol_word_ratio``, or ellipsis count / word
                     count > ``max_symbol_word_ratio`` (an ellipsis is ``"..."`` or ``"…"``; ``str.count``
                     semantics: ``"......"`` is two ellipses)
``bullet_lines``     lines starting with a bullet / lines > ``max_bullet_lines_fraction``
``ellipsis_lines``   lines ending with an ellipsis / lines > ``max_ellipsis_lines_fraction``
``alpha_words``      words containing an alphabetic character / word count < ``min_alpha_words_fraction``
``stop_words``       distinct stop words of the document's language < ``min_stop_words``
==================== ================================================================================

Definitions (Gopher counts words with a tokenizer that splits punctuation off; we use whitespace):

* A **token** is a whitespace-separated piece of the text (``str.split()``).
* A **word** is a token that contains at least one letter or digit (``str.isalnum`` characters). Tokens made
  only of punctuation and symbols (``"-"``, ``"—"``, ``"|"``, ``"..."``, ``"&"``, an emoji) are not words: they
  count for nothing, as a punctuation token would be dropped by Gopher's tokenizer.
* A word's **length** is measured from its first to its last letter/digit: punctuation attached at either end
  is not counted (``"(see"`` and ``"end."`` have 3 characters), punctuation inside is (``"don't"`` has 5).
  These stripped forms are also what the stop words are compared with, lower-cased (and Romanian's
  cedilla letters ş ţ read as the comma-below ș ț, both spellings being common on the web).
* **Stop words** are per language (``quality.stop_words``: a mapping from langid's label to a list, or one
  list for every language). Gopher asks for "at least two of the following words": distinct words, so
  "the … The" is one. A language without a list is not checked by this rule (nothing to penalise it with).
* A word is **alphabetic** when it contains at least one ``str.isalpha`` character (``"2023"`` and ``"3.5%"``
  are words, but not alphabetic ones).
* **Lines** are the text split on ``"\\n"``, stripped; empty lines are ignored (blank lines separate
  paragraphs and would otherwise dilute both line fractions). A bullet line starts with one of
  ``• ● ○ ■ □ ▪ ▫ ◦ - * ‣ ⁃ –``; an ellipsis line ends with ``"..."`` or ``"…"``.

The per-token work is done with numpy on the text's code points (a lookup table of character classes, prefix
sums over word boundaries), so the cost is a handful of vector passes over the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from ..errors import UserError
from ..settings import EVERY_LANGUAGE, ByLanguage, from_section, setting, word_list
from ..text import code_point_table, code_points
from .contract import Stage

__all__ = ["QualityConfig", "check_quality", "quality_signals", "REASONS", "BULLETS", "ELLIPSES"]

REASONS = ("too_few_words", "too_many_words", "mean_word_length", "symbol_word_ratio", "bullet_lines",
           "ellipsis_lines", "alpha_words", "stop_words")
BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "◦", "-", "*", "‣", "⁃", "–")
ELLIPSES = ("...", "…")

_WS, _ALNUM, _ALPHA = 1, 2, 4
_TABLE_SIZE = 0x20000  # BMP and SMP; above that only CJK ideographs (planes 2-3) are letters


@lru_cache(maxsize=1)
def _class_table() -> np.ndarray:
    """Code point -> bit set of _WS / _ALNUM / _ALPHA, for code points below _TABLE_SIZE."""
    return code_point_table(lambda ch: ch.isspace() | (ch.isalnum() << 1) | (ch.isalpha() << 2), _TABLE_SIZE)


def _char_classes(text: str) -> np.ndarray:
    cp = code_points(text)
    table = _class_table()
    if cp.size == 0 or int(cp.max()) < _TABLE_SIZE:
        return table[cp]  # (indexing with intp is several times faster than with uint32)
    high = np.where(cp < 0x40000, np.uint8(_ALNUM | _ALPHA), np.uint8(0))
    return np.where(cp < _TABLE_SIZE, table[np.minimum(cp, _TABLE_SIZE - 1)], high)


_ROMANIAN_CEDILLA = str.maketrans("şţŞŢ", "șțȘȚ")


def stop_word_form(word: str) -> str:
    return word.strip().lower().translate(_ROMANIAN_CEDILLA)


def _word_set(words: Any, key: str) -> frozenset[str]:
    return frozenset(stop_word_form(word) for word in word_list(words, key) if word.strip())


def _stop_words(value: Any) -> Mapping[str, frozenset[str]]:
    """language -> stop words; one list (the old shape) applies to every language."""
    return ByLanguage() if value is None else ByLanguage.parse(value, "quality.stop_words", _word_set)


@dataclass(frozen=True, slots=True)
class QualityConfig:
    """Thresholds of the Gopher quality filter; ``None`` turns that bound off."""

    min_words: int | None = setting(min=0)
    max_words: int | None = setting(min=0)
    min_mean_word_length: float | None = setting(min=0)
    max_mean_word_length: float | None = setting(min=0)
    max_symbol_word_ratio: float | None = setting(min=0)
    max_bullet_lines_fraction: float | None = setting(min=0, max=1)
    max_ellipsis_lines_fraction: float | None = setting(min=0, max=1)
    min_alpha_words_fraction: float | None = setting(min=0, max=1)
    min_stop_words: int | None = setting(min=0)
    stop_words: Mapping[str, frozenset[str]] = setting(parse=lambda value, key: _stop_words(value))

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "QualityConfig":
        """Build from the ``quality`` config section (``enabled`` is the caller's business)."""
        cfg = from_section(cls, section, "quality")
        if cfg.min_stop_words and not any(cfg.stop_words.values()):
            raise UserError("config key 'quality.min_stop_words' is set but 'quality.stop_words' is empty")
        return cfg

    def stop_words_for(self, language: str) -> frozenset[str] | None:
        """The stop words of `language`, or None when it has none (the rule does not apply to it)."""
        words = self.stop_words.get(language)
        return words if words is not None else self.stop_words.get(EVERY_LANGUAGE)


class _Words:
    """Word statistics of one document (see the module docstring for the definitions)."""

    __slots__ = ("text", "count", "first", "last", "_classes", "_starts", "_ends")

    def __init__(self, text: str) -> None:
        self.text = text
        classes = _char_classes(text)
        size = classes.size
        in_token = np.zeros(size + 2, dtype=bool)
        np.equal(classes & _WS, 0, out=in_token[1:-1])
        edges = np.flatnonzero(in_token[1:] != in_token[:-1])
        starts, ends = edges[0::2], edges[1::2]

        alnum = (classes & _ALNUM) != 0
        before = np.zeros(size + 1, dtype=np.intp)  # before[i] = alnum characters in text[:i]
        np.cumsum(alnum, out=before[1:])
        first_rank, end_rank = before[starts], before[ends]
        is_word = end_rank > first_rank
        first_rank, end_rank = first_rank[is_word], end_rank[is_word]
        positions = np.flatnonzero(alnum)
        self.count = int(first_rank.size)
        self.first = positions[first_rank]        # index of each word's first letter/digit
        self.last = positions[end_rank - 1]       # index of each word's last letter/digit
        self._classes = classes
        self._starts, self._ends = starts[is_word], ends[is_word]

    def total_length(self) -> int:
        return int((self.last - self.first).sum()) + self.count

    def alphabetic(self) -> int:
        alpha = (self._classes & _ALPHA) != 0
        before = np.zeros(alpha.size + 1, dtype=np.intp)
        np.cumsum(alpha, out=before[1:])
        return int(np.count_nonzero(before[self._ends] > before[self._starts]))

    def stop_words(self, stop: frozenset[str], enough: int | None) -> int:
        """Distinct `stop` words in the text; counting stops at `enough` when given."""
        if not stop or not self.count:
            return 0
        lengths = self.last - self.first + 1
        sizes = {len(w) for w in stop}
        candidates = np.flatnonzero((lengths >= min(sizes)) & (lengths <= max(sizes)))
        text = self.text
        found: set[str] = set()
        chunk = 64 if enough else max(candidates.size, 1)
        for begin in range(0, candidates.size, chunk):
            picked = candidates[begin:begin + chunk]
            for a, b in zip(self.first[picked].tolist(), self.last[picked].tolist()):
                word = stop_word_form(text[a:b + 1])
                if word in stop and word not in found:
                    found.add(word)
                    if enough and len(found) >= enough:
                        return len(found)
        return len(found)


def _line_fractions(text: str) -> tuple[float, float]:
    lines = [line for line in map(str.strip, text.split("\n")) if line]
    if not lines:
        return 0.0, 0.0
    bullets = sum(1 for line in lines if line.startswith(BULLETS))
    ellipses = sum(1 for line in lines if line.endswith(ELLIPSES))
    return bullets / len(lines), ellipses / len(lines)


def check_quality(text: str, cfg: QualityConfig, signals: dict[str, float] | None = None,
                  language: str = "") -> str | None:
    """None to keep the document, else the reason code of the first failed check; `language` (langid's
    label) picks the stop words.

    With `signals` (a dict), every measure is computed and stored: ``word_count``, ``mean_word_length``,
    ``hash_word_ratio``, ``ellipsis_word_ratio``, ``bullet_lines_frac``, ``ellipsis_lines_frac``,
    ``alpha_words_frac``, ``stop_words``. Without, checking stops at the first failure.
    """
    full = signals is not None
    failed: str | None = None
    words = _Words(text)
    n = words.count

    if full:
        signals["word_count"] = n
    if cfg.min_words is not None and n < cfg.min_words:
        failed = "too_few_words"
    elif cfg.max_words is not None and n > cfg.max_words:
        failed = "too_many_words"
    if failed and not full:
        return failed

    mean = words.total_length() / n if n else 0.0
    if full:
        signals["mean_word_length"] = mean
    if failed is None and ((cfg.min_mean_word_length is not None and mean < cfg.min_mean_word_length)
                           or (cfg.max_mean_word_length is not None and mean > cfg.max_mean_word_length)):
        failed = "mean_word_length"
        if not full:
            return failed

    hashes = text.count("#") / n if n else 0.0
    ellipses = (text.count("...") + (0 if text.isascii() else text.count("…"))) / n if n else 0.0
    if full:
        signals["hash_word_ratio"] = hashes
        signals["ellipsis_word_ratio"] = ellipses
    limit = cfg.max_symbol_word_ratio
    if failed is None and limit is not None and (hashes > limit or ellipses > limit):
        failed = "symbol_word_ratio"
        if not full:
            return failed

    bullet_frac, ellipsis_frac = _line_fractions(text)
    if full:
        signals["bullet_lines_frac"] = bullet_frac
        signals["ellipsis_lines_frac"] = ellipsis_frac
    limit = cfg.max_bullet_lines_fraction
    if failed is None and limit is not None and bullet_frac > limit:
        failed = "bullet_lines"
        if not full:
            return failed
    limit = cfg.max_ellipsis_lines_fraction
    if failed is None and limit is not None and ellipsis_frac > limit:
        failed = "ellipsis_lines"
        if not full:
            return failed

    if full or cfg.min_alpha_words_fraction is not None:
        alpha = words.alphabetic() / n if n else 0.0
        if full:
            signals["alpha_words_frac"] = alpha
        if failed is None and cfg.min_alpha_words_fraction is not None and alpha < cfg.min_alpha_words_fraction:
            failed = "alpha_words"
            if not full:
                return failed

    stop = cfg.stop_words_for(language)
    if (full or cfg.min_stop_words) and stop is not None:
        found = words.stop_words(stop, None if full else cfg.min_stop_words)
        if full:
            signals["stop_words"] = found
        if failed is None and cfg.min_stop_words is not None and found < cfg.min_stop_words:
            failed = "stop_words"
    elif full:
        signals["stop_words"] = -1        # no list for this language: the rule does not apply
    return failed


def quality_signals(text: str, cfg: QualityConfig, language: str = "") -> dict[str, float]:
    """Every quality measure of `text` (the values `check_quality` compares with the thresholds)."""
    signals: dict[str, float] = {}
    check_quality(text, cfg, signals, language)
    return signals


# -- stage contract (stages/contract.py) ------------------------------------------------------------------
NAME = "quality"
VERSION = 1                # the resume fingerprint covers it: bump it when what the stage writes changes
LABEL = "document-wise filter"
CONFIG = QualityConfig


def build(section: Mapping[str, Any], shared) -> Stage:
    cfg = QualityConfig.from_config(section)
    return Stage(NAME, apply=lambda doc: check_quality(doc.text, cfg, language=doc.language))
