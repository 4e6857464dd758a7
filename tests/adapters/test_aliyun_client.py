"""The Aliyun adapter's own guarantees, with the real SDK against local capture servers:
fail-closed endpoints, no proxy, one attempt, timeouts, and error mapping without secrets."""

from __future__ import annotations

import json
import logging
import logging.config
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.endpoint.default_endpoint_resolver import DefaultEndpointResolver
from aliyunsdkcore.profile import region_provider
from aliyunsdkrds.request.v20140815.DescribeDBInstanceAttributeRequest import (
    DescribeDBInstanceAttributeRequest,
)

from clusters.adapters.aliyun import (
    AliyunCloud,
    CloudNotFound,
    EndpointPolicy,
    PriceModule,
    map_sdk_error,
)
from clusters.adapters.aliyun.client import parse_override
from clusters.adapters.aliyun.errors import create_refused
from clusters.core.errors import PermanentError, TransientError
from tests.support.leaks import leaks

SECRET = "Sk-the-AccessKey-secret-123"
DB_PASSWORD = "Db-Password-42-xyz"


@dataclass
class Capture:
    """An HTTP server that records what reached it and answers as configured."""

    status: int = 200
    body: dict = field(default_factory=lambda: {"RequestId": "REQ-1"})
    delay: float = 0.0
    seen: list[dict[str, list[str]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def actions(self) -> list[str]:
        return [q.get("Action", ["?"])[0] for q in self.seen]


@pytest.fixture
def capture_factory() -> Iterator[type[Capture]]:
    servers: list[ThreadingHTTPServer] = []

    def make(**kwargs: object) -> Capture:
        capture = Capture(**kwargs)  # type: ignore[arg-type]

        class Handler(BaseHTTPRequestHandler):
            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
                query["_absolute"] = [str(self.path.startswith("http"))]
                capture.seen.append(query)
                time.sleep(capture.delay)
                data = json.dumps(capture.body).encode()
                try:
                    self.send_response(capture.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test)

            do_GET = do_POST = handle_any

            def log_message(self, *_args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        capture.server = server
        return capture

    yield make  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


def cloud(endpoint: object, **kwargs: object) -> AliyunCloud:
    return AliyunCloud("LTAItestkey", SECRET, "cn-hangzhou", endpoint,  # type: ignore[arg-type]
                       **kwargs)  # type: ignore[arg-type]


# -- where requests go ---------------------------------------------------------------------


def test_every_request_goes_to_the_override(capture_factory: type[Capture]) -> None:
    capture = capture_factory(body={"RequestId": "R", "Regions": {"Region": [
        {"RegionId": "cn-hangzhou", "LocalName": "Hangzhou"}]}})
    regions = cloud(capture.endpoint).describe_regions()
    assert [r.region_id for r in regions] == ["cn-hangzhou"]
    assert capture.actions() == ["DescribeRegions"]  # one attempt, at the override


def test_a_product_without_an_override_is_refused_before_sending(
        capture_factory: type[Capture]) -> None:
    capture = capture_factory()
    only_ecs = cloud({"Ecs": capture.endpoint})
    with pytest.raises(PermanentError, match="No endpoint override for Rds"):
        only_ecs.describe_rds("rm-1")
    assert capture.seen == []


def test_bss_price_calls_are_fail_closed_like_every_product(
        capture_factory: type[Capture]) -> None:
    capture = capture_factory(body={"RequestId": "R", "Success": True, "Code": "Success",
                                    "Data": {"Currency": "CNY", "ModuleDetails": {
                                        "ModuleDetail": [{"ModuleCode": "InstanceRent",
                                                          "CostAfterDiscount": 0.147,
                                                          "OriginalCost": 0.147}]}}})
    module = PriceModule("InstanceRent", "InstanceRent:1")
    with pytest.raises(PermanentError, match="No endpoint override for BssOpenApi"):
        cloud({"Slb": capture.endpoint}).get_pay_as_you_go_price("slb", [module])
    assert capture.seen == []
    prices = cloud({"BssOpenApi": capture.endpoint}).get_pay_as_you_go_price("slb", [module])
    assert prices["InstanceRent"].amount == 0.147 and capture.actions() == ["GetPayAsYouGoPrice"]


def test_the_sdk_resolver_chain_is_never_consulted_with_an_override(
        capture_factory: type[Capture]) -> None:
    capture = capture_factory(body={"RequestId": "R", "Items": {"DBInstanceAttribute": [
        {"DBInstanceId": "rm-1", "DBInstanceStatus": "Running"}]}})
    evil = capture_factory()
    # A process-wide endpoint entry is checked first by the SDK's chain; it must not matter.
    shared = DefaultEndpointResolver.predefined_endpoint_resolver
    saved = dict(shared.endpoints_data)
    region_provider.add_endpoint("Rds", "cn-hangzhou", evil.endpoint)
    try:
        target = cloud(capture.endpoint)
        assert target.describe_rds("rm-1").status == "Running"  # type: ignore[union-attr]
        with pytest.raises(ClientException, match="disabled"):
            target.client.sdk._resolve_endpoint(DescribeDBInstanceAttributeRequest())
    finally:
        # Restore the process-wide table exactly: an entry left behind would send every
        # later client in this process to that endpoint.
        shared.endpoints_data = saved
    assert len(capture.seen) == 1 and evil.seen == []


def test_without_override_the_real_endpoint_is_resolved_offline() -> None:
    real = cloud(None)
    assert not real.client.policy.overridden
    endpoint = real.client.sdk._resolve_endpoint(DescribeDBInstanceAttributeRequest())
    assert endpoint == "rds.aliyuncs.com"  # from the SDK's own tables; nothing was sent


def test_proxy_environment_variables_are_ignored(capture_factory: type[Capture],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    capture = capture_factory(body={"RequestId": "R", "Zones": {"Zone": []}})
    proxy = capture_factory()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://{proxy.endpoint}")
    cloud(capture.endpoint).describe_zones()
    assert len(capture.seen) == 1 and capture.seen[0]["_absolute"] == ["False"]
    assert proxy.seen == []


@pytest.mark.parametrize("bad", ["https://x:1", "host", "h:99999", "http://h:1/path"])
def test_malformed_overrides_are_refused(bad: str) -> None:
    with pytest.raises(PermanentError, match="host:port"):
        EndpointPolicy(bad)


def test_override_settings_text() -> None:
    assert parse_override("127.0.0.1:8080") == "127.0.0.1:8080"
    assert parse_override("Rds=127.0.0.1:1, Slb=127.0.0.1:2") == {
        "Rds": "127.0.0.1:1", "Slb": "127.0.0.1:2"}
    assert parse_override("") is None


# -- attempts, timeouts ---------------------------------------------------------------------


def test_one_attempt_per_call_and_5xx_is_transient(capture_factory: type[Capture]) -> None:
    capture = capture_factory(status=503, body={
        "RequestId": "REQ-503", "Code": "ServiceUnavailable",
        "Message": "The request has failed due to a temporary failure of the server."})
    with pytest.raises(TransientError) as caught:
        cloud(capture.endpoint).describe_zones()  # ECS Describe*: the SDK would retry 3x
    assert len(capture.seen) == 1
    assert caught.value.code == "ServiceUnavailable" and caught.value.request_id == "REQ-503"
    assert "RequestId REQ-503" in str(caught.value)


def test_a_slow_answer_times_out_as_transient(capture_factory: type[Capture]) -> None:
    capture = capture_factory(delay=3)
    started = time.monotonic()
    with pytest.raises(TransientError, match="did not answer in time"):
        cloud(capture.endpoint, read_timeouts={"DescribeZones": 1}).describe_zones()
    assert time.monotonic() - started < 2.5


def test_a_refused_connection_is_transient_and_leaks_nothing(
        capture_factory: type[Capture], caplog: pytest.LogCaptureFixture) -> None:
    capture = capture_factory()
    endpoint = capture.endpoint
    assert capture.server is not None
    capture.server.shutdown()
    capture.server.server_close()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransientError, match="refused the connection") as caught:
        cloud(endpoint).create_account("rm-1", "k3s", DB_PASSWORD)
    assert DB_PASSWORD not in str(caught.value) and "Signature=" not in str(caught.value)
    assert DB_PASSWORD not in caplog.text and SECRET not in caplog.text


# -- error mapping from real SDK exception objects --------------------------------------------


def server_error(code: str, message: str = "msg", status: int = 400) -> ServerException:
    return ServerException(code, message, http_status=status, request_id="REQ-9")


@pytest.mark.parametrize("code", [
    "Throttling", "Throttling.User", "Throttling.Api", "ServiceUnavailable", "InternalError",
    "IncorrectDBInstanceState", "OperationDenied.DBInstanceStatus", "ServiceIsConfiguring",
    "OperationFailed.TokenIsProcessing", "SystemBusy",
])
def test_busy_and_throttled_are_transient(code: str) -> None:
    error = map_sdk_error(server_error(code), product="Rds", action="CreateAccount")
    assert isinstance(error, TransientError) and error.code == code


@pytest.mark.parametrize(("code", "hint"), [
    ("InvalidAccessKeyId.NotFound", "does not know this AccessKey ID"),
    ("InvalidAccessKeyId.Inactive", "AccessKey is disabled"),
    ("Forbidden.RAM", "lacks the permission rds:CreateDBInstance"),
    ("NoPermission", "add rds:CreateDBInstance to its policy"),
    ("InvalidSecurityToken.Expired", "STS token expired"),
    ("EntityNotExist.Role", "No RAM role has this ARN"),
    ("QuotaExceed.Instance", "quota was reached"),
    ("AccountLimitExceeded", "quota was reached"),
    ("InvalidTimeStamp.Expired", "clock"),
    ("OperationDenied.ZoneResource", "sold out"),
    ("InvalidParameter", "msg"),
])
def test_everything_else_is_permanent_with_a_hint(code: str, hint: str) -> None:
    error = map_sdk_error(server_error(code), product="Rds", action="CreateDBInstance")
    assert type(error) is PermanentError and hint in error.message
    assert error.request_id == "REQ-9" and f"code {code}" in str(error)


def test_an_already_activated_500_is_permanent_while_other_500s_are_transient() -> None:
    """Terraform's NeedRetry: every 5xx is retried except "code: 500, 您已开通过"."""
    activated = map_sdk_error(server_error("InternalError", "您已开通过该服务", status=500),
                              product="Slb", action="CreateLoadBalancer")
    assert type(activated) is PermanentError and "already activated" in activated.message
    assert activated.request_id == "REQ-9"
    other = map_sdk_error(server_error("InternalError", "The request processing has failed.",
                                       status=500), product="Slb", action="CreateLoadBalancer")
    assert isinstance(other, TransientError)


def test_not_found_is_its_own_kind() -> None:
    error = map_sdk_error(server_error("InvalidDBInstanceId.NotFound", status=404),
                          product="Rds", action="DescribeDBInstanceAttribute")
    assert isinstance(error, CloudNotFound)


def test_signature_errors_never_echo_the_string_to_sign() -> None:
    echoed = ("Specified signature is not matched with our calculation. server string to sign "
              f"is:POST&%2F&AccountName%3Dk3s%26AccountPassword%3D{DB_PASSWORD}")
    error = map_sdk_error(server_error("SignatureDoesNotMatch", echoed), product="Rds",
                          action="CreateAccount")
    assert isinstance(error, PermanentError) and "secret is wrong" in error.message
    assert DB_PASSWORD not in str(error)


def test_client_errors_are_scrubbed_and_redacted() -> None:
    exc = ClientException("SDK.HttpError", "HTTPConnectionPool(host='h', port=1): Max retries "
                          f"exceeded with url: /?AccountPassword={DB_PASSWORD}&Signature=x "
                          "(Caused by NewConnectionError('x: Failed to establish a new "
                          "connection: [Errno 111] Connection refused'))")
    error = map_sdk_error(exc, product="Rds", action="CreateAccount", endpoint="h:1")
    assert isinstance(error, TransientError)
    assert str(error) == ("Rds CreateAccount: Alibaba Cloud at h:1 refused the connection "
                          "([Errno 111] Connection refused) (code SDK.HttpError)")
    other = map_sdk_error(ClientException("SDK.InvalidRequest", f"bad {SECRET}"),
                          product="Rds", action="X", redact=lambda s: s.replace(SECRET, "***"))
    assert type(other) is PermanentError and SECRET not in str(other)


def test_sdk_debug_output_never_shows_a_password(capture_factory: type[Capture],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capfd: pytest.CaptureFixture[str],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    capture = capture_factory(status=500, body={"RequestId": "R", "Code": "InternalError",
                                                "Message": "boom"})
    monkeypatch.setenv("DEBUG", "sdk")  # the SDK then logs every request line
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransientError):
        cloud(capture.endpoint).create_account("rm-1", "k3s", DB_PASSWORD)
    assert capture.seen[0]["AccountPassword"] == [DB_PASSWORD]  # it was sent, once
    out, err = capfd.readouterr()
    assert DB_PASSWORD not in out + err + caplog.text


def test_debug_logs_of_the_sdk_and_its_urllib3_never_show_a_password(
        capture_factory: type[Capture], capfd: pytest.CaptureFixture[str]) -> None:
    # The settings' handlers at DEBUG, with the SDK's vendored urllib3 (CRITICAL by default)
    # turned up too: it logs every request URL, query string and all.
    from django.conf import settings  # noqa: PLC0415 - only this test reconfigures logging

    password = "Db-Pa ss+w@rd/42%x"
    capture = capture_factory()
    logging.config.dictConfig({
        **settings.LOGGING, "root": {"handlers": ["console"], "level": "DEBUG"},
        "loggers": {"aliyunsdkcore": {"level": "DEBUG"},
                    "aliyunsdkcore.vendored.requests": {"level": "DEBUG"}}})
    try:
        cloud(capture.endpoint).create_account("rm-1", "k3s", password)
    finally:
        logging.config.dictConfig({**settings.LOGGING, "loggers": {
            "aliyunsdkcore.vendored.requests": {"level": "CRITICAL"}}})
    assert capture.seen[0]["AccountPassword"] == [password]
    err = capfd.readouterr().err
    assert "connectionpool" in err and "AccountPassword" in err, err
    assert not leaks([err], [password, SECRET]), err


@pytest.mark.parametrize("code", [
    "Conflict.Lock", "IncorrectStatus.loadbalancer", "IncorrectStatus.serverGroup",
    "IncorrectStatus.listener", "ResourceInUse.ServerGroup", "IdempotenceProcessing",
    "SystemBusy",
])
def test_nlb_busy_states_are_transient(code: str) -> None:
    """What terraform-provider-alicloud retries around NLB writes (resource_alicloud_nlb_*)."""
    error = map_sdk_error(server_error(code), product="Nlb", action="AddServersToServerGroup")
    assert isinstance(error, TransientError) and error.code == code


@pytest.mark.parametrize("code", ["ResourceNotFound.loadBalancer", "ResourceNotFound.listener",
                                  "ResourceNotFound.serverGroup"])
def test_nlb_not_found_is_its_own_kind(code: str) -> None:
    error = map_sdk_error(server_error(code, status=404), product="Nlb",
                          action="GetLoadBalancerAttribute")
    assert isinstance(error, CloudNotFound)


def test_an_nlb_permission_error_names_the_nlb_ram_action() -> None:
    error = map_sdk_error(server_error("Forbidden.RAM"), product="Nlb",
                          action="CreateServerGroup")
    assert "nlb:CreateServerGroup" in error.message
    for code in ("IdempotenceSignatureMismatch", "IdempotenceProcessing"):
        seen = map_sdk_error(server_error(code), product="Nlb", action="CreateLoadBalancer")
        assert not create_refused(seen)  # the token was seen: not a refusal, keep the token
