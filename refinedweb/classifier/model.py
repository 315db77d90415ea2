"""fastText quality classifiers at scoring time: the text as the model sees it (one function, shared with
training), fetching a model file (local or S3, cached by content hash) and the positive label's probability.

The score is DCLM's `classify_fasttext_hq_prob` (mlfoundations/dclm, baselines/mappers/enrichers): the text's
lines joined by spaces, fastText's top label and probability, and `1 - p` when the top label is not the
positive one; a model with more than two labels gives the positive label's own probability. fastText adds
1e-5 to a probability before its log, so a score may exceed 1 or fall below 0 by 1e-5, as in DCLM.
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import UserError

POSITIVE = "__label__hq"           # DCLM's label names (fasttext_oh_eli5): high quality ...
NEGATIVE = "__label__cc"           # ... and Common Crawl


def model_text(text: str) -> str:
    """The one line fastText reads: DCLM's `" ".join(content.strip().splitlines())`."""
    return " ".join(text.strip().splitlines())


class QualityModel:
    """One fastText classifier and the label whose probability is the score."""

    def __init__(self, path: str, label: str = POSITIVE):
        import fasttext

        try:
            self.model = fasttext.load_model(path)
        except ValueError as exc:
            raise UserError(f"cannot load fastText model {path}: {exc}") from None
        self.label = label
        labels, _ = self.model.predict("", k=-1)            # an empty line still reaches every label
        self.labels = tuple(sorted(labels))
        if label not in self.labels:
            raise UserError(f"model {path} has no label {label} (its labels: {', '.join(self.labels)}); "
                            "set the stage's label")
        if len(self.labels) < 2:
            raise UserError(f"model {path} has one label only ({label}): a classifier needs two")
        self.binary = len(self.labels) == 2

    def score(self, text: str) -> float:
        line = model_text(text)
        if self.binary:                                      # DCLM's formula, exactly
            labels, probs = self.model.predict(line, k=1, on_unicode_error="replace")
            p = float(probs[0])
            return p if labels[0] == self.label else 1.0 - p
        labels, probs = self.model.predict(line, k=-1, on_unicode_error="replace")
        return float(dict(zip(labels, probs)).get(self.label, 0.0))

    def scores(self, texts) -> list[float]:
        return [self.score(t) for t in texts]


@lru_cache(maxsize=8)
def load_quality_model(path: str, sha256: str, label: str) -> QualityModel:
    """Once per worker process (the hash in the key: a replaced file is a new model)."""
    return QualityModel(path, label)
