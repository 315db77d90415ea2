"""Our tokenized output read by the trainers' own readers, and datatrove's tokenizer on the same documents: the
proof behind docs/training.md (CI compares against fixtures the real writers made; this runs the real readers).

    .venv/bin/python benchmarks/tokenized_readers.py make OUT                        # our outputs, from real text
    /tmp/venv-megatron/bin/python benchmarks/tokenized_readers.py megatron OUT       # megatron-core 0.16.1, torch CPU
    .venv-bench-datatrove/bin/python benchmarks/tokenized_readers.py datatrove OUT   # datatrove 0.10.1 (+ torch)

make: the bundled sample WARCs through `refinedweb run` (filter + dedup), then `refinedweb tokenize` of the dedup
output four times: Megatron and nanotron, shuffled; nanotron in input order with the gpt2 tokenizer.json (for
datatrove); and a GPT-2 tokenizer.json written from the offline vocabulary. megatron: Megatron's
`IndexedDataset` opens every shard and gives back every document's tokens, compared with ours. datatrove: its
`DocumentTokenizer` (shuffle off, EOS <|endoftext|>, the same tokenizer.json) over the same Parquet writes .ds and
.ds.index byte-identical to ours; its `DatatroveFolderDataset` (what nanotron trains from) reads our shuffled folder
and every token of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def ours(out: Path, folder: str):
    sys.path.insert(0, str(REPO))
    import numpy as np

    from refinedweb.tokenize import formats

    manifest = json.loads((out / folder / "tokenized" / ".refinedweb" / "manifest.json").read_text())
    docs = {}
    for shard in manifest["shards"]:
        prefix = out / folder / "tokenized" / shard["path"]
        if manifest["format"] == "megatron":
            tokens, lengths = formats.read_megatron(Path(f"{prefix}.bin").read_bytes(), Path(f"{prefix}.idx").read_bytes())
        else:
            tokens, lengths = formats.read_datatrove(Path(f"{prefix}.ds").read_bytes(),
                                                     Path(f"{prefix}.ds.index").read_bytes(),
                                                     2 if manifest["token_dtype"] == "uint16" else 4)
        ends = np.cumsum(lengths)
        docs[shard["path"]] = [tokens[e - n:e].tolist() for e, n in zip(ends, lengths)]
    return manifest, docs


def make(out: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from tokenizer_files import gpt2_tokenizer_json

    py = str(REPO / ".venv" / "bin" / "python")
    run = [py, "-m", "refinedweb"]
    subprocess.run([*run, "run", "--config", "configs/demo.yaml", "--input", "refinedweb/resources/samples/",
                    "--output", str(out / "text"), "--progress", "off"], check=True, cwd=REPO)
    tokenizer = gpt2_tokenizer_json(out / "gpt2" / "tokenizer.json")
    for name, flags in (("megatron", ["--format", "megatron", "--set", "tokenize.shard_max_tokens=30000"]),
                        ("nanotron", ["--format", "nanotron", "--set", "tokenize.shard_max_tokens=30000"]),
                        ("ordered", ["--format", "nanotron", "--no-shuffle", "--tokenizer", str(tokenizer)])):
        subprocess.run([*run, "tokenize", "--input", str(out / "text" / "dedup"), "--output", str(out / name), *flags],
                       check=True, cwd=REPO)
    print(json.dumps({"made": str(out)}))


def megatron(out: Path) -> None:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    manifest, docs = ours(out, "megatron")
    checked = tokens = 0
    for shard in manifest["shards"]:
        dataset = IndexedDataset(str(out / "megatron" / "tokenized" / shard["path"]))
        assert len(dataset) == shard["rows"] and len(dataset.document_indices) == shard["rows"] + 1
        for i, want in enumerate(docs[shard["path"]]):
            got = dataset[i].tolist()
            assert got == want, (shard["path"], i)
            checked += 1
            tokens += len(got)
    assert tokens == manifest["totals"]["tokens"]
    print(json.dumps({"reader": "megatron.core.datasets.indexed_dataset.IndexedDataset", "shards": len(manifest["shards"]),
                      "documents_equal": checked, "tokens": tokens}))


def datatrove(out: Path) -> None:
    import numpy as np
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer
    from datatrove.utils.dataset import DatatroveFolderDataset

    tokenizer = out / "gpt2" / "tokenizer.json"
    inputs = sorted((out / "text" / "dedup").rglob("*.parquet"))
    work = out / "datatrove"
    reader = ParquetReader(str(out / "text" / "dedup"), glob_pattern="**/*.parquet", text_key="text", id_key="id")
    writer = DocumentTokenizer(str(work), tokenizer_name_or_path=str(tokenizer), eos_token="<|endoftext|>",
                               shuffle_documents=False, save_filename=None)
    writer.run(reader.run(), rank=0, world_size=1)
    theirs = sorted(work.glob("*.ds"))
    manifest, _ = ours(out, "ordered")
    assert len(theirs) == 1 and len(manifest["shards"]) == 1, (theirs, manifest["shards"])
    mine = out / "ordered" / "tokenized" / manifest["shards"][0]["path"]
    same = {suffix: Path(f"{mine}{suffix}").read_bytes() == Path(f"{theirs[0]}{suffix[3:]}").read_bytes()
            for suffix in (".ds", ".ds.index", ".ds.metadata")}
    assert all(same.values()), same
    seq_len = 1024
    dataset = DatatroveFolderDataset(str(out / "nanotron" / "tokenized"), seq_len=seq_len, token_size=2)
    manifest, docs = ours(out, "nanotron")
    flat = np.concatenate([np.concatenate([np.array(d) for d in docs[s["path"]]]) for s in sorted(
        manifest["shards"], key=lambda s: s["path"])])
    read = sum(len(dataset[i]["input_ids"]) for i in range(len(dataset)))
    windows = [f.fsize // 2 // (seq_len + 1) for f in dataset.files]
    assert read == sum(windows) * (seq_len + 1) and len(dataset) == sum(windows)
    first = dataset[0]["input_ids"].tolist()
    assert first == flat[:seq_len + 1].tolist()
    print(json.dumps({"datatrove_writer_identical": same, "inputs": len(inputs), "documents": manifest["totals"]["rows"],
                      "reader": "datatrove.utils.dataset.DatatroveFolderDataset", "windows": len(dataset),
                      "tokens_read": read}))


if __name__ == "__main__":
    {"make": make, "megatron": megatron, "datatrove": datatrove}[sys.argv[1]](Path(sys.argv[2]))
