"""Decontamination: our own benchmark items planted into real documents (the shared WARCs' kept documents) —
verbatim, re-cased, re-punctuated, split across lines, with words changed at both ends — are all found and
removed under both policies while every other document is left as it was; short items match whole; n-grams in
more than max_matches documents are ignored; user mistakes are one line; the CLI command of the docs works
and resumes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from refinedweb.config import load_config
from refinedweb.decontamination import ngrams
from refinedweb.decontamination.benchmarks import read_items
from refinedweb.errors import UserError
from refinedweb.runtime.filter_job import run_document_stages, run_filter_stage

from .conftest import REPO, SAMPLES, shared
from .serial import SerialRuntime

FIXTURES = REPO / "tests" / "fixtures" / "decontamination"
QUIZ = f"{{name: quiz, path: {FIXTURES / 'quiz.jsonl'}, fields: [question, answer]}}"
SHORT = f"{{name: short, path: {FIXTURES / 'short.jsonl'}}}"
BLOCKLIST = "url_filter.blocklist=[package:demo_blocklist.txt]"
WARCS = ("cc2008_arc2warc_1213893279526_0.warc.gz", "aut_example.warc.gz")


def questions() -> list[str]:
    return [json.loads(line)["question"] for line in (FIXTURES / "quiz.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """The kept documents of the shared WARCs (and the bundled samples), as the filter stage writes them."""
    warcs = [str(shared("warc", name)) for name in WARCS] + [str(SAMPLES / f"dolma_sample-000{i}.warc.gz") for i in (0, 1)]
    root = tmp_path_factory.mktemp("kept")
    cfg = load_config(overrides=[BLOCKLIST])
    summary = run_filter_stage(warcs, str(root), cfg, runtime=SerialRuntime(), log=lambda line: None)
    assert summary["totals"]["files_failed"] == 0
    rows = ds.dataset(str(root / "filtered"), format="parquet").to_table().to_pylist()
    assert len(rows) > 100
    return rows


# -- the variants a copy of an item takes on a web page ----------------------------------------------------------
def recased(text: str, rng) -> str:
    return text.upper() if rng.random() < 0.5 else text.title()


def repunctuated(text: str, rng) -> str:
    words = text.replace(",", "").replace("?", "").split()
    marks = [" ", ", ", " - ", " — ", "; ", ": ", " … ", " / "]
    return "“" + "".join(w + rng.choice(marks) for w in words[:-1]) + words[-1] + "!”"


def split_lines(text: str, rng) -> str:
    words = text.split()
    return "".join(w + rng.choice([" ", "\n", "\n\n   ", "\t"]) for w in words[:-1]) + words[-1]


def ends_changed(text: str, rng) -> str:
    words = text.split()
    return " ".join(["Honestly", "though,"] + words[2:-2] + ["or", "so", "they", "say."])


VARIANTS = {"verbatim": lambda t, rng: t, "recased": recased, "repunctuated": repunctuated,
            "split_lines": split_lines, "ends_changed": ends_changed}


def plant(rows: list[dict], seed: int) -> tuple[list[dict], dict[str, list[tuple[str, str]]]]:
    """Every question in every variant (100 copies), two per long real document, at word boundaries a third and
    two thirds of the way in."""
    rng = random.Random(seed)
    pairs = [(q, v) for q in questions() for v in VARIANTS]
    rng.shuffle(pairs)
    long = [i for i, r in enumerate(rows) if len(r["text"]) > 1200]
    chosen = rng.sample(long, len(pairs) // 2)
    out = [dict(r) for r in rows]
    planted: dict[str, list[tuple[str, str]]] = {}
    for k, i in enumerate(chosen):
        text = out[i]["text"]
        for question, variant in (pairs[2 * k + 1], pairs[2 * k]):      # the later one first: offsets stay true
            third = len(text) // 3 * (2 if (question, variant) == pairs[2 * k + 1] else 1)
            cut = text.find(" ", third)
            text = text[:cut] + " " + VARIANTS[variant](question, rng) + " " + text[cut:]
        out[i]["text"] = text
        planted[out[i]["id"]] = [pairs[2 * k], pairs[2 * k + 1]]
    return out, planted


def ngram_set(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def run(rows: list[dict], tmp_path, *overrides, name="in") -> tuple[dict, list[dict], list[dict], dict]:
    (tmp_path / name).mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / name / "part.parquet")
    cfg = load_config(overrides=["output.write_dropped=true", *overrides])
    out = tmp_path / f"out-{name}"
    summary = run_document_stages(["decontaminate"], [str(tmp_path / name)], str(out), cfg, runtime=SerialRuntime(),
                                  log=lambda line: None)
    kept_rows = ds.dataset(str(out / "decontaminate"), format="parquet").to_table().to_pylist()
    dropped = ds.dataset(str(out / "dropped"), format="parquet").to_table().to_pylist() \
        if (out / "dropped").exists() else []
    found = json.loads((out / "decontaminate" / ".refinedweb" / "decontamination.json").read_text())
    return summary, kept_rows, dropped, found


def rows_of(kept_docs: list[dict]) -> list[dict]:
    return [{"id": r["id"], "url": r["url"], "text": r["text"], "token_count": r["token_count"]} for r in kept_docs]


@pytest.mark.parametrize("seed", [1, 2])
def test_gpt3_policy_removes_every_planted_item_and_nothing_else(kept, tmp_path, seed):
    rows, planted = plant(rows_of(kept), seed)
    summary, out, dropped, found = run(rows, tmp_path, f"decontamination.benchmarks=[{QUIZ}]")
    by_id = {r["id"]: r for r in out}
    gone = {r["id"]: r for r in dropped}
    assert len(by_id) + len(gone) == len(rows)
    original = {r["id"]: r for r in rows_of(kept)}
    for row in rows:
        if row["id"] not in planted:                   # clean real text loses nothing
            assert by_id[row["id"]]["text"] == row["text"] and by_id[row["id"]]["contamination"] is None
            continue
        if row["id"] in gone:                          # left too short or too split: the whole document goes
            assert gone[row["id"]]["reason"] in ("contaminated", "too_many_pieces")
            assert gone[row["id"]]["detail"].startswith("quiz: ")
            continue
        left = by_id[row["id"]]
        assert left["contamination"] == ["quiz"]
        for question, variant in planted[row["id"]]:
            assert not ngram_set(ngrams.normalize(left["text"]), 13) & ngram_set(ngrams.normalize(question), 13), variant
        # the windows: 200 characters (and the rest of a word) each side of a match, pieces under 200 dropped
        removed = len(original[row["id"]]["text"]) - len(left["text"])
        assert removed < sum(len(q) + 2 * 200 + 200 for q, _ in planted[row["id"]]) + 2 * 200
    assert len(planted) == 50 and sum(1 for i in planted if i in by_id) >= 40
    counts = summary["stages"]["decontaminate"]["counts"]
    assert counts["quiz:documents"] == 50 and counts.get("quiz:dropped", 0) == sum(1 for i in planted if i in gone)
    bench = found["benchmarks"]["quiz"]
    assert bench["items_with_overlap"] == 20 and bench["documents"] == 50 and bench["items"] == 20
    assert bench["chars_removed"] > 100 * 400
    # token_count follows the cut text (tokens ran after the stage)
    assert all(by_id[i]["token_count"] < original[i]["token_count"] for i in planted if i in by_id)


def test_drop_document_policy_drops_exactly_the_planted_documents(kept, tmp_path):
    rows, planted = plant(rows_of(kept), 3)
    summary, out, dropped, _ = run(rows, tmp_path, f"decontamination.benchmarks=[{QUIZ}]",
                                   "decontamination.policy=drop_document")
    assert {r["id"] for r in dropped} == set(planted)
    for r in dropped:
        assert r["reason"] == "contaminated" and r["detail"].startswith("quiz: ")
        ngram = tuple(r["detail"].removeprefix("quiz: ").split())
        assert len(ngram) == 13 and any(ngram in ngram_set(ngrams.normalize(q), 13) for q, _ in planted[r["id"]])
    assert all(r["text"] == next(x for x in rows if x["id"] == r["id"])["text"] for r in out)
    assert summary["stages"]["decontaminate"]["dropped"] == {"contaminated": 50}


def test_short_items_match_whole_and_tiny_ones_are_skipped(tmp_path):
    filler = "A plain paragraph about nothing in particular, written to be long enough to keep. " * 8
    rows = [{"id": "whole", "text": filler + "name the three MOONS that circle the planet Orvane, said the guide. " + filler},
            {"id": "partial", "text": filler + "Name the three moons that circle the planet Varka. " + filler},
            {"id": "tiny", "text": filler + "Who painted the blue gate? " + filler}]
    summary, out, dropped, found = run(rows, tmp_path, f"decontamination.benchmarks=[{SHORT}]")
    by_id = {r["id"]: r for r in out}
    assert "orvane" not in by_id["whole"]["text"].lower() and by_id["whole"]["contamination"] == ["short"]
    assert by_id["partial"]["text"] == rows[1]["text"] and by_id["tiny"]["text"] == rows[2]["text"]
    assert found["benchmarks"]["short"]["items_too_short"] == 1
    assert found["benchmarks"]["short"]["top_ngrams"][0]["ngram"] == "name the three moons that circle the planet orvane"


def test_ngrams_in_more_than_max_matches_documents_are_ignored(tmp_path):
    qs = questions()
    filler = "Ordinary words about the weather and the garden fill this page for a while. " * 6
    rows = [{"id": f"common{i}", "text": filler + qs[0] + " " + filler} for i in range(12)]
    rows += [{"id": f"rare{i}", "text": filler + qs[1] + " " + filler} for i in range(2)]
    _, out, _, found = run(rows, tmp_path, f"decontamination.benchmarks=[{QUIZ}]", "decontamination.max_matches=10")
    by_id = {r["id"]: r for r in out}
    assert all(by_id[f"common{i}"]["text"] == rows[i]["text"] for i in range(12))
    assert all(by_id[f"rare{i}"]["contamination"] == ["quiz"] for i in range(2))
    ignored = found["ignored"]
    assert ignored["ngrams"] == len(ngrams.normalize(qs[0] + " " + "x")) - 13      # every 13-gram of the question
    assert ignored["top"][0]["documents"] == 12 and " ".join(ignored["top"][0]["ngram"].split()[:1]) in qs[0].lower()
    _, out, _, _ = run(rows, tmp_path, f"decontamination.benchmarks=[{QUIZ}]", "decontamination.max_matches=null",
                       name="all")
    assert all(r["contamination"] == ["quiz"] for r in out)


def test_the_filter_chain_with_max_matches_null(tmp_path):
    """At the end of the filter chain (before tokens) on a WARC: a sentence of a real page is found."""
    bench = tmp_path / "page.jsonl"
    cfg = load_config(overrides=[BLOCKLIST])
    probe = tmp_path / "probe"
    run_filter_stage([str(SAMPLES / "dolma_sample-0000.warc.gz")], str(probe), cfg, runtime=SerialRuntime(),
                     log=lambda line: None)
    page = max(ds.dataset(str(probe / "filtered"), format="parquet").to_table().to_pylist(), key=lambda r: len(r["text"]))
    words = page["text"].split()
    bench.write_text(json.dumps({"text": " ".join(words[len(words) // 2:len(words) // 2 + 20])}) + "\n")
    stages = [*cfg["filter"]["stages"][:-1], "decontaminate", "tokens"]
    overrides = [BLOCKLIST, f"filter.stages=[{', '.join(stages)}]", f"decontamination.benchmarks=[{{name: page, path: {bench}}}]"]
    with pytest.raises(UserError, match="max_matches"):
        run_filter_stage([str(SAMPLES / "dolma_sample-0000.warc.gz")], str(tmp_path / "x"),
                         load_config(overrides=overrides), runtime=SerialRuntime(), log=lambda line: None)
    summary = run_filter_stage([str(SAMPLES / "dolma_sample-0000.warc.gz")], str(tmp_path / "out"),
                               load_config(overrides=[*overrides, "decontamination.max_matches=null"]),
                               runtime=SerialRuntime(), log=lambda line: None)
    assert summary["stages"]["decontaminate"]["counts"]["page:documents"] >= 1
    assert (tmp_path / "out" / "filtered" / ".refinedweb" / "decontamination.json").exists()


def test_benchmark_file_mistakes_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(UserError, match=r"benchmark .*bad.jsonl: item 1 has no field 'answer'"):
        read_items(str(bad), ["question", "answer"], str(bad))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(UserError, match="holds no items"):
        read_items(str(empty), ["text"], str(empty))
    table = tmp_path / "items.parquet"
    pq.write_table(pa.table({"text": ["one two", None], "x": [1, 2]}), table)
    assert read_items(str(table), ["text"], str(table)) == ["one two", ""]
    sheet = tmp_path / "items.csv"
    sheet.write_text("question,answer\nWhat is it,A thing\n")
    assert read_items(str(sheet), ["question", "answer"], str(sheet)) == ["What is it\nA thing"]
    with pytest.raises(UserError, match="benchmarks is empty"):
        run_document_stages(["decontaminate"], [str(tmp_path)], str(tmp_path / "o"), load_config(),
                            runtime=SerialRuntime(), log=lambda line: None)


def test_the_compiled_tokenizer_is_the_reference():
    rng = random.Random(5)
    alphabet = "aAbBéÉßİ ,.;'’-\n\t1ΣσДд中文" + "\u0130\u212a"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(3000)]
    classes, lower = ngrams.tables()
    cps, offsets = ngrams.code_points(texts)
    for i, text in enumerate(texts):
        hashes, starts, ends = (np.empty(len(text) + 2, t) for t in (np.uint64, np.int64, np.int64))
        count = ngrams._words(cps, offsets[i], offsets[i + 1], classes, lower, hashes, starts, ends)
        spans = ["".join(ngrams.normalize(text[s:e])) for s, e in zip(starts[:count], ends[:count])]
        assert spans == ngrams.normalize(text)


def test_the_cli_command_of_the_docs_and_a_missing_field(tmp_path):
    """The command as the docs give it (its resume is the crash test's), the report's section, and a benchmark
    without the named field: one line naming the file, the item and the field."""
    from refinedweb.report import render

    filler = "Plain sentences about rivers, bread and bicycles make up this ordinary page of text. " * 5
    qs = questions()
    rows = [{"id": f"d{i}", "url": f"https://example.org/{i}", "text": filler + (qs[i] if i < 5 else "") + filler}
            for i in range(20)]
    (tmp_path / "dedup").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "dedup" / "part.parquet")
    command = [sys.executable, "-m", "refinedweb", "run", "--stage", "decontaminate", "--input", str(tmp_path / "dedup"),
               "--output", str(tmp_path / "out2"), "--set", f"decontamination.benchmarks=[{QUIZ}]", "--workers", "1",
               "--progress", "plain"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    out = ds.dataset(str(tmp_path / "out2" / "decontaminate"), format="parquet").to_table().to_pylist()
    assert sorted(r["id"] for r in out if r["contamination"]) == [f"d{i}" for i in range(5)]
    render(str(tmp_path / "out2"))
    page = (tmp_path / "out2" / "report.html").read_text()
    assert "Decontamination" in page and "items with overlap" in page
    bad = [*command[:-7], str(tmp_path / "out3"), "--set", f"decontamination.benchmarks=[{QUIZ.replace('answer', 'solution')}]"]
    missing = subprocess.run(bad, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and "quiz.jsonl" in missing.stderr and "'solution'" in missing.stderr


class CrashAfterFirstFile(SerialRuntime):
    """A run killed after its first input file was written (its marker in place)."""

    def map_files(self, uris, cfg, output, blocklist, on_result, per_host=None, kind="filter", folder=None):
        super().map_files(uris[:1], cfg, output, blocklist, on_result, per_host, kind, folder)
        raise KeyboardInterrupt


def test_a_crashed_run_resumes_to_one_clean_runs_output(tmp_path):
    from refinedweb.stages import decontaminate

    qs = questions()
    filler = "Ordinary words about the weather and the garden fill this page for a while. " * 6
    (tmp_path / "in").mkdir()
    for part in range(3):
        rows = [{"id": f"p{part}-{i}", "text": filler + (qs[(part * 7 + i) % 20] if i % 3 == 0 else "") + filler}
                for i in range(30)]
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / f"part-{part}.parquet")
    cfg = load_config(overrides=[f"decontamination.benchmarks=[{QUIZ}]", "output.write_dropped=true"])

    def output(root) -> list[dict]:
        return sorted(ds.dataset(str(root / "decontaminate"), format="parquet").to_table().to_pylist(),
                      key=lambda r: r["id"])

    clean = run_document_stages(["decontaminate"], [str(tmp_path / "in")], str(tmp_path / "clean"), cfg,
                                runtime=SerialRuntime(), log=lambda line: None)
    with pytest.raises(KeyboardInterrupt):
        run_document_stages(["decontaminate"], [str(tmp_path / "in")], str(tmp_path / "crashed"), cfg,
                            runtime=CrashAfterFirstFile(), log=lambda line: None)
    decontaminate._INDEXES.clear()                      # a new process: the index is mapped from the run's file
    lines: list[str] = []
    resumed = run_document_stages(["decontaminate"], [str(tmp_path / "in")], str(tmp_path / "crashed"), cfg,
                                  runtime=SerialRuntime(), log=lines.append)
    assert any("resuming: 1 file(s) already done" in line for line in lines)
    assert not any("counting" in line for line in lines)          # the stored plan, not a second count
    assert output(tmp_path / "crashed") == output(tmp_path / "clean")
    assert resumed["stages"]["decontaminate"]["counts"] == clean["stages"]["decontaminate"]["counts"]
    assert json.loads((tmp_path / "crashed" / "decontaminate" / ".refinedweb" / "decontamination.json").read_text()) \
        == json.loads((tmp_path / "clean" / "decontaminate" / ".refinedweb" / "decontamination.json").read_text())
