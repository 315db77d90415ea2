"""The resume fingerprint covers every config key a stage reads: each stage runs on a config that records
the keys read, and every key that can change the output must be in the stage's run record. Keys that only
say how the work is run or fetched (run.*, fetch.*, s3.*) may stay out. The run record is derived from
sections (`filter_sections`, `DEDUP_SECTIONS`); this is what keeps those in step with the code."""

from __future__ import annotations

from typing import Any

from refinedweb.config import load_config
from refinedweb.runtime.filter_pass import Pipeline, filter_file
from refinedweb.runtime.run_state import DEDUP_SECTIONS, IGNORED_KEYS, filter_sections, flatten
from refinedweb.stages.blocklist import load_blocklist

from .conftest import SAMPLES
from .serial import SerialRuntime

OUTSIDE = ("run.", "fetch.", "s3.")


class Recording(dict):
    """A config mapping that notes every key read (a whole section when it is iterated)."""

    def __init__(self, data: dict, seen: set[str], path: str = ""):
        super().__init__({k: Recording(v, seen, f"{path}{k}.") if isinstance(v, dict) else v for k, v in data.items()})
        self.seen, self.path = seen, path

    def __getitem__(self, key):
        self.seen.add(f"{self.path}{key}")
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.seen.add(f"{self.path}{key}")
        return super().get(key, default)

    def items(self):
        self.seen.add(self.path.rstrip("."))
        return super().items()

    def __iter__(self):
        self.seen.add(self.path.rstrip("."))
        return super().__iter__()


def exists(cfg: dict[str, Any], key: str) -> bool:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def unfingerprinted(seen: set[str], cfg: dict[str, Any], sections: tuple[str, ...]) -> set[str]:
    covered = set(flatten(cfg, sections)) | IGNORED_KEYS
    out = set()
    for key in seen:
        if not key or key.startswith(OUTSIDE) or key in ("run", "fetch", "s3") or not exists(cfg, key):
            continue                                  # a key that is not there (a default) changes nothing
        if key in covered or any(c.startswith(key + ".") for c in covered) or key.split(".")[0] in sections:
            continue
        out.add(key)
    return out


def test_every_key_the_filter_stage_reads_is_fingerprinted(tmp_path):
    base = load_config(overrides=["url_filter.blocklist=[package:demo_blocklist.txt]", "output.write_dropped=true"])
    seen: set[str] = set()
    cfg = Recording(base, seen)
    pipeline = Pipeline.build(cfg, load_blocklist(base["url_filter"]["blocklist"], base["url_filter"]["categories"]))
    result = filter_file(str(SAMPLES / "dolma_sample-0000.warc.gz"), cfg, str(tmp_path), pipeline)
    assert result["status"] == "ok" and result["kept"] > 0
    assert {"quality.min_words", "langid.threshold", "tokens.encoding"} <= seen          # the recorder works
    assert unfingerprinted(seen, base, filter_sections(base)) == set()


def test_every_key_the_dedup_stage_reads_is_fingerprinted(tmp_path):
    from refinedweb.runtime.dedup_job import run_dedup_stage

    filtered = tmp_path / "in"
    base = load_config(overrides=["url_filter.blocklist=[package:demo_blocklist.txt]"])
    filter_file(str(SAMPLES / "dolma_sample-0000.warc.gz"), base, str(filtered), Pipeline.build(base))
    seen: set[str] = set()
    run_dedup_stage([str(filtered / "filtered")], str(tmp_path / "out"), Recording(base, seen), runtime=SerialRuntime(),
                    log=lambda line: None)
    assert {"dedup.minhash.bands", "tokens.encoding"} <= seen
    assert unfingerprinted(seen, base, DEDUP_SECTIONS) == set()
