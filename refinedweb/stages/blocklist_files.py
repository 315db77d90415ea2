"""Reading blocklists: UT1-style archives and directories and plain lists, normalised and hashed chunk by
chunk into growing ``uint64`` buffers (no Python set of 4.6M strings is ever built).

Sources (`Blocklist.load` / `load_blocklist`), a path or a list of paths:

* a UT1-style archive (``.tar.gz``, also ``.tgz``/``.tar``/``.tar.bz2``/``.tar.xz``) with members
  ``[blacklists/]<category>/domains`` / ``<category>/urls`` (only the configured categories are
  taken; UT1's English alias symlinks, e.g. ``aggressive -> agressif``, are followed) or top-level
  ``domains`` / ``urls`` (always taken: the datatrove/FineWeb archive has that layout);
* a UT1-style directory (an unpacked archive or a mirror such as olbat/ut1-blacklists), same rules;
* a plain text file (optionally ``.gz``): one domain per line, ``#`` comments, hosts-file lines
  (``0.0.0.0 example.com``) and ``*.``/``.`` wildcard prefixes accepted, lines with a path are URL
  entries;
* ``package:<name>``: a file bundled in ``refinedweb/resources/`` (e.g. ``package:demo_blocklist.txt``).
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import xxhash

from ..errors import UserError
from ..urls import split_url

PACKAGE_PREFIX = "package:"
_xxh = xxhash.xxh3_64_intdigest
_U64 = np.uint64


def url_keys(host: str, rest: str) -> list[str]:
    """Keys an exact-URL entry can have for this URL: with its query, then without."""
    key = (host + rest).rstrip("/")
    q = rest.find("?")
    if q < 0:
        return [key]
    return [key, (host + rest[:q]).rstrip("/")]


def hash_str(s: str) -> int:
    return _xxh(s.encode("utf-8", "surrogatepass"))


def url_key_host(key: str) -> str:
    end = len(key)
    for sep in "/?":
        i = key.find(sep)
        if 0 <= i < end:
            end = i
    return key[:end]


# ------------------------------------------------------------------------------------------------
# Entry parsing
# ------------------------------------------------------------------------------------------------

_HOSTS_FILE_IPS = {"0.0.0.0", "127.0.0.1", "::", "::1", "255.255.255.255"}


def normalise_domain_entry(line: str) -> tuple[str, str] | None:
    """``("domain", host)`` or ``("url", key)`` for one line of a domain list; None to skip."""
    s = line.split("#", 1)[0].strip()
    if not s:
        return None
    fields = s.split()
    s = fields[1] if len(fields) >= 2 and fields[0] in _HOSTS_FILE_IPS else fields[0]
    s = s.lstrip("*").lstrip(".")
    if "/" in s.rstrip("/") and not s.startswith("["):
        return normalise_url_entry(s)
    parsed = split_url(s, schemeless=True)
    if parsed is None:
        return None
    return "domain", parsed[0]


def normalise_url_entry(line: str) -> tuple[str, str] | None:
    s = line.strip()
    if not s or s[0] == "#":
        return None
    parsed = split_url(s, schemeless=True)
    if parsed is None:
        return None
    host, rest = parsed
    return "url", (host + rest).rstrip("/")


# ------------------------------------------------------------------------------------------------
# Loading: chunked, hashed straight into a growing uint64 buffer
# ------------------------------------------------------------------------------------------------

_CHUNK = 1 << 20
_FAST_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789.-_\n"
_FIXABLE_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\r"
_U16 = np.dtype("<u2")
_DOT_NL, _NL_DOT = 0x0A2E, 0x2E0A  # b".\n" and b"\n." read as little-endian uint16
_EMPTY_HASH = _xxh(b"")


def _dot_at_line_edge(data: bytes, start: int = 0, end: int | None = None) -> bool:
    """Whether ``data[start:end]`` contains b".\n" or b"\n." (a line starting or ending with a dot).
    Compares byte pairs at even and odd offsets as uint16: ~4x faster than two bytes.find."""
    end = len(data) if end is None else end
    n = end - start
    if n < 2:
        return False
    for pairs in (np.frombuffer(data, _U16, count=n // 2, offset=start),
                  np.frombuffer(data, _U16, count=(n - 1) // 2, offset=start + 1)):
        if (pairs == _DOT_NL).any() or (pairs == _NL_DOT).any():
            return True
    return False


class _HashSink:
    """A growing uint64 buffer. Capacity is reserved generously from the input size (untouched pages
    of a large `np.empty` cost no resident memory) and trimmed in place at the end."""

    def __init__(self) -> None:
        self.buf = np.empty(1 << 12, dtype=_U64)
        self.n = 0

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need > len(self.buf):
            grown = np.empty(max(need, 2 * len(self.buf)), dtype=_U64)  # not ndarray.resize: it zero-fills
            grown[:self.n] = self.buf[:self.n]
            self.buf = grown

    def add_hashes(self, hashes: Iterable[int], count: int) -> None:
        if count:
            self.reserve(count)
            self.buf[self.n:self.n + count] = np.fromiter(hashes, dtype=_U64, count=count)
            self.n += count

    def add_keys(self, keys: list[str]) -> None:
        self.add_hashes(map(hash_str, keys), len(keys))

    def finish(self) -> np.ndarray:
        """Sorted, deduplicated hashes, without the hash of an empty line."""
        arr = self.buf
        self.buf = np.empty(0, dtype=_U64)
        arr.resize(self.n, refcheck=False)
        arr.sort()
        if len(arr):
            keep = np.empty(len(arr), dtype=bool)
            keep[0] = True
            np.not_equal(arr[1:], arr[:-1], out=keep[1:])
            i = int(np.searchsorted(arr, _U64(_EMPTY_HASH)))
            if i < len(arr) and arr[i] == _EMPTY_HASH:
                keep[i] = False
            if not keep.all():
                arr = arr[keep]
        return arr


class _Loader:
    """Collects entries of all sources into the domain and URL sinks."""

    def __init__(self) -> None:
        self.domains = _HashSink()
        self.urls = _HashSink()
        self.url_hosts = _HashSink()

    def _add_entries(self, pairs: Iterable[tuple[str, str] | None]) -> tuple[int, int]:
        doms: list[str] = []
        urls: list[str] = []
        for pair in pairs:
            if pair is not None:
                (doms if pair[0] == "domain" else urls).append(pair[1])
        self.domains.add_keys(doms)
        self.urls.add_keys(urls)
        self.url_hosts.add_keys([url_key_host(key) for key in urls])
        return len(doms), len(urls)

    def _slow_lines(self, lines: list[bytes]) -> tuple[int, int]:
        return self._add_entries(normalise_domain_entry(line.decode("utf-8", "replace")) for line in lines)

    def _domain_lines(self, chunk: bytes, lines: list[bytes]) -> tuple[int, int]:
        """Hash ``lines``: ``lines[0]`` may have been joined with the previous chunk's tail, and
        ``lines[1:]`` are exactly the whole lines strictly inside ``chunk``. Clean chunks (the norm for
        UT1 and datatrove lists) are checked with a few vectorised byte scans and their raw lines
        hashed with no per-line Python work; anything else goes through `normalise_domain_entry`."""
        nd = nu = 0
        first = lines[0]
        if first.translate(None, _FAST_BYTES) or first.startswith((b"www.", b".")) or first.endswith(b"."):
            d, u = self._slow_lines([first])
            nd, nu = d, u
            lines[0] = b""  # hashed as the empty line, which `finish` removes
        residue = chunk.translate(None, _FAST_BYTES)
        if residue:
            if residue.translate(None, _FIXABLE_BYTES):
                d, u = self._slow_lines(lines)
                return nd + d, nu + u
            lines = b"\n".join(lines).replace(b"\r", b"").lower().split(b"\n")
            if any(line.startswith((b"www.", b".")) or line.endswith(b".") for line in lines):
                d, u = self._slow_lines(lines)
                return nd + d, nu + u
        elif len(lines) > 1:
            lo = chunk.find(b"\n")
            hi = chunk.rfind(b"\n")
            if chunk.find(b"\nwww.", lo, hi + 1) >= 0 or _dot_at_line_edge(chunk, lo, hi + 1):
                d, u = self._slow_lines(lines)
                return nd + d, nu + u
        self.domains.add_hashes(map(_xxh, lines), len(lines))
        return nd + len(lines), nu

    def read_domains(self, stream: BinaryIO, size: int | None = None) -> tuple[int, int]:
        """Hash a domain list read in chunks, without copying chunks to re-join lines."""
        if size:  # a domain line has >= 2 bytes with its newline; most have > 8
            self.domains.reserve(size // 8 + 1)
        nd = nu = 0
        rest = b""
        while chunk := stream.read(_CHUNK):
            lines = chunk.split(b"\n")
            if len(lines) == 1:
                rest += chunk
                continue
            if rest:
                lines[0] = rest + lines[0]
            rest = lines.pop()
            d, u = self._domain_lines(chunk, lines)
            nd += d
            nu += u
        if rest:
            d, u = self._domain_lines(rest, [rest])
            nd += d
            nu += u
        return nd, nu

    def read_urls(self, stream: BinaryIO) -> tuple[int, int]:
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace")
        return self._add_entries(normalise_url_entry(line) for line in text)


def _category_of(parts: list[str]) -> str | None:
    """``None`` for a top-level list, else the directory the list lives in."""
    return parts[-2] if len(parts) >= 2 else None


def _load_tar(path: Path, loader: _Loader, categories: set[str] | None, meta: dict[str, Any]) -> None:
    taken: set[str] = set()
    aliases: dict[str, str] = {}   # category symlink -> target category

    def one_pass(wanted: set[str] | None, only: set[str] | None) -> None:
        with tarfile.open(path, "r:*") as tf:
            while True:
                member = tf.next()
                if member is None:
                    break
                parts = [p for p in member.name.split("/") if p not in ("", ".")]
                if not parts:
                    continue
                if member.issym():
                    if only is None:
                        aliases[parts[-1]] = member.linkname.rstrip("/").rsplit("/", 1)[-1]
                    continue
                if not (member.isfile() or member.islnk()) or parts[-1] not in ("domains", "urls"):
                    continue
                cat = _category_of(parts)
                if only is not None:
                    if cat not in only:
                        continue
                elif cat is not None and wanted is not None and cat not in wanted:
                    continue
                stream = tf.extractfile(member)
                if stream is None:
                    continue
                with stream:
                    counts = (loader.read_domains(stream, member.size) if parts[-1] == "domains"
                              else loader.read_urls(stream))
                taken.add(cat or "")
                meta["lists"].append(("/".join(parts), *counts))

    try:
        one_pass(categories, None)
        if categories is not None:  # follow alias symlinks whose targets were not read
            extra = {aliases[c] for c in categories if c in aliases and aliases[c] not in taken}
            if extra:
                one_pass(None, extra)
                taken.update(c for c in categories if aliases.get(c) in taken)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise UserError(f"URL blocklist {path} is not a readable archive: {exc}") from None
    if categories is not None:
        meta["missing_categories"].extend(sorted(c for c in categories if c not in taken and aliases.get(c) not in taken))


def _load_dir(path: Path, loader: _Loader, categories: set[str] | None, meta: dict[str, Any]) -> None:
    taken: set[str] = set()
    for root, dirs, files in os.walk(path, followlinks=True):
        rel = Path(root).relative_to(path).parts
        if len(rel) >= 2:  # <dir>/[blacklists/]<category>/ at most
            dirs[:] = []
        dirs.sort()
        for name in sorted(files):
            if name not in ("domains", "urls"):
                continue
            parts = [*rel, name]
            cat = _category_of(parts)
            if cat is not None and categories is not None and cat not in categories:
                continue
            file = Path(root) / name
            try:
                with open(file, "rb") as stream:
                    counts = (loader.read_domains(stream, file.stat().st_size) if name == "domains"
                              else loader.read_urls(stream))
            except OSError as exc:
                raise UserError(f"cannot read URL blocklist {file}: {exc.strerror or exc}") from None
            taken.add(cat or "")
            meta["lists"].append(("/".join(parts), *counts))
    if categories is not None:
        meta["missing_categories"].extend(sorted(c for c in categories if c not in taken))


def _load_text(path: Path, loader: _Loader, meta: dict[str, Any]) -> None:
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as stream:
            counts = loader.read_domains(stream, None if gz else path.stat().st_size)
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read URL blocklist {path}: {exc}") from None
    meta["lists"].append((path.name, *counts))


def _is_tar(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return True
    if name.endswith((".txt", ".list")):
        return False
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError):
        return False


def missing_blocklist_error(path: str | os.PathLike) -> UserError:
    return UserError(f"no URL blocklist at {path}: run `refinedweb blocklist fetch`, or set "
                     f"url_filter.blocklist to a path (or [] to run without one)")


def resolve_path(path: str | os.PathLike) -> Path:
    """``package:<name>`` -> the bundled resource; ``~`` expanded."""
    text = os.fspath(path)
    if text.startswith(PACKAGE_PREFIX):
        name = text[len(PACKAGE_PREFIX):].lstrip("/")
        return Path(str(resources.files("refinedweb") / "resources" / name))
    return Path(text).expanduser()


def demo_blocklist_path() -> Path:
    return resolve_path(PACKAGE_PREFIX + "demo_blocklist.txt")
