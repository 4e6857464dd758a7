"""RDS PostgreSQL's CreateDatabase rules in the emulator, read off the V2 request model's text.

Why: the emulator must refuse exactly what Alibaba refuses. It once demanded all three of
`Charset,Collate,Ctype` and capped PostgreSQL database names at 63 characters, while V2's
CreateDatabaseRequest (alibabacloud_rds20140815) says Collate and Ctype default to C and
en_US.utf8 when left out and that a name "must be 2 to 64 characters" (the CreateDatabase API
reference says the same, with no PostgreSQL exception). The numbers and defaults below come
from the installed model's docstrings, so an SDK upgrade that changes them fails here.
Pure introspection plus the emulator's own rule functions: fast.
"""

from __future__ import annotations

import re

import pytest

from sandbox.aliyun.gateway.errors import ApiError
from sandbox.aliyun.rds import engines
from tests.conformance import v2

MODEL = v2.model_class("Rds", "2014-08-15", "CreateDatabaseRequest")
assert MODEL is not None
CHARSET_DOC = v2.doc_of(MODEL, "character_set_name")
NAME_DOC = v2.doc_of(MODEL, "dbname")


def _default(what: str) -> str:
    found = re.search(rf"Valid values for \*\*{what}\*\*:.*?If this parameter is not "
                      r"specified, the default value \*\*([^*]+)\*\* is used", CHARSET_DOC)
    assert found, f"V2 no longer gives {what}'s default: {CHARSET_DOC}"
    return found.group(1)


def _name_bounds() -> tuple[int, int]:
    found = re.search(r"must be (\d+) to (\d+) characters in length", NAME_DOC)
    assert found, f"V2 no longer gives DBName's length: {NAME_DOC}"
    return int(found.group(1)), int(found.group(2))


def test_v2_text_is_what_this_test_reads() -> None:
    assert (_default("Collate"), _default("Ctype")) == ("C", "en_US.utf8")
    assert _name_bounds() == (2, 64)


@pytest.mark.parametrize(("value", "expected"), [
    ("UTF8", ("UTF8", "Collate", "Ctype")),
    ("UTF8,POSIX", ("UTF8", "POSIX", "Ctype")),
    ("UTF8,C,C.UTF-8", ("UTF8", "C", "C.UTF-8")),
])
def test_pg_collate_and_ctype_may_be_left_out(value: str, expected: tuple[str, str, str]) -> None:
    charset = engines.POSTGRESQL.parse_charset(value)
    want = tuple(_default(part) if part in ("Collate", "Ctype") else part for part in expected)
    assert (charset.charset, charset.collate, charset.ctype) == want
    assert engines.POSTGRESQL.format_charset(charset) == ",".join(want)


@pytest.mark.parametrize("value", ["", "utf8mb4", "UTF8,,C", "UTF8,C,C,C", "UTF8,xx_YY"])
def test_pg_charset_still_refuses_what_v2_does_not_allow(value: str) -> None:
    with pytest.raises(ApiError) as caught:
        engines.POSTGRESQL.parse_charset(value)
    assert caught.value.code == "InvalidCharacterSetName.Format"


def test_pg_database_names_span_v2s_bounds() -> None:
    low, high = _name_bounds()
    for length in (low, high):
        engines.POSTGRESQL.check_db_name("k" * length)
    for length in (low - 1, high + 1):
        with pytest.raises(ApiError) as caught:
            engines.POSTGRESQL.check_db_name("k" * length)
        assert caught.value.code == "InvalidDBName.Format"
    for bad in ("1k3s", "k3s_", "K3s", "k3s.db"):  # a letter first, a letter or digit last
        with pytest.raises(ApiError):
            engines.POSTGRESQL.check_db_name(bad)
