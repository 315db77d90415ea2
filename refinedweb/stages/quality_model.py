"""Model-based quality: a fastText classifier's score as a column, and optionally a filter (not in RW; DCLM's
fastText filter, Li et al. 2024 §4.4, the single largest gain they found over heuristic pipelines).

The score is the probability of the model's positive `label` (DCLM's `__label__hq`), computed as DCLM computes
it (`classifier/model.py`), so their published model scores the same here. `keep: selected` keeps documents
scoring at least `threshold`, or the `top_fraction` best of the input: that threshold is estimated once on the
driver from a seeded sample of the (Parquet) input before the pass (`plan`), recorded in the run's plans and
stats, and used by every task and by a resume. `keep: all` only writes the score. `more_models` add scores as
columns. Every model file is hashed on the driver: its hash joins the resume fingerprint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..classifier.model import load_quality_model
from ..errors import UserError
from ..io.cache import cached_file
from ..settings import from_section, setting
from .contract import Stage


@dataclass(frozen=True, slots=True)
class ScoreModel:
    model: str
    label: str
    column: str


def _more_models(value: Any, key: str) -> tuple[ScoreModel, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise UserError(f"config key '{key}' must be a list of {{model, label, column}}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"model", "label", "column"} or not {"model", "column"} <= set(item):
            raise UserError(f"config key '{key}[{i}]' must be a mapping with model, column and optionally label")
        out.append(ScoreModel(str(item["model"]), str(item.get("label", "__label__hq")), str(item["column"])))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class QualityModelConfig:
    model: str | None = setting()
    label: str = setting()
    column: str = setting()
    keep: str = setting(choices=("selected", "all"))
    threshold: float | None = setting()
    top_fraction: float | None = setting(min=0, max=1)
    sample_documents: int = setting(min=1)
    sample_row_groups: int = setting(min=1)
    seed: int = setting()
    more_models: tuple[ScoreModel, ...] = setting(parse=_more_models)

    def __post_init__(self) -> None:
        if not self.model:
            raise UserError("quality_model.model is not set: a fastText .bin (refinedweb classifier train, or "
                            "DCLM's fasttext_oh_eli5), e.g. --set quality_model.model=model.bin")
        given = [k for k in ("threshold", "top_fraction") if getattr(self, k) is not None]
        if self.keep == "selected" and len(given) != 1:
            raise UserError("quality_model: keep: selected needs exactly one of threshold and top_fraction "
                            f"(given: {', '.join(given) or 'neither'}); keep: all only writes the score")
        if self.keep == "all" and given:
            raise UserError(f"quality_model: keep: all writes the score and keeps every document; {given[0]} "
                            "would not be used (remove it, or keep: selected)")
        if self.top_fraction is not None and self.top_fraction == 0:
            raise UserError("quality_model.top_fraction must be > 0")
        columns = [m.column for m in self.models()]
        if len(set(columns)) != len(columns):
            raise UserError(f"quality_model: two models write the column '{columns[0]}' (column, more_models)")

    @classmethod
    def from_config(cls, section: dict) -> "QualityModelConfig":
        return from_section(cls, section, NAME)

    def models(self) -> list[ScoreModel]:
        return [ScoreModel(self.model, self.label, self.column), *self.more_models]


def top_fraction_threshold(scores: list[float], fraction: float) -> float:
    """The k-th highest score, k = ceil(fraction x n): keeping scores >= it keeps that share (ties aside)."""
    if not scores:
        raise UserError("quality_model.top_fraction: the input sample holds no documents to estimate a threshold on")
    ordered = sorted(scores, reverse=True)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


# -- stage contract (stages/contract.py) ------------------------------------------------------------------
NAME = "quality_model"
VERSION = 1
LABEL = "quality model"
CONFIG = QualityModelConfig


def files(section: dict) -> dict[str, str]:
    """column -> model file: hashed by the driver, checked by each worker."""
    return {m.column: m.model for m in QualityModelConfig.from_config(section).models()}


def plan(section: dict, context) -> dict[str, Any]:
    """The model card(s) for the record and, for top_fraction, the threshold from a seeded sample of the input."""
    cfg = QualityModelConfig.from_config(section)
    out: dict[str, Any] = {"cards": {c: _card(f["path"]) for c, f in context.files.items()}}
    for m in cfg.models():                  # a wrong label fails here, once, not in every task
        load_quality_model(context.files[m.column]["path"], context.files[m.column]["sha256"], m.label)
    if cfg.keep != "selected" or cfg.top_fraction is None:
        return out
    if context.kind != "documents":
        raise UserError("quality_model.top_fraction needs a sample of the stage's input before the pass: run the stage "
                        "over Parquet (refinedweb run --stage quality_model --input OUT/dedup ...), or give "
                        "quality_model.threshold in the filter stage")
    docs = context.sample(cfg.sample_documents, cfg.sample_row_groups, cfg.seed)
    model = load_quality_model(context.files[cfg.column]["path"], context.files[cfg.column]["sha256"], cfg.label)
    scores = model.scores(d.text for d in docs)
    threshold = top_fraction_threshold(scores, cfg.top_fraction)
    kept = sum(s >= threshold for s in scores)
    context.log(f"[{NAME}] top_fraction {cfg.top_fraction}: threshold {threshold:.6g} from a sample of {len(scores)} "
                f"document(s) (it keeps {kept / len(scores):.2%} of them)")
    return {**out, "threshold": threshold, "sample_documents": len(scores), "sample_kept_fraction": kept / len(scores)}


def _card(path: str) -> dict[str, Any] | None:
    """The model card `classifier train` wrote beside the model, if any (its metrics and config, for the record)."""
    import json

    from ..classifier.train import card_path

    try:
        with open(card_path(path)) as fh:
            card = json.load(fh)
    except (OSError, ValueError):
        return None
    return {k: card.get(k) for k in ("sha256", "created", "config", "classes", "metrics", "training_seconds")}


def build(section: dict, shared) -> Stage:
    cfg = QualityModelConfig.from_config(section)
    known = shared.plan.get("files", {})
    scorers = []
    for m in cfg.models():
        path, identity = cached_file(m.model, shared.fetch, known.get(m.column))
        scorers.append((m.column, load_quality_model(path, identity["sha256"], m.label)))
    threshold = None
    if cfg.keep == "selected":
        threshold = cfg.threshold if cfg.threshold is not None else shared.plan.get("threshold")
        if threshold is None:
            raise UserError("quality_model.top_fraction: no threshold was estimated for this run (the driver's plan)")
    column = cfg.column

    def apply(doc) -> str | None:
        for name, scorer in scorers:
            doc.metadata[name] = scorer.score(doc.text)
        return "below_threshold" if threshold is not None and doc.metadata[column] < threshold else None

    return Stage(NAME, apply=apply, signals={m.column: pa.float64() for m in cfg.models()})
