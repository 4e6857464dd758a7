"""Lab hosts behave like separate machines a person can SSH into."""

from __future__ import annotations

import os
import socket
import threading

import paramiko
import pytest

from sandbox.lab.lab import Lab
from sandbox.netns import listen_tcp
from tests.support.ssh_login import ssh, ssh_run

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_root_and_sudo_users_log_in_by_key_and_by_password(lab: Lab) -> None:
    for host in lab.hosts:
        logins = [
            ("root", None), ("root", host.root_password),
            (host.user, None), (host.user, host.user_password),
            (host.sudo_password_user, None),
            (host.sudo_password_user, host.sudo_password_user_password),
        ]
        for user, password in logins:
            with ssh(host, user, password) as client:
                code, out, _ = ssh_run(client, "id -un; hostname")
                assert code == 0
                assert out.split() == [user, host.hostname]


def test_wrong_password_is_refused(lab: Lab) -> None:
    host = lab.hosts[0]
    with pytest.raises(paramiko.AuthenticationException):
        ssh(host, "root", host.root_password + "x")
    with pytest.raises(paramiko.AuthenticationException):
        ssh(host, host.user, lab.hosts[1].user_password)  # another host's password


def test_sudo_without_password_for_user_and_with_password_for_the_other(lab: Lab) -> None:
    host = lab.hosts[1]
    with ssh(host, host.user) as client:
        assert ssh_run(client, "sudo -n id -u")[:2] == (0, "0\n")
    with ssh(host, host.sudo_password_user) as client:
        code, _, err = ssh_run(client, "sudo -n id -u")
        assert code != 0 and "password is required" in err
        code, out, _ = ssh_run(client, "sudo -S -p '' id -u",
                               stdin=host.sudo_password_user_password + "\n")
        assert (code, out) == (0, "0\n")


def test_hostnames_ips_and_host_keys_differ(lab: Lab) -> None:
    assert len({h.hostname for h in lab.hosts}) == 3
    assert len({h.ip for h in lab.hosts}) == 3
    fingerprints = set()
    for host in lab.hosts:
        with ssh(host) as client:
            fingerprints.add(client.get_transport().get_remote_server_key().get_base64())
            code, out, _ = ssh_run(client, "hostname; ip -4 -o addr show dev eth0")
            assert code == 0
            assert out.splitlines()[0] == host.hostname
            assert f"{host.ip}/24" in out
    assert len(fingerprints) == 3


def test_private_paths_are_private_per_host(lab: Lab) -> None:
    first, *others = lab.hosts
    with ssh(first) as client:
        code, _, err = ssh_run(client, "mkdir -p /etc/rancher/k3s && echo one > "
                               "/etc/rancher/k3s/marker && echo bin > /usr/local/bin/marker")
        assert code == 0, err
    for host in others:
        assert lab.run(host, "test -e /etc/rancher/k3s/marker").returncode == 1
        assert lab.run(host, "test -e /usr/local/bin/marker").returncode == 1
    assert lab.run(first, "cat /etc/rancher/k3s/marker").stdout == "one\n"

    assert not os.path.exists("/etc/rancher/k3s/marker")
    assert not os.path.exists("/usr/local/bin/marker")


def test_ps_on_a_host_sees_only_that_hosts_processes(lab: Lab) -> None:
    first, second, _ = lab.hosts
    with ssh(first) as client:
        assert ssh_run(client, "setsid sleep 4242 >/dev/null 2>&1 < /dev/null &")[0] == 0
    assert "sleep 4242" in lab.run(first, "ps -eo args").stdout
    listing = lab.run(second, "ps -eo pid,args").stdout
    assert "sleep 4242" not in listing
    assert listing.splitlines()[1].split()[0] == "1"  # its own PID namespace
    assert lab.run(second, "pkill -f '[s]leep 4242'").returncode == 1  # nothing to kill there
    assert lab.run(first, "pkill -f '[s]leep 4242'").returncode == 0


def test_hosts_reach_each_other_the_gateway_and_the_cloud_namespace(lab: Lab) -> None:
    listeners = [listen_tcp(host.ip, 7000, host.netns) for host in lab.hosts]
    cloud = listen_tcp(lab.cloud_ip, 7001, lab.cloud_netns)
    gateway = listen_tcp(lab.gateway_ip, 0)
    gateway_port = gateway.getsockname()[1]

    def accept_forever(sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.sendall(b"hello\n")
            conn.close()

    for sock in [*listeners, cloud, gateway]:
        threading.Thread(target=accept_forever, args=(sock,), daemon=True).start()
    try:
        targets = [(h.ip, 7000) for h in lab.hosts] + [(lab.cloud_ip, 7001),
                                                       (lab.gateway_ip, gateway_port)]
        for host in lab.hosts:
            for address, port in targets:
                result = lab.run(host, f"curl -s -m 3 telnet://{address}:{port} </dev/null")
                assert result.stdout == "hello\n", (host.hostname, address, result.stderr)
    finally:
        for sock in [*listeners, cloud, gateway]:
            sock.close()


def test_nothing_outside_the_lab_is_routable(lab: Lab) -> None:
    host = lab.hosts[0]
    routes = lab.run(host, "ip -4 route show table all type unicast").stdout
    assert "default" not in routes
    # TEST-NET-2: without a route the kernel refuses locally; no packet leaves the host.
    result = lab.run(host, "curl -sS -m 2 http://198.51.100.7/")
    assert result.returncode != 0 and "Network is unreachable" in result.stderr + \
        lab.run(host, "ip route get 198.51.100.7").stderr


def test_preflight_tools_are_present(lab: Lab) -> None:
    result = lab.run(lab.hosts[0], "set -e; . /etc/os-release; echo $ID; uname -m; "
                     "free -m >/dev/null; df -P / >/dev/null; ss -ltn | grep -q ':22 '; "
                     "command -v curl; test -d /run/systemd/system; command -v systemctl")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "debian"
