"""The one validator of typed config sections. A stage's config is a dataclass whose fields are the keys of
its YAML section, without defaults (the defaults are the packaged YAML's, in one place). `from_section`
reads every field from the section, converts it by its annotation (`int`, `float`, `bool`, `str`, `X | None`,
`tuple[str, ...]`, `frozenset[str]`), checks the bounds in its metadata (`setting(min=, max=, choices=)`)
or runs its own `parse`, and reports a bad or missing key in one line naming `section.key`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from .errors import UserError


def setting(*, min: float | None = None, max: float | None = None, choices: tuple | None = None,
            parse: Callable[[Any, str], Any] | None = None, default: Any = dataclasses.MISSING) -> Any:
    """A config field with the checks `from_section` applies. No default: it comes from the YAML. (The
    dedup kernels' configs, also a library API, keep the paper's values as defaults; a test holds them
    equal to the YAML's.)"""
    return dataclasses.field(default=default, metadata={"min": min, "max": max, "choices": choices, "parse": parse})


def from_section(cls, section: Mapping[str, Any] | None, name: str):
    """`cls` built from the config section `name` (a mapping holding every field of `cls`)."""
    if not isinstance(section, Mapping):
        raise UserError(f"config section '{name}' must be a mapping, got {type(section).__name__}")
    values = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        key = f"{name}.{field.name}"
        if field.name not in section:
            if field.default is not dataclasses.MISSING:
                continue                              # a kernel config's own default (see `setting`)
            raise UserError(f"config key '{key}' is missing")
        values[field.name] = convert(section[field.name], str(field.type), key, field.metadata)
    return cls(**values)


def convert(value: Any, annotation: str, key: str, meta: Mapping[str, Any] | None = None) -> Any:
    meta = meta or {}
    if meta.get("parse"):
        return meta["parse"](value, key)
    kinds = [k.strip() for k in annotation.split("|")]
    kind = next(k for k in kinds if k != "None")
    if value is None:
        if "None" in kinds:
            return None
        wanted = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(kind, "set")
        raise UserError(f"config key '{key}' must be {wanted}, not null")
    if kind in ("int", "float"):
        if isinstance(value, str):              # a quoted number in YAML ("0.2")
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "int" and value != int(value)):
            raise UserError(f"config key '{key}' must be {'an integer' if kind == 'int' else 'a number'}, "
                            f"got {value!r}")
        out = int(value) if kind == "int" else float(value)
        if meta.get("min") is not None and out < meta["min"]:
            raise UserError(f"config key '{key}' must be >= {meta['min']}, got {value!r}")
        if meta.get("max") is not None and out > meta["max"]:
            raise UserError(f"config key '{key}' must be <= {meta['max']}, got {value!r}")
        return out
    if kind == "bool":
        if not isinstance(value, bool):
            raise UserError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise UserError(f"config key '{key}' must be a string, got {value!r}")
        if meta.get("choices") and value not in meta["choices"]:
            raise UserError(f"config key '{key}' must be one of {', '.join(meta['choices'])}, not '{value}'")
        return value
    if kind in ("tuple[str, ...]", "frozenset[str]"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            raise UserError(f"config key '{key}' must be a list of strings, got {value!r}")
        return tuple(items) if kind.startswith("tuple") else frozenset(items)
    raise TypeError(f"{key}: no conversion for {annotation}")   # a field needs a `parse` of its own


EVERY_LANGUAGE = "*"     # the key of a per-language setting that stands for every language


def word_list(value: Any, key: str) -> list[str]:
    """A config list of words or phrases (not one string); YAML's yes/no booleans are refused with a hint."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise UserError(f"config key '{key}' must be a list of words")
    if any(isinstance(item, bool) for item in value):
        raise UserError(f"config key '{key}' has a yes/no value: YAML reads on, off, yes and no as booleans, "
                        "quote such words ('on')")
    return [str(item) for item in value]


class ByLanguage(dict):
    """A setting given per language (langid's label -> value); hashable like the frozen configs holding it.
    Never changed after it is built."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    @classmethod
    def parse(cls, value: Any, key: str, parse_one: Callable[[Any, str], Any]) -> "ByLanguage":
        """A mapping language -> value, each parsed by `parse_one`; anything else is the EVERY_LANGUAGE entry."""
        if isinstance(value, Mapping):
            return cls((str(lang), parse_one(one, f"{key}.{lang}")) for lang, one in value.items())
        return cls({EVERY_LANGUAGE: parse_one(value, key)})


def code_version(module) -> str:
    """What a resume fingerprint knows of a stage's or method's code: its `VERSION` (bumped when its behaviour
    changes), else a hash of its source (a user's module: any edit counts)."""
    if hasattr(module, "VERSION"):
        return str(module.VERSION)
    import hashlib
    import inspect

    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return "unknown"
    return "sha256:" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]

