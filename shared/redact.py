"""Personal-data redaction: each detector's matches become a typed placeholder, and are counted.

Patterns find candidates; checksums (Luhn for cards, ISO 7064 mod 97 for IBANs, python-stdnum)
and address parsing (ipaddress) confirm them, so ordinary numbers, dates and version strings
are left alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from stdnum import iban as _iban
from stdnum import luhn as _luhn


@dataclass(frozen=True)
class Detector:
    """A kind of personal data."""

    name: str
    pattern: re.Pattern[str]
    confirm: Callable[[re.Match[str]], bool] = lambda m: True

    @property
    def placeholder(self) -> str:
        """What a match is replaced with."""
        return f"[{self.name.upper()}]"


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def _card(m: re.Match[str]) -> bool:
    d = _digits(m.group())
    return 13 <= len(d) <= 19 and d[0] in "23456" and _luhn.is_valid(d)


def _iban_ok(m: re.Match[str]) -> bool:
    return bool(_iban.is_valid(m.group().upper()))


_VERSION_BEFORE = re.compile(r"(?:\bv|version\s*|release\s*)$", re.IGNORECASE)


def _ip(m: re.Match[str]) -> bool:
    candidate = m.group()
    before = m.string[max(0, m.start() - 10) : m.start()]
    if _VERSION_BEFORE.search(before):
        return False  # "v10.2.0.1", "version 1.2.3.4"
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    if address.version == 4:
        # a netmask (255.255.255.0) says nothing about anyone
        return not (address.packed != b"\0\0\0\0" and _is_netmask(int(address)))
    # hex words joined by colons ("dead::beef", "cafe:babe::") are not worth a redaction
    return any(c.isdigit() for c in candidate)


def _is_netmask(n: int) -> bool:
    inverted = ~n & 0xFFFFFFFF
    return inverted & (inverted + 1) == 0


def _phone(m: re.Match[str]) -> bool:
    return 9 <= len(_digits(m.group())) <= 15


_SSN_BEFORE = re.compile(r"(?:ssn|social security(?: number| no\.?)?)\W{0,3}$", re.IGNORECASE)


def _ssn(m: re.Match[str]) -> bool:
    if "-" in m.group():
        return True
    # nine digits, or spaced 3-2-4, are an SSN only where the text says so
    return bool(_SSN_BEFORE.search(m.string[max(0, m.start() - 24) : m.start()]))


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector(
            "email",
            re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        ),
        Detector(
            "iban",
            # compact, or printed in groups of four; either case (the checksum decides)
            re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", re.I),
            _iban_ok,
        ),
        Detector("card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card),
        Detector(
            "ssn",
            re.compile(
                r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ]?)(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])"
            ),
            _ssn,
        ),
        Detector(
            "ip",
            re.compile(
                rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)"
                r"|(?<![\w:.])(?=[0-9A-Fa-f:]*::?)[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"
            ),
            _ip,
        ),
        Detector(
            "phone",
            re.compile(
                r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?![\w-])"
                # North American: an area code never starts with 0 or 1
                r"|(?<![\w-])\(?[2-9]\d{2}\)?[ .-]\d{3}[ .-]\d{4}(?![\w-])"
                # national numbers with a trunk 0, as in the UK: 020 7946 0958, 01632 960000
                r"|(?<![\w-])\(?0\d{2,4}\)?[ .-]\d{3,4}[ .-]?\d{3,4}(?![\w-])"
            ),
            _phone,
        ),
    )
}


@dataclass(frozen=True)
class Redactor:
    """Applies a chosen set of detectors, in a fixed order."""

    detectors: tuple[Detector, ...]

    @classmethod
    def named(cls, names: Iterable[str]) -> Redactor:
        """Redactor for detector names; raises ValueError naming any unknown one."""
        wanted = set(names)
        unknown = wanted - DETECTORS.keys()
        if unknown:
            raise ValueError(f"unknown detectors {sorted(unknown)}; known: {sorted(DETECTORS)}")
        # Order matters: an e-mail's digits must not be taken for a phone number first.
        return cls(tuple(d for name, d in DETECTORS.items() if name in wanted))

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """Text with personal data replaced, and how many of each kind were found."""
        counts: Counter[str] = Counter()
        for det in self.detectors:

            def sub(m: re.Match[str], det: Detector = det) -> str:
                if det.confirm(m):
                    counts[det.name] += 1
                    return det.placeholder
                return m.group()

            text = det.pattern.sub(sub, text)
        return text, dict(counts)
