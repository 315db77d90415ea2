"""The files a trainer opens, written and read back exactly as their own code does.

Megatron-LM (`megatron.core.datasets.indexed_dataset`, as `tools/preprocess_data.py` writes it): `<prefix>.bin`
holds the tokens (uint16 when the vocabulary has fewer than 65,500 tokens, else int32), `<prefix>.idx` the header
`MMIDIDX\\x00\\x00`, version 1 (<Q), the dtype code (<B), the sequence count and the document count (<Q each), then
every sequence's length (int32), its byte offset in the .bin (int64), and the document indices (int64: 0, then
the sequence count after each document). One document is one sequence.

nanotron / datatrove (`datatrove.pipeline.tokens.tokenizer.TokenizedFile`, read by nanotron's datatrove folder
dataset): `<name>.ds` holds the tokens (uint16 when the vocabulary has at most 65,536 tokens, else uint32),
`<name>.ds.index` every document's end in tokens (uint64), `<name>.ds.metadata` three lines: the tokenizer's name
and the token size, the token count, the count in humanize's metric form.
"""

from __future__ import annotations

import math
import struct

import numpy as np

FORMATS = ("megatron", "nanotron")
MEGATRON_HEADER = b"MMIDIDX\x00\x00"
MEGATRON_CODES = {np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
                  np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7, np.dtype(np.uint16): 8}


def token_dtype(fmt: str, vocab_size: int) -> np.dtype:
    if fmt == "megatron":                      # DType.optimal_dtype(cardinality)
        return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)
    return np.dtype("<u2") if vocab_size <= 65536 else np.dtype("<u4")   # PipelineStepWithTokenizer.token_size


def files_of(fmt: str, prefix: str) -> list[str]:
    """The files one shard is made of (relative paths from its prefix)."""
    if fmt == "megatron":
        return [f"{prefix}.bin", f"{prefix}.idx"]
    return [f"{prefix}.ds", f"{prefix}.ds.index", f"{prefix}.ds.metadata"]


def megatron_index(lengths: np.ndarray, dtype: np.dtype) -> bytes:
    lengths = np.asarray(lengths, dtype=np.int64)
    pointers = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1] * dtype.itemsize, out=pointers[1:])
    return b"".join([MEGATRON_HEADER, struct.pack("<Q", 1), struct.pack("<B", MEGATRON_CODES[dtype]),
                     struct.pack("<Q", len(lengths)), struct.pack("<Q", len(lengths) + 1),
                     lengths.astype("<i4").tobytes(), pointers.astype("<i8").tobytes(),
                     np.arange(len(lengths) + 1, dtype="<i8").tobytes()])


def datatrove_index(lengths: np.ndarray) -> bytes:
    return np.cumsum(np.asarray(lengths, dtype=np.uint64)).astype("<u8").tobytes()


def datatrove_metadata(tokenizer_name: str, token_size: int, tokens: int) -> str:
    return "\n".join([f"{tokenizer_name}|{token_size}", str(tokens), metric(tokens, "T")])


def metric(count: int, unit: str) -> str:
    """humanize.metric(count, unit) of humanize 4.x (3 significant digits) for a count >= 0: what datatrove writes."""
    exponent = math.floor(math.log10(count)) if count else 0
    bucket = exponent // 3 * 3
    value = count / 10 ** bucket
    digits = max(0, 2 - exponent % 3)
    if round(value, digits) >= 10 ** (exponent % 3 + 1):          # a rounding carry: 999,600 -> 1.00 M
        exponent += 1
        value /= 10 ** (exponent // 3 * 3 - bucket)
        digits = max(0, 2 - exponent % 3)
    prefix = "kMGTPEZYRQ"[exponent // 3 - 1] if exponent >= 3 else ""
    return f"{value:.{digits}f} {prefix}{unit}"


def read_megatron(bin_bytes: bytes, idx_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, per-document lengths) of a Megatron pair, checked as Megatron's reader checks it."""
    if idx_bytes[:9] != MEGATRON_HEADER or struct.unpack("<Q", idx_bytes[9:17])[0] != 1:
        raise ValueError("not a Megatron index (MMIDIDX, version 1)")
    code = idx_bytes[17]
    dtype = next(d for d, c in MEGATRON_CODES.items() if c == code)
    sequences, documents = struct.unpack("<QQ", idx_bytes[18:34])
    lengths = np.frombuffer(idx_bytes, dtype="<i4", count=sequences, offset=34)
    tokens = np.frombuffer(bin_bytes, dtype=dtype)
    if int(lengths.sum()) != len(tokens) or documents != sequences + 1:
        raise ValueError("the Megatron index does not describe its .bin")
    return tokens, lengths.astype(np.int64)


def read_datatrove(ds_bytes: bytes, index_bytes: bytes, token_size: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.frombuffer(ds_bytes, dtype="<u2" if token_size == 2 else "<u4")
    ends = np.frombuffer(index_bytes, dtype="<u8").astype(np.int64)
    if (ends[-1] if len(ends) else 0) != len(tokens):
        raise ValueError("the datatrove index does not describe its .ds")
    return tokens, np.diff(ends, prepend=0)
