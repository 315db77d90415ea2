"""Processes as Linux's /proc shows them, for the tests that check what a kill or a shutdown leaves running."""

from __future__ import annotations

from pathlib import Path


def processes() -> list[tuple[int, str]]:
    """(pid, command line with spaces for NULs) of every process."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")))
            except OSError:
                continue
    return out


def stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: state, parent, process group, session, …; None
    when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Running: there, and not a zombie (which cannot be killed, only reaped by its parent)."""
    fields = stat(pid)
    return fields is not None and fields[0] != "Z"
