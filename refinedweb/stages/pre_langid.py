"""Language pre-check before extraction (langid.pre_extraction_min_score): a page on which no accepted
language scores above the minimum skips trafilatura. Only with the trafilatura backend: with resiliparse it
would cost as much as it saves. Its settings are langid's; it has no section of its own."""

from __future__ import annotations

from .contract import Stage, passes
from .langid import PreExtractionCheck, shared_identifier

NAME = "pre_langid"
READS_HTML = True          # needs the page: runs in the filter stage only, not over Parquet
VERSION = 1                # the resume fingerprint covers it: bump it when what the stage writes changes
LABEL = "language pre-check"
READS = ("langid", "extract")


def build(section, shared) -> Stage:
    if shared.section("extract")["backend"] != "trafilatura":
        return Stage(NAME, apply=passes)
    check = PreExtractionCheck.maybe(shared_identifier(shared))
    if check is None:
        return Stage(NAME, apply=passes)

    def apply(doc) -> str | None:
        drop = check(doc.html)
        return drop.reason if drop else None

    return Stage(NAME, apply=apply)
