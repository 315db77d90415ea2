"""The dedup methods and the contract a method keeps. `dedup.methods` lists them in the order they run, each
seeing only the documents the earlier ones left: the packaged `minhash`, `exact_substring` and `url` (a module
each in this folder), or a user's module named by its dotted path (configured by a top-level YAML section named
after its `NAME`, as a user's filter stage is; `tests/toy_dedup_method.py` is a complete example).

A method is a module that is a `DedupMethod`: `NAME`, `VERSION` (optional; bump it when the method's behaviour
changes: the resume fingerprint covers it, a user's module without one is fingerprinted by its source), `run(ctx)` (schedules its phases through `ctx.units`,
returns its statistics) and `decision(storage, cfg, part, stack)` (what it decided about one part, applied to
the part's batches by later methods' scans and by the output). Optional:
  BUCKET_BYTES, planned_records(cfg, corpus), min_buckets(cfg, parts)   its shuffle's sizing (`dedup/shuffle.py`)
  check(cfg, corpus)                     refuse a bad setting before any work (a UserError)
  plan(cfg, corpus, budget, output, fetch) -> dict   what a fresh run records for the method (a resume reuses it;
                                         `ctx.plans[NAME]`); its "buckets" join the plan's shuffle sizes
  after_output(ctx, finished) -> dict    work after the output is written (URL dedup's seen-URL store)
  output_columns(cfg) -> {name: type}    columns its decision adds to every output row (MinHash: duplicate_count)
"""

from __future__ import annotations

import importlib
from contextlib import ExitStack
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from ...errors import UserError
from ...settings import code_version

if TYPE_CHECKING:
    from ..plan import DedupRun

PACKAGED = ("minhash", "exact_substring", "url")


class Decision(Protocol):
    """A method's decision on one part: applied to each batch of the part's rows (part-local row numbers and
    their table, text as the earlier methods left it), it returns the surviving rows, their table (text cut
    where the method cuts) and counts for the names in `extra_stats`."""

    extra_stats: tuple[str, ...]

    def __call__(self, rows: np.ndarray, table: pa.Table) -> tuple[np.ndarray, pa.Table, dict[str, int]]: ...


@runtime_checkable
class DedupMethod(Protocol):
    NAME: str

    def run(self, ctx: "DedupRun") -> dict[str, Any]: ...

    def decision(self, storage: Any, cfg: dict[str, Any], part: int, stack: ExitStack) -> Decision: ...


def load_method(entry: str) -> ModuleType:
    """`minhash` -> refinedweb.dedup.methods.minhash; `mypkg.my_method` -> that module, checked to be a method."""
    path = f"{__name__}.{entry}" if entry in PACKAGED else entry
    if "." not in entry and entry not in PACKAGED:
        raise UserError(f"unknown dedup method '{entry}': dedup.methods takes {', '.join(PACKAGED)} or the dotted "
                        "path of your own method module")
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name and path.startswith(exc.name):
            raise UserError(f"dedup.methods: no module '{entry}' can be imported here (on a cluster, ship it with "
                            "PYTHONPATH or the job's runtime env py_modules)") from None
        raise
    if not isinstance(module, DedupMethod):
        missing = [name for name in ("NAME", "run", "decision") if not hasattr(module, name)]
        raise UserError(f"dedup.methods: module {path} is not a dedup method (no {', '.join(missing)})")
    return module


def configured(cfg: dict[str, Any]) -> dict[str, ModuleType]:
    """NAME -> module of every method in `dedup.methods`, in order (names key work folders, markers and stats)."""
    out: dict[str, ModuleType] = {}
    for entry in cfg["dedup"]["methods"]:
        module = load_method(entry)
        if module.NAME in out:
            raise UserError(f"dedup.methods names the method '{module.NAME}' twice")
        out[module.NAME] = module
    return out


def user_sections(cfg: dict[str, Any]) -> list[str]:
    """The top-level config sections of the user's methods in `dedup.methods` (named after their NAME)."""
    return [load_method(m).NAME for m in cfg["dedup"]["methods"] if m not in PACKAGED]


def versions(cfg: dict[str, Any]) -> dict[str, str]:
    """NAME -> code version of every configured method (for the resume fingerprint)."""
    return {name: code_version(module) for name, module in configured(cfg).items()}

