"""PII masking (not in RW): e-mail addresses and public IP addresses replaced by placeholders, as datatrove's
PIIFormatter does for FineWeb; phone numbers, payment-card numbers (Luhn-checked) and IBANs (mod-97-checked)
optionally (a card: an issuer prefix, printed grouping and the Luhn check). Every pattern has bounded repetitions and starts only at a token boundary, so a match attempt reads
a bounded number of characters: linear time on any input (a 1 MB line of `@`, `.` and digits is tested).

Judgement calls, each to avoid masking what is not personal data: an IP must be public (`ipaddress`'s
`is_global`: private, loopback, link-local, documentation and reserved ranges stay); a dotted number inside a
longer dotted run (`1.2.3.4.5`), after `v`/`version`, or of four single digits (`1.2.1.9`, a section number)
is not taken for an address; `user@host:~$` /
`git@github.com:org/repo` (an address followed by `:` and a path) is a shell prompt or an SSH remote, left as is.
The counts per kind go to the stage's stats (`counts`); matched values are never logged or stored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..settings import from_section, setting
from .contract import Stage, count_key

KINDS = ("email", "ip", "phone", "payment_card", "iban")

EMAIL = re.compile(
    r"(?<![\w.%+-])[\w%+-](?:[\w.%+-]{0,63}+)@"            # local part, from a token start, at most 64
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w.-]*@)"
    r"(?![\w-]|\.\w|:[~/\w])")
IPV4 = re.compile(r"(?<![\w.])(?<!v)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
                  r"(?![\w]|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){1,7}:?(?:[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{1,4}){0,6}(?![\w:])")
VERSION_BEFORE = re.compile(r"(?:version|ver\.?|release)\s*$", re.IGNORECASE)
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?(?:\d{1,4}[ .-]?){2,5}\d{1,4}"
                   r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w]|[.-]\d)")
CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
CARD_GROUPS = {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1)}
CARD_PREFIXES = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[068]|6011|6[45]|35")   # Visa, Mastercard, Amex, Diners, Discover, JCB
IBAN = re.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Z0-9])")


@dataclass(frozen=True, slots=True)
class PiiConfig:
    email: bool = setting()
    ip: bool = setting()
    phone: bool = setting()
    payment_card: bool = setting()
    iban: bool = setting()
    email_placeholder: str = setting()
    ip_placeholder: str = setting()
    phone_placeholder: str = setting()
    payment_card_placeholder: str = setting()
    iban_placeholder: str = setting()

    @classmethod
    def from_config(cls, section: dict) -> "PiiConfig":
        return from_section(cls, section, NAME)


def _public_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address.is_global and not address.is_multicast


def _ipv4(match: re.Match) -> bool:
    """Public, not after `version`, and not four single digits (1.2.1.9: an outline or section number far more
    often than a host)."""
    start, text = match.start(), match.group()
    if len(text) == 7 or VERSION_BEFORE.search(match.string, max(0, start - 12), start):
        return False
    return _public_ip(text)


def _luhn(match: re.Match) -> bool:
    """A card number: an issuer's prefix, written whole or in the groups cards print, passing the Luhn check
    (IDs, phone numbers and runs of years that happen to pass Luhn are not written so)."""
    text = match.group()
    groups = tuple(len(g) for g in re.split(r"[ -]", text))
    if len(groups) > 1 and groups not in CARD_GROUPS or not CARD_PREFIXES.match(text):
        return False
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1 or (text[:2] in ("34", "37") and len(digits) != 15):
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban(match: re.Match) -> bool:
    code = match.group().replace(" ", "")
    if not 15 <= len(code) <= 34:
        return False
    moved = code[4:] + code[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _phone(match: re.Match) -> bool:
    return 8 <= sum(c.isdigit() for c in match.group()) <= 15


# kind -> (patterns, check of a match), in the order they are applied: e-mail first (its domain is not an IP)
DETECTORS: dict[str, list[tuple[re.Pattern, Callable[[re.Match], bool] | None]]] = {
    "email": [(EMAIL, None)],
    "iban": [(IBAN, _iban)],
    "payment_card": [(CARD, _luhn)],
    "phone": [(PHONE, _phone)],
    "ip": [(IPV4, _ipv4), (IPV6, lambda m: _public_ip(m.group()))],
}


class PiiMasker:
    def __init__(self, cfg: PiiConfig):
        self.steps = [(kind, pattern, check, getattr(cfg, f"{kind}_placeholder"))
                      for kind, found in DETECTORS.items() if getattr(cfg, kind) for pattern, check in found]

    def __call__(self, text: str) -> tuple[str, dict[str, int]]:
        counts: dict[str, int] = {}
        for kind, pattern, check, placeholder in self.steps:
            if kind == "email" and "@" not in text:
                continue
            text, n = _replace(text, pattern, check, placeholder)
            if n:
                counts[kind] = counts.get(kind, 0) + n
        return text, counts


def _replace(text: str, pattern: re.Pattern, check, placeholder: str) -> tuple[str, int]:
    pieces, last = [], 0
    for match in pattern.finditer(text):
        if check is None or check(match):
            pieces += (text[last:match.start()], placeholder)
            last = match.end()
    if not pieces:
        return text, 0
    pieces.append(text[last:])
    return "".join(pieces), len(pieces) // 2


# -- stage contract (stages/contract.py) ------------------------------------------------------------------
NAME = "pii"
VERSION = 1
LABEL = "PII masking"
CONFIG = PiiConfig
EDITS_TEXT = True


def build(section: dict, shared) -> Stage:
    mask = PiiMasker(PiiConfig.from_config(section))

    def apply(doc) -> None:
        doc.text, counts = mask(doc.text)
        for kind, n in counts.items():
            doc.metadata[count_key(kind)] = n
        return None

    return Stage(NAME, apply=apply, counts=KINDS)
