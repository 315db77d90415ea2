"""`refinedweb classifier train`: a fastText quality classifier from positive and negative documents.

Each class is read from Parquet, JSONL or plain text (one document a line), local or S3, and sampled to at
most `max_documents_per_class` documents (a seeded reservoir: the same inputs and seed give the same sample);
a seeded `held_out` share of each class is kept for evaluation. The lines fastText trains on are
`model.model_text` of each document, the function the `quality_model` stage scores with. Training is
floret's fastText (`mode: fasttext`: plain fastText, written as a standard fastText .bin that fasttext-predict
loads); with one thread it is deterministic for a seed. Beside the model goes `<model>.json`, its card: the
held-out metrics, the score distribution, the config, the inputs and counts, and the model's hash.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import os
import random
import shutil
import struct
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import numpy as np

from .. import __version__
from ..errors import UserError
from ..io.cache import sha256_file
from ..io.inputs import expand_inputs, open_input
from ..io.remote import FetchConfig, is_remote, redact
from ..io.storage import open_storage
from ..io.tables import TABLE_SUFFIXES, ReadNotes, iter_tables
from ..settings import from_section, setting
from .model import NEGATIVE, POSITIVE, QualityModel, model_text

TEXT_SUFFIXES = (".txt", ".txt.gz")
FASTTEXT_MAGIC = 793712314
FASTTEXT_VERSION = 12
HEADER_INTS = 11                    # dim ws epoch minCount neg wordNgrams loss model bucket minn maxn


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    max_documents_per_class: int = setting(min=1)
    held_out: float = setting(min=0, max=0.5)
    seed: int = setting()
    min_chars: int = setting(min=0)
    lr: float = setting(min=0)
    dim: int = setting(min=1)
    ws: int = setting(min=1)
    epoch: int = setting(min=1)
    min_count: int = setting(min=1)
    word_ngrams: int = setting(min=1)
    bucket: int = setting(min=0)
    loss: str = setting(choices=("softmax", "hs", "ns", "ova"))
    threads: int = setting(min=1)

    @classmethod
    def from_config(cls, section: dict) -> "ClassifierConfig":
        return from_section(cls, section, "classifier")


@dataclass
class ClassSample:
    label: str
    inputs: list[str]
    read: int = 0                    # documents in the inputs
    empty: int = 0                   # without text (or shorter than min_chars): not used
    train: list[str] | None = None
    held_out: list[str] | None = None

    def counts(self) -> dict[str, Any]:
        return {"label": self.label, "inputs": [redact(u) for u in self.inputs], "read": self.read,
                "skipped_short_or_empty": self.empty, "train": len(self.train or []),
                "held_out": len(self.held_out or [])}


def iter_texts(uri: str, fetch: FetchConfig, text_field: str, notes: ReadNotes) -> Iterator[str | None]:
    """The documents of one file: Parquet/JSONL rows' text, or the lines of a text file."""
    name = uri.split("?", 1)[0]
    if name.endswith(TEXT_SUFFIXES):
        with open_input(uri, fetch) as raw:
            stream = gzip.GzipFile(fileobj=raw) if name.endswith(".gz") else raw
            for line in stream:
                yield line.decode("utf-8", "replace")
        return
    for table in iter_tables(uri, fetch, 10_000, notes, text_field, columns=[]):
        yield from table.column("text").to_pylist()


def sample_class(sample: ClassSample, cfg: ClassifierConfig, fetch: FetchConfig, text_field: str, salt: int) -> None:
    """A seeded reservoir of at most max_documents_per_class lines, then a seeded held-out split."""
    files = expand_inputs(sample.inputs, suffixes=TABLE_SUFFIXES + TEXT_SUFFIXES, fetch=fetch)
    rng = random.Random(cfg.seed * 2 + salt)
    limit = cfg.max_documents_per_class
    kept: list[str] = []
    notes = ReadNotes()
    seen = 0
    for uri in files:
        for text in iter_texts(uri, fetch, text_field, notes):
            sample.read += 1
            line = model_text(text) if text else ""
            if len(line) < max(1, cfg.min_chars):
                sample.empty += 1
                continue
            seen += 1
            if len(kept) < limit:
                kept.append(line)
            else:
                j = rng.randrange(seen)
                if j < limit:
                    kept[j] = line
    if notes.counts["bad_line"]:
        raise UserError(f"{notes.counts['bad_line']} JSONL line(s) of the {sample.label} inputs are not documents, "
                        f"e.g. {notes.bad_lines[0]}")
    if len(kept) < 2:
        raise UserError(f"the {sample.label} inputs hold {len(kept)} usable document(s): a classifier needs more")
    rng.shuffle(kept)
    cut = int(round(len(kept) * cfg.held_out))
    sample.held_out, sample.train = kept[:cut], kept[cut:]


def convert_floret(src: str, dst: str) -> None:
    """floret's .bin is fastText's with two more header ints (mode, hashCount) after maxn; in `fasttext` mode
    they are (1, 1) and dropping them gives the standard file."""
    with open(src, "rb") as fh, open(dst, "wb") as out:
        head = fh.read(8 + 4 * HEADER_INTS)
        magic, version = struct.unpack("<ii", head[:8])
        mode, hash_count = struct.unpack("<ii", fh.read(8))
        if (magic, version) != (FASTTEXT_MAGIC, FASTTEXT_VERSION) or (mode, hash_count) != (1, 1):
            raise RuntimeError(f"unexpected floret model header {(magic, version, mode, hash_count)}")
        out.write(head)
        shutil.copyfileobj(fh, out, 1 << 24)


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney U / (n_pos · n_neg), ties counted half."""
    scores = np.concatenate([positive, negative])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):                      # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(model: QualityModel, positive: list[str], negative: list[str]) -> dict[str, Any]:
    """Held-out metrics: ROC-AUC, precision/recall/F1 at 0.5, and each class's score quantiles and histogram."""
    if not positive or not negative:
        return {"held_out": "none (classifier.held_out is 0)"}
    pos = np.array(model.scores(positive))
    neg = np.array(model.scores(negative))
    tp, fn = int((pos >= 0.5).sum()), int((pos < 0.5).sum())
    fp = int((neg >= 0.5).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    edges = np.linspace(0, 1, 11)
    quantiles = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)

    def distribution(scores: np.ndarray) -> dict[str, Any]:
        return {"quantiles": {str(q): round(float(np.quantile(scores, q)), 6) for q in quantiles},
                "histogram": np.histogram(np.clip(scores, 0, 1), bins=edges)[0].tolist()}

    return {"roc_auc": round(roc_auc(pos, neg), 6), "threshold": 0.5, "precision": round(precision, 6),
            "recall": round(recall, 6), "f1": round(2 * precision * recall / (precision + recall), 6) if tp else 0.0,
            "accuracy": round((tp + int((neg < 0.5).sum())) / (len(pos) + len(neg)), 6),
            "histogram_edges": [round(float(e), 2) for e in edges],
            "positive": distribution(pos), "negative": distribution(neg)}


def train_classifier(positive: list[str], negative: list[str], output: str, cfg: dict[str, Any],
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Sample, train, evaluate; write the model and its card (`<output>.json`), local or S3. The card."""
    ccfg = ClassifierConfig.from_config(cfg["classifier"])
    fetch = FetchConfig.from_config(cfg)
    text_field = str(cfg["inputs"]["text_field"])
    if not output.endswith(".bin"):
        raise UserError(f"--output {redact(output)}: a fastText model file ends in .bin")
    classes = [ClassSample(POSITIVE, list(positive)), ClassSample(NEGATIVE, list(negative))]
    for salt, sample in enumerate(classes):
        sample_class(sample, ccfg, fetch, text_field, salt)
        log(f"[classifier] {sample.label}: {sample.read} document(s) read, {len(sample.train)} to train on, "
            f"{len(sample.held_out)} held out")
    import floret

    with tempfile.TemporaryDirectory(prefix="refinedweb-classifier-") as tmp:
        order = [(c, i) for c, sample in enumerate(classes) for i in range(len(sample.train))]
        random.Random(ccfg.seed).shuffle(order)                  # the classes interleaved (indices: no text copy)
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8") as fh:
            for c, i in order:
                fh.write(f"{classes[c].label} {classes[c].train[i]}\n")
        del order
        started = time.perf_counter()
        trained = floret.train_supervised(
            input=train_file, lr=ccfg.lr, dim=ccfg.dim, ws=ccfg.ws, epoch=ccfg.epoch, minCount=ccfg.min_count,
            wordNgrams=ccfg.word_ngrams, bucket=ccfg.bucket, loss=ccfg.loss, thread=ccfg.threads, seed=ccfg.seed,
            verbose=0, mode="fasttext")
        seconds = time.perf_counter() - started
        raw, model_path = os.path.join(tmp, "floret.bin"), os.path.join(tmp, "model.bin")
        trained.save_model(raw)
        del trained
        convert_floret(raw, model_path)
        model = QualityModel(model_path, POSITIVE)
        metrics = evaluate(model, classes[0].held_out, classes[1].held_out)
        card = {"format": "fasttext", "labels": list(model.labels), "positive_label": POSITIVE,
                "sha256": sha256_file(model_path), "bytes": os.path.getsize(model_path),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "refinedweb_version": __version__, "trainer": "floret (fastText mode)",
                "training_seconds": round(seconds, 2), "config": asdict(ccfg),
                "classes": {"positive": classes[0].counts(), "negative": classes[1].counts()},
                "metrics": metrics, "scoring": "quality_model stage: DCLM's classify_fasttext_hq_prob"}
        _publish(model_path, output, card, fetch)
    return card


def _publish(model_path: str, output: str, card: dict[str, Any], fetch: FetchConfig) -> None:
    card_text = json.dumps(card, indent=2) + "\n"
    if is_remote(output):
        folder, name = output.rsplit("/", 1)
        storage = open_storage(folder, fetch)
        tmp = storage.temp_path(name)
        shutil.copyfile(model_path, tmp)
        storage.commit(tmp, name)
        storage.write_text(name.removesuffix(".bin") + ".json", card_text)
        return
    path = os.path.abspath(os.path.expanduser(output))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(model_path, path + ".tmp")
    os.replace(path + ".tmp", path)
    with open(card_path(path) + ".tmp", "w") as fh:
        fh.write(card_text)
    os.replace(card_path(path) + ".tmp", card_path(path))


def card_path(model: str) -> str:
    return model.removesuffix(".bin") + ".json"


def format_card(card: dict[str, Any]) -> str:
    m = card["metrics"]
    lines = [f"classifier: {card['classes']['positive']['train']} positive / {card['classes']['negative']['train']} "
             f"negative documents, trained in {card['training_seconds']:.1f} s"]
    if "roc_auc" in m:
        lines.append(f"held out ({card['classes']['positive']['held_out']} + {card['classes']['negative']['held_out']}): "
                     f"ROC-AUC {m['roc_auc']:.4f}, precision {m['precision']:.3f}, recall {m['recall']:.3f} "
                     f"at score >= 0.5")
        for name in ("positive", "negative"):
            q = m[name]["quantiles"]
            lines.append(f"  {name} scores: p10 {q['0.1']:.4g}  median {q['0.5']:.4g}  p90 {q['0.9']:.4g}")
    else:
        lines.append("held out: none")
    return "\n".join(lines)
