"""Configuration: the packaged `refinedweb.yaml` (the paper's settings) merged with a user file and
`--set a.b=value` overrides. Every key a user gives must exist in the packaged defaults, so a typo is
an error naming the closest valid keys instead of a silently ignored setting."""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

# Sections whose children are free-form mappings (keys are data, not settings).
_FREE_FORM = {
    ("repetition", "max_top_ngram_char_fraction"),
    ("repetition", "max_duplicate_ngram_char_fraction"),
}
# Settings given per language (langid's labels): a mapping is merged language by language into the packaged
# one (`--set quality.stop_words.fi=[...]` adds Finnish, the others stay); a list replaces the mapping and
# applies to every language.
PER_LANGUAGE = {
    ("quality", "stop_words"),
    ("line_filter", "counter_words"),
    ("line_filter", "start_patterns"),
    ("line_filter", "end_patterns"),
    ("line_filter", "anywhere_patterns"),
}


def packaged_config_path(name: str = "refinedweb.yaml") -> Path:
    return Path(str(resources.files("refinedweb") / "configs" / name))


def packaged_configs() -> list[str]:
    """Names `--config` accepts besides a path: the YAML files shipped in refinedweb/configs/."""
    return sorted(p.stem for p in packaged_config_path().parent.glob("*.yaml"))


def config_file(path: str | Path) -> Path:
    """A config path as given, or, when no such file exists, a packaged config by name
    (`--config refinedweb-europe` or `refinedweb-europe.yaml`)."""
    given = Path(path).expanduser()
    if given.exists() or given.parent != Path("."):
        return given
    packaged = packaged_config_path(given.name if given.suffix == ".yaml" else f"{given.name}.yaml")
    if packaged.exists():
        return packaged
    raise UserError(f"config file not found: {path} (packaged configs: {', '.join(packaged_configs())})")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"config file {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must be a mapping of sections")
    return data


def _all_keys(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    keys = []
    for key, value in tree.items():
        path = prefix + (str(key),)
        keys.append(".".join(path))
        if isinstance(value, dict) and path not in _FREE_FORM and path not in PER_LANGUAGE:
            keys.extend(_all_keys(value, path))
    return keys


RENAMED = {"dedup.stages": "dedup.methods"}


def _unknown_key(dotted: str, defaults: dict[str, Any]) -> UserError:
    if dotted in RENAMED:
        return UserError(f"config key '{dotted}' is called '{RENAMED[dotted]}' now")
    valid = _all_keys(defaults)
    close = difflib.get_close_matches(dotted, valid, n=3, cutoff=0.5)
    if not close:  # a wrong section with a right leaf: compare leaves
        leaf = dotted.rsplit(".", 1)[-1]
        close = [k for k in valid if k.rsplit(".", 1)[-1] in difflib.get_close_matches(leaf, [v.rsplit(".", 1)[-1] for v in valid], n=3, cutoff=0.75)][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UserError(f"unknown config key '{dotted}'{hint}")


def _merge(base: dict[str, Any], override: dict[str, Any], defaults: dict[str, Any] | None, prefix: tuple[str, ...] = ()) -> None:
    """Merge `override` into `base` in place, checking every key against `defaults`."""
    for key, value in override.items():
        key = str(key) if not isinstance(key, int) else key
        path = prefix + (str(key),)
        free = prefix in _FREE_FORM
        if defaults is not None and not free and key not in defaults:
            raise _unknown_key(".".join(path), _root_defaults())
        default_value = defaults.get(key) if (defaults is not None and not free) else None
        if path in PER_LANGUAGE:
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **{str(lang): copy.deepcopy(v) for lang, v in value.items()}}
            else:
                base[key] = copy.deepcopy(value)
        elif isinstance(default_value, dict) and path not in _FREE_FORM:
            if not isinstance(value, dict):
                raise UserError(f"config key '{'.'.join(path)}' is a section; give it a mapping, not {type(value).__name__}")
            base.setdefault(key, {})
            _merge(base[key], value, default_value, path)
        elif defaults is None and isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, None, path)       # a stage's own section: merged, checked by the stage
        else:
            base[key] = copy.deepcopy(value)


_DEFAULTS_CACHE: dict[str, Any] | None = None


def _root_defaults() -> dict[str, Any]:
    global _DEFAULTS_CACHE
    if _DEFAULTS_CACHE is None:
        _DEFAULTS_CACHE = _read_yaml(packaged_config_path())
    return _DEFAULTS_CACHE


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(f"--set takes KEY=VALUE, got '{item}'")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"--set has an empty key in '{item}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--set {key}: value '{raw}' is not valid YAML") from None
    return key.split("."), value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Defaults, then the file at `path` (if any), then each `--set` override, all validated."""
    defaults = _root_defaults()
    config = copy.deepcopy(defaults)
    stage_sections: dict[str, Any] = {}      # sections of stage modules outside the package, checked below
    trees = []
    if path is not None:
        path = config_file(path)
        user = _read_yaml(path)
        if path.resolve() != packaged_config_path().resolve():
            trees.append(user)
    for item in overrides:
        parts, value = parse_override(item)
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        trees.append(nested)
    for tree in trees:
        _merge(config, {k: v for k, v in tree.items() if k in defaults}, defaults)
        _merge(stage_sections, {k: v for k, v in tree.items() if k not in defaults}, None)
    from .dedup.methods import user_sections
    from .stages.contract import section_name, stage_modules

    # every entry of filter.stages is a stage, and a user's dedup method has its section too
    names = {section_name(module) for module in stage_modules(config)} | set(user_sections(config))
    if stage_sections:
        for key, section in stage_sections.items():
            if key not in names:
                raise _unknown_key(str(key), defaults)
            if not isinstance(section, dict):
                raise UserError(f"config key '{key}' is a stage's or method's section; give it a mapping")
            config[key] = section
    _normalise(config)
    return config


def _normalise(config: dict[str, Any]) -> None:
    rep = config["repetition"]
    for key in ("max_top_ngram_char_fraction", "max_duplicate_ngram_char_fraction"):
        try:
            rep[key] = {int(n): float(v) for n, v in (rep.get(key) or {}).items()}
        except (TypeError, ValueError):
            raise UserError(f"config key 'repetition.{key}' must map n-gram sizes to fractions") from None
    blocklist = config["url_filter"]["blocklist"]
    if isinstance(blocklist, str):
        blocklist = [blocklist]
    config["url_filter"]["blocklist"] = [resolve_resource(p) for p in (blocklist or [])]


def resolve_resource(value: str) -> str:
    """`package:NAME` names a file bundled in refinedweb/resources; anything else is returned as is."""
    if isinstance(value, str) and value.startswith("package:"):
        return str(resources.files("refinedweb") / "resources" / value.removeprefix("package:"))
    return value


def fingerprint(config: dict[str, Any], sections: tuple[str, ...] | None = None) -> str:
    """Stable hash of the settings that change output (used to refuse mixing runs with different configs)."""
    chosen = {k: v for k, v in config.items() if sections is None or k in sections}
    blob = json.dumps(chosen, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
