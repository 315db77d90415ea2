"""URL filter stage: config, reason codes on realistic URLs, robustness, pickling, per-URL cost."""

from __future__ import annotations

import dataclasses
import pickle
import time

import pytest

from refinedweb.config import load_config
from refinedweb.errors import UserError
from refinedweb.stages.blocklist import Blocklist, load_blocklist
from refinedweb.stages.url_filter import REASONS, UrlFilter, UrlFilterConfig, bundled_words, subword_pattern, tokenize

from .conftest import shared


@pytest.fixture(scope="module")
def cfg_section():
    from refinedweb.config import load_config

    return load_config()["url_filter"]


@pytest.fixture(scope="module")
def demo_blocklist():
    return load_blocklist(["package:demo_blocklist.txt"])


@pytest.fixture(scope="module")
def url_filter(cfg_section, demo_blocklist):
    return UrlFilter(UrlFilterConfig.from_config(cfg_section), demo_blocklist)


# ------------------------------------------------------------------------------------------------
# config
# ------------------------------------------------------------------------------------------------

def test_config_from_the_paper_defaults(cfg_section):
    config = UrlFilterConfig.from_config(cfg_section)
    assert config.enabled and config.soft_word_threshold == 2
    assert config.hard_words is None and config.soft_words is None and config.banned_subwords is None
    assert "adult" in config.categories and "wikipedia.org" in config.excluded_domains
    assert config.blocklist == ("~/.cache/refinedweb/blocklists/ut1/blacklists.tar.gz",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.enabled = False
    assert config.words("hard_words") == bundled_words("hard_words") and "porn" in config.words("hard_words")
    assert "#ass" not in config.words("hard_words") and "ass" in config.words("soft_words")


def url_config(**section) -> UrlFilterConfig:
    """The shipped section (without a blocklist) with `section` changed."""
    return UrlFilterConfig.from_config({**load_config()["url_filter"], "blocklist": [], **section})


def test_config_validation():
    with pytest.raises(UserError, match="unknown config key 'url_filter.hard_word'"):
        load_config(overrides=["url_filter.hard_word=[x]"])
    with pytest.raises(UserError, match="config key 'url_filter.enabled' is missing"):
        UrlFilterConfig.from_config({})                   # the defaults are the YAML's, not the code's
    with pytest.raises(UserError, match="soft_word_threshold"):
        url_config(soft_word_threshold=0)
    with pytest.raises(UserError, match="hard_words"):
        url_config(hard_words=3)
    with pytest.raises(UserError, match="not a domain"):
        url_config(excluded_domains=["not a domain"])
    config = url_config(blocklist="x.txt", excluded_domains=["WWW.Example.ORG", "example.org"], categories=None,
                        hard_words=["Foo"])
    assert config.blocklist == ("x.txt",) and config.excluded_domains == ("example.org",)
    assert config.categories is None and config.hard_words == ("Foo",)
    assert url_config(blocklist=None).blocklist == ()


def test_missing_configured_blocklist_is_a_user_error(tmp_path):
    config = url_config(blocklist=[str(tmp_path / "nope.tar.gz")])
    with pytest.raises(UserError, match=r"refinedweb blocklist fetch.*\[\] to run without one"):
        config.load_blocklist()
    assert url_config(blocklist=[]).load_blocklist() is None


def test_word_list_from_a_file(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("# comment\nFooBar\n\nbaz qux\n")
    f = UrlFilter(url_config(hard_words=str(path), soft_words=[], banned_subwords=[]))
    assert f.check("http://example.com/foobar") == "hard_word"
    assert f.check("http://example.com/x/baz-qux.html") == "hard_word"       # a phrase: consecutive tokens
    assert f.check("http://example.com/baz/other/qux") is None
    assert f.check("http://example.com/comment") is None


@pytest.mark.parametrize("key,file", [("hard_words", "banned_words.txt"), ("soft_words", "soft_banned_words.txt"),
                                      ("banned_subwords", "banned_subwords.txt")])
def test_a_bundled_list_is_every_line_of_its_file_but_the_disabled_ones(key, file):
    """Each word of the bundled FineWeb/datatrove file is in the list; a line disabled with '#' is not, nor is
    its word (unless the file also lists it enabled); nothing else is."""
    from importlib import resources

    lines = [l.strip() for l in (resources.files("refinedweb") / "resources" / "url_words" / file).read_text().splitlines()]
    enabled = [l for l in lines if l and not l.startswith("#")]
    disabled = {l[1:].strip() for l in lines if l.startswith("#")} - set(enabled)
    words = bundled_words(key)
    assert list(words) == enabled
    assert disabled and not disabled & set(words)


# ------------------------------------------------------------------------------------------------
# reason codes
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url,reason", [
    # hard words: one whole token (case-insensitive, percent-decoded)
    ("http://robins-agency.com/teens/teen-orgy.html", "hard_word"),       # real URL from the 2008 CC sample
    ("https://www.example.com/videos/PORN/latest", "hard_word"),
    ("https://example.com/search?q=free%20hentai%20comics", "hard_word"),
    ("https://cheap-viagra-online.example.net/", "hard_word"),
    # soft words: two distinct ones
    ("https://www.example.com/gallery/sexy-lingerie-models.html", "soft_words"),
    ("https://blog.example.org/2021/05/nude-beach-topless", "soft_words"),
    # sub-words: anywhere in the URL with non-alphanumerics removed
    ("https://www.example.com/watch?v=freesexcams", "banned_subword"),
    ("https://shop.example.com/products/ballgag-deluxe", "banned_subword"),
    ("https://www.example.com/tags/big-tits/", "hard_word"),                 # "tits" is a hard word
    ("https://xvideos-downloader.example.com/", "banned_subword"),
    ("https://example.com/a/b/sex%20videos", "banned_subword"),
    # excluded high-quality sources: the host or a parent domain
    ("https://en.wikipedia.org/wiki/Main_Page", "excluded_domain"),
    ("https://wikipedia.org/", "excluded_domain"),
    ("https://de.m.wiktionary.org/wiki/Haus", "excluded_domain"),
    ("https://arxiv.org/abs/2306.01116", "excluded_domain"),
    ("https://www.ncbi.nlm.nih.gov/pmc/articles/PMC1/", "excluded_domain"),
    ("https://patents.google.com/patent/US1234", "excluded_domain"),
    ("https://old.reddit.com/r/python/", "excluded_domain"),
    ("https://gist.github.com/x/y", "excluded_domain"),
    # blocklist (the bundled demo list)
    ("http://pinoystyle.net/flash/002/010.html", "blocklist_domain"),
    ("http://redkalki.libreopinion.com/noticias/2002/11/biondini_editorial.htm", "blocklist_domain"),
    ("http://www.ahmedhakeem.com/elizabeth-banks.html", "blocklist_domain"),
    # malformed
    ("", "malformed_url"),
    ("not a url", "malformed_url"),
    ("http://", "malformed_url"),
    ("http:///path/only", "malformed_url"),
    ("mailto:someone@example.com", "malformed_url"),
    ("dns:www.archive.org", "malformed_url"),
    ("http://exa mple.com/", "malformed_url"),
    ("http://example.com:port/", "malformed_url"),
    ("http://[::1/", "malformed_url"),
    ("http://a..b.com/", "malformed_url"),
    ("http://" + "a" * 4000 + ".com/", "malformed_url"),
    # kept
    ("https://www.example.com/news/2023/05/12/city-council-approves-budget", None),
    ("http://www.scunthorpe-united.co.uk/", None),             # 'cunt' only inside a token
    ("https://www.therapist.com/find", None),                  # 'rapist' only inside a token
    ("https://www.essex.gov.uk/schools", None),
    ("https://example.com/lingerie-shop", None),                # one soft word only
    ("https://example.com/ass", None),                          # '#ass' is disabled in the hard list
    ("https://notwikipedia.org/", None),
    ("https://www.google.com/search?q=weather", None),
    ("http://archive.org/details/texts", None),
    ("https://EXAMPLE.com:8443/Path?x=1#frag", None),
    ("http://user:pass@example.com/", None),
    ("http://192.168.0.1/admin", None),
    ("http://[2001:db8::1]:8080/x", None),
])
def test_reasons(url_filter, url, reason):
    assert url_filter.check(url) == reason
    assert reason is None or reason in REASONS


def test_blocklist_reasons_domain_and_url():
    blocklist = Blocklist.from_entries(["listed.example", "münchen.de"], ["host.example/bad/page"])
    f = UrlFilter(url_config(), blocklist)
    assert f.check("http://cdn.listed.example/img.png") == "blocklist_domain"
    assert f.check("http://host.example/bad/page?utm=1") == "blocklist_url"
    assert f.check("http://host.example/good/page") is None
    assert f.check("http://münchen.de/straße") == "blocklist_domain"
    assert f.check("http://www.xn--mnchen-3ya.de/") == "blocklist_domain"


def test_cheap_checks_come_first():
    blocklist = Blocklist.from_entries(["en.wikipedia.org", "porn-site.example"])
    f = UrlFilter(url_config(excluded_domains=["wikipedia.org"]), blocklist)
    assert f.check("https://en.wikipedia.org/wiki/X") == "excluded_domain"
    assert f.check("http://porn-site.example/") == "hard_word"
    assert f.check("http://other.porn-site.example/") == "hard_word"
    assert f.check("http://ok.example/") is None


def test_soft_threshold_and_custom_lists():
    f = UrlFilter(url_config(soft_word_threshold=3, hard_words=[], banned_subwords=[], soft_words=["alpha", "beta", "gamma"]))
    assert f.check("http://example.com/alpha/beta") is None
    assert f.check("http://example.com/alpha/beta/alpha") is None       # distinct words
    assert f.check("http://alpha.example.com/beta-gamma") == "soft_words"


def test_disabled_keeps_everything():
    f = UrlFilter(url_config(enabled=False))
    assert f.check("http://porn.example.com/") is None


# ------------------------------------------------------------------------------------------------
# robustness
# ------------------------------------------------------------------------------------------------

def test_long_idn_and_odd_urls_do_not_crash(url_filter):
    long_path = "https://www.example.com/" + "/".join(f"segment-{i}" for i in range(400))
    assert len(long_path) > 4000
    assert url_filter.check(long_path) is None
    assert url_filter.check("https://www.example.com/search?q=" + "x" * 4096) is None
    assert url_filter.check("https://example.com/" + "porn-" * 900) == "hard_word"
    assert url_filter.check("http://münchen.de/straße/über-uns") is None
    assert url_filter.check("http://пример.испытание/путь?запрос=1") is None
    assert url_filter.check("http://例え.テスト/") is None
    assert url_filter.check("http://example.com/%ZZ%%41/\udcff") is None        # bad escapes, lone surrogate
    assert url_filter.check("http://xn--/") == "malformed_url" or url_filter.check("http://xn--/") is None
    assert url_filter.check(b"http://example.com/bytes") is None
    assert url_filter.check(None) == "malformed_url"
    assert url_filter.check("http://" + "a." * 125 + "com/") is None             # 253-char host
    assert url_filter.check("http://" + "a." * 126 + "com/") == "malformed_url"  # 255 > 253
    assert url_filter.check("  https://example.com/padded  ") is None


def test_tokenize_and_subword_pattern():
    assert tokenize("Example.COM/Sex_Videos?x=1%20") == [b"example", b"com", b"sex", b"videos", b"x", b"1", b"20"]
    pattern = subword_pattern(["big tits", "x", "Two-Words"])
    assert pattern.search(b"examplecomabigtitsz") and pattern.search(b"twowords") and pattern.search(b"xyz")
    assert not pattern.search(b"bigtit")
    assert subword_pattern([]) is None and subword_pattern(["#", " "]) is None


def test_subword_pattern_equals_naive_search():
    import random

    words = bundled_words("banned_subwords")
    pattern = subword_pattern(words)
    normalised = [b"".join(tokenize(w)) for w in words]
    rng = random.Random(3)
    for _ in range(5000):
        text = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(0, 60)))
        if rng.random() < 0.5:
            i = rng.randint(0, len(text))
            text = text[:i] + rng.choice(normalised) + text[i:]
        assert bool(pattern.search(text)) == any(w in text for w in normalised), text


# ------------------------------------------------------------------------------------------------
# pickling
# ------------------------------------------------------------------------------------------------

URLS = ["https://en.wikipedia.org/wiki/X", "http://pinoystyle.net/", "https://www.example.com/sexy-lingerie",
        "https://example.com/news", "http://", "https://www.example.com/tags/big-tits/"]


def test_pickle_round_trip(url_filter):
    clone = pickle.loads(pickle.dumps(url_filter))
    assert [clone.check(u) for u in URLS] == [url_filter.check(u) for u in URLS]
    bare = UrlFilter(url_config())
    assert len(pickle.dumps(bare)) < 2000


# ------------------------------------------------------------------------------------------------
# cost per URL on real WARC URLs
# ------------------------------------------------------------------------------------------------

def _warc_urls() -> list[str]:
    from warcio.archiveiterator import ArchiveIterator

    urls = []
    for path in sorted(shared("warc").glob("*.warc.gz")):
        try:
            with open(path, "rb") as stream:
                for record in ArchiveIterator(stream):
                    uri = record.rec_headers.get_header("WARC-Target-URI")
                    if uri:
                        urls.append(uri)
        except Exception:  # the deliberately truncated sample
            continue
    return urls


def test_check_cost_per_url_on_warc_urls(cfg_section):
    urls = _warc_urls()
    assert len(urls) > 1000
    full_path = shared("blocklists", "datatrove_fineweb", "url_filterblacklistsv0_3_0.tar.gz")
    f = UrlFilter(UrlFilterConfig.from_config(cfg_section), Blocklist.load([full_path]))
    f.check(urls[0])
    best = float("inf")
    for _ in range(7):  # CPU time, best round: robust to other jobs on a shared machine
        started = time.process_time()
        for url in urls:
            f.check(url)
        best = min(best, (time.process_time() - started) / len(urls))
    # A regression guard, not the benchmark: measured 10-20 us per URL (docs/benchmarks.md); a CI run once
    # measured 20.1 us, so the bound leaves room for slow machines and catches order-of-magnitude slips.
    assert best < 50e-6, f"{best * 1e6:.1f} us per URL"
