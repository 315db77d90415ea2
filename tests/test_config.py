import pytest

from refinedweb.config import load_config, packaged_config_path
from refinedweb.errors import UserError


def test_defaults_mirror_the_paper():
    cfg = load_config()
    assert cfg["langid"]["threshold"] == 0.65
    assert cfg["langid"]["languages"] == ["en"]
    assert cfg["repetition"]["max_duplicate_line_fraction"] == 0.30
    assert cfg["repetition"]["max_top_ngram_char_fraction"] == {2: 0.20, 3: 0.18, 4: 0.16}
    assert cfg["repetition"]["max_duplicate_ngram_char_fraction"][10] == 0.10
    assert cfg["quality"]["min_words"] == 50 and cfg["quality"]["max_words"] == 100_000
    assert cfg["line_filter"]["max_removed_words_fraction"] == 0.05


def test_every_paper_threshold_names_its_source():
    text = packaged_config_path().read_text()
    for key in ("max_duplicate_line_fraction", "max_top_ngram_char_fraction", "min_words", "max_symbol_word_ratio",
                "threshold: 0.65", "max_removed_words_fraction"):
        line = next(l for l in text.splitlines() if key in l)
        section_comment = text[: text.index(line)].rsplit("\n\n", 1)[-1]
        assert ("Gopher" in line or "RW" in line or "Gopher" in section_comment or "RW" in section_comment), key


def test_set_overrides_parse_yaml_values():
    cfg = load_config(overrides=["langid.threshold=0.7", "langid.languages=[de, fr]", "output.write_dropped=true",
                                 "repetition.max_top_ngram_char_fraction={2: 0.25}"])
    assert cfg["langid"]["threshold"] == 0.7
    assert cfg["langid"]["languages"] == ["de", "fr"]
    assert cfg["output"]["write_dropped"] is True
    assert cfg["repetition"]["max_top_ngram_char_fraction"][2] == 0.25


def test_unknown_key_names_closest_valid_keys():
    with pytest.raises(UserError) as err:
        load_config(overrides=["langid.treshold=0.7"])
    assert "unknown config key 'langid.treshold'" in str(err.value)
    assert "langid.threshold" in str(err.value)


def test_unknown_section_in_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("langidd:\n  threshold: 0.5\n")
    with pytest.raises(UserError, match="langid"):
        load_config(path)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("langid: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="KEY=VALUE"):
        load_config(overrides=["langid.threshold"])


def test_section_needs_mapping():
    with pytest.raises(UserError, match="is a section"):
        load_config(overrides=["langid=5"])


def test_package_resource_paths_resolve():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    (blocklist,) = cfg["url_filter"]["blocklist"]
    assert blocklist.endswith("demo_blocklist.txt") and Path(blocklist).is_file()


def test_configuration_reference_is_complete_and_up_to_date():
    """docs/configuration.md is generated from refinedweb.yaml and lists every key."""
    from refinedweb.config import _all_keys, _root_defaults
    from refinedweb.configdoc import render

    from .conftest import REPO

    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == render(), "regenerate: python -m refinedweb.configdoc > docs/configuration.md"
    free_form_children = {"2", "3", "4", "5", "6", "7", "8", "9", "10"}
    for key in _all_keys(_root_defaults()):
        if key.rsplit(".", 1)[-1] in free_form_children:
            continue
        assert f"`{key}`" in committed or f"**{key}**" in committed, key


def test_typed_configs_take_their_defaults_from_the_yaml_only():
    """Stage configs have no defaults in code; the dedup kernels' (also a library API) equal the YAML's."""
    import dataclasses

    from refinedweb.dedup.kernels.minhash import MinHashConfig
    from refinedweb.dedup.kernels.windows import ExactSubstringConfig
    from refinedweb.stages.extract import ExtractConfig
    from refinedweb.stages.langid import LangIdConfig
    from refinedweb.stages.line_filter import LineFilterConfig
    from refinedweb.stages.quality import QualityConfig
    from refinedweb.stages.read import ReadConfig
    from refinedweb.stages.repetition import RepetitionConfig
    from refinedweb.stages.url_filter import UrlFilterConfig

    cfg = load_config()
    for cls, section in ((ReadConfig, cfg["read"]), (ExtractConfig, cfg["extract"]), (LangIdConfig, cfg["langid"]),
                         (QualityConfig, cfg["quality"]), (RepetitionConfig, cfg["repetition"]),
                         (LineFilterConfig, cfg["line_filter"]), (UrlFilterConfig, cfg["url_filter"])):
        assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(cls) if f.init), cls.__name__
        cls.from_config(section)                                 # every field is a key of its section
    assert MinHashConfig.from_config(cfg["dedup"]["minhash"]) == MinHashConfig()
    assert ExactSubstringConfig.from_config(cfg["dedup"]["exact_substring"]) == ExactSubstringConfig()


@pytest.mark.parametrize("override, words", [
    ("extract.backend=lxml", ["extract.backend", "trafilatura, resiliparse"]),
    ("langid.threshold=1.5", ["langid.threshold", "<= 1"]),
    ("read.sniff_html=maybe", ["read.sniff_html", "true or false"]),
    ("quality.min_words=-1", ["quality.min_words", ">= 0"]),
    ("extract.max_newlines=null", ["extract.max_newlines", "an integer"]),
])
def test_one_validator_one_line_naming_the_key(override, words):
    from refinedweb.runtime.filter_pass import Pipeline

    with pytest.raises(UserError) as err:
        Pipeline.build(load_config(overrides=["url_filter.blocklist=[]", override]))
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)
