"""What makes a stage resumable: a run record with the config it was made with, and completion markers.

Layout under a stage folder (`filtered/`, `dedup/`), in its hidden `.refinedweb/` that Parquet readers skip:
  run.json           the output-changing config keys of the run that made this folder, and its fingerprint
  plans.json         what the stages' `plan` hooks computed on the driver for this run (a threshold...), reused
                     by a resume
  done/<key>.json    one marker per finished unit of work (an input file, a dedup phase × part), holding
                     that unit's result; written only after the unit's files are committed
  done/phase=<name>.json   the markers of a finished dedup phase (or of a batch of filtered files) in one
                     file, written by the driver before it deletes them: a resume reads a few files
                     instead of one per unit (20,000 units are minutes of GETs on S3)

A re-run with the same config skips every unit that has a marker and redoes the rest: a unit's files
have deterministic names, so redoing an interrupted unit replaces what it had committed instead of
adding to it. A re-run with a different config is refused, naming the keys that differ, unless
`--overwrite` empties the folder first. No Ray here: markers are written by the tasks themselves.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..errors import UserError
from ..io.manifest import META
from ..io.storage import safe_name

RUN_RECORD = f"{META}/run.json"
PLANS_RECORD = f"{META}/plans.json"
DONE_DIR = f"{META}/done"

# The config sections whose values change what a stage writes (workers, retries, fetch settings do not).
DEDUP_SECTIONS = ("dedup", "tokens", "output", "inputs", "langid.partition_by_language")   # a section or one key
# inside those sections, but without effect on a finished stage's output: how the work is split (a resumed
# dedup keeps the split its intermediate data was made with, `plan-all`) or kept, and when a file fails.
# They may change between attempts: raising dedup.task_memory_mb after an out-of-memory failure resumes.
IGNORED_KEYS = {"dedup.keep_work", "dedup.parts", "dedup.task_memory_mb", "dedup.minhash.band_groups",
                "dedup.exact_substring.max_part_bytes", "filter.chunk_documents", "filter.max_error_fraction"}
CONSOLIDATED = "phase="
READERS = 32                         # markers read at once (S3 GETs in parallel)


def dedup_sections(cfg: dict[str, Any]) -> tuple[str, ...]:
    """The dedup stage's: `DEDUP_SECTIONS` and the sections of the user's methods in `dedup.methods`."""
    from ..dedup.methods import user_sections

    return (*DEDUP_SECTIONS, *user_sections(cfg))


def filter_sections(cfg: dict[str, Any]) -> tuple[str, ...]:
    """The filter stage's: the stage list, every section a configured stage reads, the output's."""
    from ..stages.contract import sections

    return ("filter", *sections(cfg), "output")


def flatten(config: dict[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    """`{"langid.threshold": 0.65, …}` for the chosen sections (or single dotted keys); values made JSON-stable."""
    out: dict[str, Any] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            for key in sorted(value):
                walk(value[key], f"{path}.{key}")
        else:
            out[path] = json.loads(json.dumps(value, sort_keys=True, default=str))

    for section in sections:
        value: Any = config
        for part in section.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        walk(value, section)
    return {k: v for k, v in out.items() if k not in IGNORED_KEYS}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def marker_path(folder: str, key: str) -> str:
    return f"{folder}/{DONE_DIR}/{safe_name(key, 120)}.json"


def config_differences(old: dict[str, Any], new: dict[str, Any], limit: int = 6) -> str:
    keys = sorted(set(old) | set(new))
    changed = [k for k in keys if old.get(k, "<absent>") != new.get(k, "<absent>")]
    shown = [f"{k}: {_short(old.get(k, '<absent>'))} -> {_short(new.get(k, '<absent>'))}" for k in changed[:limit]]
    more = f", and {len(changed) - limit} more" if len(changed) > limit else ""
    return ", ".join(shown) + more


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


class StageState:
    """The run record and markers of one stage folder in an output storage."""

    def __init__(self, storage, folder: str, config: dict[str, Any], sections: tuple[str, ...],
                 versions: dict[str, str] | None = None, files: dict[str, str] | None = None):
        """`versions`: the code version of each stage or method (`settings.code_version`); `files`: the sha256 of
        each file a stage loads (`stage.name` -> hash); both fingerprinted too."""
        self.storage = storage
        self.folder = folder
        self.settings = flatten(config, sections)
        self.settings.update({f"versions.{name}": v for name, v in (versions or {}).items()})
        self.settings.update({f"files.{name}": v for name, v in (files or {}).items()})
        self.fingerprint = digest(self.settings)

    def prepare(self, overwrite: bool, log: Callable[[str], None], extra_folders: tuple[str, ...] = (),
                inputs_digest: str | None = None) -> None:
        """Start or resume: refuse a folder made with another config; `overwrite` empties it first.

        `inputs_digest` (dedup): a corpus-level stage whose inputs changed cannot reuse any of its
        partial work, so it starts over (with a log line) instead of refusing.
        """
        folders = (self.folder, *extra_folders)
        if overwrite:
            for folder in folders:
                self.storage.delete_tree(folder)
            log(f"[{self.folder}] --overwrite: removed earlier output under {self.storage.uri}/{self.folder}/")
        record = self._read_record()
        if record is not None:
            old = record.get("settings", {})
            if record.get("fingerprint") != self.fingerprint:
                raise UserError(
                    f"{self.storage.uri}/{self.folder} was written with a different config "
                    f"({config_differences(old, self.settings)}); use --overwrite to start over, or another --output")
            if inputs_digest is not None and record.get("inputs_digest") != inputs_digest:
                log(f"[{self.folder}] the inputs differ from the earlier run's: starting this stage over")
                for folder in folders:
                    self.storage.delete_tree(folder)
                record = None
        elif any(self.storage.list(folder, "*.parquet") for folder in folders):
            raise UserError(f"{self.storage.uri}/{self.folder} holds output without a run record "
                            f"({RUN_RECORD}); use --overwrite to replace it, or another --output")
        for folder in folders:   # temp files / unfinished uploads of a killed run
            self.storage.clean_incomplete(folder)
        if record is None:
            self.storage.write_json(f"{self.folder}/{RUN_RECORD}",
                                    {"fingerprint": self.fingerprint, "inputs_digest": inputs_digest,
                                     "settings": self.settings})

    def plans(self, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The stored plans of this run, or `make()`'s, stored first (after `prepare`: an --overwrite or a changed
        config has emptied the folder)."""
        text = self.storage.read_text(f"{self.folder}/{PLANS_RECORD}")
        if text is not None:
            try:
                return json.loads(text)
            except ValueError:
                pass                                  # written atomically; unreadable: made again
        plans = make()
        self.storage.write_json(f"{self.folder}/{PLANS_RECORD}", plans)
        return plans

    def _read_record(self) -> dict[str, Any] | None:
        text = self.storage.read_text(f"{self.folder}/{RUN_RECORD}")
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise UserError(f"{self.storage.uri}/{self.folder}/{RUN_RECORD} is not valid JSON; "
                            f"use --overwrite to start over") from None

    def completed(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        """key -> stored result, for every unit whose marker key starts with `prefix`: one listing of the
        done folder, the consolidated files, then the remaining markers read in parallel."""
        names = [p.rsplit("/", 1)[-1].removesuffix(".json") for p in self.storage.list(f"{self.folder}/{DONE_DIR}", "*.json")]
        grouped = [n for n in names if n.startswith(CONSOLIDATED)]
        loose = [n for n in names if not n.startswith(CONSOLIDATED) and n.startswith(prefix)]
        done: dict[str, dict[str, Any]] = {}
        for _, text in _read_all(self.storage, [f"{self.folder}/{DONE_DIR}/{n}.json" for n in grouped]):
            try:
                done.update({k: v for k, v in json.loads(text or "").items() if k.startswith(prefix)})
            except ValueError:                # written atomically; unreadable: its units are redone
                continue
        for relpath, text in _read_all(self.storage, [f"{self.folder}/{DONE_DIR}/{n}.json"
                                                       for n in loose if n not in done]):
            try:
                done[relpath.rsplit("/", 1)[-1].removesuffix(".json")] = json.loads(text or "")
            except ValueError:
                continue   # markers are written atomically; an unreadable one only means the unit is redone
        return done

    def consolidate(self, name: str, results: dict[str, dict[str, Any]], replaces: list[str] = ()) -> None:
        """Replace the markers `results` (key -> result) by one file, `done/phase=<name>.json`, and the
        consolidated files whose names start with one of `replaces` (a phase's batches, now in its file)."""
        grouped = f"{self.folder}/{DONE_DIR}/{CONSOLIDATED}{safe_name(name, 100)}.json"
        self.storage.write_json(grouped, results)
        stale = [marker_path(self.folder, key) for key in results]
        for prefix in replaces:
            stale += [p for p in self.storage.list(f"{self.folder}/{DONE_DIR}", f"{CONSOLIDATED}{safe_name(prefix, 100)}*.json")
                      if p != grouped]
        self.storage.delete_many(stale)


def _read_all(storage, relpaths: list[str]) -> list[tuple[str, str | None]]:
    """(relpath, text) of every file, read by up to READERS threads (S3 GETs wait on the network)."""
    if len(relpaths) < 2:
        return [(p, storage.read_text(p)) for p in relpaths]
    with ThreadPoolExecutor(min(READERS, len(relpaths))) as pool:
        return list(zip(relpaths, pool.map(storage.read_text, relpaths)))


def write_marker(storage, folder: str, key: str, result: dict[str, Any]) -> None:
    storage.write_json(marker_path(folder, key), result)
