"""Regenerate refinedweb/resources/demo_blocklist.txt, the small bundled blocklist for demos/tests.

It holds (1) every entry of the datatrove/FineWeb 4.6M-domain list (Apache-2.0) that blocks a host of
a response record in ../shared/data/warc/*.warc.gz (so a demo run over those WARCs shows real
`blocklist_domain` drops) and (2) the first --head lines of that list.

    .venv/bin/python benchmarks/make_demo_blocklist.py [--shared ../shared/data] [--head 2000] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from warcio.archiveiterator import ArchiveIterator  # noqa: E402

from refinedweb.stages.blocklist import Blocklist, split_url  # noqa: E402

LIST = Path("blocklists/datatrove_fineweb/url_filterblacklistsv0_3_0.tar.gz")


def response_hosts(warc_dir: Path) -> dict[str, str]:
    """Normalised host -> first WARC file it appears in, over the response records."""
    hosts: dict[str, str] = {}
    for path in sorted(warc_dir.glob("*.warc.gz")):
        try:
            with open(path, "rb") as stream:
                for record in ArchiveIterator(stream):
                    if record.rec_type != "response":
                        continue
                    parsed = split_url(record.rec_headers.get_header("WARC-Target-URI") or "")
                    if parsed:
                        hosts.setdefault(parsed[0], path.name)
        except Exception as exc:  # a truncated sample (resiliparse_clipped) ends early: keep what was read
            print(f"note: {path.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return hosts


def head_lines(archive: Path, n: int) -> list[str]:
    with tarfile.open(archive, "r:gz") as tf:
        for member in tf:
            if member.name.rsplit("/", 1)[-1] == "domains":
                stream = tf.extractfile(member)
                out = []
                for line in stream:
                    line = line.decode("utf-8").strip()
                    if line and not line.startswith("#"):
                        out.append(line)
                        if len(out) >= n:
                            break
                return out
    raise SystemExit(f"{archive} has no 'domains' member")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--head", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "refinedweb" / "resources" / "demo_blocklist.txt")
    args = parser.parse_args(argv)

    archive = args.shared / LIST
    if not archive.exists():
        raise SystemExit(f"not found: {archive}")
    full = Blocklist.load([archive])
    hosts = response_hosts(args.shared / "warc")
    matched: dict[str, list[str]] = {}
    for host, source in sorted(hosts.items()):
        hit = full.find_parts(host)
        if hit and hit[0] == "domain":
            matched.setdefault(hit[1], []).append(f"{host} ({source})")
    head = head_lines(archive, args.head)

    lines = [
        "# refinedweb demo URL blocklist: a small subset of the FineWeb/datatrove URL blocklist.",
        "# Source: huggingface/datatrove 0.10.1, datatrove/assets/url_filterblacklistsv0_3_0.tar.gz, member `domains`",
        "#   (4,558,940 domains; the list RefinedWeb-style pipelines use for the URL filter).",
        "# License: Apache-2.0 (Copyright Hugging Face, the datatrove authors); see refinedweb/resources/README.md.",
        "# Regenerate with: python benchmarks/make_demo_blocklist.py",
        f"# Part 1: the {len(matched)} entries that block hosts of response records in the shared sample WARCs.",
    ]
    for entry, why in sorted(matched.items()):
        lines.append(f"{entry}")
        lines.append(f"#   blocks {', '.join(why)}")
    seen = set(matched)
    rest = [d for d in head if d not in seen]
    lines.append(f"# Part 2: the first {args.head} lines of the list.")
    lines.extend(rest)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(matched)} matched + {len(rest)} head entries "
          f"({len(hosts)} response hosts checked against {full})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
