"""Mixing plan (pure, no Ray, no I/O): which row groups of which source go into which output shard.

The unit of selection is a Parquet row group ("chunk"). For each source, row groups are taken in a
seeded random order, epoch after epoch, until the source's token budget (weight × total_tokens) is
met; the last one is cut at the row where the budget is reached, so every source's tokens are exact to
within one document. Chunks are then dealt, in a seeded random order, to the output shards with the
fewest bytes so far, so that every shard holds a random mixture of all sources.

A source may weight its documents by a column (`repeat`: FineWeb-2's rehydration by `duplicate_count`, or
quality bins): a document in a bin of `times: n` appears n times an epoch (0: never). Copy r of a row
group's documents (those with times > r) is a unit of its own, taken in the same seeded random order as the
row groups, so that the copies of a document land in different places of the mix.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError

MIX_KEYS = {"total_tokens", "seed", "shard_max_bytes", "shuffle_window_bytes", "allow_shortfall", "encoding", "sources"}
SOURCE_KEYS = {"name", "input", "weight", "max_epochs", "text_field", "repeat"}
REPEAT_KEYS = {"column", "bins", "missing"}
MAX_TIMES = 100


@dataclass(frozen=True)
class Repeat:
    """How many times a document appears per epoch, by the bin its `column` value falls in."""

    column: str
    maxes: tuple[float, ...]      # each bin's inclusive upper bound; the last is +inf
    times: tuple[int, ...]
    missing: int = 1              # a null value: a missing value is not a value of any bin

    @classmethod
    def parse(cls, raw: Any, where: str) -> "Repeat":
        if not isinstance(raw, dict) or set(raw) - REPEAT_KEYS or not {"column", "bins"} <= set(raw):
            raise UserError(f"{where}.repeat must be a mapping with column, bins and optionally missing")
        bins = raw["bins"]
        if not isinstance(bins, list) or not bins or not all(isinstance(b, dict) for b in bins):
            raise UserError(f"{where}.repeat.bins must be a list of {{max, times}} (the last without max)")
        maxes, times = [], []
        for i, entry in enumerate(bins):
            last = i == len(bins) - 1
            if set(entry) - {"max", "times"} or "times" not in entry or ("max" in entry) == last:
                raise UserError(f"{where}.repeat.bins[{i}] must be {{max: V, times: N}}, and the last one "
                                "{times: N} alone (every value above the other maxes)")
            maxes.append(float("inf") if last else _number(entry["max"], f"{where}.repeat.bins[{i}].max"))
            times.append(_times(entry["times"], f"{where}.repeat.bins[{i}].times"))
        if any(b <= a for a, b in zip(maxes, maxes[1:])):
            raise UserError(f"{where}.repeat.bins: the maxes must increase")
        if not any(times):
            raise UserError(f"{where}.repeat: every bin has times 0 (nothing would be taken)")
        return cls(str(raw["column"]), tuple(maxes), tuple(times), _times(raw.get("missing", 1), f"{where}.repeat.missing"))

    @property
    def levels(self) -> int:
        return max(*self.times, self.missing)

    def bins_of(self, values: np.ndarray) -> np.ndarray:
        """The bin index of each value (float, NaN for null); len(maxes) for a null."""
        out = np.searchsorted(np.asarray(self.maxes), values, side="left")
        out[np.isnan(values)] = len(self.maxes)
        return out

    def times_of(self, values: np.ndarray) -> np.ndarray:
        return np.asarray([*self.times, self.missing], dtype=np.int64)[self.bins_of(values)]

    def describe(self) -> list[dict[str, Any]]:
        lows = [float("-inf"), *self.maxes[:-1]]
        return [{"above": None if lo == float("-inf") else lo, "max": None if hi == float("inf") else hi, "times": t}
                for lo, hi, t in zip(lows, self.maxes, self.times)] + [{"missing": True, "times": self.missing}]


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"mix: {key} must be a number, got {value!r}")
    return float(value)


def _times(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIMES:
        raise UserError(f"mix: {key} must be a whole number from 0 to {MAX_TIMES}, got {value!r}")
    return value


@dataclass(frozen=True)
class Source:
    name: str
    input: str
    weight: float          # normalised: the weights of a mix sum to 1
    max_epochs: float = 1.0
    text_field: str = "text"   # the field holding the text in the source's JSONL files
    repeat: Repeat | None = None


@dataclass(frozen=True)
class MixConfig:
    total_tokens: int
    seed: int
    shard_max_bytes: int
    shuffle_window_bytes: int
    allow_shortfall: bool
    encoding: str
    sources: tuple[Source, ...]

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> "MixConfig":
        if not isinstance(data, dict) or not isinstance(data.get("mix"), dict):
            raise UserError("a mix config needs a top-level 'mix:' section (see configs/mix/)")
        mix = data["mix"]
        unknown = sorted(set(mix) - MIX_KEYS)
        if unknown:
            raise UserError(f"unknown mix key(s) {', '.join(unknown)} (valid: {', '.join(sorted(MIX_KEYS))})")
        try:
            total = int(mix["total_tokens"])
        except (KeyError, TypeError, ValueError):
            raise UserError("mix.total_tokens must be a whole number of tokens") from None
        if total <= 0:
            raise UserError("mix.total_tokens must be > 0")
        raw = mix.get("sources")
        if not isinstance(raw, list) or not raw:
            raise UserError("mix.sources must be a non-empty list of {name, input, weight}")
        names = set()
        sources = []
        for i, src in enumerate(raw):
            if not isinstance(src, dict):
                raise UserError(f"mix.sources[{i}] must be a mapping with name, input and weight")
            unknown = sorted(set(src) - SOURCE_KEYS)
            missing = sorted({"name", "input", "weight"} - set(src))
            if unknown or missing:
                raise UserError(f"mix.sources[{i}]: " + "; ".join(
                    ([f"unknown key(s) {', '.join(unknown)}"] if unknown else []) +
                    ([f"missing {', '.join(missing)}"] if missing else [])))
            name = str(src["name"])
            if name in names:
                raise UserError(f"mix.sources: the name '{name}' is used twice")
            names.add(name)
            try:
                weight, epochs = float(src["weight"]), float(src.get("max_epochs", 1))
            except (TypeError, ValueError):
                raise UserError(f"mix.sources[{i}] ({name}): weight and max_epochs must be numbers") from None
            if weight <= 0 or epochs <= 0:
                raise UserError(f"mix.sources[{i}] ({name}): weight and max_epochs must be > 0")
            repeat = Repeat.parse(src["repeat"], f"mix.sources[{i}] ({name})") if src.get("repeat") is not None else None
            sources.append(Source(name, str(src["input"]), weight, epochs, str(src.get("text_field", "text")), repeat))
        total_weight = sum(s.weight for s in sources)
        sources = [Source(s.name, s.input, s.weight / total_weight, s.max_epochs, s.text_field, s.repeat)
                   for s in sources]
        return cls(total_tokens=total, seed=int(mix.get("seed", 0)),
                   shard_max_bytes=int(mix.get("shard_max_bytes", 1 << 30)),
                   shuffle_window_bytes=int(mix.get("shuffle_window_bytes", 256 << 20)),
                   allow_shortfall=bool(mix.get("allow_shortfall", False)),
                   encoding=str(mix.get("encoding", "gpt2")), sources=tuple(sources))


@dataclass(frozen=True)
class RowGroup:
    """One row group of one input file, as the scan found it."""

    source: int
    file: str
    group: int
    rows: int
    tokens: int            # with `repeat`: of every copy (the sum of `levels`)
    bytes: int             # compressed bytes in the input file
    levels: tuple[int, ...] = ()    # with `repeat`: tokens of copy r (the rows with times > r), r = 0, 1, ...
    raw_tokens: int = 0             # with `repeat`: tokens of the rows once

    def units(self) -> list[tuple[int, int, float]]:
        """(copy, tokens, bytes) of each non-empty copy of this row group."""
        if not self.levels:
            return [(0, self.tokens, self.bytes)]
        return [(r, t, self.bytes * t / max(1, self.raw_tokens)) for r, t in enumerate(self.levels) if t > 0]


@dataclass
class Chunk:
    """Rows [start, stop) of a row group, taken in one epoch."""

    source: int
    file: str
    group: int
    start: int
    stop: int
    tokens: int
    bytes: float
    epoch: int
    copy: int = 0          # with `repeat`: only the rows whose times exceed it

    def key(self) -> tuple:
        return (self.source, self.file, self.group, self.start, self.epoch, self.copy)


@dataclass
class SourcePlan:
    name: str
    weight: float
    target_tokens: int
    available_tokens: int
    available_documents: int
    max_epochs: float
    chunks: list[Chunk] = field(default_factory=list)
    cut: tuple[int, int, int] | None = None     # (chunk index, row group rows, tokens wanted) to resolve

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.chunks)

    @property
    def documents(self) -> int:
        return sum(c.stop - c.start for c in self.chunks)

    @property
    def shortfall(self) -> int:
        return max(0, self.target_tokens - self.tokens)


def _rng(seed: int, *parts: int) -> np.random.Generator:
    return np.random.default_rng([seed, *parts])


def select(cfg: MixConfig, groups: list[RowGroup]) -> list[SourcePlan]:
    """Per source, the chunks to take. The last chunk of a source may still need a row cut: its
    `cut` tells the caller which chunk and how many tokens of it are wanted (see `apply_cut`)."""
    plans = []
    for index, source in enumerate(cfg.sources):
        mine = [g for g in groups if g.source == index and g.rows > 0]
        units = [(g, copy, tokens, size) for g in mine for copy, tokens, size in g.units()]
        available = sum(g.tokens for g in mine)
        plan = SourcePlan(source.name, source.weight, round(source.weight * cfg.total_tokens), available,
                          sum(g.rows for g in mine), source.max_epochs)
        budget = plan.target_tokens
        epoch = 0
        while budget > 0 and available > 0 and epoch < math.ceil(source.max_epochs):
            # a fractional max_epochs (e.g. 1.5) caps the last epoch's tokens
            epoch_cap = available * min(1.0, source.max_epochs - epoch)
            taken_this_epoch = 0
            for g, copy, tokens, size in (units[i] for i in _rng(cfg.seed, index, epoch).permutation(len(units))):
                room = min(budget, epoch_cap - taken_this_epoch)
                if room <= 0:
                    break
                chunk = Chunk(index, g.file, g.group, 0, g.rows, tokens, size, epoch, copy)
                if tokens > room:
                    plan.cut = (len(plan.chunks), g.rows, int(room))
                    plan.chunks.append(chunk)
                    budget = 0
                    break
                plan.chunks.append(chunk)
                budget -= tokens
                taken_this_epoch += tokens
            epoch += 1
        plans.append(plan)
    return plans


def apply_cut(plan: SourcePlan, row_tokens: np.ndarray) -> None:
    """Cut the plan's last chunk where its rows' running token count reaches the tokens wanted (with `repeat`,
    `row_tokens` is 0 for the rows outside the chunk's copy)."""
    if plan.cut is None:
        return
    index, rows, wanted = plan.cut
    chunk = plan.chunks[index]
    running = np.cumsum(row_tokens)
    stop = int(np.searchsorted(running, wanted, side="right"))
    # take the row that crosses the budget if that lands closer to it than stopping short
    if stop < len(running) and (running[stop] - wanted) < (wanted - (running[stop - 1] if stop else 0)):
        stop += 1
    if stop == 0:
        plan.chunks.pop(index)
    else:
        chunk.stop = stop
        chunk.bytes = chunk.bytes * stop / rows
        chunk.tokens = int(running[stop - 1])
    plan.cut = None


def assign(cfg: MixConfig, plans: list[SourcePlan]) -> list[list[Chunk]]:
    """Deal the chunks to output shards so that every shard holds every source in about its share.

    The shard count comes from the chunks' bytes. Each source's chunks are dealt, in a seeded random order,
    to the shard with the fewest bytes *of that source* (then the fewest bytes in all); a source with fewer
    chunks than shards has its chunks split by rows first, so it still reaches every shard.
    """
    chunks = [c for p in plans for c in p.chunks]
    if not chunks:
        return []
    shards = max(1, math.ceil(sum(c.bytes for c in chunks) / cfg.shard_max_bytes))
    out: list[list[Chunk]] = [[] for _ in range(shards)]
    totals = [0.0] * shards
    for index, plan in enumerate(plans):
        pieces = _split(plan.chunks, shards)
        heap = [(0.0, 0.0, s) for s in range(shards)]
        for i in _rng(cfg.seed, 1_000_003, index).permutation(len(pieces)):
            _, _, s = heapq.heappop(heap)
            out[s].append(pieces[i])
            totals[s] += pieces[i].bytes
            mine = sum(c.bytes for c in out[s] if c.source == plan.chunks[0].source)
            heapq.heappush(heap, (mine, totals[s], s))
    rng = _rng(cfg.seed, 2_000_003)
    return [[shard[i] for i in rng.permutation(len(shard))] for shard in out if shard]


def _split(chunks: list[Chunk], at_least: int) -> list[Chunk]:
    """The chunks, split by rows into about `at_least` pieces when there are fewer (token and byte
    figures shared out by rows: they only balance shards, the report counts what is written)."""
    if len(chunks) >= at_least or not chunks:
        return list(chunks)
    ways = math.ceil(at_least / len(chunks))
    pieces = []
    for c in chunks:
        rows = c.stop - c.start
        bounds = sorted({c.start + rows * k // ways for k in range(ways)} | {c.stop})
        for a, b in zip(bounds, bounds[1:]):
            if b > a:
                share = (b - a) / rows
                pieces.append(Chunk(c.source, c.file, c.group, a, b, round(c.tokens * share), c.bytes * share, c.epoch,
                                    c.copy))
    return pieces
