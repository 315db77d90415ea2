"""Benchmark decontamination: the user's benchmark items as an index of normalized word n-grams (`index.py`),
matched in documents by a compiled scan (`ngrams.py`); the `decontaminate` stage applies a policy."""
