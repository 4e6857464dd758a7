"""The redactor masks every encoding of a secret, and the logging filter masks every record."""

from __future__ import annotations

import base64
import json
import logging
import logging.config
import random
import re
import string
from urllib.parse import quote, quote_plus

import pytest
import yaml
from django.conf import settings

from clusters.core import redaction as r
from clusters.core.redaction import MASK, RedactingFilter, Redactor
from tests.support.leaks import encodings, leaks

# Every character class that an encoder treats specially: space, quotes, %, @, :, /, +, \,
# a non-ASCII letter.
NASTY = "Pa ss'w\"o%rd@1:/+\\ü"
PLAIN = "Plain-Secret-0123456789"


@pytest.mark.parametrize("secret", [NASTY, PLAIN, "ab:c d!x"])
@pytest.mark.parametrize("name", list(encodings("x", users=["k3s"])))
def test_each_encoding_of_a_secret_is_masked(secret: str, name: str) -> None:
    form = encodings(secret, users=["k3s"])[name]
    masked = Redactor([secret])(f"before {form} after")
    assert not leaks([masked], [secret], users=["k3s"]), (name, masked)
    assert masked.startswith("before ") and masked.endswith(" after")


def test_basic_auth_is_masked_whoever_the_user_is() -> None:
    for user in ("a", "ab", "abc", "some-long-user"):
        header = encodings(PLAIN, [user])["basic-auth:" + user]
        masked = Redactor([PLAIN])(f"Authorization: Basic {header}")
        assert masked == f"Authorization: Basic {MASK}", user


def test_the_password_part_of_a_dsn_is_masked_alone_too() -> None:
    dsn = "mysql://k3s:Dsn-Pass%40word!9@tcp(db.example:3306)/k3s"
    redact = Redactor([dsn])
    assert redact("Access denied, password Dsn-Pass%40word!9") == f"Access denied, password {MASK}"
    assert redact("decoded Dsn-Pass@word!9 here") == f"decoded {MASK} here"
    assert "db.example" not in redact(dsn)


def test_text_without_secrets_is_left_alone() -> None:
    text = "Created rm-abc123 in cn-hangzhou; base64 aGVsbG8gd29ybGQ= stays."
    assert Redactor([NASTY, PLAIN])(text) == text


def test_every_handler_of_the_settings_masks_secrets_from_any_logger(capfd) -> None:
    Redactor([NASTY])  # the step context or the cloud client learnt it
    config = {**settings.LOGGING, "root": {"handlers": ["console"], "level": "DEBUG"}}
    logging.config.dictConfig(config)
    try:
        logging.getLogger("some.http.library").debug(
            'http://127.0.0.1:1 "GET /?Pass=%s HTTP/1.1" 200 2', encodings(NASTY)["quote_plus"])
        try:
            raise RuntimeError(f"failed with {NASTY}")
        except RuntimeError:
            logging.getLogger("celery.app.trace").exception("task failed")
        logging.getLogger("any.library").info("token=%s", "a-token-nobody-registered")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    err = capfd.readouterr().err
    assert "some.http.library" in err and "task failed" in err and "RuntimeError" in err
    assert not leaks([err], [NASTY, "a-token-nobody-registered"]), err
    assert all(any(isinstance(f, RedactingFilter) for f in h.filters)
               for h in logging.getLogger().handlers
               if not type(h).__module__.startswith("_pytest"))


def test_a_base64_token_of_a_megabyte_is_masked_whole_when_it_holds_a_secret():
    """A host printing a 1 MB base64 blob: the token holding the secret's base64 is masked
    whole, a token without it is left alone (this took hours before: the base64 pattern's
    leading `[B]*` backtracked from every position; pytest's timeout fails it now)."""
    secret = "Pw-7hQ2-never-on-a-page"
    redact = Redactor([secret], remember=False)
    blob = "Q" * 500_000 + base64.b64encode(b"x" + secret.encode()).decode() + "Q" * 500_000
    assert redact(f"data: {blob}== end") == "data: *** end"
    assert redact("z" * 1_000_000) == "z" * 1_000_000


# --- secrets whose encodings overlap -----------------------------------------------------------

LONG = "S3cr3t-Passphrase-Long-Enough-Secret!"
_TOKEN = base64.b64encode(f"hello {LONG} world".encode()).decode()
INSIDE_BASE64 = _TOKEN[20:30]  # a second secret that is a piece of LONG's base64


def test_a_secret_inside_another_ones_base64_does_not_split_it_and_leave_it_readable():
    """The reviewer's case: the plain pass masked INSIDE_BASE64 first, and the `***` split
    LONG's token so the base64 pass found only fragments (most of LONG decodable)."""
    assert Redactor([LONG, INSIDE_BASE64], remember=False)(f"key: {_TOKEN}") == "key: ***"


def test_a_whole_base64_ending_in_padding_does_not_widen_into_the_next_token():
    secret = "Padded-Secret-12"  # 16 bytes: its base64 ends in ==
    encoded = base64.b64encode(secret.encode()).decode()
    assert encoded.endswith("==")
    assert Redactor([secret], remember=False)(f"{encoded}next-word") == "***next-word"


def _reference_spans(secrets: list[str], text: str) -> set[int]:
    """The positions 237e313's redactor masked: one alternation of every plain form, each
    whole base64 and `[B]*core[B]*=*` (quadratic on long runs, fine on this table)."""
    patterns: set[str] = set()
    for value in r._expand(secrets):
        if len(value) > r.MAX_ENCODED_LENGTH:
            patterns.add(re.escape(value))
            continue
        patterns.add(r._percent_pattern(value))
        patterns.update(r._percent_pattern(f) for f in r._quoted_forms(value) if f != value)
        cores = [re.escape(core) for core in r._base64_cores(value)]
        patterns.update(cores[:2])
        patterns.update(f"[A-Za-z0-9+/_-]*{core}[A-Za-z0-9+/_-]*=*" for core in cores[2:])
    pattern = re.compile("|".join(sorted(patterns, key=len, reverse=True)))
    return {at for m in pattern.finditer(text) for at in range(*m.span())}


def _table() -> list[tuple[list[str], str]]:
    url = "p@ss word/Long-Secret:x"
    inner = quote(url, safe="")[4:14]  # a secret inside the other's URL-encoded form
    quoted = "Quote\"d-Secret\\Long"
    escaped = json.dumps(quoted)[3:12]  # a secret inside the other's JSON-escaped form
    a, b = "First-Secret-abc", "abc-Second-Secret"  # the end of one is the start of the next
    basic = base64.b64encode(f"admin:{LONG}".encode()).decode()
    return [
        ([LONG, INSIDE_BASE64], f"key: {_TOKEN}"),
        ([LONG, INSIDE_BASE64], f"{_TOKEN} {INSIDE_BASE64} {LONG}"),
        ([url, inner], f"GET /?p={quote(url, safe='')}&q={quote_plus(url)}"),
        ([url, inner], f"dsn mysql://u:{quote(url, safe='')}@tcp(h)/db"),
        ([quoted, escaped], f'{{"password": {json.dumps(quoted)}}}'),
        ([quoted, escaped], f"echo {json.dumps(quoted)} '{quoted}'"),
        ([a, b], "First-Secret-abc-Second-Secret and abc-Second-Secret"),
        ([b, a], "First-Secret-abc-Second-Secret"),
        ([LONG], f"Authorization: Basic {basic}=x {basic}"),
        ([LONG, "Enough"], f"{LONG}{LONG} {base64.urlsafe_b64encode(LONG.encode()).decode()}"),
        ([NASTY, PLAIN], f"{NASTY}{PLAIN} {quote(NASTY)}{quote(PLAIN)}"),
    ]


@pytest.mark.parametrize("index", range(len(_table())))
def test_nothing_the_old_redactor_masked_is_left_now_and_no_secret_leaks(index: int) -> None:
    secrets, text = _table()[index]
    redact = Redactor(secrets, remember=False)
    masked_now = {at for begin, end in redact.spans(text) for at in range(begin, end)}
    missed = sorted(_reference_spans(secrets, text) - masked_now)
    assert not missed, (text, [text[at] for at in missed])
    assert not leaks([redact(text)], secrets), redact(text)


def test_a_secret_that_begins_inside_another_ones_match_is_masked_from_its_start():
    """`abc-Second-Secret` begins inside `First-Secret-abc`: a scan that went on from the
    first match's end never found the second and left `-Second-Secret` (237e313 did too)."""
    redact = Redactor(["First-Secret-abc", "abc-Second-Secret"], remember=False)
    assert redact("x First-Secret-abc-Second-Secret y") == "x *** y"


@pytest.mark.parametrize("name", list(encodings("x", users=["k3s"])))
def test_a_redactor_grown_secret_by_secret_masks_what_one_built_with_all_of_them_does(
        name: str) -> None:
    """A step learns its secrets one at a time (StepContext.register_secret): the Redactor it
    ends with masks every encoding of each exactly as one built with all of them at once."""
    secrets = [NASTY, PLAIN, "ab:c d!x", "Plain-Secret"]  # the last is inside the second
    grown = Redactor(secrets[:1], remember=False)
    for secret in secrets[1:]:
        grown = grown.extended([secret], remember=False)
    whole = Redactor(secrets, remember=False)
    text = " | ".join(f"{s[:3]} {encodings(s, users=['k3s'])[name]} end" for s in secrets)
    assert grown(text) == whole(text)
    assert not leaks([grown(text)], secrets, users=["k3s"])


def test_the_logging_filter_masks_the_newest_secrets_and_forgets_the_oldest() -> None:
    """The filter holds the newest secrets, a bounded number: a worker that serves clusters
    for months neither grows nor rebuilds a pattern of everything it saw."""
    first = "Oldest-Secret-0000"
    Redactor([first])
    steps = [f"Step-Secret-{index:04d}-xyz" for index in range(r.MAX_REMEMBERED + 10)]
    for secret in steps:
        context = Redactor(["Shared-Cluster-Secret"])  # each step context starts with it
        context.extended([secret])  # and learns one of its own
    newest = steps[-(r.MAX_REMEMBERED - 1):]
    line = " ".join(newest) + " Shared-Cluster-Secret"
    assert r.redact_known(line) == " ".join([MASK] * r.MAX_REMEMBERED)
    assert r.redact_known(f"old {first} and {steps[0]}") == f"old {first} and {steps[0]}"
    assert len(r._KNOWN.parts) == r.MAX_REMEMBERED


@pytest.mark.parametrize("secret", ["ab:c d!x-Secret", "two words-Secret", PLAIN])
def test_a_secret_first_seen_verbatim_is_still_masked_percent_encoded_later(secret: str) -> None:
    """The percent-encoded patterns are compiled only once a text could hold one (a `%` and two
    hex digits; without one, a space may still be written `+`): a redactor that first saw
    only verbatim lines masks the encoded forms that come later just the same, and the same
    spans the old redactor did."""
    redact = Redactor([secret], remember=False)
    later = [f"verbatim {secret} and json {json.dumps(secret)}",
             f"GET /?p={quote(secret, safe='')}&q={quote_plus(secret)}",
             f"form q={quote_plus(secret)}",
             f"{quote(secret, safe='')[:-1]}{secret[-1]} 100% done",
             f"storage 12.3% used; {secret}; %zz is no escape"]
    for text in later:
        masked = redact(text)
        assert not leaks([masked], [secret]), (text, masked)
        masked_at = {at for begin, end in redact.spans(text) for at in range(begin, end)}
        assert not _reference_spans([secret], text) - masked_at, text


def _yaml_forms(secret: str) -> set[str]:
    """What PyYAML's quoted styles write for `secret` (the forms the fast path skips)."""
    forms: set[str] = set()
    for unicode in (False, True):
        for style in ('"', "'"):
            dumped = yaml.safe_dump(secret, default_style=style, width=10**9,
                                    allow_unicode=unicode).rstrip("\n")
            forms.update((dumped.removesuffix("\n...").strip(), dumped.strip()[1:-1]))
    return forms


def _private_key_lines() -> list[str]:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()
    return [line for line in pem.splitlines() if len(line) >= r.MIN_LINE_LENGTH]


def test_the_yaml_forms_of_plain_ascii_are_what_pyyaml_writes():
    """`_quoted_forms` writes YAML's quoted forms of plain printable ASCII itself (PyYAML's
    emitter was ~40% of a private key's preparation): they must be PyYAML's own."""
    rng = random.Random(18)
    alphabet = string.ascii_letters + string.digits + "+/=_.:@,%~!^*()[]{}<>?|&#$;`-  "
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(4, 90)))
               for _ in range(3000)]
    samples += _private_key_lines()
    for secret in samples:
        assert r._YAML_PLAIN.fullmatch(secret), secret
        assert _yaml_forms(secret) <= r._quoted_forms(secret) | {secret}, secret
    # Anything else still goes through PyYAML: a quote, a backslash, a tab, non-ASCII.
    for secret in ("it's-a-secret", 'say "hi" now', "back\\slash-x", "with\ttab", "пароль-1"):
        assert not r._YAML_PLAIN.fullmatch(secret)
        assert _yaml_forms(secret) <= r._quoted_forms(secret) | {secret}


def _alternation_spans(strings: set[str], text: str) -> list[tuple[int, int]]:
    """The spans the compiled alternation found (before `_Literals`): longest first, a space
    also as `+`, searched again one character after each match's start."""
    pattern = re.compile("|".join(
        "[ +]".join(re.escape(piece) for piece in s.split(" "))
        for s in sorted(strings, key=len, reverse=True)))
    spans, at = [], 0
    while (match := pattern.search(text, at)) is not None:
        spans.append(match.span())
        at = match.start() + 1
    return spans


def _union(spans: list[tuple[int, int]]) -> set[int]:
    return {at for begin, end in spans for at in range(begin, end)}


@pytest.mark.parametrize("strings, text", [
    ({"abcdef", "abcdefgh", "cdefghij"}, "xx abcdefghij abcdef abcdefgh"),
    ({"pass word", "word+plus"}, "pass+word pass word word+plus word plus pass word+plus"),
    ({"a+b c+d"}, "a+b+c+d a b c d a+b c+d a+b+c d"),
    ({"aaaa"}, "aaaaaaa"),
    ({"LS0tLS1CRUdJTi", "S0tLS1CRUdJTiBP"}, "LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEU="),
])
def test_finding_plain_strings_masks_what_the_alternation_masked(strings, text):
    """`_Literals` (str.find, no compile) replaced one regex alternation of the same
    strings: every position the alternation covered is covered, and no other."""
    found = r._Literals(strings).occurrences(text)
    assert found == sorted(found, key=lambda span: (span[0], -span[1]))
    assert _union(found) == _union(_alternation_spans(strings, text))


@pytest.mark.parametrize("secrets, text", [
    *_table(),
    (["pass word-Secret", "second secret 42"], "x pass+word-Secret y second+secret+42 z"),
    (["pass word-Secret"], "pass%20word-Secret and pass+word-Secret"),
    ([LONG, "Another-Long-Secret"], f"{base64.b64encode(LONG.encode()).decode()} tail"),
])
def test_searching_only_the_secrets_a_short_text_names_finds_every_span(secrets, text):
    """A short text is searched only for the secrets whose strings' first characters it
    holds (`_AnchorIndex`): the spans are those of searching it for every secret."""
    redactor = Redactor(secrets, remember=False)
    every = r._spans_of(redactor._parts.values(), text, r._escaped(text))
    assert every, "the case must hold a secret"
    assert redactor.spans(text) == every
    Redactor(secrets)  # remembered: the logging filter's index finds the same
    assert r.redact_known(text) == r.mask_named_values(r._mask_spans(text, every))
