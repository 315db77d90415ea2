import os
import time

import pytest

from .procs import alive, processes

# times its shutdown to the second: alone
pytestmark = pytest.mark.serial


def test_embedded_ray_shuts_down_fast_and_leaves_no_process():
    """close() stops every process the embedded instance started, and fast: ray.shutdown() alone stops the GCS
    before the autoscaler monitor, which then waits a second for it (~1.4 s here); the runtime kills the
    monitor first (~0.4 s)."""
    from ray._private import worker

    from refinedweb.runtime.ray_runner import RayRuntime

    runtime = RayRuntime(workers=1, address="local").start()
    session = worker._global_node.get_session_dir_path()
    pids = [info.process.pid for infos in worker._global_node.all_processes.values() for info in infos]
    assert len(pids) >= 3
    t0 = time.perf_counter()
    runtime.close()
    seconds = time.perf_counter() - t0
    time.sleep(0.2)
    left = [cmd[:120] for pid, cmd in processes() if (session in cmd or pid in pids) and alive(pid)]
    assert not left, left
    assert seconds < 1.2, f"embedded Ray took {seconds:.2f} s to shut down"


def test_a_worker_dies_with_its_parent():
    """die_with_parent() (called by every task): when the worker's parent (the raylet) is SIGKILLed, the worker
    goes at once instead of running on in a process group of its own (Ray's workers noticed after ~2 s)."""
    import signal
    import subprocess
    import sys

    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import os, time\\n"
        "from refinedweb.runtime.ray_runner import die_with_parent\\n"
        "os.setpgrp(); die_with_parent(); print(os.getpid(), flush=True); time.sleep(60)'], stdout=subprocess.PIPE)\n"
        "print(child.stdout.readline().decode().strip(), flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert os.getpgid(child) == child                      # a group of its own, as Ray's workers are
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 2
    while time.time() < deadline:
        if not alive(child):
            break
        time.sleep(0.01)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the worker outlived its parent")
