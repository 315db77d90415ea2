"""Writes tests/fixtures/tokenized/ with the real writers, from tests/tokenized_docs.py's token arrays, so that
CI can compare ours byte for byte without torch or datatrove. Run each part in the venv that has the writer:

    /tmp/venv-megatron/bin/python benchmarks/tokenized_fixtures.py megatron     # megatron-core 0.16.1 + torch 2.13.0 CPU
    .venv-bench-datatrove/bin/python benchmarks/tokenized_fixtures.py datatrove  # datatrove 0.10.1 (requirements-datatrove.txt)

Megatron: `IndexedDatasetBuilder(bin, dtype=DType.optimal_dtype(vocabulary))`, `add_document(ids, [len(ids)])`
per document, `finalize(idx)`, as tools/preprocess_data.py does. datatrove: `TokenizedFile(folder, name,
token_size=2 or 4, tokenizer_name_or_path="gpt2", save_final_metadata=True)`, `write(ids, None)` per document,
`close()`, as its DocumentTokenizer does (without the shuffle).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from tokenized_docs import CASES, fixture_docs  # noqa: E402

OUT = HERE.parent / "tests" / "fixtures" / "tokenized"


def megatron() -> None:
    import torch
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

    for case, vocab in CASES.items():
        builder = IndexedDatasetBuilder(str(OUT / f"megatron-{case}.bin"), dtype=DType.optimal_dtype(vocab))
        for ids in fixture_docs(case):
            builder.add_document(torch.tensor(ids.tolist()), [len(ids)])
        builder.finalize(str(OUT / f"megatron-{case}.idx"))


def datatrove() -> None:
    from datatrove.pipeline.tokens.tokenizer import TokenizedFile

    for case, vocab in CASES.items():
        file = TokenizedFile(str(OUT), f"datatrove-{case}.ds", token_size=2 if vocab <= 65536 else 4,
                             tokenizer_name_or_path="gpt2", save_final_metadata=True)
        for ids in fixture_docs(case):
            file.write(ids.tolist(), None)
        file.close()


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    {"megatron": megatron, "datatrove": datatrove}[sys.argv[1]]()
    print(sorted(p.name for p in OUT.iterdir()))
