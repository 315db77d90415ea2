"""The unit every stage works on, and the verdict a filter returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Document:
    id: str                       # WARC-Record-ID (or the input's id column)
    url: str
    source: str                   # input URI the record came from
    date: str = ""                # WARC-Date
    text: str = ""
    language: str = ""
    language_score: float = 0.0
    token_count: int = 0
    html: str = ""                # the page until extraction replaces it with `text`
    metadata: dict[str, Any] = field(default_factory=dict)   # signals stages write (their SIGNALS: columns)


@dataclass(frozen=True, slots=True)
class Drop:
    """Why a document left the pipeline: `stage` is the stage name, `reason` a short snake_case code."""

    stage: str
    reason: str
