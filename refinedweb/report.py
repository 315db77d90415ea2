"""`refinedweb report OUTPUT`: `OUTPUT/report.html` and `OUTPUT/funnel.png` from the stats and manifest
files in each stage folder's `.refinedweb/` (plus the final shards' `token_count` column for the length
histogram; no text is read).

The funnel follows RefinedWeb's Figure 2: what is left after each stage, as a share of the HTML pages
(documents) and of the extracted text (tokens). Tokens are counted once, at the end of the filter
stage; for the stages between extraction and there, tokens are estimated from characters with the
final tokens-per-character ratio (marked ≈ in the table).
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np

from .errors import UserError
from .io.manifest import MANIFEST, META
from .stats import STATS

# The filter stages' labels come from their modules (stored in the stats by the run); dedup's are these.
LABELS = {"read": "HTML pages", "minhash": "fuzzy dedup", "exact_substring": "exact-substring dedup", "url": "URL dedup"}


def _read_json(storage, relpath: str) -> dict[str, Any] | None:
    text = storage.read_text(relpath)
    return json.loads(text) if text else None


def funnel_rows(filter_stats: dict[str, Any] | None, dedup_stats: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per stage: documents and tokens left, and their share of pages / of extracted tokens."""
    rows: list[dict[str, Any]] = []
    per_char = None
    tokens = None
    if filter_stats:
        stages = filter_stats["stages"]
        final_tokens = filter_stats["totals"]["tokens"]
        labels = {**LABELS, **filter_stats.get("labels", {})}
        names = list(stages)
        last = names[-1]
        per_char = final_tokens / max(1, stages[last]["chars_kept"])
        # chars_kept counts HTML before extraction and text from it on
        text_stages = set(names[names.index("extract"):]) if "extract" in names else \
            (set(names) if filter_stats.get("stage") == "documents" else set())   # over Parquet: text from the start
        for name, st in stages.items():
            if not st["docs_in"]:
                continue
            exact = name == last                      # the last stage's documents are the output
            tokens = final_tokens if exact else (round(st["chars_kept"] * per_char) if name in text_stages else None)
            rows.append({"stage": name, "label": labels.get(name, name), "documents": st["kept"], "tokens": tokens,
                         "tokens_exact": exact, "dropped": dict(sorted(st["dropped"].items(), key=lambda kv: -kv[1])),
                         "errors": st["errors"]})
    if dedup_stats:
        for name, st in dedup_stats.get("methods", dedup_stats.get("stages", {})).items():   # "stages" before 0.2
            if tokens is not None and per_char is not None:
                tokens = max(0, round(tokens - st.get("chars_removed", 0) * per_char))
            rows.append({"stage": name, "label": LABELS.get(name, name), "documents": st["docs_out"], "tokens": tokens,
                         "tokens_exact": False, "dropped": {"removed": st["docs_removed"]}, "errors": {}})
    pages = rows[0]["documents"] if rows else 0
    extracted = next((r["tokens"] for r in rows if r["stage"] == "extract"), None)
    for row in rows:
        row["pct_documents"] = round(100.0 * row["documents"] / pages, 2) if pages else None
        row["pct_tokens"] = round(100.0 * row["tokens"] / extracted, 2) if extracted and row["tokens"] is not None else None
    return rows


def render(output: str, fetch=None) -> dict[str, str]:
    """Write report.html and funnel.png under `output`; returns their URIs."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("refinedweb report draws its charts with matplotlib: pip install 'refinedweb[report]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io.storage import open_existing

    storage = open_existing(output, fetch)
    filter_stats = _read_json(storage, f"filtered/{STATS}")
    dedup_stats = _read_json(storage, f"dedup/{STATS}")
    final = "dedup" if _read_json(storage, f"dedup/{MANIFEST}") else "filtered"
    if not filter_stats and not dedup_stats:          # document stages run over existing Parquet (<stage>/)
        for folder in storage.list_folders(""):
            stats = _read_json(storage, f"{folder}/{STATS}")
            if stats and stats.get("stage") == "documents":
                filter_stats, final = stats, folder.rsplit("/", 1)[-1]
                break
    if not filter_stats and not dedup_stats:
        raise UserError(f"no filtered/{STATS}, dedup/{STATS} or document stage's stats under {output}: run a stage first")
    rows = funnel_rows(filter_stats, dedup_stats)
    manifest = _read_json(storage, f"{final}/{MANIFEST}") or {"totals": {"languages": {}, "rows": 0, "tokens": 0}, "shards": []}

    funnel_png = _funnel_figure(plt, rows)
    storage.write_bytes("funnel.png", funnel_png)
    reasons_png = _reasons_figure(plt, rows)
    languages_png = _languages_figure(plt, manifest["totals"].get("languages", {}))
    lengths = _token_lengths(storage, final, manifest)
    lengths_png = _lengths_figure(plt, lengths)
    from .inspect import samples_by

    examples = {"drop reason": samples_by(storage, "dropped", "reason", 2, 0, 1200) if storage.list("dropped", "*.parquet")
                else {}, "language": samples_by(storage, final, "language", 2, 0, 1200)}
    findings = _findings_html(storage, filter_stats, [final, "filtered"])
    page = _html(rows, manifest, final, lengths, funnel_png, reasons_png, languages_png, lengths_png,
                 filter_stats, dedup_stats, examples, findings)
    storage.write_text("report.html", page)
    return {"html": f"{storage.uri}/report.html", "funnel": f"{storage.uri}/funnel.png"}


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _funnel_figure(plt, rows) -> bytes:
    fig, ax = plt.subplots(figsize=(10, 4.8))
    labels = [r["label"] for r in rows]
    x = np.arange(len(rows))
    docs = [r["pct_documents"] or 0 for r in rows]
    tokens = [r["pct_tokens"] if r["pct_tokens"] is not None else np.nan for r in rows]
    ax.bar(x - 0.2, docs, 0.4, label="documents (% of HTML pages)", color="#4c72b0")
    ax.bar(x + 0.2, tokens, 0.4, label="tokens (% of extracted text)", color="#dd8452")
    for i, value in enumerate(docs):
        ax.text(i - 0.2, value + 1, f"{value:.0f}", ha="center", fontsize=7)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("% left after the stage")
    ax.set_ylim(0, 110)
    ax.set_title("What is left after each stage (cf. RefinedWeb, Figure 2)")
    ax.legend(loc="upper right")
    return _png(plt, fig)


def _reasons_figure(plt, rows) -> bytes:
    reasons = [(f"{r['stage']}:{k}", v) for r in rows for k, v in r["dropped"].items() if v]
    reasons = sorted(reasons, key=lambda kv: -kv[1])[:20]
    fig, ax = plt.subplots(figsize=(8, 0.3 * max(4, len(reasons)) + 1))
    if reasons:
        ax.barh([k for k, _ in reversed(reasons)], [v for _, v in reversed(reasons)], color="#55a868")
    ax.set_xlabel("documents dropped")
    ax.set_title("Top drop reasons")
    return _png(plt, fig)


def _languages_figure(plt, languages: dict[str, Any]) -> bytes:
    items = list(languages.items())[:15]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if items:
        ax.bar([k for k, _ in items], [v["tokens"] for _, v in items], color="#8172b2")
    ax.set_ylabel("tokens")
    ax.set_title("Language mix of the output")
    return _png(plt, fig)


def _token_lengths(storage, folder: str, manifest: dict[str, Any]) -> np.ndarray:
    """token_count of every output document: only that column is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts = []
    for shard in manifest.get("shards", []):
        with storage.local_copy(f"{folder}/{shard['path']}") as path:
            table = pq.read_table(path, columns=["token_count"]) if "token_count" in pq.read_schema(path).names \
                else pa.table({"token_count": pa.array([], pa.int64())})
        counts.append(table.column("token_count").to_numpy(zero_copy_only=False))
    return np.concatenate(counts) if counts else np.empty(0)


def _lengths_figure(plt, lengths: np.ndarray) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if len(lengths):
        bins = np.logspace(np.log10(max(1, lengths.min())), np.log10(max(2, lengths.max())), 40)
        ax.hist(lengths, bins=bins, color="#c44e52")
        ax.set_xscale("log")
    ax.set_xlabel("tokens per document (GPT-2)")
    ax.set_ylabel("documents")
    ax.set_title("Document length")
    return _png(plt, fig)


def _examples_html(examples: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """Sample documents per drop reason and per language, collapsed: what a filter removed, not only how much."""
    parts = []
    for kind, groups in examples.items():
        if not groups:
            continue
        parts.append(f"<h3>Examples by {html.escape(kind)}</h3>")
        for key, docs in groups.items():
            docs = [d for d in docs if (d.get("text") or "").strip()]     # read-stage drops have no text to show
            if not docs:
                continue
            items = "".join(f"<div class='doc'><div class='meta'>{html.escape(str(d.get('url') or d.get('id') or ''))}"
                            f"</div><pre>{html.escape(d.get('text') or '')}</pre></div>" for d in docs)
            parts.append(f"<details><summary>{html.escape(key)} ({len(docs)} example{'s' if len(docs) != 1 else ''})"
                         f"</summary>{items}</details>")
    return "".join(parts)


def _findings_html(storage, stats: dict[str, Any] | None, folders: list[str]) -> str:
    """What stages counted (PII masks per kind) and decontamination.json: per benchmark, the items with overlap,
    documents touched, characters removed and the n-grams matched most, so that a leak can be told from a phrase."""
    parts = []
    for name, st in ((stats or {}).get("stages") or {}).items():
        numbers = {k: v for k, v in (st.get("counts") or {}).items() if isinstance(v, int) and ":" not in k}
        if numbers:
            parts.append(f"<p>{html.escape(((stats or {}).get('labels') or {}).get(name, name))}: "
                         + ", ".join(f"{html.escape(k)} {v:,}" for k, v in numbers.items()) + "</p>")
    for folder in dict.fromkeys(folders):
        found = _read_json(storage, f"{folder}/{META}/decontamination.json")
        if not found:
            continue
        ignored = found.get("ignored") or {}
        parts.append(f"<h3>Decontamination (<code>{html.escape(folder)}/</code>)</h3><p>{found['n']}-grams, policy "
                     f"{html.escape(found['policy'])}, {found['documents_in']:,} documents in; "
                     + (f"{ignored.get('ngrams', 0):,} n-grams in more than {found['max_matches']} documents ignored "
                        "as common phrases." if found.get("max_matches") is not None else "every match counts.")
                     + "</p><table><tr><th>benchmark</th><th>items</th><th>too short</th><th>items with overlap</th>"
                     "<th>documents touched</th><th>dropped</th><th>characters removed</th></tr>")
        for bench, b in found["benchmarks"].items():
            parts.append(f"<tr><td>{html.escape(bench)}</td><td>{b.get('items', 0):,}</td>"
                         f"<td>{b.get('items_too_short', 0):,}</td><td>{b['items_with_overlap']:,}</td>"
                         f"<td>{b['documents']:,}</td><td>{b['documents_dropped']:,}</td><td>{b['chars_removed']:,}</td></tr>")
        parts.append("</table>")
        for bench, b in found["benchmarks"].items():
            if b["top_ngrams"]:
                items = "".join(f"<li>{g['documents']:,} doc(s): <code>{html.escape(g['ngram'])}</code></li>"
                                for g in b["top_ngrams"][:10])
                parts.append(f"<details><summary>{html.escape(bench)}: n-grams matched most</summary><ul>{items}</ul>"
                             "</details>")
        if ignored.get("top"):
            items = "".join(f"<li>{g['documents']:,} docs: <code>{html.escape(g['ngram'])}</code></li>"
                            for g in ignored["top"][:10])
            parts.append(f"<details><summary>ignored as common phrases</summary><ul>{items}</ul></details>")
    return ("<h2>Masking and decontamination</h2>" + "".join(parts)) if parts else ""


def _html(rows, manifest, final, lengths, funnel_png, reasons_png, languages_png, lengths_png,
          filter_stats, dedup_stats, examples=None, findings="") -> str:
    def img(data: bytes, alt: str) -> str:
        return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'

    table = ["<table><tr><th>stage</th><th>documents left</th><th>% of pages</th><th>tokens left</th>"
             "<th>% of extracted</th><th>errors</th><th>top drop reasons</th></tr>"]
    for r in rows:
        tokens = "" if r["tokens"] is None else f"{'' if r['tokens_exact'] else '≈ '}{r['tokens']:,}"
        pct_docs = "" if r["pct_documents"] is None else f"{r['pct_documents']:.1f}%"
        pct_tokens = "" if r["pct_tokens"] is None else f"{r['pct_tokens']:.1f}%"
        reasons = ", ".join(f"{html.escape(k)} {v:,}" for k, v in list(r["dropped"].items())[:4])
        # errors (a stage raised) apart from drops (a filter decided), with their exception types
        errors = sum(r["errors"].values())
        errors_cell = (f"<span title='{html.escape(', '.join(f'{k} {v:,}' for k, v in r['errors'].items()))}'>"
                       f"{errors:,}</span>" if errors else "0")
        table.append(f"<tr><td>{html.escape(r['label'])}</td><td>{r['documents']:,}</td><td>{pct_docs}</td>"
                     f"<td>{tokens}</td><td>{pct_tokens}</td><td>{errors_cell}</td><td>{reasons}</td></tr>")
    table.append("</table>")
    t = manifest["totals"]
    median = int(np.median(lengths)) if len(lengths) else 0
    summary = (f"<p>Output <code>{final}/</code>: {t.get('shards', 0):,} shards, {t.get('rows', 0):,} documents, "
               f"{t.get('tokens', 0):,} tokens; median document {median:,} tokens.</p>")
    accounting = ""
    if filter_stats:
        ft = filter_stats["totals"]
        accounting = (f"<p>Filter: {ft['files']:,} input files ({ft['files_failed']} failed), {ft['records']:,} records = "
                      f"{ft['kept']:,} kept + {ft['dropped']:,} dropped + {ft['errors']:,} errors "
                      f"({'reconciled' if ft['reconciled'] else 'NOT reconciled'}).</p>")
        failed = [f for f in filter_stats.get("files", []) if f["status"] != "ok"]
        if failed:
            accounting += ("<p>Failed input files (a re-run retries them):</p><ul>"
                           + "".join(f"<li><code>{html.escape(f['uri'])}</code>: {html.escape(f['error'] or '')}</li>"
                                     for f in failed[:50])
                           + (f"<li>and {len(failed) - 50:,} more</li>" if len(failed) > 50 else "") + "</ul>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>refinedweb report</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,td:last-child{text-align:left}"
            "img{max-width:100%}pre{white-space:pre-wrap;background:#f6f6f6;padding:6px;max-height:20em;overflow:auto}"
            ".meta{color:#666;font-size:small}summary{cursor:pointer}</style></head><body><h1>refinedweb report</h1>"
            + summary + accounting + "<h2>Funnel</h2>" + img(funnel_png, "funnel") + "".join(table)
            + "<p>≈: estimated from characters with the final tokens-per-character ratio.</p>"
            + "<h2>Drop reasons</h2>" + img(reasons_png, "drop reasons")
            + "<h2>Languages</h2>" + img(languages_png, "languages")
            + "<h2>Document length</h2>" + img(lengths_png, "document lengths") + findings
            + (("<h2>Examples</h2><p>Sample documents (seed 0, 2 per group, the first 1,200 characters); "
                "<code>refinedweb inspect</code> shows more.</p>" + _examples_html(examples)) if examples else "")
            + "</body></html>\n")
