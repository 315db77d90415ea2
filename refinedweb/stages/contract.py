"""The contract every document stage keeps, and the pipeline built from `filter.stages`.

A stage is a module exporting:
  NAME        its accounting name, output folder and YAML section (two stages with one NAME are refused)
  LABEL       its name in reports
  build(section, shared) -> Stage   the stage for one worker: `apply` edits a `Document` (text, fields,
              `metadata`) and returns a drop reason or None; or `batch` does that for a list (a model), in
              batches of `batch_size` documents gathered across chunks when it asks for a size
and optionally:
  SIGNALS     metadata keys it writes -> Arrow types: they become output columns
  CONFIG      its typed config, checked on the driver before any task
  READS       the other config sections it reads through `shared.section(...)`: they join the resume
              fingerprint; reading one it did not declare is an error
  VERSION     bump it when the stage's behaviour changes: the fingerprint covers it, so a re-run refuses to
              resume an output made by the old code (a user's module without VERSION: the hash of its source)
  EDITS_TEXT  True when it changes `doc.text` (extract, line_filter): such a stage must come before `tokens`,
              which counts the text once, at the end
  files(section) -> {name: uri}   files every worker loads (a model): the driver hashes each before the run, the
              hashes join the fingerprint, and `shared.plan["files"][name]` gives the workers the identity to check
  plan(section, context) -> dict  work done once on the driver before any task (`runtime/stage_plans.py`), e.g. a
              threshold estimated from a sample of the input, or an index the tasks memory-map; stored with the run,
              so that every task and a resume use the same; `shared.plan` in `build`
  SECTION     its YAML section when that is not NAME (decontaminate reads `decontamination`)
  summary(section, plan, stats) -> dict  after the pass, what the stage found over the whole run (its stats: the
              summed `counts`), written as `<folder>/.refinedweb/<SECTION>.json` beside the stage's stats
A stage that drops a document may say what it matched under `doc.metadata[DETAIL]`: the `detail` column of its
`dropped/` row (decontaminate: the benchmark and the n-gram).
A `build` may set `signals` on the Stage it returns when its columns depend on its config (else: SIGNALS).
Packaged stages live in `refinedweb/stages/<name>.py`; any other importable module is named by its dotted path
in `filter.stages` and configured by a YAML section named after its `NAME`. The stage list, the accounting, the
resume fingerprint, the report and the output columns all derive from it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Mapping

from ..documents import Document
from ..errors import UserError
from ..settings import code_version

PACKAGE = "refinedweb.stages"
READ = "read"                  # the source stage: records -> pages, accounted before the document stages
TOKENS = "tokens"              # counts the final text: no stage that edits text may come after it
PLANS = "_plans"               # the config key carrying the driver's plans to the workers (not a section)
DETAIL = "drop_detail"         # metadata key: what a dropping stage matched, to the dropped row's `detail`


@dataclass
class Stage:
    name: str
    apply: Callable[[Document], str | None] | None = None
    batch: Callable[[list[Document]], list[str | None]] | None = None
    batch_size: int | None = None     # batch: documents per call, gathered across chunks (None: a chunk's survivors)
    signals: dict[str, Any] = field(default_factory=dict)   # the module's SIGNALS (set by build_stages)
    counts: tuple[str, ...] = ()     # kinds the stage counts per document (`doc.metadata[count_key(kind)]`), summed
                                     # into its stats as `counts` (e.g. pii: email, ip): events, not documents; a
                                     # value may be a {name: n} dict, summed per name (decontaminate: per n-gram)
    edits_text: bool = False                                 # the module's EDITS_TEXT (set by build_stages)

    def __post_init__(self) -> None:
        if (self.apply is None) == (self.batch is None):
            raise TypeError(f"stage {self.name}: give exactly one of apply (per document) or batch")
        if self.batch_size is not None and (self.batch is None or self.batch_size < 1):
            raise TypeError(f"stage {self.name}: batch_size needs batch and must be >= 1")

    def run(self, docs: list[Document]) -> list[str | None]:
        if self.batch is not None:
            return self.batch(docs)
        return [self.apply(doc) for doc in docs]


class Shared:
    """What `build` may use beyond its own section: the sections it declares in `READS` (read-only) and
    resources that several stages share in one worker (the URL blocklist loaded by the driver, the fastText
    model). `for_stage` gives each stage its view."""

    def __init__(self, cfg: Mapping[str, Any], blocklist=None):
        self._cfg = cfg
        self.blocklist = blocklist
        self._plans: Mapping[str, Any] = cfg.get(PLANS) or {}
        self._cache: dict[str, Any] = {}
        self._allowed: set[str] | None = None
        self._stage = ""

    def for_stage(self, module: ModuleType) -> "Shared":
        view = Shared.__new__(Shared)
        view.__dict__.update(self.__dict__)          # the same cache and blocklist
        view._allowed, view._stage = {section_name(module), *getattr(module, "READS", ())}, module.NAME
        return view

    def section(self, name: str) -> Mapping[str, Any]:
        if self._allowed is not None and name not in self._allowed:
            raise UserError(f"stage {self._stage} reads config section '{name}' without declaring it: add it to "
                            "its module's READS (so that the resume fingerprint covers it)")
        return self._cfg[name]

    @property
    def plan(self) -> Mapping[str, Any]:
        """What this stage's `plan` returned on the driver (empty when it has none, or outside a run)."""
        return self._plans.get(self._stage, {})

    @property
    def fetch(self):
        """How to read remote files (fetch.*, s3.*): never changes what a stage writes, so not fingerprinted."""
        from ..io.remote import FetchConfig

        return FetchConfig.from_config(self._cfg)

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def section_name(module: ModuleType) -> str:
    """The YAML section a stage module reads: its SECTION, else its NAME."""
    return getattr(module, "SECTION", module.NAME)


def count_key(kind: str) -> str:
    """The metadata key under which a stage leaves a document's count of `kind` for its stats."""
    return f"count:{kind}"


def stage_entries(cfg: Mapping[str, Any]) -> list[str]:
    entries = cfg["filter"]["stages"]
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise UserError("config key 'filter.stages' must be a list of stage names or module paths")
    if len(set(entries)) != len(entries):
        raise UserError("config key 'filter.stages' names a stage twice")
    return entries


def stage_module(entry: str) -> ModuleType:
    """`quality` -> refinedweb.stages.quality; `mypkg.c4_lines` -> that module. A user's module must import on
    the driver (checked first) and on every worker."""
    path = entry if "." in entry else f"{PACKAGE}.{entry}"
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name and path.startswith(exc.name):
            if "." not in entry:
                raise UserError(f"filter.stages: no stage '{entry}' (a refinedweb stage name, or the dotted path "
                                "of your own module)") from None
            raise UserError(f"filter.stages: module '{entry}' cannot be imported here; put its folder on PYTHONPATH "
                            "(on a cluster, ship it to every node: the job's runtime env py_modules, or the "
                            "image)") from None
        raise
    missing = [name for name in ("NAME", "build") if not hasattr(module, name)]
    if missing:
        raise UserError(f"filter.stages: module {path} is not a stage (no {', '.join(missing)})")
    return module


def stage_modules(cfg: Mapping[str, Any]) -> list[ModuleType]:
    modules = [stage_module(entry) for entry in stage_entries(cfg)]
    names = [m.NAME for m in modules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"filter.stages: two stages are named '{twice[0]}' (their modules' NAME): a NAME is a "
                        "stage's accounting name and config section, one per stage")
    seen_tokens = False
    for module in modules:
        if module.NAME == TOKENS:
            seen_tokens = True
        elif seen_tokens and getattr(module, "EDITS_TEXT", False):
            raise UserError(f"filter.stages: {module.NAME} edits the text after {TOKENS} counted it (token_count "
                            f"would be stale): place it before {TOKENS}")
    return modules


def versions(cfg: Mapping[str, Any]) -> dict[str, str]:
    """NAME -> code version of every configured stage (for the resume fingerprint)."""
    return {m.NAME: code_version(m) for m in stage_modules(cfg)}


def sections(cfg: Mapping[str, Any]) -> list[str]:
    """The config sections the stages read: their own, and those a module says it also reads (`READS`)."""
    out: list[str] = [READ]
    for module in stage_modules(cfg):
        for name in (section_name(module), *getattr(module, "READS", ())):
            if name in cfg and name not in out:
                out.append(name)
    return out


def labels(cfg: Mapping[str, Any]) -> dict[str, str]:
    return {m.NAME: getattr(m, "LABEL", m.NAME) for m in stage_modules(cfg)}


def resources(cfg: Mapping[str, Any]) -> tuple[float, float]:
    """(num_cpus, num_gpus) of a filter task: the largest request of any configured stage's section."""
    cpus, gpus = 1.0, 0.0
    for module in stage_modules(cfg):
        section = cfg.get(section_name(module)) or {}
        cpus = max(cpus, float(section.get("num_cpus", 1) or 1))
        gpus = max(gpus, float(section.get("num_gpus", 0) or 0))
    return cpus, gpus


def check_stages(cfg: Mapping[str, Any]) -> None:
    """On the driver, before any task: every enabled stage's typed config (`CONFIG`) builds from its section,
    so a bad threshold is one line, not a failure of every input file in the workers."""
    for module in stage_modules(cfg):
        section = cfg.get(section_name(module)) or {}
        if section.get("enabled", True) is not False and hasattr(module, "CONFIG"):
            module.CONFIG.from_config(section)


def build_stages(cfg: Mapping[str, Any], blocklist=None) -> list[Stage]:
    """The enabled stages in config order (a section with `enabled: false` is skipped, but still accounted)."""
    shared = Shared(cfg, blocklist)
    built = []
    for module in stage_modules(cfg):
        section = cfg.get(section_name(module)) or {}
        if section.get("enabled", True) is False:
            built.append(Stage(module.NAME, apply=passes))
            continue
        stage = module.build(section, shared.for_stage(module))
        stage.signals = dict(stage.signals or getattr(module, "SIGNALS", {}))
        stage.edits_text = bool(getattr(module, "EDITS_TEXT", False))
        built.append(stage)
    return built


def passes(doc: Document) -> None:
    """The step of a stage that is off: every document goes on."""
    return None
