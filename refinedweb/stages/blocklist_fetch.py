"""`refinedweb blocklist fetch`: UT1's ``blacklists.tar.gz`` into the local cache, through the same
retrying, resuming HTTP client as the inputs (`io/remote.py`), verified before it replaces the old copy."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from ..errors import UserError
from ..io.remote import FetchConfig, FetchError, open_remote
from ..io.storage import file_mode

DEFAULT_UT1_URL = "https://dsi.ut-capitole.fr/blacklists/download/blacklists.tar.gz"
UT1_FILENAME = "blacklists.tar.gz"
_CHUNK = 1 << 20


def _verify_archive(path: str, url: str) -> int:
    """Read the whole archive (catches truncation); the number of domain/url lists in it."""
    lists = 0
    try:
        with tarfile.open(path, "r:gz") as tf:
            for member in tf:
                if member.isfile() and member.name.rsplit("/", 1)[-1] in ("domains", "urls"):
                    lists += 1
                    stream = tf.extractfile(member)
                    if stream is not None:
                        while stream.read(_CHUNK):
                            pass
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise UserError(f"download from {url} is not a valid tar.gz blocklist archive ({exc})") from None
    if not lists:
        raise UserError(f"download from {url} is a tar.gz without any domains/urls lists")
    return lists


def fetch_ut1(dest_dir: str | os.PathLike, url: str = DEFAULT_UT1_URL, timeout: float = 120.0,
              attempts: int = 4) -> Path:
    """Download UT1's ``blacklists.tar.gz`` to ``<dest_dir>/blacklists.tar.gz`` atomically (temp file +
    rename, only after the archive has been verified); returns the path. 5xx answers, time-outs and cut
    connections are retried (`attempts` in a row) and resumed from the byte reached."""
    dest = Path(dest_dir).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create blocklist directory {dest}: {exc.strerror}") from None
    target = dest / UT1_FILENAME
    fetch = FetchConfig(timeout_seconds=timeout, max_attempts=max(1, attempts), backoff_initial_seconds=0.5,
                        backoff_max_seconds=8.0)
    fd, tmp = tempfile.mkstemp(prefix=f".{UT1_FILENAME}.", suffix=".part", dir=dest)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with open_remote(url, fetch) as response:
                    shutil.copyfileobj(response, out, _CHUNK)
            except (FetchError, OSError) as exc:
                raise UserError(f"cannot download the UT1 blocklist from {url}: {exc}") from None
        _verify_archive(tmp, url)
        os.chmod(tmp, file_mode())               # mkstemp's 0600 would keep a shared copy from its users
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
