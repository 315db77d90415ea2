"""Inputs: expanding --input URIs into a list of files, and opening one as a byte stream."""

from __future__ import annotations

import glob
import os
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from ..errors import UserError

WARC_SUFFIXES = (".warc.gz", ".warc", ".arc.gz", ".arc")
PARQUET_SUFFIXES = (".parquet",)


def _has_magic(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def expand_inputs(uris: list[str], suffixes: tuple[str, ...] = WARC_SUFFIXES, limit: int | None = None) -> list[str]:
    """Local files, directories and (quoted) globs → a sorted, de-duplicated list of files.

    A name that matches nothing is a user error: a typo must not become an empty, "successful" run.
    """
    out: list[str] = []
    seen: set[str] = set()
    for uri in uris:
        if "://" in uri and not uri.startswith("file://"):
            scheme = uri.split("://", 1)[0]
            raise UserError(f"unsupported input URI scheme '{scheme}://' in {uri} (supported: local paths and globs)")
        path = os.path.expanduser(uri.removeprefix("file://"))
        if _has_magic(path):
            matches = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
            if not matches:
                raise UserError(f"input glob matches no files: {uri}")
        elif os.path.isdir(path):
            matches = sorted(
                os.path.join(d, f) for d, _, files in os.walk(path) for f in files if f.endswith(suffixes)
            )
            if not matches:
                raise UserError(f"input directory has no {'/'.join(suffixes)} files: {uri}")
        elif os.path.isfile(path):
            matches = [path]
        else:
            raise UserError(f"input not found: {uri}")
        for match in matches:
            absolute = os.path.abspath(match)
            if absolute not in seen:
                seen.add(absolute)
                out.append(absolute)
    if limit is not None:
        out = out[: max(0, limit)]
    return out


@contextmanager
def open_input(uri: str) -> Iterator[BinaryIO]:
    with open(uri, "rb", buffering=1 << 20) as fh:
        yield fh
