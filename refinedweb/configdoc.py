"""Writes docs/configuration.md from the packaged refinedweb.yaml: every key, its default, and the comment
beside it (which names the paper's source for each threshold). `python -m refinedweb.configdoc > docs/configuration.md`;
a test checks that the committed file is up to date."""

from __future__ import annotations

import re
import sys

from .config import packaged_config_path

HEADER = """# Configuration reference

Generated from `refinedweb/configs/refinedweb.yaml` (`configs/refinedweb.yaml`) by
`python -m refinedweb.configdoc`; do not edit by hand. Sources: RW = Penedo et al. 2023 (RefinedWeb),
Gopher = Rae et al. 2021. Any key can be set in a `--config` file or with `--set section.key=value`;
an unknown key is an error naming the closest valid ones. Mix configs (`refinedweb mix`) are described
in the README and `configs/mix/`.

| key | default | notes |
|---|---|---|
"""


def rows(text: str) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    path: list[tuple[int, str]] = []
    pending_comment: list[str] = []
    last: list | None = None
    section: list | None = None          # a section row still collecting its introductory comment
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("#"):
            comment = stripped.lstrip("#").strip()
            if last is not None and indent > last[3]:       # a continuation of the previous key's comment
                last[2] += " " + comment
            elif section is not None and last is None:      # the section's introduction
                section[2] = (section[2] + " " + comment).strip()
            elif path:
                pending_comment.append(comment)
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_]+|\d+):\s*(.*)$", line)
        if not match:
            item = stripped.split("#", 1)[0].strip()
            if last is not None:                                  # a wrapped list value
                last[1] += " " + item
            elif section is not None and item.startswith("- "):   # a block list: the "section" is a key
                if len(section) == 4:
                    section[0] = section[0].strip("*")
                    section.append("block list")
                section[1] = (section[1] + ", " if section[1] else "") + item[2:].strip()
            continue
        key, rest = match.group(2), match.group(3)
        while path and path[-1][0] >= indent:
            path.pop()
        value, _, comment = rest.partition(" #")
        value = value.strip()
        comment = comment.strip()
        if not value:                                             # a section
            path.append((indent, key))
            section = ["**" + ".".join(p for _, p in path) + "**", "", " ".join(pending_comment), indent]
            out.append(section)  # type: ignore[arg-type]
            pending_comment = []
            last = None
            continue
        dotted = ".".join([p for _, p in path] + [key])
        notes = " ".join(pending_comment + ([comment] if comment else []))
        pending_comment = []
        last = [dotted, value, notes, indent]
        section = None
        out.append(last)  # type: ignore[arg-type]
    return [(r[0], f"[{r[1]}]" if len(r) == 5 else r[1], r[2]) for r in out]


def render() -> str:
    text = packaged_config_path().read_text(encoding="utf-8")
    lines = [HEADER.rstrip("\n")]
    for key, value, notes in rows(text):
        cell = value.replace("|", "\\|")
        lines.append(f"| `{key}` | `{cell}` | {notes.replace('|', '/')} |" if value else f"| {key} | | {notes} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
