"""The stage contract: a stage added as one module plus one YAML section is accounted, fingerprinted,
reported and written with no other edit; how documents are chunked never changes results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from refinedweb.config import load_config
from refinedweb.runtime.filter_pass import Pipeline, filter_file

from .conftest import REPO, SAMPLES

CLI = [sys.executable, "-m", "refinedweb"]
BLOCKLIST = "url_filter.blocklist=[package:demo_blocklist.txt]"
STAGES = ["url_filter", "pre_langid", "extract", "langid", "repetition", "quality", "tests.toy_c4_stage",
          "line_filter", "tokens"]


def user_config(tmp_path, **section) -> str:
    path = tmp_path / "with-c4.yaml"
    path.write_text(yaml.safe_dump({"filter": {"stages": STAGES}, "c4_punctuation": {"min_fraction": 0.5, **section}}))
    return str(path)


def test_a_stage_added_as_one_module_and_one_section(tmp_path):
    config = user_config(tmp_path)
    out = tmp_path / "out"
    inputs = [str(SAMPLES / "dolma_sample-0000.warc.gz"), str(SAMPLES / "aut_example.warc.gz")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}          # the user's module is importable on the workers
    run = subprocess.run([*CLI, "run", "--stage", "filter", "--workers", "1", "--config", config, "--input", *inputs,
                          "--output", str(out), "--set", BLOCKLIST, "--progress", "off"],
                         env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "c4_punctuation" in run.stdout                               # in the funnel
    stats = json.loads((out / "filtered" / ".refinedweb" / "stats.json").read_text())
    stages = stats["stages"]
    assert list(stages) == ["read", "url_filter", "pre_langid", "extract", "langid", "repetition", "quality",
                            "c4_punctuation", "line_filter", "tokens"]                    # accounted, in order
    assert stages["c4_punctuation"]["docs_in"] == stages["quality"]["kept"]
    assert stages["line_filter"]["docs_in"] == stages["c4_punctuation"]["kept"]
    assert stages["c4_punctuation"]["dropped"].get("few_terminal_lines", 0) > 0
    assert stats["totals"]["reconciled"]
    table = ds.dataset(str(out / "filtered"), format="parquet").to_table()                   # written
    fractions = table.column("terminal_punct_fraction").to_pylist()
    assert table.num_rows == stats["totals"]["kept"] > 0 and all(f >= 0.5 for f in fractions)
    run_record = json.loads((out / "filtered" / ".refinedweb" / "run.json").read_text())      # fingerprinted
    assert run_record["settings"]["c4_punctuation.min_fraction"] == 0.5
    changed = subprocess.run([*CLI, "run", "--stage", "filter", "--config", config, "--input", *inputs, "--output",
                              str(out), "--set", BLOCKLIST, "--set", "c4_punctuation.min_fraction=0.6"],
                             env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert changed.returncode == 2 and "c4_punctuation.min_fraction: 0.5 -> 0.6" in changed.stderr
    report = subprocess.run([*CLI, "report", str(out)], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert report.returncode == 0, report.stderr                                              # reported
    assert "C4 terminal punctuation" in (out / "report.html").read_text()


def filtered_rows(tmp_path, name: str, *overrides: str) -> tuple[list, list, dict]:
    cfg = load_config(user_config(tmp_path), [BLOCKLIST, "output.write_dropped=true", *overrides])
    out = tmp_path / name
    result = filter_file(str(SAMPLES / "dolma_sample-0000.warc.gz"), cfg, str(out), Pipeline.build(cfg))
    read = [pq.read_table(p).to_pylist() for p in sorted((out / "filtered").glob("*.parquet"))]
    dropped = [pq.read_table(p).to_pylist() for p in sorted((out / "dropped").glob("*.parquet"))]
    return read, dropped, {k: {**v, "seconds": 0} for k, v in result["stages"].items()}


def test_chunking_and_the_batch_entry_point_never_change_results(tmp_path):
    reference = filtered_rows(tmp_path, "one", "filter.chunk_documents=1")
    assert reference[0] and reference[1]
    for name, overrides in (("seven", ["filter.chunk_documents=7"]), ("default", []),
                            ("batch", ["c4_punctuation.batch=true", "filter.chunk_documents=5"])):
        assert filtered_rows(tmp_path, name, *overrides) == reference, name


def test_a_batch_stage_gets_batches_of_its_size_across_chunks(tmp_path):
    """A model stage asks for batches of 6: it gets 6 documents a call, gathered across chunks of 5 records
    (a chunk leaves ~1 survivor at that point of the chain), the last batch partial; output, drops, order and
    accounting as one document at a time."""
    import tests.toy_c4_stage as toy

    reference = filtered_rows(tmp_path, "one", "filter.chunk_documents=1")
    toy.BATCHES.clear()
    got = filtered_rows(tmp_path, "sized", "c4_punctuation.batch=true", "c4_punctuation.batch_size=6",
                        "filter.chunk_documents=5")
    assert got == reference
    seen = reference[2]["c4_punctuation"]["docs_in"]
    assert sum(toy.BATCHES) == seen > 12 and toy.BATCHES[:-1] == [6] * (len(toy.BATCHES) - 1)
    assert 0 < toy.BATCHES[-1] <= 6


def test_stage_names_and_sections_are_checked_in_one_line(tmp_path):
    from refinedweb.errors import UserError

    with pytest.raises(UserError, match="no stage 'qualty'"):
        load_config(overrides=["filter.stages=[url_filter, qualty]"])
    with pytest.raises(UserError, match="unknown config key 'c4_punctuation'"):
        load_config(overrides=["c4_punctuation.min_fraction=0.5"])     # a section for a stage not configured
    with pytest.raises(UserError, match="is not a stage"):
        load_config(overrides=["filter.stages=[os.path]"])
    with pytest.raises(UserError, match="filter.stages: module 'mypkg.not_installed' cannot be imported here; put its "
                                        "folder on PYTHONPATH"):
        load_config(overrides=["filter.stages=[url_filter, mypkg.not_installed]"])
    with pytest.raises(UserError, match="two stages are named 'c4_punctuation'"):
        load_config(user_config(tmp_path), ["filter.stages=[tests.toy_c4_stage, tests.toy_c4_copy]"])
    with pytest.raises(UserError, match="line_filter edits the text after tokens counted it"):
        load_config(overrides=["filter.stages=[extract, tokens, line_filter]"])


def test_a_stage_reading_an_undeclared_section_or_editing_text_after_tokens_is_caught(tmp_path, monkeypatch):
    """The resume fingerprint covers a stage's own section and its READS: reading another one is refused when
    the stage is built. A stage after tokens that changes the text (without saying so) is an error of its own:
    token_count would be stale."""
    from refinedweb.errors import UserError
    from refinedweb.stages import pre_langid

    monkeypatch.setattr(pre_langid, "READS", ("langid",))         # forgets "extract"
    with pytest.raises(UserError, match="stage pre_langid reads config section 'extract' without declaring it"):
        Pipeline.build(load_config(overrides=[BLOCKLIST]))
    monkeypatch.undo()
    import tests.toy_c4_stage as toy

    def editing(section, shared):
        def apply(doc):
            doc.text = doc.text.upper()
        from refinedweb.stages.contract import Stage
        return Stage(toy.NAME, apply=apply)

    monkeypatch.setattr(toy, "build", editing)
    cfg = load_config(user_config(tmp_path), [BLOCKLIST, "filter.stages=[url_filter, pre_langid, extract, langid, "
                                                          "tokens, tests.toy_c4_stage]", "filter.max_error_fraction=1"])
    result = filter_file(str(SAMPLES / "dolma_sample-0000.warc.gz"), cfg, str(tmp_path / "edit"), Pipeline.build(cfg))
    assert result["kept"] == 0 and result["stages"]["c4_punctuation"]["errors"] == \
        {"RuntimeError": result["stages"]["tokens"]["kept"]}



def test_a_stage_whose_code_changed_is_not_resumed(tmp_path):
    """A user's stage without VERSION is fingerprinted by its source: fix a bug in it, re-run, and the finished
    files are not silently skipped: the run is refused naming the stage (packaged stages carry a VERSION)."""
    module = tmp_path / "mystages" / "len_stage.py"
    module.parent.mkdir()
    (module.parent / "__init__.py").write_text("")
    source = ('from refinedweb.stages.contract import Stage\nNAME = "min_chars"\n\n'
              'def build(section, shared):\n    return Stage(NAME, apply=lambda doc: "short" if len(doc.text) < LIMIT '
              'else None)\n\nLIMIT = 100\n')
    module.write_text(source)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"filter": {"stages": ["url_filter", "extract", "mystages.len_stage", "tokens"]},
                                      "min_chars": {}}))
    command = [*CLI, "run", "--stage", "filter", "--workers", "1", "--config", str(config), "--input",
               str(SAMPLES / "aut_example.warc.gz"), "--output", str(tmp_path / "out"), "--set", BLOCKLIST]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{REPO}"}
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert first.returncode == 0, first.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "filtered" / ".refinedweb" / "run.json").read_text())
    assert record["settings"]["versions.min_chars"].startswith("sha256:")
    assert record["settings"]["versions.extract"] == "1"
    module.write_text(source.replace("LIMIT = 100", "LIMIT = 200"))          # the bug fixed
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert second.returncode == 2 and "versions.min_chars: " in second.stderr and "--overwrite" in second.stderr
