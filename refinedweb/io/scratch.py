"""Local scratch folders and files for a task's temporary data, named so that a later run removes what a killed
one left.

A task's spool (or an S3 object's local copy) lives in the system temp folder while it runs and is removed when
the task ends, however it ends, except after kill -9 (of its worker or of the whole run), when nothing is left to
remove it. So its name carries the host and the process that made it,
`refinedweb-<what>-<host>-<pid>.<start>-<random>[.tmp]` (`<start>`: the process's start time, so a reused pid is
told apart), and a process's first scratch folder or file first removes those of this host whose process is gone.
Another host's folders (a temp folder shared by containers) are never touched; containers sharing one temp folder
under one host name but not their process ids are not supported.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile

PREFIX = "refinedweb-"
_NAME = re.compile(r"refinedweb-(?P<what>[a-z]+)-(?P<host>.+)-(?P<pid>\d+)\.(?P<start>\d+)-[A-Za-z0-9_]+(\.tmp)?")
_swept = False
_prefixes: dict[int, str] = {}      # pid -> "<host>-<pid>.<start>-": a forked child gets its own


def host() -> str:
    """This host's name as a folder name can hold it."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot, /proc/<pid>/stat); None when it is gone. 0 where there is
    no /proc (then a reused pid reads as the same process: its folder is kept, never wrongly removed)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None
    except (OSError, IndexError, ValueError):
        return 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0


def sweep(root: str | None = None) -> list[str]:
    """Remove the scratch folders and files in `root` (the system temp folder) of this host's processes that are
    gone; returns their paths."""
    root = root or tempfile.gettempdir()
    here, removed = host(), []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        m = _NAME.fullmatch(entry.name) if entry.name.startswith(PREFIX) else None
        if m is None or m["host"] != here:
            continue
        started, named = start_time(int(m["pid"])), int(m["start"])
        if started is None or (started and named and started != named):      # gone, or its pid reused
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except FileNotFoundError:       # another process's sweep got there first
                pass
            except OSError:
                continue
            removed.append(entry.path)
    return removed


def sweep_once() -> None:
    """`sweep()` the system temp folder, once per process (the CLI at start, a worker before its first spool)."""
    global _swept
    if not _swept:
        _swept = True
        sweep()


def _prefix(what: str) -> str:
    sweep_once()
    pid = os.getpid()
    whose = _prefixes.get(pid)
    if whose is None:
        whose = _prefixes[pid] = f"{host()}-{pid}.{start_time(pid) or 0}-"
    return f"{PREFIX}{what}-{whose}"


def scratch_folder(what: str) -> str:
    """A new empty local folder for `what` (lower-case letters); the caller removes it when done."""
    return tempfile.mkdtemp(prefix=_prefix(what))


def scratch_file(what: str) -> str:
    """A new empty local file (`….tmp`) for `what` (lower-case letters); the caller removes it when done."""
    fd, path = tempfile.mkstemp(prefix=_prefix(what), suffix=".tmp")
    os.close(fd)
    return path
