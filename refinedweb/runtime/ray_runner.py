"""Where the runtime meets Ray (the only module that imports it, with `jobs.py` for the Jobs API): which Ray a
run uses, and its tasks: a task per input file (the filter pass over a WARC, or document stages over a Parquet
file: `map_files`) and a task per unit of a corpus-level phase (dedup, mix: `map`).

Which Ray: `--ray-address` if given (`local` forces a new embedded instance), else `RAY_ADDRESS` (Ray sets
it for a job's driver, so a submitted run joins the cluster it was submitted to), else embedded Ray
(`ray.init` with `workers` CPUs, shut down at the end). The URL blocklist is loaded once on the driver and put in the object store: its
numpy arrays are shared read-only by all workers of a node instead of being loaded per worker.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable

from ..config import fingerprint
from ..errors import RerunNeeded, UserError
from ..io.remote import host_of, redact, scrub
from .filter_pass import Pipeline, filter_file

_STAGES_CACHE: dict[str, Pipeline] = {}


def _stages_for(cfg: dict[str, Any], blocklist) -> Pipeline:
    """Per worker process: build the stages (models, compiled patterns) once per config."""
    key = fingerprint(cfg)
    if key not in _STAGES_CACHE:
        _STAGES_CACHE.clear()
        _STAGES_CACHE[key] = Pipeline.build(cfg, blocklist)
    return _STAGES_CACHE[key]


_BOUND = False


def die_with_parent() -> None:
    """Per worker process, Linux: SIGKILL this process when its parent (the node's raylet) dies.

    Ray starts each worker in a process group of its own, so `kill -9` of a run's process group (the driver,
    its embedded GCS and raylet) leaves the workers running until they notice, ~2 s here: long enough to
    leave a temporary file behind the re-run's clean-up, or to commit an old shard after its --overwrite."""
    global _BOUND
    if _BOUND or not sys.platform.startswith("linux"):
        return
    _BOUND = True
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    parent = os.getppid()
    if prctl(1, 9, 0, 0, 0) == 0 and os.getppid() != parent:     # PR_SET_PDEATHSIG, SIGKILL
        os._exit(1)                                                 # the parent died before it was set


def _filter_task(uri: str, cfg: dict[str, Any], output: str, blocklist, kind: str = "filter",
                 folder: str | None = None) -> dict[str, Any]:
    """One input file: the filter pass over a WARC, or (`documents`) document stages over a Parquet file."""
    die_with_parent()
    stages = _stages_for(cfg, blocklist)
    with settled_heap():
        if kind == "documents":
            from .documents_pass import documents_file

            return _with_peak_rss(documents_file(uri, cfg, output, stages, folder))
        return _with_peak_rss(filter_file(uri, cfg, output, stages))


@contextmanager
def settled_heap():
    """A task's documents with what was alive before them (Ray's modules, the models, the stages) frozen out of
    the collector's sight: a Ray worker starts a filter task holding ~93k objects the collector tracks, and each
    of its full collections (one per ~50-60 records of the big-page mix) walked them all: 5.4 s of 6,000 such
    records (0.7 s frozen), and the task 9-14% shorter end to end (docs/benchmarks.md, series seven). Collected
    first, so nothing frozen is garbage; unfrozen after, so what was frozen and has died since is collected as
    usual. What a task creates is collected as before."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _with_peak_rss(result: Any) -> Any:
    """Add the worker process's peak resident memory so far (the figure checked against the cap)."""
    if isinstance(result, dict):
        import ray

        from .memory import peak_rss_mb

        result["worker_peak_rss_mb"] = peak_rss_mb()
        result["worker_node"] = ray.get_runtime_context().get_node_id()[:12]
    return result


EMBEDDED = "local"


def cluster_address(flag: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The Ray cluster to join, or None for embedded Ray: `--ray-address` first, then `RAY_ADDRESS`."""
    env = os.environ if environ is None else environ
    source, address = ("--ray-address", flag) if flag else ("RAY_ADDRESS", env.get("RAY_ADDRESS", ""))
    address = (address or "").strip()
    if not address or address == EMBEDDED:
        return None
    if address.startswith(("http://", "https://")):
        raise UserError(f"{source}={redact(address)} is a Ray Jobs API (dashboard) address, not a cluster to join: "
                        f"run there with `refinedweb submit --address {redact(address)} -- run …`, join with "
                        "--ray-address HOST:6379 (or auto on a node of the cluster), or use --ray-address local "
                        "for embedded Ray")
    return address


def _token_auth_when_a_token_exists() -> None:
    """Joining a cluster: turn on Ray's token auth when RAY_AUTH_MODE is unset and a token exists, as
    `ray start --head` and `ray.init("auto")` do (Ray itself skips this for an explicit address, which
    would make a job's RAY_ADDRESS fail against a head started with a token file)."""
    from .ray_auth import auth_mode, find_token

    if auth_mode() or not find_token()[0]:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    import sys

    if "ray" in sys.modules:                     # Ray read its config at import: have it read it again
        try:
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):    # a Ray without token authentication
            pass


def _stop_autoscaler_monitor() -> None:
    """Kill embedded Ray's autoscaler monitor before `ray.shutdown()`, which stops the GCS first: the monitor's
    SIGTERM handler then waits for the GCS until shutdown gives up on it a second later (ray-project/ray#30672
    fixed that order for `ray stop` only). The monitor has nothing to save on a local instance; shutdown
    takes ~0.4 s instead of ~1.4 s. Ray's internals: if they change, shutdown just takes the second."""
    try:
        from ray._private import ray_constants, worker

        for info in worker._global_node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []):
            info.process.kill()
            info.process.wait(timeout=2)
    except Exception:  # noqa: BLE001 - an optimisation, never a reason to fail a run
        pass


class RayRuntime:
    """Context manager: connects to (or starts) Ray and knows how many tasks to keep in flight."""

    def __init__(self, workers: int | None, address: str | None, object_store_bytes: int | None = None,
                 task_memory_bytes: int | None = None):
        """`address` as the user gave it (`--ray-address`, None when absent): resolved with RAY_ADDRESS here."""
        self.workers = workers
        self.address = cluster_address(address)
        self.address_source = "--ray-address" if address and self.address else "RAY_ADDRESS"
        self.object_store_bytes = object_store_bytes
        self.task_memory_bytes = task_memory_bytes
        self.started_here = False
        self.slots = 0

    @classmethod
    def for_config(cls, cfg: dict[str, Any], workers: int | None, address: str | None) -> "RayRuntime":
        run = cfg["run"]
        mb = 1024 * 1024
        store = int(run["object_store_mb"]) * mb if run.get("object_store_mb") else None
        memory = int(run["worker_memory_mb"]) * mb if run.get("worker_memory_mb") else None
        return cls(workers, address, object_store_bytes=store, task_memory_bytes=memory)

    def _task_options(self, max_retries: int, num_cpus: float = 1, num_gpus: float = 0) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": num_cpus, "max_retries": max_retries, "retry_exceptions": False}
        if num_gpus:
            options["num_gpus"] = num_gpus
        if self.task_memory_bytes:
            options["memory"] = self.task_memory_bytes
        return options

    def start(self) -> "RayRuntime":
        """Connect to (or start) Ray once; later calls reuse the session."""
        if getattr(self, "slots", None):
            return self
        if self.address:
            _token_auth_when_a_token_exists()
        import ray

        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True,
                                  "include_dashboard": False}
        if not ray.is_initialized():             # else: a session the caller opened (a notebook's) is used
            if self.address:
                self._join()
            else:
                if self.object_store_bytes:
                    kwargs["object_store_memory"] = self.object_store_bytes
                # address="local": always a new embedded instance, even when a cluster runs on this machine
                ray.init(address="local", num_cpus=self.workers or os.cpu_count() or 1, **kwargs)
                self.started_here = True
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = max(1, min(self.workers or cluster_cpus, cluster_cpus) if self.address else (self.workers or cluster_cpus))
        return self

    def _join(self) -> None:
        import ray
        from ray.exceptions import AuthenticationError

        from .ray_auth import HOW, auth_failure, token_sent

        where = f"the Ray cluster at {self.address} ({self.address_source})"
        sent = token_sent()[1]
        try:
            ray.init(address=self.address, logging_level=logging.WARNING)
        except AuthenticationError as exc:
            raise auth_failure(where, str(exc), sent) from None
        except ConnectionError as exc:           # no cluster there, or (Ray reports it so) a refused token
            raise UserError(f"cannot join {where}: {str(exc).splitlines()[0][:160]}; sent {sent} "
                            f"(a cluster with token authentication needs its token: {HOW}); "
                            "--ray-address local runs embedded Ray") from None

    def describe(self) -> str:
        """Where the tasks run, for the driver's log."""
        return f"on the cluster at {self.address} ({self.address_source})" if self.address else "(embedded)"

    def close(self) -> None:
        if self.started_here:
            import ray

            _stop_autoscaler_monitor()
            ray.shutdown()
            self.started_here = False
            self.slots = 0

    @contextmanager
    def session(self, owned: bool):
        """Use the runtime for one stage; an owned runtime is closed afterwards, a shared one is not.
        Ray itself starts with the first task, so a stage with nothing left to do never starts it."""
        try:
            yield self
        finally:
            if owned:
                self.close()

    def map(self, fn: Callable, arg_list: list[tuple], max_retries: int = 3,
            on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
        return _run_map(self, fn, arg_list, max_retries, on_result)

    def map_files(self, uris: list[str], cfg: dict[str, Any], output: str, blocklist,
                  on_result: Callable[[dict[str, Any], str], None], per_host: int | None = None,
                  kind: str = "filter", folder: str | None = None) -> None:
        """Run the filter pass over `uris`, results (and their input) to `on_result` as they finish.

        At most 2 × slots tasks are in flight, and at most `per_host` of them read from the same remote
        host: the driver schedules every task, so this caps the whole cluster, not one worker.
        """
        import ray

        self.start()
        from ..stages.contract import resources

        cpus, gpus = resources(cfg)                 # the largest request of any configured stage
        task = ray.remote(**self._task_options(int(cfg["run"]["max_retries"]), cpus, gpus))(_filter_task)
        blocklist_ref = ray.put(blocklist)
        cfg_ref = ray.put(cfg)
        pending: dict[Any, str] = {}
        per_host_running: dict[str, int] = {}
        queue = list(uris)
        while queue or pending:
            for uri in take_schedulable(queue, len(pending), 2 * self.slots, per_host_running, per_host):
                pending[task.remote(uri, cfg_ref, output, blocklist_ref, kind, folder)] = uri
            try:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            except Exception as exc:              # the driver lost its cluster
                raise RerunNeeded(f"lost the Ray cluster ({_short_error(exc)}); finished files are kept: "
                                  "run the same command again to resume") from exc
            for ref in done:
                uri = pending.pop(ref)
                per_host_running[host_of(uri)] -= 1
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task itself died (retries exhausted) or raised
                    result = {"uri": redact(uri), "status": "failed", "error": _short_error(exc), "records": 0, "kept": 0,
                              "dropped": {}, "errors": {}, "notes": {}, "reconciled": False, "tokens": 0,
                              "bytes_in": 0, "seconds": 0.0, "shards": [], "stages": {}}
                on_result(result, uri)


def _call(fn: Callable, args: tuple) -> Any:
    die_with_parent()
    return _with_peak_rss(fn(*args))


def _run_map(runtime: "RayRuntime", fn: Callable, arg_list: list[tuple], max_retries: int,
             on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """Run `fn(*args)` for every args as Ray tasks (at most 2 × slots in flight); results in input order, and
    each to `on_result(index, result)` as it arrives.
    A task that fails for good stops the phase: a UserError from inside it as itself, anything else as
    RerunNeeded (the finished units have their markers, so the same command resumes)."""
    import ray

    runtime.start()
    task = ray.remote(**runtime._task_options(max_retries))(_call)
    fn_ref = ray.put(fn)
    results: list[Any] = [None] * len(arg_list)
    pending: dict[Any, int] = {}
    queue = list(range(len(arg_list)))
    while queue or pending:
        while queue and len(pending) < 2 * runtime.slots:
            i = queue.pop(0)
            pending[task.remote(fn_ref, arg_list[i])] = i
        try:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                results[i] = ray.get(ref)
                if on_result is not None:
                    on_result(i, results[i])
        except Exception as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, UserError):          # a user's mistake found inside a task: one line, exit 2
                raise UserError(str(cause)) from None
            # retries exhausted (a node lost again and again, an I/O error) or the cluster itself lost:
            # what finished has its markers, so the same command resumes from there
            raise RerunNeeded(f"a task failed ({_short_error(exc)}); the work finished so far is kept: "
                              "run the same command again to resume") from exc
    return results


def take_schedulable(queue: list[str], in_flight: int, max_in_flight: int, per_host_running: dict[str, int],
                     per_host: int | None) -> list[str]:
    """Remove from `queue` and return the inputs to start now, in queue order: no more than
    `max_in_flight` tasks in all, and no more than `per_host` reading from one remote host."""
    started = []
    for uri in list(queue):
        if in_flight + len(started) >= max_in_flight:
            break
        host = host_of(uri)
        if host and per_host and per_host_running.get(host, 0) >= per_host:
            continue
        queue.remove(uri)
        per_host_running[host] = per_host_running.get(host, 0) + 1
        started.append(uri)
    return started


def _short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return scrub(f"{type(exc).__name__}: {text[-1] if text else ''}")[:500]
