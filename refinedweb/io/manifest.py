"""`_manifest.json`: every shard of a stage folder with its rows, tokens, bytes, sha256 and languages,
and the totals. Written last, by the driver, from the tasks' results: a folder with a manifest is
complete, and `refinedweb stats` answers from manifests alone, without reading any text."""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

MANIFEST = "_manifest.json"
FORMAT = "refinedweb-manifest/1"


def totals_of(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = {"shards": 0, "rows": 0, "tokens": 0, "bytes": 0, "languages": {}}
    for entry in entries:
        totals["shards"] += 1
        for key in ("rows", "tokens", "bytes"):
            totals[key] += int(entry.get(key) or 0)
        for language, counts in (entry.get("languages") or {}).items():
            slot = totals["languages"].setdefault(language, {"rows": 0, "tokens": 0})
            slot["rows"] += counts["rows"]
            slot["tokens"] += counts["tokens"]
    totals["languages"] = dict(sorted(totals["languages"].items(), key=lambda kv: -kv[1]["tokens"]))
    return totals


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
