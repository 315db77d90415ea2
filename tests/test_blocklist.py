"""Blocklist: loading (tar.gz / UT1 directory / plain text), normalisation, matching, cost, download."""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import json
import os
import pickle
import random
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from refinedweb import urls as urls_mod
from refinedweb.errors import UserError
from refinedweb.stages import blocklist_files as files_mod
from refinedweb.stages.blocklist import Blocklist, demo_blocklist_path, load_blocklist
from refinedweb.stages.blocklist_fetch import fetch_ut1
from refinedweb.urls import normalise_host, registered_domain, split_url

from .conftest import REPO, shared

FULL_LIST = ("blocklists", "datatrove_fineweb", "url_filterblacklistsv0_3_0.tar.gz")
UT1_DIR = ("blocklists", "ut1_olbat_mirror")
PAPER_CATEGORIES = ["adult", "phishing", "dating", "gambling", "filehosting", "ddos", "agressif", "chat",
                    "mixed_adult", "arjel"]


# ------------------------------------------------------------------------------------------------
# the full 4.6M-domain list
# ------------------------------------------------------------------------------------------------

def _timed_load(path: Path) -> tuple[Blocklist, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    blocklist = Blocklist.load([path])
    return blocklist, time.perf_counter() - wall, time.process_time() - cpu


@pytest.fixture(scope="module")
def full():
    return _timed_load(shared(*FULL_LIST))


def test_full_list_loads_within_3_seconds(full):
    blocklist, wall, cpu = full
    assert blocklist.n_domains == 4_558_940      # every line of `domains` (no duplicates in it)
    assert blocklist.n_urls == 19_587
    walls, cpus = [wall], [cpu]
    while min(walls) > 3.0 and len(walls) < 3:   # a busy shared machine: best of up to 3 loads
        _, wall, cpu = _timed_load(shared(*FULL_LIST))
        walls.append(wall)
        cpus.append(cpu)
    timings = f"wall {', '.join(f'{t:.2f}' for t in walls)} s, cpu {', '.join(f'{t:.2f}' for t in cpus)} s"
    assert min(cpus) <= 3.0, timings
    oversubscribed = os.getloadavg()[0] > (os.cpu_count() or 1) + 0.5
    assert min(walls) <= 3.0 or oversubscribed, timings   # with other jobs on every core, wall time is theirs


_RSS_SCRIPT = r"""
import json, sys, time
from refinedweb.stages.blocklist import Blocklist
import numpy, xxhash, tldextract  # imports are not the list's cost

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) // 1024
    return out

try:  # reset the peak so VmHWM afterwards is the peak of the load itself
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
before = status()
started = time.perf_counter()
blocklist = Blocklist.load([sys.argv[1]])
seconds = time.perf_counter() - started
after = status()
blocklist.match("http://example.com/")  # the lazily built lookup index
final = status()
print(json.dumps({"seconds": seconds, "peak_increase_mb": after["VmHWM"] - before["VmRSS"],
                  "resident_increase_mb": final["VmRSS"] - before["VmRSS"], "n": len(blocklist)}))
"""


def test_full_list_memory_cost_in_a_fresh_process(tmp_path):
    path = shared(*FULL_LIST)
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc/self/status (Linux) to measure resident memory")
    result = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path)], capture_output=True, text=True,
                            cwd=REPO, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(tmp_path)})  # no cache
    assert result.returncode == 0, result.stderr[-2000:]
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["peak_increase_mb"] <= 150, stats       # a Python set of the strings costs ~500 MB
    assert stats["resident_increase_mb"] <= 100, stats   # 37 MB of hashes + 4 MB index + buffers


def test_hashed_lists_are_cached_per_file_version_and_categories(tmp_path, monkeypatch):
    """A second load of the same file reads the hashed lists back (~20 ms for UT1 instead of ~1 s); another
    file version, other categories or an unwritable cache folder load the files again, with equal results."""
    from refinedweb.stages import blocklist as blocklist_mod

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "domains.txt"
    path.write_text("bad.example\nworse.example\n", encoding="utf-8")
    first = Blocklist.load(path)
    assert len(list(blocklist_mod.cache_dir().glob("*.npz"))) == 1
    monkeypatch.setattr(blocklist_mod, "_Loader", None)          # a second load must not read the file
    again = Blocklist.load(path)
    assert np.array_equal(again.domains, first.domains) and again.meta == first.meta
    assert again.match("http://www.bad.example/x") == "domain"
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path.write_text("bad.example\nworse.example\nthird.example\n", encoding="utf-8")
    assert Blocklist.load(path).match("http://third.example/") == "domain"     # the file changed: reloaded
    assert len(list(blocklist_mod.cache_dir().glob("*.npz"))) == 2
    (tmp_path / "ro").write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "ro"))
    assert Blocklist.load(path).n_domains == 3                                   # no cache: still loads


def test_full_list_known_entries(full):
    blocklist = full[0]
    # first, last and assorted real lines of the list
    for domain in ("0-1sex.com", "zzzzzzzxxs.kali-shop.ru", "0-assist-protect.cf", "1.0.218.19",
                   "pinoystyle.net", "libreopinion.com", "ahmedhakeem.com"):
        assert blocklist.contains_domain(domain), domain
        assert blocklist.match(f"http://{domain}/") == "domain", domain
    # subdomains and www. of listed domains
    assert blocklist.find("http://www.0-1sex.com/index.html") == ("domain", "0-1sex.com")
    assert blocklist.find("https://a.b.0-1sex.com/x?y=1") == ("domain", "0-1sex.com")
    assert blocklist.find("http://redkalki.libreopinion.com/noticias/") == ("domain", "libreopinion.com")
    assert blocklist.match("HTTP://PINOYSTYLE.NET/flash/002/010.html") == "domain"
    # exact URL entries (from the list's `urls` member), with and without scheme, query, trailing /
    assert blocklist.find("http://141jav.com/tag/Slut") == ("url", "141jav.com/tag/Slut")
    assert blocklist.match("https://www.141jav.com/tag/Slut/?page=2#top") == "url"
    assert blocklist.match("http://141jav.com/tag/slut") is None      # paths are case-sensitive
    assert blocklist.match("http://141jav.com/tag/Other") is None
    # not listed
    for url in ("http://example.com/", "https://en.wikipedia.org/wiki/Sex", "https://www.google.com/",
                "http://archive.org/details/x", "http://sex.com.example.org/", "http://0-1sex.co/"):
        assert blocklist.match(url) is None, url


def test_full_list_public_suffix_entries_do_not_block_children(full):
    """The list has 7 entries that are public suffixes (TLDs xxx, porn, adult, sex; sex.pl, sex.hu,
    sexsyte.nom.br). Matching stops at the registered domain (eTLD+1), as datatrove's does, so they
    block only the suffix itself (the URL words catch most such hosts anyway)."""
    blocklist = full[0]
    for entry in ("xxx", "porn", "sex.pl", "sex.hu"):
        assert blocklist.contains_domain(entry)
    assert blocklist.match("http://example.xxx/") is None
    assert blocklist.match("http://www.example.sex.pl/") is None
    assert blocklist.match("http://sex.pl/") == "domain"


def test_full_list_pickles_as_arrays(full):
    blocklist = full[0]
    blob = pickle.dumps(blocklist, protocol=5)
    assert len(blob) < blocklist.nbytes + 100_000
    clone = pickle.loads(blob)
    assert clone.match("http://a.b.0-1sex.com/") == "domain" and clone.match("http://example.com/") is None
    assert np.array_equal(clone.domains, blocklist.domains)


# ------------------------------------------------------------------------------------------------
# UT1 directory and tar.gz with categories
# ------------------------------------------------------------------------------------------------

def _first_entries(path: Path, n: int = 3) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
            if len(out) == n:
                break
    return out


def test_ut1_directory_paper_categories():
    root = shared(*UT1_DIR)
    blocklist = Blocklist.load(root, PAPER_CATEGORIES)
    # adult has only `urls` (no `domains`) in this mirror: its URL entries are taken, no domains
    assert not (root / "adult" / "domains").exists()
    for url in _first_entries(root / "adult" / "urls"):
        assert blocklist.match("http://" + url) == "url", url
    for category in ("phishing", "dating", "gambling", "ddos", "agressif", "mixed_adult"):
        for domain in _first_entries(root / category / "domains"):
            assert blocklist.match(f"https://www.{domain}/") == "domain", (category, domain)
    # categories the paper does not use are not loaded
    for category in ("malware", "warez", "drogue", "sect"):
        for domain in _first_entries(root / category / "domains"):
            assert blocklist.match(f"http://{domain}/") is None, (category, domain)
    # the mirror lacks some UT1 categories
    assert set(blocklist.meta["missing_categories"]) == {"filehosting", "chat", "arjel"}
    assert blocklist.match("http://example.com/") is None


def test_ut1_directory_adult_only_is_urls_only():
    root = shared(*UT1_DIR)
    blocklist = Blocklist.load(root, ["adult"])
    lines = _first_entries(root / "adult" / "urls", 10**6)
    assert blocklist.n_domains == 0
    assert 1000 < blocklist.n_urls <= len(lines)
    assert blocklist.meta["lists"] == [("adult/urls", 0, blocklist.meta["lists"][0][2])]


def _tar_bytes(files: dict[str, str], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


UT1_LIKE = {
    "blacklists/adult/domains": "porn-example.com\nadult-example.net\n",
    "blacklists/adult/urls": "safe-host.org/adult/page\n",
    "blacklists/gambling/domains": "casino-example.com\n",
    "blacklists/agressif/domains": "hate-example.org\n",
    "blacklists/malware/domains": "malware-example.com\n",
    "blacklists/adult/usage": "black\n",
    "blacklists/README": "not a list\n",
}


def test_tar_gz_with_categories_filters_categories(tmp_path):
    path = tmp_path / "blacklists.tar.gz"
    path.write_bytes(_tar_bytes(UT1_LIKE, symlinks={"blacklists/aggressive": "agressif"}))
    blocklist = Blocklist.load(path, ["adult", "gambling"])
    assert blocklist.match("http://porn-example.com/") == "domain"
    assert blocklist.match("http://cdn.adult-example.net/x.jpg") == "domain"
    assert blocklist.match("http://casino-example.com") == "domain"
    assert blocklist.match("http://safe-host.org/adult/page") == "url"
    assert blocklist.match("http://safe-host.org/other") is None
    assert blocklist.match("http://malware-example.com/") is None
    assert blocklist.match("http://hate-example.org/") is None
    # every category
    everything = Blocklist.load(path, None)
    assert everything.match("http://malware-example.com/") == "domain"
    # a UT1 English alias (symlink) selects its target category
    alias = Blocklist.load(path, ["aggressive"])
    assert alias.match("http://hate-example.org/") == "domain"
    assert alias.match("http://porn-example.com/") is None
    assert alias.meta["missing_categories"] == []


def test_tar_gz_top_level_lists_always_taken(tmp_path):
    path = tmp_path / "flat.tar.gz"
    path.write_bytes(_tar_bytes({"domains": "flat-example.com\n", "urls": "flat-host.net/path\n",
                                 "cat/domains": "cat-example.com\n"}))
    blocklist = Blocklist.load(path, ["adult"])
    assert blocklist.match("http://flat-example.com/") == "domain"
    assert blocklist.match("http://flat-host.net/path") == "url"
    assert blocklist.match("http://cat-example.com/") is None


def test_corrupt_archive_is_a_user_error(tmp_path):
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(_tar_bytes(UT1_LIKE)[:200])
    with pytest.raises(UserError, match="not a readable archive"):
        Blocklist.load(path, ["adult"])


# ------------------------------------------------------------------------------------------------
# plain text, normalisation
# ------------------------------------------------------------------------------------------------

PLAIN = """# a comment line
Example-Upper.COM
www.with-www.org
trailing-dot.net.
  spaced.example.com  \t
münchen.de
0.0.0.0 hosts-file.example
*.wild.example
.leading.example
inline.example # comment after
url-host.example/some/Path?q=1
http://scheme-url.example/page/

"""


def test_plain_text_list(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text(PLAIN.replace("\n", "\r\n"), encoding="utf-8")   # CRLF too
    blocklist = Blocklist.load(path)
    for url in ("http://example-upper.com/", "http://WWW.EXAMPLE-UPPER.COM/x", "http://with-www.org/",
                "http://www.with-www.org/", "http://sub.with-www.org/", "http://trailing-dot.net./",
                "http://spaced.example.com/", "http://xn--mnchen-3ya.de/", "http://münchen.de/straße",
                "http://hosts-file.example/", "http://a.wild.example/", "http://leading.example/",
                "http://inline.example/"):
        assert blocklist.match(url) == "domain", url
    assert blocklist.match("https://url-host.example/some/Path?q=1") == "url"
    assert blocklist.match("https://url-host.example/some/Path") is None       # the entry has a query
    assert blocklist.match("https://url-host.example/some/path?q=1") is None   # paths are case-sensitive
    assert blocklist.match("https://scheme-url.example/page") == "url"
    assert blocklist.match("https://scheme-url.example/page?utm=x#y") == "url"  # tried without the query too
    assert blocklist.match("https://scheme-url.example/") is None
    assert blocklist.match("http://comment.example/") is None
    assert blocklist.n_domains == 9 and blocklist.n_urls == 2


def test_gzipped_plain_text(tmp_path):
    path = tmp_path / "list.txt.gz"
    path.write_bytes(gzip.compress(b"gz-example.com\n"))
    assert Blocklist.load(path).match("http://gz-example.com/") == "domain"


def _random_domain(rng: random.Random) -> str:
    labels = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-_") for _ in range(rng.randint(1, 12)))
              for _ in range(rng.randint(1, 4))]
    host = ".".join(labels)
    twist = rng.random()
    if twist < 0.05:
        host = "www." + host
    elif twist < 0.08:
        host += "."
    elif twist < 0.11:
        host = "." + host
    elif twist < 0.14:
        host = host.upper()
    elif twist < 0.16:
        host = "# " + host
    elif twist < 0.18:
        host = ""
    elif twist < 0.20:
        host = "bücher" + host
    elif twist < 0.22:
        host = host + "/path/X"
    return host


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_chunked_fast_path_equals_per_line_normalisation(tmp_path, monkeypatch, chunk):
    rng = random.Random(chunk)
    lines = [_random_domain(rng) for _ in range(5000)]
    clean = [f"clean{i}.example.com" for i in range(3000)]
    path = tmp_path / "domains.txt"
    path.write_text("\n".join(clean + lines + clean[:10]) + "\n", encoding="utf-8")
    monkeypatch.setattr(files_mod, "_CHUNK", chunk)
    loaded = Blocklist.load(path)
    reference = Blocklist.from_entries(clean + lines)
    assert np.array_equal(loaded.domains, reference.domains)
    assert np.array_equal(loaded.urls, reference.urls)


def test_normalise_host():
    assert normalise_host("WWW.Example.COM.") == "example.com"
    assert normalise_host("www.com") == "www.com"
    assert normalise_host("münchen.de") == "xn--mnchen-3ya.de"
    assert normalise_host("exa mple.com") is None
    assert normalise_host("a..b") is None
    assert normalise_host("") is None
    assert normalise_host("a" * 300 + ".com") is None
    assert normalise_host("[2001:DB8::1]") == "[2001:db8::1]"


def test_split_url_fast_path_agrees_with_general_parser():
    rng = random.Random(7)
    pieces = ["http://", "https://", "HTTP://", "ftp://", "//", "", " ", "user:pw@", "www.", "WWW.", "Example",
              "example", ".", "..", "com", "co.uk", ":8080", ":", ":x", "/", "/path", "?q=1", "#frag", "\\", "%41",
              "ü", "-", "_", "[::1]", "@", "\t", "0", "1.2.3.4", "\u3000", "\x00", "\x0b"]
    for _ in range(20000):
        url = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        assert split_url(url) == urls_mod._split_url_general(url, False), url
        assert split_url(url, schemeless=True) == urls_mod._split_url_general(url, True), url


def test_registered_domain_uses_the_bundled_suffix_list():
    assert registered_domain("news.bbc.co.uk") == "bbc.co.uk"
    assert registered_domain("a.b.example.com") == "example.com"
    assert registered_domain("co.uk") == ""
    assert registered_domain("host.unknowntld") == "host.unknowntld"   # PSL default rule "*"
    assert registered_domain("1.2.3.4") == ""


def test_parents_between_host_and_registered_domain():
    blocklist = Blocklist.from_entries(["b.example.com", "co.uk", "shop.example.co.uk"])
    assert blocklist.find("http://a.b.example.com/") == ("domain", "b.example.com")
    assert blocklist.find("http://x.y.a.b.example.com/") == ("domain", "b.example.com")
    assert blocklist.match("http://example.com/") is None
    assert blocklist.match("http://c.example.com/") is None
    assert blocklist.match("http://bbc.co.uk/") is None           # a listed public suffix blocks no child
    assert blocklist.match("http://co.uk/") == "domain"          # only itself
    assert blocklist.match("http://www.shop.example.co.uk/") == "domain"
    assert blocklist.match("http://example.co.uk/") is None


def test_small_blocklist_pickle_round_trip():
    blocklist = Blocklist.from_entries(["pickled.example"], ["pickled.example/x"])
    assert blocklist.match("http://pickled.example/") == "domain"   # builds the lazy index
    clone = pickle.loads(pickle.dumps(blocklist))
    assert clone._lookup is None
    assert clone.find("http://sub.pickled.example/") == ("domain", "pickled.example")
    assert len(pickle.dumps(blocklist)) < 2000


def test_empty_blocklist():
    blocklist = Blocklist.from_entries([])
    assert len(blocklist) == 0 and blocklist.match("http://example.com/") is None


# ------------------------------------------------------------------------------------------------
# paths, errors, the bundled demo list
# ------------------------------------------------------------------------------------------------

def test_missing_path_is_a_user_error_with_a_hint(tmp_path):
    missing = tmp_path / "absent.tar.gz"
    with pytest.raises(UserError) as info:
        load_blocklist([str(missing)], PAPER_CATEGORIES)
    message = str(info.value)
    assert message == (f"no URL blocklist at {missing}: run `refinedweb blocklist fetch`, or set "
                       f"url_filter.blocklist to a path (or [] to run without one)")
    assert "\n" not in message


def test_load_blocklist_empty_means_none():
    assert load_blocklist([]) is None
    assert load_blocklist(None) is None


def test_bundled_demo_blocklist():
    path = demo_blocklist_path()
    assert path.exists()
    header = path.read_text(encoding="utf-8").splitlines()[:5]
    assert any("Apache-2.0" in line for line in header) and any("datatrove" in line for line in header)
    blocklist = load_blocklist(["package:demo_blocklist.txt"])
    assert 2000 <= blocklist.n_domains <= 2100
    for url in ("http://pinoystyle.net/flash/002/010.html", "http://redkalki.libreopinion.com/noticias/",
                "http://www.ahmedhakeem.com/elizabeth-banks.html", "http://0-1sex.com/"):
        assert blocklist.match(url) == "domain", url
    assert blocklist.match("http://example.com/") is None


def test_demo_blocklist_matches_hosts_of_the_shared_warcs():
    warc_dir = shared("warc")
    from warcio.archiveiterator import ArchiveIterator

    demo = load_blocklist(["package:demo_blocklist.txt"])
    hits = set()
    for path in sorted(warc_dir.glob("*.warc.gz")):
        try:
            with open(path, "rb") as stream:
                for record in ArchiveIterator(stream):
                    if record.rec_type == "response":
                        hit = demo.find(record.rec_headers.get_header("WARC-Target-URI") or "")
                        if hit:
                            hits.add(hit[1])
        except Exception:  # the deliberately truncated sample
            continue
    assert hits == {"pinoystyle.net", "libreopinion.com", "ahmedhakeem.com"}


# ------------------------------------------------------------------------------------------------
# fetch_ut1 against a local HTTP server
# ------------------------------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def http_root(tmp_path, monkeypatch):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_ut1_downloads_atomically(http_root, tmp_path):
    root, base = http_root
    (root / "blacklists.tar.gz").write_bytes(_tar_bytes(UT1_LIKE))
    dest = tmp_path / "cache" / "ut1"
    path = fetch_ut1(dest, url=f"{base}/blacklists.tar.gz", timeout=10)
    assert path == dest / "blacklists.tar.gz" and path.read_bytes() == (root / "blacklists.tar.gz").read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["blacklists.tar.gz"]       # no temp file left
    assert Blocklist.load(path, ["adult"]).match("http://porn-example.com/") == "domain"
    # a second fetch replaces the file
    (root / "blacklists.tar.gz").write_bytes(_tar_bytes({"blacklists/adult/domains": "new-example.com\n"}))
    fetch_ut1(dest, url=f"{base}/blacklists.tar.gz", timeout=10)
    assert Blocklist.load(path, ["adult"]).match("http://new-example.com/") == "domain"


def test_fetch_ut1_404_is_a_clean_user_error(http_root, tmp_path):
    _, base = http_root
    dest = tmp_path / "cache"
    with pytest.raises(UserError, match="HTTP 404"):
        fetch_ut1(dest, url=f"{base}/missing.tar.gz", timeout=10)
    assert list(dest.iterdir()) == []


def test_fetch_ut1_rejects_a_non_archive_and_keeps_the_old_file(http_root, tmp_path):
    root, base = http_root
    (root / "good.tar.gz").write_bytes(_tar_bytes(UT1_LIKE))
    (root / "page.html").write_text("<html>maintenance</html>")
    dest = tmp_path / "cache"
    fetch_ut1(dest, url=f"{base}/good.tar.gz", timeout=10)
    before = (dest / "blacklists.tar.gz").read_bytes()
    with pytest.raises(UserError, match="not a valid tar.gz"):
        fetch_ut1(dest, url=f"{base}/page.html", timeout=10)
    assert (dest / "blacklists.tar.gz").read_bytes() == before
    assert sorted(p.name for p in dest.iterdir()) == ["blacklists.tar.gz"]


def test_fetch_ut1_unreachable_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with pytest.raises(UserError, match="cannot download"):
        fetch_ut1(tmp_path, url="http://127.0.0.1:9/blacklists.tar.gz", timeout=5)


def test_out_of_band_pickle_with_read_only_buffers():
    """What `ray.put` does: protocol-5 pickling with the arrays out of band, mapped read-only."""
    blocklist = Blocklist.from_entries([f"host{i}.example" for i in range(10000)], ["oob.example/page"])
    buffers = []
    blob = pickle.dumps(blocklist, protocol=5, buffer_callback=buffers.append)
    assert len(blob) < 2000 and len(buffers) == 3
    clone = pickle.loads(blob, buffers=[b.raw().toreadonly() for b in buffers])
    assert not clone.domains.flags.writeable
    assert clone.match("http://www.host42.example/") == "domain"
    assert clone.match("http://oob.example/page") == "url"
    assert clone.match("http://host10000.example/") is None
