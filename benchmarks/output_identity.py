"""Fingerprint of what the packaged config writes: every shard's sha256 from the stage manifests, plus the
accounting, for the real WARCs of ../shared/data (or the bundled samples), and the dedup stage's shards on the
planted dedup corpus (benchmarks/planted_corpus.py, 20,000 documents, seed 0) with the default settings, with a
split into many parts, passes and component rounds, and with keep_first plus the Jaccard check. Run it before
and after a refactor that must not change outputs and compare the two JSON files:

    python benchmarks/output_identity.py before.json
    python benchmarks/output_identity.py after.json && diff before.json after.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def inputs() -> list[str]:
    warcs = sorted((SHARED / "warc").glob("*.warc.gz")) if (SHARED / "warc").is_dir() else []
    warcs = [p for p in warcs if not p.name.endswith((".wat.gz", ".wet.gz"))]
    return [str(p) for p in (warcs or sorted((REPO / "refinedweb" / "resources" / "samples").glob("*.warc.gz")))]


def blocklist() -> str:
    full = SHARED / "blocklists" / "datatrove_fineweb" / "url_filterblacklistsv0_3_0.tar.gz"
    return str(full) if full.exists() else "package:demo_blocklist.txt"


def main(target: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        command = [sys.executable, "-m", "refinedweb", "run", "--workers", "2", "--input", *inputs(), "--output",
                   str(out), "--set", f"url_filter.blocklist=[{blocklist()}]", "--set", "output.write_dropped=true",
                   "--progress", "off"]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if result.returncode not in (0, 1):
            sys.exit(result.stderr[-3000:])
        report = {}
        for stage in ("filtered", "dedup"):
            manifest = json.loads((out / stage / ".refinedweb" / "manifest.json").read_text())
            stats = json.loads((out / stage / ".refinedweb" / "stats.json").read_text())
            report[stage] = {"shards": {s["path"]: s["sha256"] for s in manifest["shards"]},
                             "stages": {name: {k: v for k, v in st.items() if k not in ("seconds", "docs_per_second")}
                                        for name, st in stats.get("stages", stats.get("methods", {})).items()}}
        dropped = sorted(p.relative_to(out).as_posix() for p in (out / "dropped").glob("*.parquet"))
        import hashlib

        report["dropped"] = {p: hashlib.sha256((out / p).read_bytes()).hexdigest() for p in dropped}
        report["planted"] = planted(Path(tmp))
    Path(target).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(f"{sum(len(r) for r in (report['filtered']['shards'], report['dedup']['shards'], report['dropped']))} "
          f"shards fingerprinted -> {target}")


PLANTED_SETTINGS = {
    "default": [],
    "split": ["dedup.parts=7", "dedup.task_memory_mb=0.05", "dedup.minhash.band_groups=3"],
    "keep_first-check": ["dedup.exact_substring.policy=keep_first", "dedup.minhash.jaccard_check=true"],
}


def planted(tmp: Path) -> dict:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from planted_corpus import build

    corpus = tmp / "planted"
    build(20_000, corpus, seed=0)
    out = {}
    for name, sets in PLANTED_SETTINGS.items():
        root = tmp / f"planted-{name}"
        command = [sys.executable, "-m", "refinedweb", "run", "--stage", "dedup", "--workers", "2", "--input",
                   str(corpus), "--output", str(root), "--progress", "off", *[a for s in sets for a in ("--set", s)]]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if result.returncode:
            sys.exit(result.stderr[-3000:])
        manifest = json.loads((root / "dedup" / ".refinedweb" / "manifest.json").read_text())
        out[name] = {s["path"]: s["sha256"] for s in manifest["shards"]}
    return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "output-identity.json")
