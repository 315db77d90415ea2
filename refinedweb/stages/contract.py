"""The contract every document stage keeps, and the pipeline built from `filter.stages`.

A stage is a module exporting `NAME` (its accounting name and YAML section), `LABEL` (for reports),
optionally `SIGNALS` (metadata keys it writes -> Arrow types; they become output columns) and `CONFIG` (its
typed config, checked on the driver before any task), and `build(section, shared) -> Stage`. The `Stage` it returns edits a `Document` (text, fields, `metadata`)
and returns a drop reason or None, per document (`apply`) or per batch (`batch`, for model-based
stages). Packaged stages live in `refinedweb/stages/<name>.py`; any other importable module is named by
its dotted path in `filter.stages` and configured by a YAML section named after its `NAME`. The stage
list, the accounting, the resume fingerprint, the report and the output columns all derive from it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Mapping

from ..documents import Document
from ..errors import UserError

PACKAGE = "refinedweb.stages"
READ = "read"                  # the source stage: records -> pages, accounted before the document stages


@dataclass
class Stage:
    name: str
    apply: Callable[[Document], str | None] | None = None
    batch: Callable[[list[Document]], list[str | None]] | None = None
    signals: dict[str, Any] = field(default_factory=dict)   # the module's SIGNALS (set by build_stages)

    def __post_init__(self) -> None:
        if (self.apply is None) == (self.batch is None):
            raise TypeError(f"stage {self.name}: give exactly one of apply (per document) or batch")

    def run(self, docs: list[Document]) -> list[str | None]:
        if self.batch is not None:
            return self.batch(docs)
        return [self.apply(doc) for doc in docs]


class Shared:
    """What `build` may use beyond its own section: other sections (read-only) and resources that several
    stages share in one worker (the URL blocklist loaded by the driver, the fastText model)."""

    def __init__(self, cfg: Mapping[str, Any], blocklist=None):
        self.cfg = cfg
        self.blocklist = blocklist
        self._cache: dict[str, Any] = {}

    def section(self, name: str) -> Mapping[str, Any]:
        return self.cfg[name]

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def stage_entries(cfg: Mapping[str, Any]) -> list[str]:
    entries = cfg["filter"]["stages"]
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise UserError("config key 'filter.stages' must be a list of stage names or module paths")
    if len(set(entries)) != len(entries):
        raise UserError("config key 'filter.stages' names a stage twice")
    return entries


def stage_module(entry: str) -> ModuleType:
    """`quality` -> refinedweb.stages.quality; `mypkg.c4_lines` -> that module."""
    path = entry if "." in entry else f"{PACKAGE}.{entry}"
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name and path.startswith(exc.name):
            raise UserError(f"filter.stages: no stage module '{entry}' (a refinedweb stage name or an importable "
                            "module path)") from None
        raise
    missing = [name for name in ("NAME", "build") if not hasattr(module, name)]
    if missing:
        raise UserError(f"filter.stages: module {path} is not a stage (no {', '.join(missing)})")
    return module


def stage_modules(cfg: Mapping[str, Any]) -> list[ModuleType]:
    return [stage_module(entry) for entry in stage_entries(cfg)]


def sections(cfg: Mapping[str, Any]) -> list[str]:
    """The config sections the stages read: their own, and those a module says it also reads (`READS`)."""
    out: list[str] = [READ]
    for module in stage_modules(cfg):
        for name in (module.NAME, *getattr(module, "READS", ())):
            if name in cfg and name not in out:
                out.append(name)
    return out


def labels(cfg: Mapping[str, Any]) -> dict[str, str]:
    return {m.NAME: getattr(m, "LABEL", m.NAME) for m in stage_modules(cfg)}


def resources(cfg: Mapping[str, Any]) -> tuple[float, float]:
    """(num_cpus, num_gpus) of a filter task: the largest request of any configured stage's section."""
    cpus, gpus = 1.0, 0.0
    for module in stage_modules(cfg):
        section = cfg.get(module.NAME) or {}
        cpus = max(cpus, float(section.get("num_cpus", 1) or 1))
        gpus = max(gpus, float(section.get("num_gpus", 0) or 0))
    return cpus, gpus


def check_stages(cfg: Mapping[str, Any]) -> None:
    """On the driver, before any task: every enabled stage's typed config (`CONFIG`) builds from its section,
    so a bad threshold is one line, not a failure of every input file in the workers."""
    for module in stage_modules(cfg):
        section = cfg.get(module.NAME) or {}
        if section.get("enabled", True) is not False and hasattr(module, "CONFIG"):
            module.CONFIG.from_config(section)


def build_stages(cfg: Mapping[str, Any], blocklist=None) -> list[Stage]:
    """The enabled stages in config order (a section with `enabled: false` is skipped, but still accounted)."""
    shared = Shared(cfg, blocklist)
    built = []
    for module in stage_modules(cfg):
        section = cfg.get(module.NAME) or {}
        if section.get("enabled", True) is False:
            built.append(Stage(module.NAME, apply=passes))
            continue
        stage = module.build(section, shared)
        stage.signals = dict(getattr(module, "SIGNALS", {}))
        built.append(stage)
    return built


def passes(doc: Document) -> None:
    """The step of a stage that is off: every document goes on."""
    return None
