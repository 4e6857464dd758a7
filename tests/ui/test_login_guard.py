"""Sign-in protection: a lockout per username and address (django-axes) with a page that says
when to try again, every failure in the audit trail without the password, and the one rule
for the client's address behind trusted proxies."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.test import Client, RequestFactory

from clusters.interface.audit import client_address
from clusters.models import AuditAction, AuditEvent
from tests.support.factories import make_user

PASSWORD = "Right-Passw0rd-for-tests"
WRONG = "Wr0ng-Guess-%s-never-stored"
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}


@pytest.fixture
def alice(db: Any) -> Any:
    user = make_user(username="alice")
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(username: str, password: str, address: str = "198.51.100.7",
            url: str = "/accounts/login/", **extra: Any) -> Any:
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password},
                                            **extra)


def fail(times: int, username: str = "alice", address: str = "198.51.100.7") -> list[int]:
    return [sign_in(username, WRONG % attempt, address).status_code for attempt in range(times)]


def test_five_failures_lock_that_username_from_that_address_with_a_page_saying_when(
        alice: Any, settings: Any) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    assert fail(limit - 1) == [200] * (limit - 1), "a wrong password shows the form again"
    assert sign_in("alice", PASSWORD).status_code == 302, "below the limit the right one works"
    assert fail(limit) == [200] * (limit - 1) + [429], "a success starts the count again"
    locked = sign_in("alice", PASSWORD)  # even the right password now
    page = locked.content.decode()
    assert locked.status_code == 429 and 'id="locked-out"' in page
    assert "Try again in 15 minutes, after" in page and "alice" in page
    assert int(locked["Retry-After"]) == 15 * 60
    assert "登录失败次数过多" in sign_in("alice", PASSWORD, **ZH).content.decode()


def test_a_lockout_leaves_other_addresses_and_other_users_alone(alice: Any,
                                                                settings: Any) -> None:
    bob = make_user(username="bob")
    bob.set_password(PASSWORD)
    bob.save()
    fail(settings.AXES_FAILURE_LIMIT)
    assert sign_in("alice", PASSWORD).status_code == 429
    assert sign_in("alice", PASSWORD, address="203.0.113.9").status_code == 302
    assert sign_in("bob", PASSWORD).status_code == 302


def test_the_admin_login_is_guarded_too(alice: Any, settings: Any) -> None:
    alice.is_staff = True
    alice.save()
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in("alice", WRONG % attempt, url="/admin/login/")
    assert sign_in("alice", PASSWORD, url="/admin/login/").status_code == 429


def test_the_lock_lifts_after_the_cool_off(alice: Any, settings: Any) -> None:
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    fail(settings.AXES_FAILURE_LIMIT)
    assert sign_in("alice", PASSWORD).status_code == 429
    time.sleep(1.2)
    assert sign_in("alice", PASSWORD).status_code == 302


def test_each_failure_is_audited_with_name_and_address_never_the_password(
        alice: Any, settings: Any) -> None:
    fail(2, username="alice")
    fail(1, username="nobody-such")
    sign_in("alice", PASSWORD, url="/admin/login/")  # not staff: a failure of the admin form
    events = list(AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).order_by("pk"))
    assert [(e.username, e.ip_address) for e in events] == [
        ("alice", "198.51.100.7"), ("alice", "198.51.100.7"), ("nobody-such", "198.51.100.7")]
    stored = [repr(list(AuditEvent.objects.values())),
              repr(list(AccessAttempt.objects.values()))]
    for attempt in range(3):
        assert not [text for text in stored if WRONG % attempt in text]
    assert PASSWORD not in "".join(stored)


def test_a_locked_out_attempt_is_audited_as_such(alice: Any, settings: Any) -> None:
    fail(settings.AXES_FAILURE_LIMIT)
    sign_in("alice", PASSWORD)
    last = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).order_by("-pk").first()
    assert last is not None and last.details["locked_out"] is True


# --- the client's address ---------------------------------------------------------------------


def request_from(remote: str, forwarded: str | None = None) -> Any:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


def test_without_trusted_proxies_x_forwarded_for_is_ignored(settings: Any) -> None:
    settings.PANEL_TRUSTED_PROXIES = 0
    assert client_address(request_from("198.51.100.7", "10.9.9.9")) == "198.51.100.7"


def test_behind_trusted_proxies_the_address_they_saw_counts_not_what_the_client_wrote(
        settings: Any) -> None:
    settings.PANEL_TRUSTED_PROXIES = 1
    # The client wrote 10.9.9.9 itself; the proxy appended what it saw.
    assert client_address(request_from("172.18.0.5", "10.9.9.9, 198.51.100.7")) == \
        "198.51.100.7"
    settings.PANEL_TRUSTED_PROXIES = 2
    assert client_address(request_from("172.18.0.5", "1.1.1.1, 198.51.100.7, 172.18.0.9")) \
        == "198.51.100.7"
    # Fewer hops than proxies: it did not come through them.
    assert client_address(request_from("172.18.0.5", "198.51.100.7")) == "172.18.0.5"
    assert client_address(request_from("172.18.0.5", "not-an-address, x")) is None


def test_the_lockout_and_the_audit_use_the_proxied_address(alice: Any, settings: Any) -> None:
    settings.PANEL_TRUSTED_PROXIES = 1
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in("alice", WRONG % attempt, address="172.18.0.5",
                HTTP_X_FORWARDED_FOR=f"10.0.0.{attempt}, 198.51.100.7")
    assert AuditEvent.objects.filter(ip_address="198.51.100.7").count() == \
        settings.AXES_FAILURE_LIMIT
    proxied = {"HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    assert sign_in("alice", PASSWORD, address="172.18.0.5", **proxied).status_code == 429
    other = {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    assert sign_in("alice", PASSWORD, address="172.18.0.5", **other).status_code == 302
