"""The redactor masks every encoding of a secret, and the logging filter masks every record."""

from __future__ import annotations

import base64
import logging
import logging.config

import pytest
from django.conf import settings

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
