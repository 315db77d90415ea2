"""`make bench`: every benchmark of the project, results printed and saved under benchmarks/results/.

Builds the benchmark WARC on first use (from ../shared/data). The datatrove baseline runs only when
its separate venv exists (`bash benchmarks/setup_datatrove_venv.sh`), since it must not share ours.
Record the numbers with date and machine in docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = sys.executable


def run(args: list[str]) -> dict:
    print("$", " ".join(args), flush=True)
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=REPO).stdout
    start = out.index("{")
    return json.loads(out[start:])


def machine() -> dict:
    model = ""
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem, 1), "python": platform.python_version()}


def main() -> None:
    results = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine()}
    warc = HERE / "data" / "bench.warc.gz"
    if not warc.exists():
        subprocess.run([PY, str(HERE / "build_bench_warc.py"), "--out", str(warc)], check=True)
    results["extraction_aeb"] = run([PY, str(HERE / "extraction_quality.py")])
    results["extraction_identity"] = run([PY, str(HERE / "extraction_identity.py")])
    results["filter_speed"] = run([PY, str(HERE / "filter_speed.py"), "--cli"])
    results["pre_extraction_agreement"] = run([PY, str(HERE / "pre_extraction_agreement.py")])
    results["stop_words_by_language"] = run([PY, str(HERE / "stop_words_by_language.py")])
    results["lid_europe"] = run([PY, str(HERE / "lid_europe.py")])
    results["line_filter_by_language"] = run([PY, str(HERE / "line_filter_by_language.py")])
    results["fetch_speed"] = run([PY, str(HERE / "fetch_speed.py")])
    results["resume_cost"] = run([PY, str(HERE / "resume_cost.py")])
    results["mix_speed"] = run([PY, str(HERE / "mix_speed.py")])
    results["dedup_scale"] = run([PY, str(HERE / "dedup_scale.py"), "--docs", "200000", "--parts", "16"])
    results["driver_scale"] = run([PY, str(HERE / "driver_scale.py")])
    results["seen_store_scale"] = run([PY, str(HERE / "seen_store_scale.py")])
    results["hash_collisions"] = run([PY, str(HERE / "hash_collisions.py")])
    results["quality_model_speed"] = run([PY, str(HERE / "quality_model_speed.py")])
    results["pii_speed"] = run([PY, str(HERE / "pii_speed.py")])
    results["decontam_speed"] = run([PY, str(HERE / "decontam_speed.py"), "--docs", "20000", "--seeds", "0", "1", "2"])
    baseline_python = REPO / ".venv-bench-datatrove" / "bin" / "python"
    if baseline_python.exists():
        results["datatrove_baseline"] = run([str(baseline_python), str(HERE / "datatrove_baseline.py"), "--warc", str(warc)])
        results["filter_vs_datatrove"] = run([PY, str(HERE / "filter_vs_datatrove.py"), "--sizes", "1500", "6000",
                                              "--seeds", "1", "2", "3"])
        results["tokenize_speed"] = run([PY, str(HERE / "tokenize_speed.py"), "--mb", "200"])
    else:
        results["datatrove_baseline"] = "skipped: run `bash benchmarks/setup_datatrove_venv.sh` first"
    out = HERE / "results" / f"bench-{results['date'][:10]}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
