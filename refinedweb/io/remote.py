"""Remote inputs and outputs: S3 (boto3) and HTTP(S) (urllib3), streamed, retried, resumed.

A remote file is read as a `ResumableStream`: bytes are handed on as they arrive; when a connection
drops mid-body the stream reopens with a ranged GET from the byte offset reached (not from the
start). Failed attempts (5xx, S3 SlowDown, 429, time-outs, resets) are retried with exponential
backoff and full jitter, honouring Retry-After; 404/403 and other client errors are final.
"""

from __future__ import annotations

import fnmatch
import http.client
import io
import logging
import os
import random
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

from ..errors import UserError

log = logging.getLogger("refinedweb.fetch")

REMOTE_SCHEMES = ("s3", "http", "https")


class FetchError(Exception):
    """A remote file that cannot be read (not found, denied, or retries exhausted)."""


@dataclass(frozen=True)
class FetchConfig:
    base_uri: str = "https://data.commoncrawl.org/"
    sample: int | None = None
    seed: int = 0
    max_attempts: int = 8
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    timeout_seconds: float = 60.0
    max_concurrent_per_host: int = 16
    start_jitter_seconds: float = 2.0
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_anonymous: bool = False

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "FetchConfig":
        f, s3 = cfg["fetch"], cfg["s3"]
        return cls(
            base_uri=str(f["base_uri"]), sample=None if f["sample"] is None else int(f["sample"]),
            seed=int(f["seed"]), max_attempts=max(1, int(f["max_attempts"])),
            backoff_initial_seconds=float(f["backoff_initial_seconds"]),
            backoff_max_seconds=float(f["backoff_max_seconds"]), timeout_seconds=float(f["timeout_seconds"]),
            max_concurrent_per_host=max(1, int(f["max_concurrent_per_host"])),
            start_jitter_seconds=max(0.0, float(f["start_jitter_seconds"])),
            s3_endpoint_url=s3["endpoint_url"], s3_region=s3["region"], s3_anonymous=bool(s3["anonymous"]),
        )

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max_seconds)
        ceiling = min(self.backoff_max_seconds, self.backoff_initial_seconds * (2 ** attempt))
        return random.uniform(0, ceiling)


def scheme_of(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else ""


def is_remote(uri: str) -> bool:
    return scheme_of(uri) in REMOTE_SCHEMES


def redact(uri: str) -> str:
    """A URI fit for logs and stats: no user:password, no query string (presigned signatures, tokens)."""
    if "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:   # e.g. a bad port or IPv6 literal: keep only what cannot hold a secret
        return uri.split("://", 1)[0] + "://<unparsable>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# environment variables whose values are secrets: never echoed, even inside a third-party error message
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "RAY_AUTH_TOKEN")


def scrub(text: str) -> str:
    """Text fit for logs, stats and error messages: every URL in it redacted, and no secret env value.
    The last line of defence for messages we do not write ourselves (HTTP and boto errors quote URLs)."""
    def one(match: re.Match) -> str:
        url = match.group(0)
        tail = len(url) - len(url.rstrip(":.,;)]"))      # punctuation after a URL is not part of it
        return redact(url[: len(url) - tail]) + url[len(url) - tail:]

    text = _URL_IN_TEXT.sub(one, text)
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def host_of(uri: str) -> str:
    """The endpoint a URI is read from, for the per-host concurrency cap ('' for local files)."""
    scheme = scheme_of(uri)
    if scheme in ("http", "https"):
        return urlsplit(uri).netloc.rsplit("@", 1)[-1].lower()
    if scheme == "s3":
        return "s3:" + urlsplit(uri).netloc.lower()
    return ""


def split_s3(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if not parts.netloc:
        raise UserError(f"bad S3 URI (no bucket): {redact(uri)}")
    return parts.netloc, parts.path.lstrip("/")


# --- clients -----------------------------------------------------------------------------------

_CLIENTS: dict[tuple, Any] = {}


def s3_client(cfg: FetchConfig):
    """A boto3 S3 client (one per process and settings, the endpoint from the environment included). Retries are
    ours, so botocore's are off."""
    key = (cfg.s3_endpoint_url, cfg.s3_region, cfg.s3_anonymous, cfg.timeout_seconds,
           os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    if key not in _CLIENTS:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        options: dict[str, Any] = {"retries": {"total_max_attempts": 1}, "connect_timeout": cfg.timeout_seconds,
                                   "read_timeout": cfg.timeout_seconds, "max_pool_connections": 32}
        if cfg.s3_anonymous:
            options["signature_version"] = UNSIGNED
        session = boto3.session.Session()
        _CLIENTS[key] = session.client("s3", endpoint_url=cfg.s3_endpoint_url or None,
                                       region_name=cfg.s3_region or None, config=Config(**options))
    return _CLIENTS[key]


_POOLS: dict[float, Any] = {}


def http_pool(cfg: FetchConfig):
    if cfg.timeout_seconds not in _POOLS:
        import urllib3

        _POOLS[cfg.timeout_seconds] = urllib3.PoolManager(
            num_pools=32, maxsize=8, retries=False,
            timeout=urllib3.Timeout(connect=cfg.timeout_seconds, read=cfg.timeout_seconds))
    return _POOLS[cfg.timeout_seconds]


def _retryable_exceptions() -> tuple[type[BaseException], ...]:
    import urllib3.exceptions as u3
    from botocore import exceptions as bce

    return (u3.HTTPError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, OSError,
            bce.IncompleteReadError, bce.ResponseStreamingError, bce.ConnectionError, bce.ReadTimeoutError,
            bce.ConnectTimeoutError)


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


# --- one attempt per scheme: open at an offset, return (body with .read(n), total size or None) ----

def _open_http(uri: str, offset: int, cfg: FetchConfig):
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = http_pool(cfg).request("GET", uri, headers=headers, preload_content=False, redirect=True)
    except _retryable_exceptions() as exc:
        raise _Retry(type(exc).__name__) from None
    status = response.status
    if status in (429, 500, 502, 503, 504) or status >= 500:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        response.release_conn()
        raise _Retry(f"HTTP {status}", retry_after)
    if status == 416 and offset:
        response.release_conn()
        return io.BytesIO(b""), offset
    if status not in (200, 206):
        response.release_conn()
        raise FetchError(f"HTTP {status} for {redact(uri)}")
    length = response.headers.get("Content-Length")
    if status == 200 and offset:
        # The server ignored the Range header: skip what was already read.
        skip = offset
        while skip:
            chunk = response.read(min(skip, 1 << 20))
            if not chunk:
                raise _Retry("short body while skipping")
            skip -= len(chunk)
        total = int(length) if length else None
    else:
        total = offset + int(length) if length else None
    return response, total


def _open_s3(uri: str, offset: int, cfg: FetchConfig):
    from botocore.exceptions import ClientError, NoCredentialsError

    bucket, key = split_s3(uri)
    kwargs = {"Bucket": bucket, "Key": key}
    if offset:
        kwargs["Range"] = f"bytes={offset}-"
    try:
        response = s3_client(cfg).get_object(**kwargs)
    except NoCredentialsError:
        raise UserError("no AWS credentials found for S3 (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, "
                        "or s3.anonymous=true for public buckets)") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "InvalidRange" and offset:
            return io.BytesIO(b""), offset
        if code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling") or status >= 500 or status == 429:
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            raise _Retry(f"S3 {code or status}", _retry_after(headers.get("retry-after"))) from None
        raise FetchError(f"S3 {code or status} for {redact(uri)}") from None
    except _retryable_exceptions() as exc:
        raise _Retry(type(exc).__name__) from None
    return response["Body"], offset + int(response["ContentLength"])


_PIECE = 256 * 1024


class ResumableStream(io.RawIOBase):
    """A read-only byte stream over a remote object that survives dropped connections."""

    def __init__(self, uri: str, cfg: FetchConfig):
        self.uri = uri
        self.cfg = cfg
        self._opener = _open_s3 if scheme_of(uri) == "s3" else _open_http
        self._body = None
        self.total: int | None = None
        self.offset = 0
        self.retries = 0        # failed attempts that were retried
        self.resumes = 0        # reopenings at an offset > 0 after a dropped connection
        self._failures = 0      # consecutive failed attempts without progress

    def readable(self) -> bool:
        return True

    def _fail(self, reason: str, retry_after: float | None = None) -> None:
        self._failures += 1
        if self._failures >= self.cfg.max_attempts:
            raise FetchError(f"giving up on {redact(self.uri)} after {self._failures} attempts ({scrub(reason)})")
        delay = self.cfg.backoff(self._failures - 1, retry_after)
        self.retries += 1
        log.warning("retry %d for %s at byte %d: %s; waiting %.2fs", self.retries, redact(self.uri), self.offset,
                    scrub(reason), delay)
        time.sleep(delay)

    def _open(self) -> None:
        while True:
            try:
                self._body, total = self._opener(self.uri, self.offset, self.cfg)
            except _Retry as exc:
                self._fail(exc.reason, exc.retry_after)
                continue
            if total is not None:
                self.total = total
            if self.offset:
                self.resumes += 1
                log.warning("range resume %d of %s from byte %d", self.resumes, redact(self.uri), self.offset)
            return

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        try:
            if body is not None:
                body.close()
        except Exception:
            pass

    def readinto(self, buffer) -> int:
        want = len(buffer)
        if want == 0:
            return 0
        while True:
            if self._body is None:
                if self.total is not None and self.offset >= self.total:
                    return 0
                self._open()
            try:
                # Small reads: bytes received before a connection drops are kept, and the ranged GET
                # that follows starts from them.
                read1 = getattr(self._body, "read1", None)
                data = read1(min(want, _PIECE)) if read1 is not None else self._body.read(min(want, _PIECE))
            except _retryable_exceptions() as exc:
                self._drop_body()
                self._fail(f"connection lost mid-body ({type(exc).__name__})")
                continue
            if not data:
                if self.total is not None and self.offset < self.total:
                    self._drop_body()
                    self._fail(f"body ended at byte {self.offset} of {self.total}")
                    continue
                return 0
            n = len(data)
            buffer[:n] = data
            self.offset += n
            self._failures = 0
            return n

    def close(self) -> None:
        self._drop_body()
        super().close()


def open_remote(uri: str, cfg: FetchConfig) -> io.BufferedReader:
    return io.BufferedReader(ResumableStream(uri, cfg), buffer_size=1 << 20)


def read_remote_bytes(uri: str, cfg: FetchConfig) -> bytes:
    with open_remote(uri, cfg) as fh:
        return fh.read()


# --- listing ----------------------------------------------------------------------------------

_GLOB = re.compile(r"[*?\[]")


def list_s3(uri: str, cfg: FetchConfig) -> list[str]:
    """Objects under an S3 glob (`s3://b/crawl/*/warc/*.warc.gz`), listed from the prefix before the first wildcard."""
    from botocore.exceptions import ClientError, NoCredentialsError

    bucket, pattern = split_s3(uri)
    match = _GLOB.search(pattern)
    prefix = pattern[: match.start()] if match else pattern
    client = s3_client(cfg)
    out = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if (fnmatch.fnmatchcase(key, pattern) and _same_depth(key, pattern)) if match else key == pattern:
                    out.append(f"s3://{bucket}/{key}")
    except NoCredentialsError:
        raise UserError("no AWS credentials found for S3 (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, "
                        "or s3.anonymous=true for public buckets)") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise UserError(f"S3 bucket does not exist: {bucket}") from None
        raise UserError(f"cannot list {redact(uri)}: {code}") from None
    return sorted(out)


def _same_depth(key: str, pattern: str) -> bool:
    """fnmatch's * crosses '/'; a glob's * should not (except **)."""
    return "**" in pattern or key.count("/") == pattern.count("/")


def iter_listing(text: str, base_uri: str) -> Iterator[str]:
    """Lines of a *.paths listing, made absolute against `base_uri`."""
    base = base_uri if base_uri.endswith("/") else base_uri + "/"
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line if "://" in line else base + line.lstrip("/")


def crawl_listing_uri(crawl_id: str, base_uri: str) -> str:
    if not re.fullmatch(r"CC-MAIN-\d{4}-\d{2}", crawl_id):
        raise UserError(f"not a CommonCrawl crawl id: '{crawl_id}' (expected e.g. cc:CC-MAIN-2023-06)")
    base = base_uri if base_uri.endswith("/") else base_uri + "/"
    return f"{base}crawl-data/{crawl_id}/warc.paths.gz"
