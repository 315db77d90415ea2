"""`refinedweb tokenize`: token ids equal to the tokenizer's own encoding, files byte for byte as Megatron-LM's and
datatrove's own writers make them (fixtures written by those writers, benchmarks/tokenized_fixtures.py), every
document exactly once in a seeded order, the same after a crash, bad input counted, JSONL read as it comes."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refinedweb.config import load_config
from refinedweb.errors import UserError
from refinedweb.runtime.tokenize_job import run_tokenize
from refinedweb.stages.tokens import get_encoding
from refinedweb.tokenize import formats
from refinedweb.tokenize.tokenizer import load_tokenizer

from .conftest import REPO, shared
from .serial import SerialRuntime
from .tokenized_docs import CASES, fixture_docs
from .tokenizer_files import gpt2_tokenizer_json

FIXTURES = Path(__file__).parent / "fixtures" / "tokenized"
TRICKY = ["plain English text.", "emoji 😀👍🏽 and ZWJ 👨‍👩‍👧", "a lone surrogate \ud800 here", "中文和日本語のテキスト",
          "quoted <|endoftext|> in a page", "tabs\tand\r\nnewlines\n\n\n", "", " ", "x" * 5000]


@pytest.fixture(scope="module")
def real_texts() -> list[str]:
    truth = json.loads(shared("extraction", "scrapinghub_aeb", "ground-truth.json").read_text())
    with gzip.open(shared("langid", "lingua_testdata", "sentences_all.jsonl.gz"), "rt") as fh:
        sentences = [json.loads(line)["text"] for line in fh][::50]
    return [v["articleBody"] for v in truth.values()][:60] + sentences + TRICKY


def test_gpt2_ids_are_tiktokens_own_plus_eos(real_texts):
    reference = get_encoding("gpt2")
    tok = load_tokenizer("gpt2")
    assert tok.eos_id == 50256 and tok.bos_id is None and tok.vocab_size == 50257
    for text, ids in zip(real_texts, tok.encode(real_texts)):
        fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        assert ids.tolist() == reference.encode_ordinary(fixed) + [50256]


def test_a_tokenizer_json_gives_hf_tokenizers_own_ids(real_texts, tmp_path):
    from tokenizers import Tokenizer

    path = gpt2_tokenizer_json(tmp_path / "gpt2" / "tokenizer.json")
    hf = Tokenizer.from_file(str(path))
    hf.encode_special_tokens = True
    tok = load_tokenizer(str(path.parent), eos="auto", bos="<|endoftext|>")
    reference = get_encoding("gpt2")
    for text, ids in zip(real_texts, tok.encode(real_texts)):
        fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        own = hf.encode(fixed, add_special_tokens=False).ids
        assert ids.tolist() == [50256] + own + [50256]
        assert own == reference.encode_ordinary(fixed)            # the same BPE as the built-in gpt2
    assert tok.decode(tok.encode(["héllo wörld"])[0][1:-1]) == "héllo wörld"


def test_tokenizers_that_cannot_be_used_are_one_line(tmp_path):
    with pytest.raises(UserError, match="nothing is downloaded: save the tokenizer's tokenizer.json"):
        load_tokenizer("tiiuae/falcon-7b")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(UserError, match="is not a tokenizer.json that HF tokenizers can read"):
        load_tokenizer(str(tmp_path / "broken.json"))
    with pytest.raises(UserError, match="not a token of"):
        load_tokenizer(str(gpt2_tokenizer_json(tmp_path / "g" / "tokenizer.json")), eos="</s>")


@pytest.mark.parametrize("case", list(CASES))
def test_megatron_files_are_byte_for_byte_megatrons_own(case):
    docs = fixture_docs(case)
    dtype = formats.token_dtype("megatron", CASES[case])
    assert dtype == (np.uint16 if case == "small" else np.int32)
    assert np.concatenate(docs).astype(dtype).tobytes() == (FIXTURES / f"megatron-{case}.bin").read_bytes()
    lengths = np.array([len(d) for d in docs])
    assert formats.megatron_index(lengths, dtype) == (FIXTURES / f"megatron-{case}.idx").read_bytes()
    tokens, got = formats.read_megatron((FIXTURES / f"megatron-{case}.bin").read_bytes(),
                                        (FIXTURES / f"megatron-{case}.idx").read_bytes())
    assert got.tolist() == lengths.tolist() and tokens.tolist() == np.concatenate(docs).tolist()


@pytest.mark.parametrize("case", list(CASES))
def test_nanotron_files_are_byte_for_byte_datatroves_own(case):
    docs = fixture_docs(case)
    dtype = formats.token_dtype("nanotron", CASES[case])
    lengths = np.array([len(d) for d in docs])
    assert np.concatenate(docs).astype(dtype).tobytes() == (FIXTURES / f"datatrove-{case}.ds").read_bytes()
    assert formats.datatrove_index(lengths) == (FIXTURES / f"datatrove-{case}.ds.index").read_bytes()
    assert formats.datatrove_metadata("gpt2", dtype.itemsize, int(lengths.sum())) == \
        (FIXTURES / f"datatrove-{case}.ds.metadata").read_text()


# ------------------------------------------------------------------------------------------- end to end

def corpus(folder: Path, texts: list[str], files: int = 3) -> list[dict]:
    texts = [t for t in texts if "\ud800" not in t]          # Parquet holds valid UTF-8 only
    rows = [{"id": f"d{i}", "text": t if i % 23 else None, "corpus": ["web", "books"][i % 2]}
            for i, t in enumerate(texts)]
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-len(rows) // files)
    for k in range(files):
        pq.write_table(pa.Table.from_pylist(rows[k * step:(k + 1) * step]), folder / f"part-{k}.parquet")
    return rows


def read_output(out: Path, fmt: str) -> list[list[int]]:
    manifest = json.loads((out / "tokenized" / ".refinedweb" / "manifest.json").read_text())
    docs = []
    for shard in manifest["shards"]:
        prefix = out / "tokenized" / shard["path"]
        if fmt == "megatron":
            tokens, lengths = formats.read_megatron(Path(f"{prefix}.bin").read_bytes(), Path(f"{prefix}.idx").read_bytes())
        else:
            size = int(Path(f"{prefix}.ds.metadata").read_text().splitlines()[0].rsplit("|", 1)[1])
            tokens, lengths = formats.read_datatrove(Path(f"{prefix}.ds").read_bytes(),
                                                     Path(f"{prefix}.ds.index").read_bytes(), size)
        ends = np.cumsum(lengths)
        docs += [tokens[e - n:e].tolist() for e, n in zip(ends, lengths)]
    return docs


def tokenize(folder, out, *sets, overwrite=False):
    cfg = load_config(overrides=list(sets))
    return run_tokenize([str(folder)], str(out), cfg, runtime=SerialRuntime(), log=lambda m: None, overwrite=overwrite)


@pytest.mark.parametrize("fmt", ["megatron", "nanotron"])
def test_every_document_once_in_a_seeded_order(real_texts, tmp_path, fmt):
    rows = corpus(tmp_path / "in", real_texts)
    enc = get_encoding("gpt2")
    expected = [enc.encode_ordinary(r["text"].encode("utf-16", "surrogatepass").decode("utf-16", "replace")) + [50256]
                for r in rows if r["text"]]
    summary = tokenize(tmp_path / "in", tmp_path / "a", f"tokenize.format={fmt}", "tokenize.shard_max_tokens=20000")
    got = read_output(tmp_path / "a", fmt)
    assert sorted(map(tuple, got)) == sorted(map(tuple, expected))         # each exactly once
    assert got != expected                                                  # ...in another order
    totals = summary["totals"]
    assert totals["documents"] == len(expected) and totals["tokens"] == sum(map(len, expected))
    assert totals["no_text"] == sum(1 for r in rows if not r["text"]) and totals["shards"] > 2
    manifest = json.loads((tmp_path / "a" / "tokenized" / ".refinedweb" / "manifest.json").read_text())
    web = [e for r, e in zip([r for r in rows if r["text"]], expected) if r["corpus"] == "web"]
    assert manifest["corpora"]["web"] == {"rows": len(web), "tokens": sum(map(len, web))}
    biggest = max(map(len, expected))
    assert all(s["tokens"] <= 20000 + biggest for s in manifest["shards"])      # bounded: the max, and one document
    assert min(s["tokens"] for s in manifest["shards"]) > 2000                       # ...and no tiny tail
    again = tokenize(tmp_path / "in", tmp_path / "b", f"tokenize.format={fmt}", "tokenize.shard_max_tokens=20000")
    assert read_output(tmp_path / "b", fmt) == got and again["totals"] == {**totals, "wall_seconds": again["totals"]["wall_seconds"]}
    other = tokenize(tmp_path / "in", tmp_path / "c", f"tokenize.format={fmt}", "tokenize.shard_max_tokens=20000",
                     "tokenize.seed=1")
    assert read_output(tmp_path / "c", fmt) != got and other["totals"]["tokens"] == totals["tokens"]
    ordered = tokenize(tmp_path / "in", tmp_path / "d", f"tokenize.format={fmt}", "tokenize.shard_max_tokens=20000",
                       "tokenize.shuffle=false")
    assert read_output(tmp_path / "d", fmt) == expected                     # input order
    assert ordered["totals"]["shards"] == -(-totals["tokens"] // 20000)
    if fmt == "megatron":
        line = (tmp_path / "a" / "tokenized" / "data_path.txt").read_text().split()
        assert [int(w) for w in line[::2]] == [s["tokens"] for s in manifest["shards"]]


@pytest.mark.parametrize("point", ["scan", "write"])
def test_a_crash_then_the_same_command_gives_the_same_files(real_texts, tmp_path, monkeypatch, point):
    from refinedweb.runtime import tokenize_job

    corpus(tmp_path / "in", real_texts)
    sets = ("tokenize.shard_max_tokens=20000",)
    tokenize(tmp_path / "in", tmp_path / "clean", *sets)
    real = getattr(tokenize_job, f"{point}_file" if point == "scan" else "write_shard")
    calls = {"n": 0}

    def crash(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(tokenize_job, f"{point}_file" if point == "scan" else "write_shard", crash)
    with pytest.raises(KeyboardInterrupt):
        tokenize(tmp_path / "in", tmp_path / "out", *sets)
    monkeypatch.undo()
    summary = tokenize(tmp_path / "in", tmp_path / "out", *sets)
    assert summary["units_resumed"] >= 1
    clean = sorted(p.relative_to(tmp_path / "clean") for p in (tmp_path / "clean" / "tokenized").glob("shard-*"))
    assert clean == sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out" / "tokenized").glob("shard-*"))
    for path in clean:
        assert (tmp_path / "clean" / path).read_bytes() == (tmp_path / "out" / path).read_bytes()
    assert not (tmp_path / "out" / "_work").exists()


def test_jsonl_as_it_comes(tmp_path):
    """JSONL in three encodings, a field named otherwise, a line that is not JSON, a text that is a number, and a
    .gz cut short: every good document tokenized, each bad line reported with its file and line."""
    folder = tmp_path / "in"
    folder.mkdir()
    lines = [json.dumps({"content": t, "source": "x"}, ensure_ascii=False) for t in
             ["Grüße aus Köln", "Ça va très bien", "Привет, мир", "😀 emoji"]]
    (folder / "a.jsonl").write_text("\n".join([lines[0], "{oops not json", lines[1], json.dumps({"content": 7})]) + "\n")
    with gzip.open(folder / "b.jsonl.gz", "wt") as fh:
        fh.write("\n".join(lines[2:]) + "\n")
    many = [json.dumps({"content": f"line {i} " + " ".join(f"w{(i * 7919 + j * 31) % 100003}" for j in range(30))})
            for i in range(4000)]
    whole = gzip.compress(("\n".join(many) + "\n").encode())
    (folder / "c.jsonl.gz").write_bytes(whole[: len(whole) // 2])               # cut short
    (folder / "d.jsonl.zst").write_bytes(_zstd_frame(lines))
    summary = tokenize(folder, tmp_path / "out", "inputs.text_field=content", "tokenize.shuffle=false")
    totals = summary["totals"]
    assert totals["bad_lines"] == 2 and totals["truncated_inputs"] == 1
    assert summary["bad_lines"][0].endswith("a.jsonl:2: not JSON (Expecting property name enclosed in double quotes: "
                                            "line 1 column 2 (char 1))")
    assert summary["bad_lines"][1].endswith("a.jsonl:4: 'content' is a int, not a string")
    docs = read_output(tmp_path / "out", "megatron")
    enc = get_encoding("gpt2")
    assert docs[:4] == [enc.encode_ordinary(json.loads(line)["content"]) + [50256] for line in (lines[0], lines[1],
                                                                                               lines[2], lines[3])]
    assert 4 + 4 + 1000 < len(docs) < 4 + 4 + 4000                         # what decompressed before the cut


def _zstd_frame(lines: list[str]) -> bytes:
    stream = pa.BufferOutputStream()
    with pa.CompressedOutputStream(stream, "zstd") as out:
        out.write(("\n".join(lines) + "\n").encode())
    return stream.getvalue().to_pybytes()


def test_the_command_as_documented(tmp_path):
    rows = [{"id": str(i), "text": f"document {i}: " + "words " * (i % 50 + 1)} for i in range(200)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "docs.parquet")
    result = subprocess.run([sys.executable, "-m", "refinedweb", "tokenize", "--input", str(tmp_path / "docs.parquet"),
                             "--output", str(tmp_path / "out"), "--tokenizer", "gpt2", "--format", "nanotron",
                             "--workers", "2", "--seed", "3"], capture_output=True, text=True, timeout=600, cwd=REPO,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "200 documents" in result.stdout
    assert len(read_output(tmp_path / "out", "nanotron")) == 200
    bad = subprocess.run([sys.executable, "-m", "refinedweb", "tokenize", "--input", str(tmp_path / "docs.parquet"),
                          "--output", str(tmp_path / "o2"), "--tokenizer", "meta-llama/Llama-3-8B"],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nothing is downloaded" in bad.stderr


def test_a_vocabulary_past_uint16_writes_wider_ids(tmp_path):
    path = gpt2_tokenizer_json(tmp_path / "big" / "tokenizer.json", extra_tokens=20000)
    rows = [{"text": f"doc {i} <extra_{i}> and words"} for i in range(50)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    for fmt, dtype in (("megatron", "int32"), ("nanotron", "uint32")):
        summary = tokenize(tmp_path / "d.parquet", tmp_path / fmt, f"tokenize.tokenizer={path}", f"tokenize.format={fmt}",
                           "tokenize.shuffle=false")
        assert summary["token_dtype"] == dtype and summary["vocab_size"] == 70257
        docs = read_output(tmp_path / fmt, fmt)
        assert 50257 + 7 in docs[7] and docs[7][-1] == 50256                   # an added token's id; EOS last


def test_a_vocabulary_past_int32_is_refused(tmp_path, monkeypatch):
    from tokenizers import Tokenizer

    path = gpt2_tokenizer_json(tmp_path / "t" / "tokenizer.json")
    monkeypatch.setattr(Tokenizer, "get_vocab_size", lambda self, with_added_tokens=True: 2**31 + 5)
    with pytest.raises(UserError, match="more than int32 ids can hold"):
        load_tokenizer(str(path))


def test_a_50_mb_document_in_bounded_memory(tmp_path):
    """One text of 50 MB (real articles, repeated): tokenized whole, the worker's peak under 1.5 GB."""
    truth = json.loads(shared("extraction", "scrapinghub_aeb", "ground-truth.json").read_text())
    body = "\n\n".join(v["articleBody"] for v in truth.values())
    text = (body * (50_000_000 // len(body.encode()) + 1))[:50_000_000]
    pq.write_table(pa.table({"text": [text, "a small one"]}), tmp_path / "big.parquet")
    result = subprocess.run([sys.executable, "-m", "refinedweb", "tokenize", "--input", str(tmp_path / "big.parquet"),
                             "--output", str(tmp_path / "out"), "--workers", "1", "--no-shuffle"],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((tmp_path / "out" / "tokenized" / ".refinedweb" / "stats.json").read_text())
    assert stats["totals"]["documents"] == 2 and stats["totals"]["tokens"] > 10_000_000
    assert stats["worker_peak_rss_mb"] < 1500, stats["worker_peak_rss_mb"]


def test_kill_9_then_the_same_command_gives_the_same_files(real_texts, tmp_path):
    """The CLI in its own process group, SIGKILLed once the first scan unit has its marker; the same command
    again finishes, and every file equals an uninterrupted run's, byte for byte."""
    import signal
    import time

    folder = tmp_path / "in"
    texts = [t for t in real_texts if "\ud800" not in t] * 30
    folder.mkdir()
    for k in range(6):
        pq.write_table(pa.table({"text": texts[k::6]}), folder / f"p{k}.parquet")
    tokenize(folder, tmp_path / "clean", "tokenize.shard_max_tokens=300000")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "refinedweb", "tokenize", "--input", str(folder), "--output", str(out),
               "--workers", "1", "--set", "tokenize.shard_max_tokens=300000"]
    done = out / "tokenized" / ".refinedweb" / "done"
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while not (done.exists() and any(p.name.startswith("scan-") for p in done.iterdir())):
        assert proc.poll() is None and time.time() < deadline, "the run ended before the kill point"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "tokenized" / ".refinedweb" / "manifest.json").exists()
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "unit(s) of work were already done" in again.stderr
    clean = sorted(p.name for p in (tmp_path / "clean" / "tokenized").glob("shard-*"))
    assert clean and clean == sorted(p.name for p in (out / "tokenized").glob("shard-*"))
    for name in clean:
        assert (out / "tokenized" / name).read_bytes() == (tmp_path / "clean" / "tokenized" / name).read_bytes()


def test_from_and_to_s3_with_a_tokenizer_on_s3(real_texts, tmp_path):
    import boto3

    from .servers import moto_s3

    rows = corpus(tmp_path / "in", real_texts)
    path = gpt2_tokenizer_json(tmp_path / "gpt2" / "tokenizer.json")
    with moto_s3() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="tok")
        for p in (tmp_path / "in").glob("*.parquet"):
            client.upload_file(str(p), "tok", f"in/{p.name}")
        client.upload_file(str(path), "tok", "gpt2/tokenizer.json")
        cfg = load_config(overrides=["tokenize.tokenizer=s3://tok/gpt2/", "tokenize.format=nanotron",
                                     "tokenize.shard_max_tokens=50000"])
        summary = run_tokenize(["s3://tok/in/*.parquet"], "s3://tok/out/", cfg, runtime=SerialRuntime(),
                               log=lambda m: None)
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="tok", Prefix="out/")["Contents"]]
        assert any(k.endswith(".ds.index") for k in keys) and not any("/_work/" in k for k in keys)
        assert summary["totals"]["documents"] == sum(1 for r in rows if r["text"])
        assert summary["tokenizer"].startswith("s3://tok/gpt2/ sha256:")


def test_a_tokenizer_on_s3_reads_its_config_as_a_local_folder_does_and_leaves_no_copy(tmp_path, monkeypatch):
    import tempfile

    import boto3

    from .servers import moto_s3

    folder = tmp_path / "tok"
    gpt2_tokenizer_json(folder / "tokenizer.json", extra_tokens=2)
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": "<extra_1>"}}))
    local = load_tokenizer(str(folder))
    assert local.eos_id == local_id(folder, "<extra_1>") != 50256      # the config's token, not a candidate
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    with moto_s3() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="tok")
        client.upload_file(str(folder / "tokenizer.json"), "tok", "with/tokenizer.json")
        client.upload_file(str(folder / "tokenizer_config.json"), "tok", "with/tokenizer_config.json")
        client.upload_file(str(folder / "tokenizer.json"), "tok", "without/tokenizer.json")
        remote = load_tokenizer("s3://tok/with/")
        assert (remote.eos_id, remote.vocab_size) == (local.eos_id, local.vocab_size)
        assert remote.identity.split(" ")[1] == local.identity.split(" ")[1]          # the same sha256
        assert load_tokenizer("s3://tok/without/tokenizer.json").eos_id == 50256     # no config: the candidates
        with pytest.raises(UserError, match="cannot read s3://tok/missing/tokenizer.json"):
            load_tokenizer("s3://tok/missing/")
    assert list(spool.iterdir()) == []                  # the copies are gone, on success and on failure


def local_id(folder: Path, token: str) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).token_to_id(token)
