"""CLI contract: one-line user errors with exit 2, and an end-to-end run on real WARCs with embedded Ray."""

import json
import os
import subprocess
import sys

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from .conftest import REPO, SAMPLES
from .readers import assert_every_reader_reads

CLI = [sys.executable, "-m", "refinedweb"]


def run_cli(*args, timeout=600, env=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args,message", [
    (["run", "--input", "nope.warc.gz", "--output", "out"], "input not found: nope.warc.gz"),
    (["run", "--input", "x/*.warc.gz", "--output", "out"], "input glob matches no files"),
    (["run", "--input", str(SAMPLES / "dolma_sample-0000.warc.gz"), "--output", "out", "--set", "langid.treshold=1"],
     "did you mean langid.threshold"),
    (["run", "--input", str(SAMPLES / "dolma_sample-0000.warc.gz"), "--output", "out", "--config", "missing.yaml"],
     "config file not found"),
    (["run", "--input", str(SAMPLES / "dolma_sample-0000.warc.gz"), "--output", "out", "--workers", "0"],
     "expected a number >= 1"),
    (["run", "--input", str(SAMPLES / "dolma_sample-0000.warc.gz"), "--output", "out", "--stage", "nope"],
     "filter.stages: no stage 'nope'"),
    (["run", "--input", "s3x://bucket/key", "--output", "out"], "unsupported input URI scheme"),
    (["frobnicate"], "invalid choice"),
])
def test_user_errors_are_one_line_exit_2(args, message, tmp_path):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_blocklist_fails_with_a_hint(tmp_path):
    result = run_cli("run", "--input", str(SAMPLES / "dolma_sample-0000.warc.gz"), "--output", str(tmp_path),
                     "--set", f"url_filter.blocklist={tmp_path}/absent.tar.gz")
    assert result.returncode == 2
    assert "refinedweb blocklist fetch" in result.stderr and "[]" in result.stderr


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory):
    """One real run: 2 Ray workers over the bundled sample WARCs plus the clipped one, with the full
    shared 4.6M-domain blocklist when present (else the bundled demo list)."""
    out = tmp_path_factory.mktemp("e2e")
    # one sample under a name with a split word ("test"): HF datasets must still read every shard
    linked = tmp_path_factory.mktemp("e2e-inputs")
    for path in sorted(SAMPLES.glob("*.warc.gz")):
        name = "test-crawl.warc.gz" if path.name.startswith("dolma_sample-0000") else path.name
        (linked / name).symlink_to(path)
    inputs = [str(p) for p in sorted(linked.iterdir())]
    clipped = REPO.parent / "shared" / "data" / "warc" / "resiliparse_clipped.warc.gz"
    if clipped.exists():
        inputs.append(str(clipped))
    full = REPO.parent / "shared" / "data" / "blocklists" / "datatrove_fineweb" / "url_filterblacklistsv0_3_0.tar.gz"
    blocklist = str(full) if full.exists() else "package:demo_blocklist.txt"
    result = run_cli("run", "--stage", "all", "--workers", "2", "--input", *inputs, "--output", str(out),
                     "--set", f"url_filter.blocklist=[{blocklist}]", "--set", "output.write_dropped=true",
                     # several shards per folder, part shards and merged tails in dedup/
                     "--set", "output.shard_max_rows=10", "--set", "dedup.parts=2")
    return out, inputs, result


def test_e2e_exit_and_funnel(e2e_run):
    out, inputs, result = e2e_run
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in ("read", "url_filter", "pre_langid", "extract", "langid", "repetition", "quality", "line_filter", "tokens"):
        assert stage in result.stdout
    assert "reconciled" in result.stdout and "NOT reconciled" not in result.stdout
    assert f"{out}/filtered" in result.stdout


def test_e2e_schema_and_content(e2e_run):
    out, inputs, _ = e2e_run
    table = ds.dataset(str(out / "filtered"), format="parquet", exclude_invalid_files=True).to_table()
    for name in ("id", "url", "text", "source", "date", "language", "language_score", "token_count"):
        assert name in table.column_names
    rows = table.to_pylist()
    assert len(rows) > 20
    assert all(r["language"] == "en" and r["language_score"] >= 0.65 for r in rows)
    assert all(r["token_count"] > 0 and r["text"] for r in rows)
    assert all(r["id"].startswith("<urn:uuid:") for r in rows)
    assert all("://" not in r["text"] for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["source"] for r in rows} <= set(inputs)
    meta = pq.ParquetFile(next((out / "filtered").glob("*.parquet"))).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_e2e_stats_reconcile_per_file(e2e_run):
    out, inputs, _ = e2e_run
    stats = json.loads((out / "filtered" / ".refinedweb/stats.json").read_text())
    assert len(stats["files"]) == len(inputs)
    for f in stats["files"]:
        assert f["status"] == "ok"
        assert f["records"] == f["kept"] + sum(f["dropped"].values()) + sum(f["errors"].values()), f["uri"]
    totals = stats["totals"]
    assert totals["reconciled"] and totals["records"] > 1000
    stages = stats["stages"]
    # each stage's input is the previous stage's output
    order = ["read", "url_filter", "pre_langid", "extract", "langid", "repetition", "quality", "line_filter", "tokens"]
    for before, after in zip(order, order[1:]):
        assert stages[after]["docs_in"] == stages[before]["kept"], (before, after)
    for st in stages.values():
        assert st["docs_in"] == st["kept"] + sum(st["dropped"].values()) + sum(st["errors"].values())
    assert stages["tokens"]["kept"] == totals["kept"]
    assert [row["stage"] for row in stats["funnel"]][:2] == ["records", "read"]
    clipped = [f for f in stats["files"] if f["uri"].endswith("resiliparse_clipped.warc.gz")]
    if clipped:
        assert clipped[0]["notes"].get("truncated_record") == 1


def test_e2e_stage_all_deduplicates_the_filtered_output(e2e_run):
    out, _, result = e2e_run
    filtered = json.loads((out / "filtered" / ".refinedweb/stats.json").read_text())
    dedup = json.loads((out / "dedup" / ".refinedweb/stats.json").read_text())
    assert dedup["totals"]["docs_in"] == filtered["totals"]["kept"]
    rows = ds.dataset(str(out / "dedup"), format="parquet", exclude_invalid_files=True).count_rows()
    assert rows == dedup["totals"]["docs_out"] > 0
    assert "dedup method" in result.stdout and result.stdout.count("Parquet:") == 2


def test_e2e_dropped_documents_are_auditable(e2e_run):
    out, _, _ = e2e_run
    dropped = ds.dataset(str(out / "dropped"), format="parquet").to_table().to_pylist()
    stats = json.loads((out / "filtered" / ".refinedweb/stats.json").read_text())
    assert len(dropped) == stats["totals"]["dropped"] + stats["totals"]["errors"]
    assert {"read", "extract", "langid"} <= {d["stage"] for d in dropped}


def test_e2e_every_readme_reader_reads_every_output_folder(e2e_run, tmp_path, monkeypatch):
    """README: pyarrow.dataset, DuckDB and Polars globs, HF `load_dataset("parquet", data_dir=…)`, each on
    filtered/, dropped/ and dedup/ as they are (run state and manifests included)."""
    out, _, _ = e2e_run
    assert any(p.name.startswith("Test-crawl-") for p in (out / "filtered").glob("*.parquet"))
    assert (out / "dedup" / "merged").is_dir() and list((out / "dedup").glob("part-*/*.parquet"))
    counts = {name: assert_every_reader_reads(out / name, tmp_path / "hf", monkeypatch)
              for name in ("filtered", "dropped", "dedup")}
    stats = json.loads((out / "filtered" / ".refinedweb/stats.json").read_text())
    assert counts["filtered"] == stats["totals"]["kept"]
    assert counts["dedup"] == json.loads((out / "dedup" / ".refinedweb/manifest.json").read_text())["totals"]["rows"]


def test_rerun_replaces_instead_of_duplicating(tmp_path):
    sample = str(SAMPLES / "dolma_sample-0000.warc.gz")
    args = ["run", "--stage", "filter", "--workers", "1", "--input", sample, str(SAMPLES / "dolma_sample-0001.warc.gz"),
            "--limit", "1", "--output", str(tmp_path), "--set", "url_filter.blocklist=[package:demo_blocklist.txt]"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    stats = json.loads((tmp_path / "filtered" / ".refinedweb/stats.json").read_text())
    assert [f["uri"] for f in stats["files"]] == [sample]   # --limit 1: only the first input
    names = sorted(p.name for p in (tmp_path / "filtered").glob("*.parquet"))
    rows = ds.dataset(str(tmp_path / "filtered"), format="parquet", exclude_invalid_files=True).count_rows()
    second = run_cli(*args)
    assert second.returncode == 0
    assert sorted(p.name for p in (tmp_path / "filtered").glob("*.parquet")) == names
    assert ds.dataset(str(tmp_path / "filtered"), format="parquet", exclude_invalid_files=True).count_rows() == rows
    assert not list((tmp_path / "filtered").glob(".*tmp"))


@pytest.mark.parametrize("mode", ["json"])   # plain lines: every other CLI test; off: tests/test_cluster.py
def test_progress_modes(mode, tmp_path):
    inputs = [str(SAMPLES / "dolma_sample-0000.warc.gz"), str(SAMPLES / "cc_whirlwind_whirlwind.warc.gz")]
    result = run_cli("run", "--stage", "filter", "--workers", "2", "--input", *inputs, "--output", str(tmp_path),
                     "--set", "url_filter.blocklist=[package:demo_blocklist.txt]", "--progress", mode)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    if mode == "json":
        records = [json.loads(l) for l in lines]          # every line of the driver's log is JSON, Ray's too
        progress = [r for r in records if r["event"] == "progress"]
        assert progress and progress[-1]["files_done"] == progress[-1]["files_total"] == 2
        assert {"records", "kept", "records_per_second", "eta_seconds", "ts"} <= set(progress[-1])
        assert any(r["event"] == "log" and "input file(s)" in r["message"] for r in records)
    else:
        assert not any("files 2/2" in l for l in lines) and any("input file(s)" in l for l in lines)


def test_report_renders_from_a_real_run(e2e_run):
    import matplotlib.image

    out, _, _ = e2e_run
    result = run_cli("report", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    image = matplotlib.image.imread(out / "funnel.png")
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.1                        # not a blank canvas
    assert len({tuple(px) for px in image[::7, ::7, :3].reshape(-1, 3).round(2)}) > 20   # bars, text, colours
    page = (out / "report.html").read_text()
    for label in ("text extraction", "language ID", "repetition removal", "fuzzy dedup", "URL dedup"):
        assert label in page
    assert page.count("<img") == 4 and "reconciled" in page
    stats = json.loads((out / "filtered" / ".refinedweb/stats.json").read_text())
    assert f"{stats['totals']['records']:,} records" in page
    missing = run_cli("report", str(out / "nope"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_report_without_its_optional_dependency_is_one_line(e2e_run, monkeypatch):
    """matplotlib is the `report` extra: without it, `refinedweb report` says how to install it."""
    import sys as _sys

    from refinedweb.errors import UserError
    from refinedweb.report import render

    out, _, _ = e2e_run
    monkeypatch.setitem(_sys.modules, "matplotlib", None)          # as if it were not installed
    with pytest.raises(UserError, match=r"pip install 'refinedweb\[report\]'"):
        render(str(out))


def test_a_bad_stage_threshold_is_one_line_before_any_task(tmp_path):
    result = run_cli("run", "--stage", "filter", "--input", str(SAMPLES / "dolma_sample-0000.warc.gz"), "--output",
                     str(tmp_path), "--set", "url_filter.blocklist=[package:demo_blocklist.txt]",
                     "--set", "quality.min_words=-1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "quality.min_words" in result.stderr and not (tmp_path / "filtered").exists()


def test_refinedweb_europe_by_its_packaged_name(tmp_path, monkeypatch):
    """`--config refinedweb-europe` (the packaged file, by name): the ten languages, a folder each, the
    manifest's per-language rows and tokens, and `refinedweb stats` showing the language mix."""
    europe = {"de", "es", "fr", "it", "pt", "pl", "nl", "ro", "cs", "sv"}
    out = tmp_path / "out"
    result = run_cli("run", "--config", "refinedweb-europe", "--stage", "filter", "--workers", "1", "--input",
                     str(SAMPLES / "cc2008_arc2warc_1213893279526_0.warc.gz"), "--output", str(out),
                     "--set", "url_filter.blocklist=[]")
    assert result.returncode == 0, result.stderr[-2000:]
    folders = {p.name.removeprefix("lang=") for p in (out / "filtered").iterdir() if p.name.startswith("lang=")}
    assert len(folders) >= 2 and folders <= europe, folders
    manifest = json.loads((out / "filtered" / ".refinedweb" / "manifest.json").read_text())
    languages = manifest["totals"]["languages"]
    assert set(languages) == folders and all(v["rows"] and v["tokens"] for v in languages.values())
    for language in folders:
        rows = ds.dataset(str(out / "filtered" / f"lang={language}"), format="parquet").to_table(columns=["language"])
        assert set(rows.column("language").to_pylist()) == {language}
        assert rows.num_rows == languages[language]["rows"]
    # pyarrow, DuckDB, Polars and HF datasets read the lang=xx folders (some add a `lang` partition column)
    assert assert_every_reader_reads(out / "filtered", tmp_path / "hf", monkeypatch) == manifest["totals"]["rows"]
    stats = run_cli("stats", str(out))
    assert stats.returncode == 0 and "language" in stats.stdout
    assert all(f"  {language} " in stats.stdout for language in folders), stats.stdout
    unknown = run_cli("run", "--config", "refinedweb-asia", "--input", str(SAMPLES / "dolma_sample-0000.warc.gz"),
                      "--output", str(tmp_path / "x"))
    assert unknown.returncode == 2, unknown.stderr
    assert "config file not found: refinedweb-asia (packaged configs: refinedweb, refinedweb-europe, refinedweb-pii)" in unknown.stderr
