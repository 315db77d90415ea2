"""Memory of the workers: each task's peak resident set (the figure checked against `run.worker_memory_mb`) and
the stage's summary of it. No Ray here."""

from __future__ import annotations

from typing import Any, Callable


def memory_report(results: list[dict[str, Any]], cfg: dict[str, Any], stage: str,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """The largest worker peak RSS of a stage's tasks, against `run.worker_memory_mb` (logged when above), and
    the Ray nodes this run's tasks ran on."""
    peaks = [r["worker_peak_rss_mb"] for r in results if r.get("worker_peak_rss_mb") is not None]
    peak = max(peaks) if peaks else None
    cap = cfg["run"].get("worker_memory_mb")
    if peak is not None and cap and peak > cap:
        log(f"[{stage}] WARNING: a worker peaked at {peak:,.0f} MB, above run.worker_memory_mb={cap}")
    nodes = sorted({r["worker_node"] for r in results if r.get("worker_node") and not r.get("resumed")})
    return {"worker_peak_rss_mb": peak, "worker_memory_mb": cap, "worker_nodes": nodes}


def peak_rss_mb() -> float:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
