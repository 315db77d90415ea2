"""A stage with a bug, as a user might ship one: it raises on the documents of inputs whose name contains
`section["inputs_containing"]` while the file `section["flag"]` exists (every document, or only the
first `section["first"]` of each input when set). tests/test_stage_errors.py uses it to show that a broken
stage fails its files loudly while one bad page costs only itself."""

from __future__ import annotations

import os

from refinedweb.stages.contract import Stage

NAME = "toy_broken"
LABEL = "a stage with a bug"


def build(section, shared) -> Stage:
    flag, match, first = section["flag"], section["inputs_containing"], section.get("first")
    seen: dict[str, int] = {}

    def apply(doc) -> str | None:
        if match in doc.source and os.path.exists(flag):
            seen[doc.source] = seen.get(doc.source, 0) + 1
            if first is None or seen[doc.source] <= first:
                raise ValueError("toy stage bug")
        return None

    return Stage(NAME, apply=apply)
