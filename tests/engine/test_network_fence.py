"""The test process cannot reach beyond loopback and the lab, whatever a bug tries."""

from __future__ import annotations

import socket

import pytest
from aliyunsdkcore.acs_exception.exceptions import ClientException
from aliyunsdkcore.client import AcsClient
from aliyunsdkrds.request.v20140815.DescribeRegionsRequest import DescribeRegionsRequest


def test_a_real_aliyun_endpoint_is_refused_before_any_packet():
    client = AcsClient("LTAIfence", "secret", "cn-hangzhou", auto_retry=False)
    with pytest.raises(ClientException, match="test network fence"):
        client.do_action_with_exception(DescribeRegionsRequest())  # rds.aliyuncs.com


def test_public_and_private_addresses_outside_the_lab_are_refused():
    for address in ("8.8.8.8", "192.168.1.1", "10.0.0.1"):
        with socket.socket() as sock, pytest.raises(OSError, match="test network fence"):
            sock.connect((address, 443))


def test_loopback_still_works():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
