"""Run the units of a phase as Ray tasks, skipping the ones an earlier run finished.

A unit is one call of a plain phase function. Its task writes the unit's files, then a completion marker
holding its result (`<folder>/.refinedweb/done/<name>-<key>.json`); a re-run after a crash reads the markers and runs
only the units without one, so its results are the same as an uninterrupted run's. The driver gathers markers
into one file every BATCH results and when a phase completes (`StageState.consolidate`), so that a resume reads a
file per finished phase and per BATCH units, not one per unit.
"""

from __future__ import annotations

from typing import Any, Callable

from ..io.remote import FetchConfig
from ..io.storage import open_storage
from .run_state import StageState, write_marker

BATCH = 500              # markers gathered into one file while a phase runs


class Units:
    def __init__(self, runtime, state: StageState, fetch: FetchConfig, retries: int):
        self.runtime, self.state, self.fetch, self.retries = runtime, state, fetch, retries
        self.done = state.completed()
        self.resumed = 0
        self.results: list[dict[str, Any]] = []

    def run(self, name: str, fn: Callable[..., dict[str, Any]], units: dict[str, tuple],
            progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
        """Results of every unit (marker key -> args of `fn`), in key order; the finished ones from markers.
        `progress(done, total)` hears of every unit that finishes."""
        todo = {key: args for key, args in units.items() if f"{name}-{key}" not in self.done}
        self.resumed += len(units) - len(todo)
        keys = list(todo)
        calls = [(fn, self.state.storage.uri, self.fetch, self.state.folder, f"{name}-{key}", todo[key]) for key in keys]
        batch: dict[str, dict[str, Any]] = {}

        finished = len(units) - len(todo)

        def arrived(i: int, result: dict[str, Any]) -> None:     # its marker exists: the task wrote it
            nonlocal finished
            finished += 1
            if progress is not None:
                progress(finished, len(units))
            batch[f"{name}-{keys[i]}"] = result
            if len(batch) >= BATCH:
                self.state.consolidate(f"{name}-{min(batch)}", dict(batch))
                batch.clear()

        fresh = dict(zip(keys, self.runtime.map(_marked, calls, self.retries, on_result=arrived))) if calls else {}
        self.results.extend(fresh.values())
        results = [fresh[key] if key in fresh else self.done[f"{name}-{key}"] for key in units]
        if fresh:    # the whole phase in one file; the batches' files and loose markers go
            self.state.consolidate(name, {f"{name}-{key}": r for key, r in zip(units, results)},
                                   replaces=[f"{name}-"])
        return results

    def finished(self, name: str, keys) -> bool:
        """Whether every unit `keys` of phase `name` was finished by an earlier run."""
        return all(f"{name}-{key}" in self.done for key in keys)

    def started(self, name_prefix: str) -> bool:
        """Whether an earlier run finished some unit of a phase whose name starts with `name_prefix`."""
        return any(key.startswith(name_prefix) for key in self.done)


def _marked(fn: Callable, output: str, fetch: FetchConfig, folder: str, key: str, args: tuple) -> dict[str, Any]:
    """Inside the task: run the unit, then record its completion after its files are committed."""
    result = fn(*args)
    write_marker(open_storage(output, fetch), folder, key, result)
    return result
