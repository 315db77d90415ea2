"""Host and URL normalisation: the project's one normaliser. The URL filter, the blocklist's entries and
lookups (`split_url`, `normalise_host`) and URL dedup's keys (`dedup_key`) all go through it.

Normalisation, the same for entries and for looked-up URLs: host lower-cased, IDN to punycode
(IDNA 2003, as browsers did for UT1-era lists), trailing dots stripped, one leading ``www.``
stripped (UT1 lists carry no ``www.``; stripping it on both sides makes ``www.x.com`` and ``x.com``
the same entry), port and user info dropped. URL entries: scheme and fragment dropped, host
normalised as above, path and query kept verbatim (case-sensitive), trailing ``/`` stripped.

URL dedup (RW §3.3) keys a URL by its normalised host, a non-default port, the path without a trailing
``/`` and the query (scheme, user info and fragment dropped).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_HOST_RE = re.compile(r"[a-z0-9_\-]+(?:\.[a-z0-9_\-]+)*\Z")
_IPV4_RE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}\Z")
_IPV6_RE = re.compile(r"[0-9a-f:.]+(?:%[0-9a-z._~\-]+)?\Z")
_NETLOC_END = re.compile(r"[/?#\\]")
_MAX_HOST = 253


@lru_cache(maxsize=4096)  # the stdlib IDNA codec is pure Python (~50 us a host)
def _idna(host: str) -> str | None:
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    labels = []
    for label in host.split("."):  # per-label punycode for what IDNA 2003 refuses (e.g. long labels)
        if label.isascii():
            labels.append(label)
            continue
        try:
            labels.append("xn--" + label.encode("punycode").decode("ascii"))
        except UnicodeError:
            return None
    return ".".join(labels)


def normalise_host(host: str) -> str | None:
    """Lower-case, IDN -> punycode, strip trailing dots and one leading ``www.``; None if invalid.

    IPv6 literals come back in brackets (``[::1]``)."""
    if not host:
        return None
    if host[0] == "[":
        inner = host[1:-1].lower() if host[-1] == "]" else ""
        return f"[{inner}]" if inner and _IPV6_RE.match(inner) else None
    if host.isascii():
        host = host.lower()
    else:
        host = _idna(host.lower())
        if host is None:
            return None
    if host[-1] == ".":
        host = host.rstrip(".")
    if not host or len(host) > _MAX_HOST or not _HOST_RE.match(host):
        return None
    if host.startswith("www.") and host.find(".", 4) > 0:  # "www.com" stays itself
        host = host[4:]
    return host


# The common case in one regex: scheme://[userinfo@]ascii.host[.][:port] then / ? # or the end.
_FAST_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#\\@\s]*@)?((?:[A-Za-z0-9_\-]+\.)*[A-Za-z0-9_\-]+)\.*"
                       r"(?::[0-9]*)?(?=[/?#]|\Z)")


def split_url(url: str, *, schemeless: bool = False) -> tuple[str, str] | None:
    """``(normalised host, path+query)`` of a URL, fragment dropped; None if it has no valid host.

    Needs ``scheme://`` (or ``//``) unless ``schemeless`` is set (blocklist entries, bare hosts)."""
    m = _FAST_URL.match(url)
    if m is not None:
        host = m.group(1)
        if len(host) <= _MAX_HOST:
            host = host.lower()
            if host.startswith("www.") and host.find(".", 4) > 0:
                host = host[4:]
            rest = url[m.end():]
            if rest:
                if rest[-1].isspace():  # as url.strip() in the general parser
                    rest = rest.rstrip()
                k = rest.find("#")
                if k >= 0:
                    rest = rest[:k]
            return host, rest
    return _split_url_general(url, schemeless)


def _split_url_general(url: str, schemeless: bool) -> tuple[str, str] | None:
    s = url.strip()
    i = s.find("://")
    if i > 0 and _SCHEME_RE.match(s, 0, i):
        s = s[i + 3:]
    elif s.startswith("//"):
        s = s[2:]
    elif not schemeless:
        return None
    m = _NETLOC_END.search(s)
    if m is None:
        netloc, rest = s, ""
    else:
        j = m.start()
        netloc, rest = s[:j], s[j:]
        if rest[0] == "\\":
            rest = "/" + rest[1:]
        k = rest.find("#")
        if k >= 0:
            rest = rest[:k]
    if "@" in netloc:
        netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return None
        host, port = netloc[: end + 1], netloc[end + 1:]
        if port and (port[0] != ":" or not (port[1:].isdigit() or port == ":")):
            return None
    else:
        host, _, port = netloc.partition(":")
        if port and not port.isdigit():
            return None
    host = normalise_host(host)
    if host is None:
        return None
    return host, rest


def is_ip(host: str) -> bool:
    return host[:1] == "[" or (host[-1:].isdigit() and _IPV4_RE.match(host) is not None)


_EXTRACTOR: Any = None


def _extractor():
    global _EXTRACTOR
    if _EXTRACTOR is None:
        import tldextract

        # Bundled PSL snapshot only: no suffix-list URLs (no network) and no disk cache.
        _EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    return _EXTRACTOR


@lru_cache(maxsize=1 << 14)
def registered_domain(host: str) -> str:
    """eTLD+1 of a normalised host ('' for IPs and bare public suffixes). Unknown suffixes follow
    the PSL default rule ``*`` (the last label is the suffix)."""
    if not host or is_ip(host):
        return ""
    ext = _extractor().extract_str(host)
    if ext.suffix:
        return f"{ext.domain}.{ext.suffix}" if ext.domain else ""
    labels = host.rsplit(".", 2)
    return ".".join(labels[-2:]) if len(labels) >= 2 else ""


_DEFAULT_PORTS = {"http": 80, "https": 443}


def dedup_key(url: str) -> str:
    """The key two URLs share when URL dedup counts them as one page. Only the host is lower-cased: a port
    that does not parse is kept as written and the path and query stay case-sensitive either way."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:              # an unclosed IPv6 bracket: split by hand
        return _dedup_key_unparsed(url)
    try:
        port: int | str | None = parts.port
    except ValueError:              # out of range or not a number: part of the key as written
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
    raw = (parts.hostname or "").rstrip(".")
    host = normalise_host(raw) or raw
    if port and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/") or ""
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{path}{query}"


_UNPARSED = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?(?://)?(?:[^/?#@]*@)?([^/?#]*)([^?#]*)(\?[^#]*)?")


def _dedup_key_unparsed(url: str) -> str:
    m = _UNPARSED.match(url)
    netloc, path, query = m.group(1), m.group(2), m.group(3) or ""
    return f"{netloc.lower()}{path.rstrip('/')}{query if len(query) > 1 else ''}"
