import signal


def test_embedded_ray_stops_every_process_it_started_the_monitor_first():
    """ray.shutdown() stops the GCS before the autoscaler monitor, which then waits a second for it; the
    runtime kills the monitor first, and every process of the embedded instance is gone after close()."""
    from ray._private import ray_constants, worker

    from refinedweb.runtime.ray_runner import RayRuntime

    runtime = RayRuntime(workers=1, address="local").start()
    processes = {kind: [info.process for info in infos] for kind, infos in worker._global_node.all_processes.items()}
    assert ray_constants.PROCESS_TYPE_MONITOR in processes
    runtime.close()
    assert all(p.poll() is not None for procs in processes.values() for p in procs)
    assert [p.returncode for p in processes[ray_constants.PROCESS_TYPE_MONITOR]] == [-signal.SIGKILL]
