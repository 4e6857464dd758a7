"""Replace registered secrets with *** before text is stored, shown or logged.

Why: step output comes from hosts and SDKs we do not control; a DB password echoed by a
failing command, or put in a request URL that a vendored urllib3 logs at DEBUG, must still
never reach a LogLine, an error text, a page or a log file.

A secret rarely appears only verbatim. Every `Redactor` therefore masks each secret in
every encoding that the panel, a shell, an SDK or a log line may give it:

- percent-encoding of any kind (`quote`, `quote_plus`, upper or lower hex, some characters
  encoded and others not): one pattern per secret accepts each character raw or as %XX;
- base64 of the secret alone and of the secret inside a longer value (HTTP basic auth's
  `user:password`): for each of the three byte alignments, the base64 characters that only
  the secret's bytes decide, and the whole base64 token around them is masked;
- `shlex.quote`, `json.dumps` (ASCII or not), Python's `repr`, YAML double- and
  single-quoted scalars;
- the password part of a DSN (`mysql://user:password@tcp(host)/db`), found by the same rule
  go-sql-driver uses (the last `@`), and then each of its encodings too;
- a password in a DSN's query (`postgres://…?password=…`, `sslpassword=`): pgx reads it
  and logs in with it, so it is as secret as the user information's.

Every Redactor also adds its secrets to a process-wide set, which `RedactingFilter` (in the
settings' LOGGING and on Celery's handlers) applies to every log record of every logger.
"""

from __future__ import annotations

import base64
import heapq
import json
import logging
import re
import shlex
import threading
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import unquote, unquote_plus

import yaml

MASK = "***"
MIN_SECRET_LENGTH = 4
# Lines of a multi-line secret (a private key, a kubeconfig) are masked one by one from this
# length: shorter lines ("-----END ...", "users:") are not secret and would mask noise.
MIN_LINE_LENGTH = 16
# Encodings are computed for values up to this length; a longer one (a kubeconfig's base64
# certificate line) is masked verbatim and line by line, which keeps the pattern small.
MAX_ENCODED_LENGTH = 512
# The fewest base64 characters that must match before a base64 run counts as the secret's:
# fewer would mask ordinary words. Base64 inside a longer value is thus found for secrets of
# 8 characters and more (RDS passwords are 8 to 32); shorter ones only as their own base64.
MIN_BASE64_CORE = 8
# The process-wide set the logging filter uses is bounded: a worker that lives for months
# keeps the newest secrets only (a step context holds about ten: its cluster's tokens,
# passwords, kubeconfig, nodes' SSH keys; the filter scans a record once per secret, ~10 µs
# each for a short record).
MAX_REMEMBERED = 128

# Printable ASCII that YAML's quoted styles never escape (no quote or backslash; the space
# too, since no line is folded at width=10**9).
_YAML_PLAIN = re.compile(r"[A-Za-z0-9 +/=_.:@,%~!^*()\[\]{}<>?|&#$;`-]*")
_BASE64_SET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-")
# go-sql-driver's rule (clusters/k3s/dsn.py): user up to the first `:`, password up to the
# LAST `@`.
_DSN = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://)?[^:/@\s]+:(?P<password>.+)@[^@]*$", re.S)
# `password=...` in a query string or a form body, whatever the secret (a safety net in logs).
_NAMED_VALUE = re.compile(
    r"(?i)\b([\w.-]*(?:password|passwd|passphrase|secret|token)[\w.-]*(?:=|%3D))[^&\s\"']+")


# pgx's (and libpq's) query parameters that carry a password (clusters.k3s.pgdsn.SECRET_PARAMS).
_DSN_QUERY_PASSWORD = re.compile(r"[?&](?:ssl)?password=(?P<password>[^&#\s]+)")


def dsn_query_passwords(value: str) -> list[str]:
    """The values of `?password=` / `&sslpassword=` in a one-line DSN, raw and decoded as a
    query decodes them (`+` is a space)."""
    if "://" not in value or "\n" in value:
        return []
    found: list[str] = []
    for match in _DSN_QUERY_PASSWORD.finditer(value):
        raw = match.group("password")
        found.extend(dict.fromkeys((raw, unquote_plus(raw))))
    return found


def dsn_password(value: str) -> str | None:
    """The password part of `scheme://user:password@host/db` (None when it is no DSN)."""
    if "@" not in value or "\n" in value:
        return None
    match = _DSN.match(value)
    return match.group("password") if match else None


def _percent_pattern(secret: str) -> str:
    """The secret with each character raw or percent-encoded (either hex case), space as +."""
    parts = []
    for char in secret:
        encoded = "".join(
            "%" + "".join(f"[{h.lower()}{h.upper()}]" if h.isalpha() else h
                          for h in f"{byte:02X}")
            for byte in char.encode())
        options = [re.escape(char), encoded] + ([r"\+"] if char == " " else [])
        parts.append("(?:" + "|".join(options) + ")")
    return "".join(parts)


def _base64_cores(secret: str) -> list[str]:
    """The base64 characters that only the secret's bytes decide, at any alignment (and the
    secret's own base64), as plain strings: where one is found, the whole base64 token
    around it is masked (`_token_spans`)."""
    raw = secret.encode()
    found = [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = -(-offset * 4 // 3)  # characters that also carry the prefix's bits
        end = (offset + len(raw)) // 3 * 4  # characters that the following bytes do not touch
        core = encoded[start:end]
        if len(core) < MIN_BASE64_CORE:
            continue
        found.extend({core, core.replace("+", "-").replace("/", "_")})
    return found


def _token_spans(cores: _Literals, text: str) -> list[tuple[int, int]]:
    """The spans of the base64 tokens (a run of base64 characters and its `=` padding)
    holding one of the cores, in order.

    Why not one regex `[B]*core[B]*=*`: on a long run of base64 characters that holds no
    core (a host printing a 1 MB base64 blob, or 1 MB of "zzz…") the leading `[B]*` is tried
    from every position and backtracks over the rest: quadratic, 4 s at 32,000 characters
    and hours at 1,000,000, all inside a step's log write. Finding the cores is one linear
    scan; widening each match to its token is linear too, since a match inside the token
    already found is skipped. A match that ends in padding (a secret's whole base64) ends
    its token there: what follows the `=` is another token.
    """
    spans: list[tuple[int, int]] = []
    for found in cores.occurrences(text):
        begin, end = found
        if spans and begin < spans[-1][1]:
            continue
        floor = spans[-1][1] if spans else 0
        while begin > floor and text[begin - 1] in _BASE64_SET:
            begin -= 1
        if text[end - 1] != "=":
            while end < len(text) and text[end] in _BASE64_SET:
                end += 1
        while end < len(text) and text[end] == "=":
            end += 1
        spans.append((begin, end))
    return spans


def _overlapping_spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    """Every match's span, overlapping ones too, ordered by start.

    Why not finditer: it goes on after the end of a match, so a secret that begins inside
    another one's match (the end of one password is the start of the next, or a secret
    sits inside another's URL-encoded form) would be found only from the first one's end,
    and its head would be left in the text. The next search starts one character after the
    start of the last match instead: only the text inside a match is scanned again."""
    spans: list[tuple[int, int]] = []
    at = 0
    while (match := pattern.search(text, at)) is not None:
        begin, end = match.span()
        if end > begin:
            spans.append((begin, end))
        at = begin + 1
    return spans


def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each of the ordered, disjoint spans replaced by MASK."""
    parts: list[str] = []
    at = 0
    for begin, end in spans:
        parts.extend((text[at:begin], MASK))
        at = end
    parts.append(text[at:])
    return "".join(parts)


def _quoted_forms(secret: str) -> set[str]:
    """The secret as shell, JSON, Python and YAML quoting write it (outer quotes dropped)."""
    forms = {
        shlex.quote(secret),
        secret.replace("'", "'\\''"),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }
    if _YAML_PLAIN.fullmatch(secret):
        # Both quoted styles write such a string as it is, between their quotes (checked
        # against PyYAML by tests/engine/test_redaction.py); PyYAML's emitter is slow (four
        # dumps were ~40% of a private key's preparation, one per line).
        forms.update((f'"{secret}"', f"'{secret}'", secret))
    else:
        for unicode in (False, True):
            for style in ('"', "'"):
                dumped = yaml.safe_dump(secret, default_style=style, width=10**9,
                                        allow_unicode=unicode).rstrip("\n")
                forms.add(dumped.removesuffix("\n...").strip())
                forms.add(dumped.strip()[1:-1])
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _expand(secrets: Iterable[str]) -> set[str]:
    """The secrets, their long lines and their DSN password parts (raw and URL-decoded)."""
    values: set[str] = set()
    for secret in secrets:
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            continue
        values.add(secret)
        values.update(line for line in secret.splitlines() if len(line) >= MIN_LINE_LENGTH)
        password = dsn_password(secret)
        if password:
            values.update(p for p in {password, unquote(password)}
                          if len(p) >= MIN_SECRET_LENGTH)
        values.update(p for p in dsn_query_passwords(secret) if len(p) >= MIN_SECRET_LENGTH)
    return values


@lru_cache(maxsize=256)
def _patterns(secret: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The secret's forms as they appear verbatim (itself, its quoted forms) and its base64
    cores (see _token_spans)."""
    if len(secret) > MAX_ENCODED_LENGTH:
        return (secret,), ()
    forms = [secret, *(form for form in _quoted_forms(secret) if form != secret)]
    return tuple(forms), tuple(_base64_cores(secret))


def _percent_patterns(secret: str) -> tuple[str, ...]:
    """The secret's verbatim forms with any character percent-encoded (regex sources)."""
    if len(secret) > MAX_ENCODED_LENGTH:
        return (re.escape(secret),)
    forms, _ = _patterns(secret)
    return tuple(_percent_pattern(form) for form in forms)


class _Literals:
    """Plain strings, each found with `str.find`; a space in one also matches a `+`.

    Why not one regex alternation of them: Python's re parser is pure Python, and a private
    key's lines with their quoted forms and base64 cores (~270 strings) took ~45 ms to
    compile, in every worker process and for every cluster's keys: the largest part of a
    create's remaining step-worker CPU (issue 18). Finding each string is C code, as fast
    as the compiled alternation on a log line (~35 µs for a key's strings on 100
    characters), and needs no compile. The spans are the alternation's: where several
    strings match at one place, the longest one's span holds the others'."""

    __slots__ = ("anchors", "plain", "spaced")

    def __init__(self, strings: Iterable[str]) -> None:
        unique = set(strings)
        self.plain = tuple(s for s in unique if " " not in s)
        # A space matches " " or "+" (what quote_plus writes): searched in the text with
        # every "+" read as a space, then the strings' own "+" checked in the real text.
        self.spaced = tuple((s.replace("+", " "), tuple(i for i, c in enumerate(s) if c == "+"),
                             len(s)) for s in unique if " " in s)
        # What a text must hold for one of the strings to be in it (`_AnchorIndex`); a string
        # shorter than an anchor (none is, today) makes its part searched in every text.
        self.anchors = frozenset(
            [s[:ANCHOR] for s in self.plain] + [folded[:ANCHOR] for folded, _, _ in self.spaced]
        ) if all(len(s) >= ANCHOR for s in unique) else frozenset({""})

    def __bool__(self) -> bool:
        return bool(self.plain or self.spaced)

    def occurrences(self, text: str) -> list[tuple[int, int]]:
        """Every occurrence's span, overlapping ones too, ordered by start, longest first."""
        found: list[tuple[int, int]] = []
        for string in self.plain:
            at = text.find(string)
            while at >= 0:
                found.append((at, at + len(string)))
                at = text.find(string, at + 1)
        if self.spaced:
            folded = text.replace("+", " ")
            for string, pluses, length in self.spaced:
                at = folded.find(string)
                while at >= 0:
                    if all(text[at + i] == "+" for i in pluses):
                        found.append((at, at + length))
                    at = folded.find(string, at + 1)
        found.sort(key=lambda span: (span[0], -span[1]))
        return found


class _Part:
    """One secret ready to be found: its verbatim forms and its base64 cores as plain
    strings (`_Literals`), and its percent-encoded forms, compiled only when a text could
    hold one.

    Why the percent patterns wait: they are most of the compile (each character becomes
    `(?:c|%XX)`: 79 KB of pattern and ~270 ms of Python's pure-Python re parser for an RSA
    key's lines, ~0.3 s per cluster and worker process, half of a create's step-worker CPU;
    issue 18), and in a text without a percent escape (`%` and two hex digits) they can only
    match what the verbatim forms match with each space written as itself or as `+`. Such a
    text (most lines: "12.3%" or a download's "100%" is no escape) is searched for the
    verbatim forms, which finds the same secrets; a text with an escape with the percent
    patterns, exactly as before."""

    __slots__ = ("_percent", "_values", "anchors", "cores", "literal")

    def __init__(self, values: Iterable[str]) -> None:
        self._values = tuple(values)
        literals: set[str] = set()
        cores: set[str] = set()
        for value in self._values:
            verbatim, base64_cores = _patterns(value)
            literals.update(verbatim)
            cores.update(base64_cores)
        self.literal = _Literals(literals)
        self.cores = _Literals(cores)
        self.anchors = self.literal.anchors | self.cores.anchors
        self._percent: re.Pattern[str] | None = None

    def plain_spans(self, text: str, escaped: bool) -> list[tuple[int, int]]:
        """The spans of this secret's verbatim and encoded forms in a text (`escaped`: the
        text holds a percent escape), overlapping ones too, ordered by start."""
        if not escaped:
            return self.literal.occurrences(text)
        if self._percent is None:  # two threads may both compile it: the same pattern
            self._percent = _alternation(
                {pattern for value in self._values for pattern in _percent_patterns(value)})
        return _overlapping_spans(self._percent, text) if self._percent is not None else []


# What a percent-encoded character looks like (either hex case): without one in a text, a
# secret's percent patterns match only what its verbatim forms do (_Part).
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _alternation(patterns: set[str]) -> re.Pattern[str] | None:
    # Longest first so a secret that contains another is masked whole.
    ordered = sorted(patterns, key=len, reverse=True)
    return re.compile("|".join(ordered)) if ordered else None


@lru_cache(maxsize=256)
def _secret_part(secret: str) -> _Part | None:
    """One secret compiled: its values (itself, its long lines, its DSN passwords) in all
    their encodings. Compiled once per process and secret, whatever else a Redactor holds:
    compiling is the costly bit (Python's re parser is pure Python: ~5 ms for a password,
    ~40 ms for a kubeconfig), and every step of every cluster used to recompile the whole
    set of its cluster's secrets when one changed (a node's SSH key, the same for all
    clusters, included). Bounded so that a worker's memory does not grow with the clusters
    it has served (benchmarks/worker_memory.py)."""
    values = _expand([secret])
    return _Part(values) if values else None


def _part_spans(part: _Part, text: str, escaped: bool) -> list[tuple[int, int]]:
    plain = part.plain_spans(text, escaped)
    tokens = _token_spans(part.cores, text) if part.cores else []
    return list(heapq.merge(plain, tokens))


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ordered (begin, end) spans with every overlapping or touching pair joined."""
    merged: list[tuple[int, int]] = []
    for begin, end in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


# Every verbatim form and base64 core is at least this long (MIN_SECRET_LENGTH,
# MIN_BASE64_CORE): its first ANCHOR characters are in any text that holds it.
ANCHOR = MIN_SECRET_LENGTH
# A text up to this long is searched only for the parts its anchors name (`_AnchorIndex`);
# a longer one for every part (collecting its anchors would cost more than the searches).
ANCHORED_TEXT_LIMIT = 4096


class _AnchorIndex:
    """Parts by the first ANCHOR characters of each of their strings, to skip the parts that
    cannot be in a short text.

    Why: the logging filter applies up to MAX_REMEMBERED secrets to every log record, and a
    private key has ~270 strings (its lines, their quoted forms, their base64 cores): 128
    secrets took ~0.65 ms per record, a few per step execution (issue 18). The ANCHOR-long
    pieces of a log line (about as many as its characters) name the few parts worth
    searching, in one set intersection. Only for a text with no percent escape: the percent
    patterns match forms these anchors do not name."""

    def __init__(self) -> None:
        self._by_anchor: dict[str, dict[str, _Part]] = {}

    def add(self, secret: str, part: _Part) -> None:
        for anchor in part.anchors:
            self._by_anchor.setdefault(anchor, {})[secret] = part

    def remove(self, secret: str, part: _Part) -> None:
        for anchor in part.anchors:
            holders = self._by_anchor.get(anchor)
            if holders is not None:
                holders.pop(secret, None)
                if not holders:
                    del self._by_anchor[anchor]

    def parts_for(self, text: str, escaped: bool, every: Iterable[_Part]) -> list[_Part]:
        """The parts worth searching `text` for: those its anchors name when it is short and
        holds no percent escape, else `every` one."""
        if escaped or len(text) > ANCHORED_TEXT_LIMIT:
            return list(every)
        return self._candidates(text)

    def _candidates(self, text: str) -> list[_Part]:
        """The parts one of whose strings may be in `text` (a space in one may be a `+`)."""
        pieces = {text[at:at + ANCHOR] for at in range(len(text) - ANCHOR + 1)}
        if "+" in text:
            folded = text.replace("+", " ")
            pieces.update(folded[at:at + ANCHOR] for at in range(len(folded) - ANCHOR + 1))
        found: dict[str, _Part] = dict(self._by_anchor.get("", {}))
        for anchor in pieces & self._by_anchor.keys():
            found.update(self._by_anchor[anchor])
        return list(found.values())


def _escaped(text: str) -> bool:
    return _PERCENT_ESCAPE.search(text) is not None


def _spans_of(parts: Iterable[_Part], text: str, escaped: bool) -> list[tuple[int, int]]:
    return _merge(heapq.merge(*(_part_spans(part, text, escaped) for part in parts)))


class Redactor:
    """Masks every occurrence of the given secrets, in each of their encodings.

    A Redactor holds one compiled part per secret (`_secret_part`, cached per process), and
    masks the union of the parts' spans. That union holds every span one alternation of all
    the secrets would find: where a secret's pattern matches, its own part picks the same
    branch (both are ordered longest first); it may mask more where two secrets overlap,
    never less. `extended` adds secrets without compiling the others again."""

    def __init__(self, secrets: Iterable[str] = (), *, remember: bool = True) -> None:
        self._parts: dict[str, _Part] = {}
        self._index: _AnchorIndex | None = None  # built at the first short text
        self._add(secrets)
        if remember:
            _KNOWN.add(self._parts)

    def _add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if isinstance(secret, str) and secret not in self._parts:
                part = _secret_part(secret)
                if part is not None:
                    self._parts[secret] = part

    def extended(self, secrets: Iterable[str], *, remember: bool = True) -> Redactor:
        """This Redactor's secrets and `secrets`: only the new ones are compiled."""
        grown = Redactor((), remember=False)
        grown._parts = dict(self._parts)
        grown._add(secrets)
        if remember:
            _KNOWN.add(grown._parts)
        return grown

    def __call__(self, text: str) -> str:
        """`text` with every secret masked: the verbatim, percent-encoded and quoted forms,
        and each base64 token that holds one, all found in the ORIGINAL text and masked
        once as the union of their spans. Why not one pass after the other: the first
        pass's `***` would split a base64 token holding a second secret, and the second
        pass would then see only fragments of the first one's base64 (and leave most of
        it, decodable). Linear in the text."""
        if not text:
            return text
        spans = self.spans(text)
        return _mask_spans(text, spans) if spans else text

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where `text` holds a secret in any encoding: ordered, merged (begin, end) spans."""
        index = self._index
        if index is None:  # two threads may both build it: the same index
            index = _AnchorIndex()
            for secret, part in self._parts.items():
                index.add(secret, part)
            self._index = index
        escaped = _escaped(text)
        return _spans_of(index.parts_for(text, escaped, self._parts.values()), text, escaped)


def mask_named_values(text: str) -> str:
    """`AccountPassword=...`-style values masked whatever they are (for log lines)."""
    return _NAMED_VALUE.sub(lambda m: m.group(1) + MASK, text)


# --- every secret this process has seen, for the logging filter ------------------------------


class _Known:
    """The process-wide, bounded set of the secrets Redactors were built with (`remember`),
    each with its compiled part: the logging filter applies them all.

    Why the compiled parts and not a Redactor rebuilt from every secret: that rebuild ran
    at each new secret and grew with the clusters a worker had served (a second and more of
    CPU per new secret after a few hundred clusters), and the compile cache kept each
    version. The newest MAX_REMEMBERED secrets are kept (a step's own move to the end each
    time a Redactor is built with them)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parts: dict[str, _Part] = {}  # insertion-ordered: the oldest first
        self._index = _AnchorIndex()

    def add(self, parts: dict[str, _Part]) -> None:
        with self.lock:
            for secret, part in parts.items():
                if self.parts.pop(secret, None) is None:
                    self._index.add(secret, part)
                self.parts[secret] = part
            while len(self.parts) > MAX_REMEMBERED:
                oldest = next(iter(self.parts))
                self._index.remove(oldest, self.parts.pop(oldest))

    def for_text(self, text: str, escaped: bool) -> list[_Part]:
        """The parts worth searching `text` for (`_AnchorIndex.parts_for`)."""
        with self.lock:
            return self._index.parts_for(text, escaped, self.parts.values())


_KNOWN = _Known()


def redact_known(text: str) -> str:
    """Mask every secret this process remembers (in any encoding), and named values."""
    if text:
        escaped = _escaped(text)
        spans = _spans_of(_KNOWN.for_text(text, escaped), text, escaped)
        if spans:
            text = _mask_spans(text, spans)
    return mask_named_values(text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in each record's message, traceback and stack.

    Installed on every handler (settings.LOGGING, and Celery's own handlers in panel.celery),
    so it covers third-party loggers too: aliyunsdkcore's request dump and its vendored
    urllib3 (`aliyunsdkcore.vendored.requests.packages.urllib3.connectionpool`), which logs
    each request URL with its query string at DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string must not hide the record
            message = str(record.msg)
        record.msg, record.args = redact_known(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_known(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_known(record.stack_info)
        return True
