import os
import time


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
    left = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if session in cmdline or int(pid) in pids:
                state = open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] if os.path.exists(f"/proc/{pid}/stat") else "?"
                if state != "Z":
                    left.append(cmdline[:120])
    assert not left, left
    assert seconds < 1.2, f"embedded Ray took {seconds:.2f} s to shut down"
