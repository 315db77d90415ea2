"""Our extraction against stock trafilatura on every page of ../shared/data: the same text, and the time per page.

Every page of the benchmark pool (`build_bench_warc.pool_pages`: both extraction benchmarks and every HTML
response of the shared WARCs, the pages every seeded or weighted mix is drawn from) goes through the
packaged `extract` settings twice, each in a fresh process: once stock (`speed_up_trafilatura` off) and once
as the pipeline runs it. Text and drop reason must be equal for every page; the time is the extraction
alone (one warm-up page, no time limit), best of `--repeats` passes, alternating which runs first.

    .venv/bin/python benchmarks/extraction_identity.py [--repeats 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

_RUN = """
import json, pickle, sys, time
import refinedweb.stages.extract as ex
if sys.argv[1] == "stock":
    ex.speed_up_trafilatura = lambda: None
from refinedweb.config import load_config
extract = ex.Extractor(ex.ExtractConfig.from_config({**load_config()["extract"], "timeout_seconds": 0}))
pages = pickle.load(open(sys.argv[2], "rb"))
extract(pages[0])
started = time.perf_counter()
results = [extract(html) for html in pages]
seconds = time.perf_counter() - started
pickle.dump({"seconds": seconds, "results": [(t, d and (d.stage, d.reason)) for t, d in results]}, open(sys.argv[3], "wb"))
"""


def run(mode: str, pages: Path, out: Path) -> dict:
    subprocess.run([sys.executable, "-c", _RUN, mode, str(pages), str(out)], check=True, cwd=HERE.parent)
    return pickle.loads(out.read_bytes())


def main(argv: list[str] | None = None) -> int:
    import build_bench_warc
    from run_all import machine

    from refinedweb.config import load_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", type=Path, default=build_bench_warc.DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    pages = [p.html for p in build_bench_warc.pool_pages(args.data, load_config()["read"])]
    seconds: dict[str, list[float]] = {"stock": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "pages.pkl"
        source.write_bytes(pickle.dumps(pages))
        differ: list[int] = []
        for repeat in range(args.repeats):
            order = ("stock", "ours") if repeat % 2 == 0 else ("ours", "stock")
            got = {mode: run(mode, source, Path(tmp) / f"{mode}.pkl") for mode in order}
            for mode in order:
                seconds[mode].append(got[mode]["seconds"])
            differ = sorted({i for i, (a, b) in enumerate(zip(got["stock"]["results"], got["ours"]["results"]))
                             if a != b} | set(differ))
            texts = sum(bool(t) for t, _ in got["ours"]["results"])
    per_page = {mode: round(1000 * min(s) / len(pages), 2) for mode, s in seconds.items()}
    report = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "pages": len(pages), "pages_with_text": texts, "pages_differing": len(differ), "differing": differ[:20],
        "ms_per_page": per_page, "ratio": round(per_page["ours"] / per_page["stock"], 3),
        "seconds": {mode: [round(x, 2) for x in s] for mode, s in seconds.items()},
    }
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
