"""The documents of the committed tokenized fixtures (tests/fixtures/tokenized/), made by Megatron-LM's and
datatrove's own writers from these token arrays (benchmarks/tokenized_fixtures.py): a vocabulary that fits
uint16 and one that does not, documents of 1 to 400 tokens, the largest ids of each range included."""

from __future__ import annotations

import numpy as np

CASES = {"small": 50257, "large": 70000}       # vocabulary sizes: GPT-2's, and one past uint16


def fixture_docs(case: str) -> list[np.ndarray]:
    vocab = CASES[case]
    rng = np.random.default_rng(7 if case == "small" else 8)
    docs = [rng.integers(0, vocab, int(rng.integers(1, 400)), dtype=np.int64) for _ in range(37)]
    docs[3][0] = vocab - 1
    docs.append(np.array([vocab - 1, 0, 1], dtype=np.int64))
    return docs
