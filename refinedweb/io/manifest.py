"""`.refinedweb/manifest.json`: every shard of a stage folder with its rows, tokens, bytes, sha256 and languages,
and the totals. Written last, by the driver, from the tasks' results: a folder with a manifest is
complete, and `refinedweb stats` answers from manifests alone, without reading any text."""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

# Run state and metadata of a stage folder live in this hidden sub-folder, so that the folder itself holds
# only Parquet: every reader (pyarrow.dataset, HF datasets with data_dir, DuckDB/Polars globs) skips it.
META = ".refinedweb"
MANIFEST = f"{META}/manifest.json"
FORMAT = "refinedweb-manifest/1"


def totals_of(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    entries = list(entries)
    totals: dict[str, Any] = {"shards": len(entries)}
    for key in ("rows", "tokens", "bytes"):
        totals[key] = sum(int(entry.get(key) or 0) for entry in entries)
    totals["languages"] = counts_by(entries, "languages")
    return totals


def counts_by(entries: Iterable[dict[str, Any]], field: str) -> dict[str, dict[str, int]]:
    """Rows and tokens per value of a per-shard breakdown (`languages`, `corpora`), most tokens first."""
    out: dict[str, dict[str, int]] = {}
    for entry in entries:
        for name, counts in (entry.get(field) or {}).items():
            slot = out.setdefault(name, {"rows": 0, "tokens": 0})
            slot["rows"] += counts["rows"]
            slot["tokens"] += counts["tokens"]
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["tokens"]))


def build_manifest(stage: str, folder: str, entries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Entries carry paths relative to the output root; the manifest's are relative to `folder`."""
    prefix = folder.strip("/") + "/"
    shards = sorted(({**e, "path": e["path"][len(prefix):] if e["path"].startswith(prefix) else e["path"]}
                     for e in entries), key=lambda e: e["path"])
    return {"format": FORMAT, "stage": stage, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **extra, "totals": totals_of(shards), "shards": shards}


def write_manifest(storage, stage: str, folder: str, entries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    manifest = build_manifest(stage, folder, entries, **extra)
    storage.write_text(f"{folder}/{MANIFEST}", json.dumps(manifest, indent=1) + "\n")
    return manifest


def find_manifests(storage) -> list[tuple[str, dict[str, Any]]]:
    """(folder, manifest) for the output root itself and each folder directly under it that has one."""
    found = []
    text = storage.read_text(MANIFEST)
    if text is not None:
        found.append(("", json.loads(text)))
    for folder in storage.list_folders(""):
        text = storage.read_text(f"{folder}/{MANIFEST}")
        if text is not None:
            found.append((folder, json.loads(text)))
    return found


def format_totals(folder: str, manifest: dict[str, Any], top_languages: int = 12) -> str:
    t = manifest["totals"]
    lines = [f"{folder or '.'}/  ({manifest.get('stage', '?')})  {t['shards']:,} shards  {t['rows']:,} documents  "
             f"{t['tokens']:,} tokens  {human_bytes(t['bytes'])}"]
    languages = list(t.get("languages", {}).items())
    if languages:
        lines.append(f"  {'language':<10} {'documents':>14} {'tokens':>18} {'% tokens':>9}")
        for language, counts in languages[:top_languages]:
            share = 100.0 * counts["tokens"] / t["tokens"] if t["tokens"] else 0.0
            lines.append(f"  {language:<10} {counts['rows']:>14,} {counts['tokens']:>18,} {share:>8.2f}%")
        if len(languages) > top_languages:
            lines.append(f"  … and {len(languages) - top_languages} more languages")
    corpora = manifest.get("corpora")
    if corpora:
        lines.append(f"  {'corpus':<20} {'documents':>14} {'tokens':>18} {'% tokens':>9}")
        for name, counts in corpora.items():
            share = 100.0 * counts["tokens"] / t["tokens"] if t["tokens"] else 0.0
            lines.append(f"  {name:<20} {counts['rows']:>14,} {counts['tokens']:>18,} {share:>8.2f}%")
    return "\n".join(lines)


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"
