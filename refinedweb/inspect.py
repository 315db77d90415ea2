"""`refinedweb inspect PATH`: sample documents of any output folder, to see what a stage kept or removed.

Text folders (filtered, dropped, dedup, mix, a document stage's): a seeded sample of rows, optionally only those of
a drop reason (`--reason`, also `stage:reason`), a language (`--lang`) or a mix source (`--corpus`). The filter
columns are scanned (short strings), then only the chosen rows' text is read. Tokenized folders: a seeded sample
of documents decoded back to text with the tokenizer the manifest records, special tokens shown, boundaries
marked. The report uses the same sampling for its examples (`samples_by`).
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import UserError
from .io.manifest import MANIFEST

SHOWN = ("id", "url", "source", "language", "language_score", "token_count", "stage", "reason", "corpus")
ROOT_ORDER = ("mix", "dedup", "filtered", "tokenized")   # what `inspect ROOT` shows: the last text stage present


def _read_json(storage, relpath: str) -> dict[str, Any] | None:
    text = storage.read_text(relpath)
    return json.loads(text) if text else None


def resolve(storage, folder: str) -> str:
    """The stage folder to sample: `folder` itself, or for an output root its last text stage folder."""
    for name in ROOT_ORDER:
        inner = f"{folder}/{name}" if folder else name
        if storage.exists(f"{inner}/{MANIFEST}") or storage.exists(f"{inner}/.refinedweb/stats.json"):
            return inner
    return folder


def _files(storage, folder: str) -> list[str]:
    """The folder's Parquet files, its sub-folders' too (lang=xx/, part-*/), not the hidden metadata."""
    found, todo = [], [folder]
    while todo:
        current = todo.pop()
        for relpath in storage.list(current, "*.parquet"):
            if "/.refinedweb/" not in f"/{relpath}" and "/_work/" not in f"/{relpath}":
                found.append(relpath)
        if not hasattr(storage, "root"):             # S3 lists one level at a time
            todo += [f for f in storage.list_folders(current) if not f.rsplit("/", 1)[-1].startswith((".", "_"))]
    return sorted(set(found))


def sample_rows(storage, folder: str, n: int, seed: int, reason: str | None = None, lang: str | None = None,
                corpus: str | None = None, chars: int | None = None) -> list[dict[str, Any]]:
    """Up to `n` rows of the folder's Parquet chosen at random (seeded) among those matching the filters."""
    wanted = {"reason": reason, "language": lang, "corpus": corpus}
    candidates: list[tuple[str, int]] = []
    for relpath in _files(storage, folder):
        with storage.local_copy(relpath) as path:
            meta = pq.ParquetFile(path)
            names = meta.schema_arrow.names
            keep = np.ones(meta.metadata.num_rows, dtype=bool)
            for column, value in wanted.items():
                if value is None:
                    continue
                if column not in names:
                    keep[:] = False
                    break
                values = meta.read(columns=[column] + (["stage"] if column == "reason" and "stage" in names else []))
                if column == "reason" and ":" in value:
                    stage, why = value.split(":", 1)
                    mask = pc.and_(pc.equal(values.column("stage"), stage), pc.equal(values.column("reason"), why))
                else:
                    mask = pc.equal(values.column(column), value)
                keep &= pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
            candidates += [(relpath, int(i)) for i in np.flatnonzero(keep)]
    chosen = sorted(random.Random(seed).sample(candidates, min(n, len(candidates))))
    rows = []
    for relpath in dict.fromkeys(r for r, _ in chosen):
        indices = [i for r, i in chosen if r == relpath]
        with storage.local_copy(relpath) as path:
            table = pq.read_table(path).take(indices)
        for row in table.to_pylist():
            if chars and row.get("text") and len(row["text"]) > chars:
                row["text"] = row["text"][:chars] + f" […{len(row['text']) - chars:,} more characters]"
            rows.append({**row, "_file": relpath})
    return rows


def samples_by(storage, folder: str, column: str, per_value: int, seed: int, chars: int,
               limit: int = 30) -> dict[str, list[dict[str, Any]]]:
    """A few rows per value of `column` (stage:reason for `reason`), the most frequent values first."""
    counts: dict[str, int] = {}
    for relpath in _files(storage, folder):
        with storage.local_copy(relpath) as path:
            meta = pq.ParquetFile(path)
            if column not in meta.schema_arrow.names:
                continue
            table = meta.read(columns=[column] + (["stage"] if column == "reason" else []))
            values = table.column(column).to_pylist()
            stages = table.column("stage").to_pylist() if column == "reason" else [None] * len(values)
            for stage, value in zip(stages, values):
                key = f"{stage}:{value}" if stage else str(value)
                counts[key] = counts.get(key, 0) + 1
    out = {}
    for key in sorted(counts, key=lambda k: -counts[k])[:limit]:
        out[key] = sample_rows(storage, folder, per_value, seed, chars=chars,
                               **({"reason": key} if column == "reason" else {"lang" if column == "language" else
                                                                              column: key}))
    return out


def sample_tokenized(storage, folder: str, manifest: dict[str, Any], n: int, seed: int,
                     corpus: str | None = None, chars: int | None = None) -> list[dict[str, Any]]:
    """`n` documents of a tokenized folder, seeded, decoded with the tokenizer the manifest records."""
    from .tokenize import formats
    from .tokenize.tokenizer import load_tokenizer

    spec = manifest["tokenizer"].split(" sha256:")[0]
    try:
        tokenizer = load_tokenizer(spec, eos=None, bos=None)
    except UserError as exc:
        raise UserError(f"cannot decode {folder}: its tokenizer {spec} cannot be loaded here ({exc})") from None
    shards = [s for s in manifest["shards"] if not corpus or corpus in (s.get("corpora") or {})]
    rng = random.Random(seed)
    picks = []
    for _ in range(n):
        if not shards:
            break
        shard = rng.choices(shards, weights=[s["rows"] for s in shards])[0]
        picks.append((shard["path"], rng.randrange(shard["rows"])))
    out = []
    for path, index in sorted(set(picks)):
        prefix = f"{folder}/{path}" if folder else path
        if manifest["format"] == "megatron":
            tokens, lengths = formats.read_megatron(storage.read_bytes(f"{prefix}.bin"), storage.read_bytes(f"{prefix}.idx"))
        else:
            tokens, lengths = formats.read_datatrove(storage.read_bytes(f"{prefix}.ds"),
                                                     storage.read_bytes(f"{prefix}.ds.index"),
                                                     np.dtype(manifest["token_dtype"]).itemsize)
        end = int(np.cumsum(lengths)[index])
        ids = tokens[end - int(lengths[index]):end]
        text = tokenizer.decode(ids)
        if chars and len(text) > chars:
            text = text[:chars] + f" […{len(text) - chars:,} more characters]"
        out.append({"_file": path, "document": index, "token_count": len(ids), "text": text,
                    "first_ids": ids[:8].tolist(), "last_ids": ids[-4:].tolist()})
    return out


def format_document(row: dict[str, Any], number: int, total: int) -> str:
    head = [f"{k}={row[k]}" for k in SHOWN if row.get(k) not in (None, "")]
    where = row["_file"] + (f" #{row['document']}" if "document" in row else "")
    lines = [f"══════ {number}/{total}  {where}", "  " + "  ".join(head) if head else ""]
    if "first_ids" in row:
        lines.append(f"  ids {row['first_ids']} … {row['last_ids']}  (decoded below; special tokens as text)")
    lines += ["──────", row.get("text") or "", ""]
    return "\n".join(line for line in lines if line is not None)


def inspect(storage, folder: str, n: int, seed: int, reason: str | None, lang: str | None, corpus: str | None,
            chars: int | None) -> str:
    folder = resolve(storage, folder.strip("/"))
    manifest = _read_json(storage, f"{folder}/{MANIFEST}" if folder else MANIFEST)
    if manifest and manifest.get("stage") == "tokenize":
        if reason or lang:
            raise UserError("--reason and --lang filter text folders; a tokenized folder has --corpus")
        rows = sample_tokenized(storage, folder, manifest, n, seed, corpus, chars)
    else:
        rows = sample_rows(storage, folder, n, seed, reason, lang, corpus, chars)
    if not rows:
        return f"no document in {storage.uri}/{folder} matches"
    return "\n".join(format_document(row, i + 1, len(rows)) for i, row in enumerate(rows))
