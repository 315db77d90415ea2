"""Accounting: every input record is kept, dropped with a reason, or counted as an error.

Per-file and per-stage counters are plain dicts so they travel between Ray tasks and the driver as
JSON-able values and merge by addition. `.refinedweb/stats.json` (one per stage folder) holds both, plus the funnel (RW Figure 2 style).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from .io.manifest import META

STATS = f"{META}/stats.json"   # per stage folder, beside the manifest, hidden from Parquet readers



def new_stage_stats() -> dict[str, Any]:
    # chars_kept: characters of what the kept documents carry on: HTML up to extraction, text after it.
    return {"docs_in": 0, "kept": 0, "dropped": {}, "errors": {}, "seconds": 0.0, "chars_kept": 0, "tokens": 0}


class FileAccount:
    """Counters for one input file, filled by the per-file pass."""

    def __init__(self, uri: str, stages: list[str]):
        """`stages`: accounting names in pipeline order (the source, then `filter.stages`)."""
        self.uri = uri
        self.records = 0
        self.kept = 0
        self.dropped: Counter[str] = Counter()   # "stage:reason" -> n
        self.errors: Counter[str] = Counter()    # "stage:ExceptionType" -> n
        self.first_error: dict[str, str] = {}    # stage -> "ExceptionType: message" of its first error
        self.notes: Counter[str] = Counter()     # events that are not records (truncated input, ...)
        self.tokens = 0
        self.bytes_in = 0
        self.stages = {name: new_stage_stats() for name in stages}
        self.started = time.time()
        self.shards: list[dict[str, Any]] = []   # manifest entries of the shards written

    # stage-level bookkeeping -------------------------------------------------------------
    def enter(self, stage: str) -> None:
        self.stages[stage]["docs_in"] += 1

    def keep(self, stage: str, seconds: float, chars: int = 0) -> None:
        st = self.stages[stage]
        st["kept"] += 1
        st["seconds"] += seconds
        st["chars_kept"] += chars

    def drop(self, stage: str, reason: str, seconds: float = 0.0) -> None:
        st = self.stages[stage]
        st["dropped"][reason] = st["dropped"].get(reason, 0) + 1
        st["seconds"] += seconds
        self.dropped[f"{stage}:{reason}"] += 1

    def error(self, stage: str, exc: BaseException, seconds: float = 0.0) -> None:
        st = self.stages[stage]
        name = type(exc).__name__
        st["errors"][name] = st["errors"].get(name, 0) + 1
        st["seconds"] += seconds
        self.errors[f"{stage}:{name}"] += 1
        if stage not in self.first_error:
            self.first_error[stage] = f"{name}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"

    def error_share_exceeded(self, max_fraction: float) -> str | None:
        """Why the file fails when a stage raised on more than `max_fraction` of the documents that reached it
        (and on more than one): such a stage is broken, not filtering. None when every stage is within it."""
        for stage, st in self.stages.items():
            errors = sum(st["errors"].values())
            if errors > 1 and errors > max_fraction * st["docs_in"]:
                return (f"stage {stage} raised on {errors} of {st['docs_in']} documents, above "
                        f"filter.max_error_fraction={max_fraction:g} (first: {self.first_error.get(stage, '?')})")
        return None

    def to_dict(self, status: str = "ok", error: str | None = None) -> dict[str, Any]:
        accounted = self.kept + sum(self.dropped.values()) + sum(self.errors.values())
        return {
            "uri": self.uri,
            "status": status,
            "error": error,
            "records": self.records,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "errors": dict(sorted(self.errors.items())),
            "notes": dict(sorted(self.notes.items())),
            "reconciled": accounted == self.records,
            "tokens": self.tokens,
            "bytes_in": self.bytes_in,
            "seconds": round(time.time() - self.started, 3),
            "shards": self.shards,
            "stages": self.stages,
        }


def merge_stage_stats(total: dict[str, dict], part: dict[str, dict]) -> None:
    for name, st in part.items():
        agg = total.setdefault(name, new_stage_stats())
        for key in ("docs_in", "kept", "chars_kept", "tokens"):
            agg[key] += st.get(key, 0)
        agg["seconds"] += st.get("seconds", 0.0)
        for key in ("dropped", "errors"):
            for reason, n in st.get(key, {}).items():
                agg[key][reason] = agg[key].get(reason, 0) + n
        if st.get("counts"):                              # a stage's own counts (stages/contract.py: counts)
            counts = agg.setdefault("counts", {})
            for kind, n in st["counts"].items():
                add_count(counts, kind, n)


def add_count(tally: dict[str, Any], kind: str, n: int | dict[str, int]) -> None:
    """A stage's count of `kind` added to `tally`: a number, or a {name: n} dict summed per name."""
    if isinstance(n, dict):
        into = tally.setdefault(kind, {})
        for name, k in n.items():
            into[name] = into.get(name, 0) + k
    elif n:
        tally[kind] = tally.get(kind, 0) + n


def summarise(files: list[dict[str, Any]], wall_seconds: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Aggregate per-file results into the content of the stage's stats file."""
    stages: dict[str, dict] = {}
    for f in files:                           # pipeline order: every file's stages dict is in that order
        for name in f.get("stages", {}):
            stages.setdefault(name, new_stage_stats())
    totals = {"files": len(files), "files_failed": 0, "records": 0, "kept": 0, "dropped": 0, "errors": 0,
              "tokens": 0, "bytes_in": 0}
    for f in files:
        if f["status"] != "ok":
            totals["files_failed"] += 1
        merge_stage_stats(stages, f.get("stages", {}))
        totals["records"] += f["records"]
        totals["kept"] += f["kept"]
        totals["dropped"] += sum(f["dropped"].values())
        totals["errors"] += sum(f["errors"].values())
        totals["tokens"] += f["tokens"]
        totals["bytes_in"] += f["bytes_in"]
    for st in stages.values():
        st["seconds"] = round(st["seconds"], 3)
        st["docs_per_second"] = round(st["docs_in"] / st["seconds"], 1) if st["seconds"] > 0 else None
        st["dropped_total"] = sum(st["dropped"].values())
        st["errors_total"] = sum(st["errors"].values())
    totals["reconciled"] = all(f["reconciled"] for f in files if f["status"] == "ok")
    totals["wall_seconds"] = round(wall_seconds, 3)
    totals["docs_per_second"] = round(totals["records"] / wall_seconds, 1) if wall_seconds > 0 else None
    result = {"totals": totals, "stages": stages, "funnel": funnel(stages), "files": files}
    if extra:
        result.update(extra)
    return result


def funnel(stages: dict[str, dict]) -> list[dict[str, Any]]:
    """Documents left after each stage, as % of HTML pages (RW Figure 2 counts from the HTML pages)."""
    read = stages.get("read", new_stage_stats())
    pages = read["kept"]
    rows = [{"stage": "records", "docs": read["docs_in"], "pct_of_pages": None}]
    for name, st in stages.items():
        rows.append({"stage": name, "docs": st["kept"],
                     "pct_of_pages": round(100.0 * st["kept"] / pages, 2) if pages else 0.0,
                     "dropped": sum(st["dropped"].values()), "errors": sum(st["errors"].values())})
    return rows


def format_funnel(summary: dict[str, Any]) -> str:
    """The funnel table: documents left per stage; drops (a filter's decision) and errors (a stage raised) apart."""
    lines = [f"{'stage':<12} {'docs left':>10} {'% of pages':>10} {'errors':>7}  top drop reasons"]
    stages = summary["stages"]
    for row in summary["funnel"]:
        name = row["stage"]
        pct = "" if row["pct_of_pages"] is None else f"{row['pct_of_pages']:.1f}%"
        reasons, errors = "", ""
        if name in stages:
            top = sorted(stages[name]["dropped"].items(), key=lambda kv: -kv[1])[:3]
            reasons = ", ".join(f"{r} {n}" for r, n in top)
            errors = str(sum(stages[name]["errors"].values()))
        lines.append(f"{name:<12} {row['docs']:>10} {pct:>10} {errors:>7}  {reasons}")
    t = summary["totals"]
    lines.append(f"records {t['records']} = kept {t['kept']} + dropped {t['dropped']} + errors {t['errors']}"
                 f"  ({'reconciled' if t['reconciled'] else 'NOT reconciled'}); tokens {t['tokens']:,};"
                 f" {t['wall_seconds']:.1f}s")
    return "\n".join(lines)
