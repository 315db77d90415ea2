"""A C4-style stage (Raffel et al. 2020 keep lines ending in terminal punctuation; here: drop a document
when too few of its lines do), written as a user would write one: this module plus one YAML section.
tests/test_stage_contract.py checks it is accounted, fingerprinted, reported and written with no other edit."""

from __future__ import annotations

import pyarrow as pa

from refinedweb.stages.contract import Stage

NAME = "c4_punctuation"
BATCHES: list[int] = []                   # sizes of the batches the batch entry point got (this process)
LABEL = "C4 terminal punctuation"
SIGNALS = {"terminal_punct_fraction": pa.float32()}
TERMINAL = (".", "!", "?", '"', "'")


def terminal_fraction(text: str) -> float:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return sum(line.endswith(TERMINAL) for line in lines) / len(lines) if lines else 0.0


def build(section, shared) -> Stage:
    min_fraction = float(section["min_fraction"])

    def judge(doc) -> str | None:
        doc.metadata["terminal_punct_fraction"] = terminal_fraction(doc.text)
        return "few_terminal_lines" if doc.metadata["terminal_punct_fraction"] < min_fraction else None

    def batch(docs) -> list[str | None]:
        BATCHES.append(len(docs))
        return [judge(doc) for doc in docs]

    if section.get("batch"):                  # the batch entry point, as a model-based stage would use it
        return Stage(NAME, batch=batch, batch_size=section.get("batch_size"))
    return Stage(NAME, apply=judge)
