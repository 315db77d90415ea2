"""What the driver prints while a job runs: log lines, and progress (files done / total, documents,
docs/s, ETA) as a live bar, plain lines, JSON lines for batch jobs, or nothing (`--progress`)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, TextIO

from ..io.remote import scrub

MODES = ("auto", "bar", "plain", "json", "off")


class Reporter:
    def __init__(self, mode: str = "auto", stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "plain"
        self.mode = mode
        self._bar = None
        if mode == "json":
            self._route_library_logs()

    def _route_library_logs(self) -> None:
        """Ray's (and other libraries') warnings on the driver become JSON lines too, so that a batch
        job's log is parseable line by line."""
        import logging

        reporter = self

        class JsonHandler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                reporter._json({"event": "log", "level": record.levelname.lower(), "logger": record.name,
                                "message": scrub(record.getMessage())})

        import ray  # noqa: F401  (its loggers and handlers exist once it is imported)

        handler = JsonHandler(logging.WARNING)
        names = ["", *[n for n in logging.root.manager.loggerDict if n == "ray" or n.startswith("ray.")]]
        for name in names:
            logger = logging.getLogger(name)
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.propagate = True
        logging.getLogger().addHandler(handler)

    def log(self, message: str) -> None:
        """A log line (secrets scrubbed). In JSON mode: {"ts", "event": "log", "message"}."""
        message = scrub(message)
        if self.mode == "json":
            self._json({"event": "log", "message": message})
        elif self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def progress(self, event: dict[str, Any]) -> None:
        """A progress event: stage, files_done, files_total, records, kept, records_per_second, eta_seconds."""
        if self.mode == "off":
            return
        if self.mode == "json":
            self._json({"event": "progress", **event})
        elif self.mode == "bar":
            self._update_bar(event)
        else:
            print(format_progress(event), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _update_bar(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        if self._bar is None or self._bar.total != event["files_total"]:
            self.close()
            self._bar = tqdm(total=event["files_total"], desc=event["stage"], unit="file", file=self.stream,
                             dynamic_ncols=True)
        self._bar.n = event["files_done"]
        self._bar.set_postfix(records=f"{event['records']:,}", kept=f"{event['kept']:,}",
                              rate=f"{event['records_per_second']:,.0f}/s", refresh=False)
        self._bar.refresh()
        if event["files_done"] >= event["files_total"]:
            self.close()

    def _json(self, record: dict[str, Any]) -> None:
        record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        print(json.dumps(record, default=str), file=self.stream, flush=True)


def format_progress(event: dict[str, Any]) -> str:
    return (f"[{event['stage']}] files {event['files_done']}/{event['files_total']}  records {event['records']:,}"
            f"  kept {event['kept']:,}  {event['records_per_second']:,.0f} records/s  ETA {event['eta_seconds'] or 0:,.0f}s")


class Progress:
    """Driver-side progress of a stage: files done / total, documents, docs/s and ETA, emitted at most every
    `every_seconds` (and at the end) to `emit`, or as a plain log line when no `emit` is given."""

    def __init__(self, total_files: int, every_seconds: float, log: Callable[[str], None],
                 emit: Callable[[dict[str, Any]], None] | None = None, stage: str = "filter"):
        self.total = total_files
        self.every = every_seconds
        self.emit = emit or (lambda event: log(format_progress(event)))
        self.stage = stage
        self.started = time.time()
        self.last = 0.0
        self.files = 0
        self.records = 0
        self.kept = 0

    def update(self, result: dict[str, Any]) -> None:
        self.files += 1
        self.records += result.get("records", 0)
        self.kept += result.get("kept", 0)
        now = time.time()
        if now - self.last >= self.every or self.files == self.total:
            self.last = now
            elapsed = max(now - self.started, 1e-9)
            self.emit({"stage": self.stage, "files_done": self.files, "files_total": self.total,
                       "records": self.records, "kept": self.kept,
                       "records_per_second": round(self.records / elapsed, 1),
                       "eta_seconds": round((self.total - self.files) * elapsed / self.files, 1) if self.files else None})
