"""Personal-data redaction: each detector's matches become a typed placeholder, and are counted.

Patterns find candidates; checksums (Luhn for cards, ISO 7064 mod 97 for IBANs, python-stdnum)
and address parsing (ipaddress) confirm them, so ordinary numbers, dates and version strings
are left alone. Detection runs on a compatibility-folded view of the text (NFKC, one
character for one, so full-width digits and letters read as ASCII) and replaces the same
spans of the text itself.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

from stdnum import iban as _iban
from stdnum import luhn as _luhn


@dataclass(frozen=True)
class Detector:
    """A kind of personal data."""

    name: str
    pattern: re.Pattern[str]
    confirm: Callable[[re.Match[str]], bool] = lambda m: True
    # the parts of a candidate that are this kind of datum (a card number inside a longer
    # run of numbers); by default the whole candidate, if ``confirm`` says so
    within: Callable[[re.Match[str]], list[tuple[int, int]]] | None = None

    def found(self, text: str) -> list[tuple[int, int]]:
        """The spans of ``text`` that are this kind of datum. A candidate that proves not to
        be one is no reason to skip the text it covered: the search resumes one character
        after its start ("order 7 4111 1111 1111 1111": the rejected "7 4111 ..." must not
        hide the card)."""
        spans: list[tuple[int, int]] = []
        at = 0
        while (m := self.pattern.search(text, at)) is not None:
            if self.within is not None:
                parts = self.within(m)
            else:
                parts = [(m.start(), m.end())] if self.confirm(m) else []
            spans += parts
            at = m.end() if parts else m.start() + 1
        return spans

    @property
    def placeholder(self) -> str:
        """What a match is replaced with."""
        return f"[{self.name.upper()}]"


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn.is_valid(digits)


def _printed_as_card(lengths: list[int]) -> bool:
    """Whether digit groups of these lengths are how a card number is printed: ungrouped, in
    fours (the last group shorter), or 4-6-5 and 4-6-4 (American Express, Diners Club). Any
    grouping would find a "card" in every tenth stretch of a table of numbers."""
    return (
        len(lengths) == 1
        or lengths in ([4, 6, 5], [4, 6, 4])
        or (all(n == 4 for n in lengths[:-1]) and 1 <= lengths[-1] <= 4)
    )


def _cards(m: re.Match[str]) -> list[tuple[int, int]]:
    """The card numbers in a run of digit groups, each a whole number of groups, leftmost
    and longest first: a run may hold a number before the card ("order 7 4111 1111 1111
    1111") or after it (an expiry, "4111 1111 1111 1111 12 27"), or two cards."""
    run = m.group()
    groups = [(g.start(), g.end()) for g in re.finditer(r"\d+", run)]
    cards: list[tuple[int, int]] = []
    i = 0
    while i < len(groups):
        digits, longest = "", 0
        for j in range(i, len(groups)):  # a card has at most 19 digits: a few groups
            digits += run[groups[j][0] : groups[j][1]]
            if len(digits) > 19:
                break
            if _is_card(digits) and _printed_as_card([b - a for a, b in groups[i : j + 1]]):
                longest = j + 1
        if longest:
            cards.append((m.start() + groups[i][0], m.start() + groups[longest - 1][1]))
            i = longest
        else:
            i += 1
    return cards


def _iban_ok(m: re.Match[str]) -> bool:
    return bool(_iban.is_valid(m.group().upper()))


_PREFIX_LENGTH = re.compile(r"/\d{1,3}\b")
_VERSION_BEFORE = re.compile(r"(?:\bv|version\s*|release\s*)$", re.IGNORECASE)


# Addresses that identify nobody: documentation ranges (RFC 5737, RFC 3849) beside what
# ipaddress knows as loopback, unspecified, multicast and link-local.
_DOCUMENTATION = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def identifies_nobody(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, unspecified, multicast, link-local, documentation addresses, a netmask."""
    if (
        address.is_loopback
        or address.is_unspecified
        or address.is_multicast
        or address.is_link_local
        or any(address in n for n in _DOCUMENTATION if n.version == address.version)
    ):
        return True
    # a netmask (255.255.255.0) says nothing about anyone
    return address.version == 4 and _is_netmask(int(address))


def _ip_checker(private: bool) -> Callable[[re.Match[str]], bool]:
    def confirm(m: re.Match[str]) -> bool:
        candidate = m.group()
        before = m.string[max(0, m.start() - 10) : m.start()]
        if _VERSION_BEFORE.search(before):
            return False  # "v10.2.0.1", "version 1.2.3.4"
        if _PREFIX_LENGTH.match(m.string, m.end()):
            return False  # a network in CIDR notation (10.0.0.0/8, fc00::/7): nobody's address
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            return False
        if identifies_nobody(address) or (address.is_private and not private):
            return False
        # hex words joined by colons ("dead::beef", "cafe:babe::") are not worth a redaction
        return address.version == 4 or any(c.isdigit() for c in candidate)

    return confirm


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
# hyphen and the Unicode dashes (a card number's groups may be joined by them, or by spaces
# or dots)
_DASHES = "\\-\u2010-\u2015\u2212"

DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector(
            "email",
            # the top-level domain ends where letters do: an address run into digits
            # ("jane@example.com4111 1111 ...") is still an address
            re.compile(
                r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![^\W\d_])"
            ),
        ),
        Detector(
            "iban",
            # compact, or printed in groups of four; either case (the checksum decides)
            re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", re.I),
            _iban_ok,
        ),
        # grouped by spaces, hyphens, dots or dashes: 4111.1111.1111.1111, 4111–1111–...;
        # a candidate is a whole run of such groups, in which _cards finds the card numbers
        Detector(
            "card",
            re.compile(
                rf"(?<![\d{_DASHES}])(?<!\d[ .])\d(?:[ .{_DASHES}]?\d){{12,}}"
                rf"(?![ .{_DASHES}]?\d|[{_DASHES}])"
            ),
            within=_cards,
        ),
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
            _ip_checker(private=True),
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


@lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    folded = unicodedata.normalize("NFKC", c)
    return folded if len(folded) == 1 else c


def folded(text: str) -> str:
    """``text`` with each character that NFKC maps to one character mapped (full-width
    digits and letters, other scripts' digits, no-break spaces): the same length, so a span
    found in it is the same span of ``text``."""
    if text.isascii():
        return text
    return "".join(
        c if c.isascii() else (str(unicodedata.decimal(c)) if c.isdecimal() else _fold_char(c))
        for c in text
    )


def _masked(text: str, spans: list[tuple[int, int, str]]) -> str:
    """``text`` with each span blanked out (the same length), in one pass: blanking each in
    turn copied the text once per match (a document of 10,000 e-mail addresses)."""
    parts, at = [], 0
    for start, end, _ in spans:  # in order and apart: one detector's matches
        parts += [text[at:start], "\0" * (end - start)]
        at = end
    parts.append(text[at:])
    return "".join(parts)


@dataclass(frozen=True)
class Redactor:
    """Applies a chosen set of detectors, in a fixed order."""

    detectors: tuple[Detector, ...]

    @classmethod
    def named(cls, names: Iterable[str], private_ips: bool = True) -> Redactor:
        """Redactor for detector names; raises ValueError naming any unknown one.
        ``private_ips``: whether private-range addresses (10/8, 192.168/16...) count as
        personal data (loopback, documentation and the like never do)."""
        wanted = set(names)
        unknown = wanted - DETECTORS.keys()
        if unknown:
            raise ValueError(f"unknown detectors {sorted(unknown)}; known: {sorted(DETECTORS)}")
        chosen = [d for name, d in DETECTORS.items() if name in wanted]
        if not private_ips:
            chosen = [
                replace(d, confirm=_ip_checker(private=False)) if d.name == "ip" else d
                for d in chosen
            ]
        # Order matters: an e-mail's digits must not be taken for a phone number first.
        return cls(tuple(chosen))

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """Where personal data is in ``text``: (start, end, detector), in order."""
        masked = folded(text)
        found: list[tuple[int, int, str]] = []
        for det in self.detectors:
            new = [(start, end, det.name) for start, end in det.found(masked)]
            if new:
                found += new
                masked = _masked(masked, new)  # what one detector took, no later one takes
        return sorted(found)

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """Text with personal data replaced, and how many of each kind were found."""
        return self.replaced(text, self.spans(text))

    def replaced(
        self, text: str, spans: Iterable[tuple[int, int, str]]
    ) -> tuple[str, dict[str, int]]:
        """``text`` with ``spans`` (found in it, in order) replaced by their placeholders."""
        counts: Counter[str] = Counter()
        parts: list[str] = []
        at = 0
        placeholder = {d.name: d.placeholder for d in self.detectors}
        for start, end, name in spans:
            parts += [text[at:start], placeholder[name]]
            counts[name] += 1
            at = end
        parts.append(text[at:])
        return "".join(parts), dict(counts)

    def finds(self, text: str) -> list[str]:
        """The kinds of personal data in ``text`` (empty: none)."""
        return sorted({name for _, _, name in self.spans(text)})


# The longest personal datum that holds a space (an IBAN printed in groups, a spaced card or
# phone number), with room: a stream holds back at least this much before letting text go.
HOLD_BACK_CHARS = 48
# How much of the text already let go a stream keeps (at least, in whole words) as the context
# its detectors look back on ("ssn 123456789", "version 1.2.3.4", a run of numbers): the
# longest look-back is 24.
CONTEXT_CHARS = 32


def _cut_point(text: str, limit: int) -> int:
    """The last whitespace of ``text`` before ``limit`` that is not between two digits (a run
    of digit groups is read whole), or -1."""
    if limit <= 0:  # (a negative end would count from the end)
        return -1
    at = limit
    while (at := max(text.rfind(" ", 0, at), text.rfind("\n", 0, at))) > 0:
        if not (text[at - 1].isdigit() and text[at + 1 : at + 2].isdigit()):
            return at
    return -1


@dataclass
class StreamRedactor:
    """Redacts text that arrives in pieces (an answer as it is generated), letting each part
    go as soon as no detector could still match across it.

    Text is let go up to a whitespace at least HOLD_BACK_CHARS before the end of what has
    arrived, never between two digits and never inside a match: a datum without spaces (an
    e-mail address) cannot straddle a whitespace, and one with spaces is shorter than the
    hold-back, so it is whole before the text around it goes. Detection reads the last
    CONTEXT_CHARS or more let go (whole words) before what is held, as in the whole text.
    ``close`` lets the rest go.
    """

    redactor: Redactor
    pending: str = ""
    before: str = ""  # the end of what was let go, as it arrived

    def _spans(self) -> list[tuple[int, int, str]]:
        """The matches in what is held, found with the context before it."""
        shift = len(self.before)
        return [
            (start - shift, end - shift, name)
            for start, end, name in self.redactor.spans(self.before + self.pending)
            if start >= shift
        ]

    def _let_go(self, cut: int, spans: list[tuple[int, int, str]]) -> str:
        out, self.pending = self.pending[:cut], self.pending[cut:]
        self.before += out
        # keep whole words: a word cut short ("e.comjane@example.com123.GB82 ...") parses
        # differently from the whole one
        end = len(self.before) - CONTEXT_CHARS
        start = max(self.before.rfind(" ", 0, end), self.before.rfind("\n", 0, end))
        if start > 0:
            self.before = self.before[start:]
        # what goes is replaced as found with what follows it: redacting it alone would let
        # a detector's look-ahead see the end of the text where the whole text has more
        return self.redactor.replaced(out, (s for s in spans if s[1] <= cut))[0]

    def feed(self, piece: str) -> str:
        """What can be let go now, redacted (often empty)."""
        self.pending += piece
        cut = _cut_point(self.pending, len(self.pending) - HOLD_BACK_CHARS)
        if cut <= 0:
            return ""
        spans = self._spans()
        for start, end, _ in spans:
            if start <= cut < end:  # inside a match: let go only what is before it
                cut = start
                break
        return self._let_go(cut, spans)

    def close(self) -> str:
        """The rest, redacted."""
        return self._let_go(len(self.pending), self._spans())
