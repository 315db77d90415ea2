"""A user's dedup method in one module and one YAML section (tests/toy_dedup_method.py, exact-document dedup):
run in `dedup.methods` order, each method seeing exactly what the earlier ones left, the same whatever the
split, fingerprinted, refused in one line when it is not a method."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from refinedweb.config import load_config
from refinedweb.errors import UserError
from refinedweb.runtime.dedup_job import run_dedup_stage

from .conftest import REPO
from .serial import SerialRuntime

TOY = "tests.toy_dedup_method"


def words(i: int, n: int = 120) -> str:
    return " ".join(f"w{(i * 7919 + j * 104729) % 1000003}" for j in range(n))


def corpus(folder) -> list[dict]:
    """A (url u1, text T), B (url u1, text X), C (url u2, text x re-cased and re-spaced), then 40 distinct
    documents, 8 of which come back later as exact copies up to case and whitespace."""
    rows = [{"id": "A", "url": "https://e.org/u1", "text": "T " + words(1)},
            {"id": "B", "url": "https://e.org/u1", "text": "X " + words(2)},
            {"id": "C", "url": "https://e.org/u2", "text": "  x " + words(2).upper() + "\n"}]
    rows += [{"id": f"d{i}", "url": f"https://e.org/d{i}", "text": f"doc {i} " + words(10 + i)} for i in range(40)]
    rows += [{"id": f"copy{i}", "url": f"https://copy.org/{i}", "text": f"DOC {i}   " + words(10 + i).upper()}
             for i in range(0, 40, 5)]
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(3):
        pq.write_table(pa.Table.from_pylist(rows[k::3]), folder / f"in-{k}.parquet")
    return rows


def config(tmp_path, methods, normalize=True, *overrides):
    path = tmp_path / "methods.yaml"
    path.write_text(yaml.safe_dump({"dedup": {"methods": methods}, "exact_document": {"normalize": normalize}}))
    return load_config(str(path), list(overrides))


def dedup(tmp_path, name, cfg, folder):
    summary = run_dedup_stage([str(folder)], str(tmp_path / name), cfg, runtime=SerialRuntime(), log=lambda m: None)
    table = ds.dataset(str(tmp_path / name / "dedup"), format="parquet").to_table()
    return sorted(table.column("id").to_pylist()), summary


def test_a_method_in_one_module_and_one_section(tmp_path):
    folder = tmp_path / "in"
    rows = corpus(folder)
    everything = sorted(r["id"] for r in rows)
    # the file order interleaves rows: "earliest" is the position in the whole input (file, then row)
    got, summary = dedup(tmp_path, "toy", config(tmp_path, [TOY]), folder)
    assert summary["methods"]["exact_document"]["removed"] == 9 == len(everything) - len(got)
    assert "C" not in got and "B" in got
    assert all(len({f"d{i}", f"copy{i}"} & set(got)) == 1 for i in range(0, 40, 5))   # one copy of each
    split, _ = dedup(tmp_path, "split", config(tmp_path, [TOY], True, "dedup.parts=4", "dedup.task_memory_mb=0.0001"),
                     folder)
    assert split == got
    plain, _ = dedup(tmp_path, "plain", config(tmp_path, [TOY], False), folder)
    assert plain == everything                                   # without normalising, case makes them differ

    # each method sees exactly what the earlier ones left
    url_first, s1 = dedup(tmp_path, "url-first", config(tmp_path, ["url", TOY]), folder)
    toy_first, s2 = dedup(tmp_path, "toy-first", config(tmp_path, [TOY, "url"]), folder)
    assert {"A", "C"} <= set(url_first) and "B" not in url_first     # url drops B, then C's text is unique
    assert "A" in toy_first and not {"B", "C"} & set(toy_first)      # the toy drops C, then url drops B
    assert s1["methods"]["exact_document"]["docs_in"] == s1["methods"]["url"]["docs_out"]
    assert s2["methods"]["url"]["docs_in"] == s2["methods"]["exact_document"]["docs_out"]
    assert list(s2["methods"]) == ["exact_document", "url"]

    # its section is fingerprinted: another setting is refused, as for any method
    record = json.loads((tmp_path / "toy" / "dedup" / ".refinedweb" / "run.json").read_text())
    assert record["settings"]["exact_document.normalize"] is True
    with pytest.raises(UserError, match="exact_document.normalize: true -> false"):
        run_dedup_stage([str(folder)], str(tmp_path / "toy"), config(tmp_path, [TOY], False), runtime=SerialRuntime(),
                        log=lambda m: None)


def test_the_method_through_the_cli(tmp_path):
    folder = tmp_path / "in"
    corpus(folder)
    path = tmp_path / "methods.yaml"
    path.write_text(yaml.safe_dump({"dedup": {"methods": [TOY, "url"]}, "exact_document": {"normalize": True}}))
    result = subprocess.run([sys.executable, "-m", "refinedweb", "run", "--stage", "dedup", "--workers", "2",
                             "--config", str(path), "--input", str(folder), "--output", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=600, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[0].split()[:2] == ["dedup", "method"]
    assert "exact_document" in result.stdout
    kept = ds.dataset(str(tmp_path / "out" / "dedup"), format="parquet").to_table().column("id").to_pylist()
    assert "A" in kept and not {"B", "C"} & set(kept)


@pytest.mark.parametrize("methods,message", [
    (["nosuch.module"], "dedup.methods: no module 'nosuch.module' can be imported here"),
    (["json.decoder"], "dedup.methods: module json.decoder is not a dedup method (no NAME, run, decision)"),
    (["bogus"], "unknown dedup method 'bogus': dedup.methods takes minhash, exact_substring, url or the dotted path"),
    (["url", "url"], "dedup.methods lists a method twice"),
])
def test_what_is_not_a_method_is_refused_in_one_line(tmp_path, methods, message):
    folder = tmp_path / "in"
    corpus(folder)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg = load_config(overrides=[f"dedup.methods={json.dumps(methods)}"])
        run_dedup_stage([str(folder)], str(tmp_path / "out"), cfg, runtime=SerialRuntime(), log=lambda m: None)


def test_the_old_key_names_the_new_one():
    with pytest.raises(UserError, match="config key 'dedup.stages' is called 'dedup.methods' now"):
        load_config(overrides=["dedup.stages=[url]"])
