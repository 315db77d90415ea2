"""Files a stage needs on every worker (a model): local, or fetched once into a per-machine cache under the
hash of their content. The driver hashes each file before a run (the hash joins the resume fingerprint) and
the workers check that what they load has that hash: a file replaced during a run fails it, never mixes
two versions into one output.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from ..errors import UserError
from .remote import FetchConfig, FetchError, is_remote, open_remote, redact

CHUNK = 1 << 22


def cache_dir() -> Path:
    root = os.environ.get("REFINEDWEB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "refinedweb")
    return Path(root) / "files"


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def cached_file(uri: str, fetch: FetchConfig | None = None, expected: dict | None = None) -> tuple[str, dict]:
    """(local path, identity) of a file; identity = {sha256, size[, mtime_ns]}. A remote file is downloaded once
    into the cache, named by its hash. `expected` (the driver's identity) must match: a local file whose size
    and mtime are unchanged is not hashed again."""
    fetch = fetch or FetchConfig()
    if not is_remote(uri):
        path = os.path.expanduser(uri.removeprefix("file://"))
        try:
            stat = os.stat(path)
        except OSError:
            raise UserError(f"file not found: {uri}") from None
        same = expected and expected.get("size") == stat.st_size and expected.get("mtime_ns") == stat.st_mtime_ns
        identity = {"sha256": expected["sha256"] if same else sha256_file(path), "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns}
        _check(uri, identity["sha256"], expected)
        return path, identity
    folder = cache_dir()
    if expected and (folder / f"{expected['sha256']}.bin").is_file():
        return str(folder / f"{expected['sha256']}.bin"), {"sha256": expected["sha256"], "size": expected["size"]}
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-")
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            stream = open_remote(uri, fetch)
            try:
                while block := stream.read(CHUNK):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
            finally:
                stream.close()
        got = digest.hexdigest()
        _check(uri, got, expected)
        os.replace(tmp, folder / f"{got}.bin")
        return str(folder / f"{got}.bin"), {"sha256": got, "size": size}
    except FetchError as exc:
        raise UserError(f"cannot read {redact(uri)}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _check(uri: str, got: str, expected: dict | None) -> None:
    if expected and got != expected["sha256"]:
        raise UserError(f"{redact(uri)} changed since the run started (sha256 {got[:12]}, the run was planned with "
                        f"{expected['sha256'][:12]}): use --overwrite to start over with the new file")
