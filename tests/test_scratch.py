"""io/scratch.py: a task's scratch folder or file that kill -9 left behind is removed by the next process to make
one; a live process's, another host's, or anything else in the temp folder never."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

from refinedweb.io import scratch

from .conftest import REPO

_HOLD = """
import sys, time
from refinedweb.io.scratch import scratch_file, scratch_folder
folder, copy = scratch_folder(sys.argv[1]), scratch_file("download")
open(folder + "/0.bin", "wb").write(b"x" * 4096)
open(copy, "wb").write(b"y" * 4096)
print(folder, copy, flush=True)
time.sleep(600)
"""


def holder(what: str, tmp) -> tuple[subprocess.Popen, str, str]:
    """A process that made a scratch folder and a scratch file in `tmp` and holds them (sleeping), and those."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, what], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "TMPDIR": str(tmp)})
    folder, copy = proc.stdout.readline().split()
    return proc, folder, copy


def test_a_killed_process_scratch_folder_is_removed_by_the_next_one_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(scratch, "_swept", False)
    killed, killed_folder, killed_file = holder("shuffle", tmp_path)
    live, live_folder, live_file = holder("tokenize", tmp_path)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert os.path.isdir(killed_folder) and os.path.isdir(live_folder)
        assert os.path.getsize(killed_file) == os.path.getsize(live_file) == 4096
        assert os.path.basename(killed_folder).startswith(f"refinedweb-shuffle-{scratch.host()}-{killed.pid}.")
        assert os.path.basename(killed_file).startswith(f"refinedweb-download-{scratch.host()}-{killed.pid}.")
        dead_pid = killed.pid
        reused = tmp_path / f"refinedweb-parts-{scratch.host()}-{os.getpid()}.1-abc_12"    # our pid, another start
        other_host = tmp_path / f"refinedweb-parts-{scratch.host()}x-{dead_pid}.5-abc"
        unrelated = [tmp_path / "refinedweb-numba-cache-abc", tmp_path / f"refinedweb-parts-{dead_pid}-abc",
                     tmp_path / "other"]
        for folder in (reused, other_host, *unrelated):
            folder.mkdir()

        mine = scratch.scratch_folder("parts")          # this process's first: it sweeps first
        assert not os.path.exists(killed_folder) and not os.path.exists(killed_file) and not reused.exists()
        assert os.path.isdir(live_folder) and os.path.isfile(live_file) and os.path.isdir(mine) and other_host.exists()
        assert all(folder.exists() for folder in unrelated)
        assert scratch.sweep() == [] and os.path.isdir(mine)      # a live process's folder, ours included, stays
    finally:
        live.kill()
        live.wait(timeout=30)
    assert sorted(scratch.sweep()) == sorted([live_folder, live_file])
