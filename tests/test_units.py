"""The run-units helper: finished units are skipped on a re-run, and markers are gathered into one file every
BATCH results and per finished phase, so that a resume reads a few files, not one per unit."""

from __future__ import annotations

import json

import pytest

from refinedweb.io.storage import open_storage
from refinedweb.runtime import units as units_module
from refinedweb.runtime.run_state import StageState
from refinedweb.runtime.units import Units

from .serial import SerialRuntime

CALLS: list[int] = []


def square(i: int, fail_at: int | None) -> dict:
    CALLS.append(i)
    if i == fail_at:
        raise RuntimeError("killed")
    return {"value": i * i}


def done_files(out) -> list[str]:
    return sorted(p.name for p in (out / "stage" / ".refinedweb" / "done").glob("*.json"))


def test_markers_are_gathered_while_a_phase_runs_and_a_resume_reads_them(tmp_path, monkeypatch):
    monkeypatch.setattr(units_module, "BATCH", 3)
    storage = open_storage(str(tmp_path))
    state = StageState(storage, "stage", {"stage": {}}, ("stage",))
    keys = {f"u={i:02d}": (i, 7) for i in range(10)}
    with pytest.raises(RuntimeError):
        Units(SerialRuntime(), state, None, 0).run("square", square, keys)
    files = done_files(tmp_path)
    # units 0..6 finished: two batch files of 3 and one loose marker
    assert files == ["phase=square-square-u=00.json", "phase=square-square-u=03.json", "square-u=06.json"]
    assert set(state.completed()) == {f"square-u={i:02d}" for i in range(7)}

    CALLS.clear()
    again = Units(SerialRuntime(), state, None, 0)
    results = again.run("square", square, {k: (i, None) for k, (i, _) in keys.items()})
    assert CALLS == [7, 8, 9] and again.resumed == 7
    assert [r["value"] for r in results] == [i * i for i in range(10)]
    assert done_files(tmp_path) == ["phase=square.json"]                  # the whole phase in one file
    assert len(json.loads((tmp_path / "stage/.refinedweb/done/phase=square.json").read_text())) == 10
    CALLS.clear()
    assert [r["value"] for r in Units(SerialRuntime(), state, None, 0).run("square", square, keys)] == \
        [i * i for i in range(10)] and CALLS == []
