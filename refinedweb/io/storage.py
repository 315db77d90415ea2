"""Where output goes: a root URI with atomic commits.

Writers produce a complete file in a local temporary path, then `commit` moves it under its final
name in one step (rename on a local disk), so a reader never sees a half-written shard and a re-run
replaces a shard instead of duplicating it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tempfile
from pathlib import Path

from ..errors import UserError

_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_name(part: str, max_len: int = 80) -> str:
    """A file-name component built from untrusted text (URLs, ids): no separators, no dot-dot."""
    cleaned = _SAFE.sub("_", part).strip("._") or "x"
    return cleaned[:max_len]


class LocalStorage:
    def __init__(self, root: str):
        self.root = Path(os.path.expanduser(root)).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create output directory {self.root}: {exc.strerror}") from None
        self.uri = str(self.root)

    def _path(self, relpath: str) -> Path:
        path = (self.root / relpath).resolve()
        if path != self.root and self.root not in path.parents:
            raise ValueError(f"refusing to write outside the output root: {relpath}")
        return path

    def temp_path(self, relpath: str) -> str:
        """A temporary file beside the final one (same file system: the commit is a rename)."""
        final = self._path(relpath)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        return tmp

    def commit(self, tmp: str, relpath: str) -> None:
        os.replace(tmp, self._path(relpath))

    def discard(self, tmp: str) -> None:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass

    def write_text(self, relpath: str, text: str) -> None:
        tmp = self.temp_path(relpath)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        self.commit(tmp, relpath)

    def write_json(self, relpath: str, value) -> None:
        self.write_text(relpath, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")

    def read_text(self, relpath: str) -> str | None:
        try:
            return self._path(relpath).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def list(self, prefix: str, pattern: str = "*") -> list[str]:
        """Relative paths of files under the folder `prefix` whose names match `pattern`."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        out = []
        for path in base.rglob("*"):
            if path.is_file() and fnmatch.fnmatch(path.name, pattern):
                out.append(str(path.relative_to(self.root)))
        return sorted(out)

    def exists(self, relpath: str) -> bool:
        return self._path(relpath).exists()

    def delete(self, relpath: str) -> None:
        try:
            self._path(relpath).unlink()
        except FileNotFoundError:
            pass

    def local_path(self, relpath: str) -> str:
        return str(self._path(relpath))


def open_storage(uri: str) -> LocalStorage:
    if "://" in uri and not uri.startswith("file://"):
        scheme = uri.split("://", 1)[0]
        raise UserError(f"unsupported output URI scheme '{scheme}://' (supported: local paths)")
    return LocalStorage(uri[len("file://"):] if uri.startswith("file://") else uri)
