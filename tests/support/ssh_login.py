"""Real SSH logins into lab hosts, for tests that check what a host does (imported by tests)."""

from __future__ import annotations

import paramiko

from sandbox.lab.state import Host


def ssh(host: Host, user: str = "root", password: str | None = None) -> paramiko.SSHClient:
    """A real SSH login: by key unless a password is given."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - fresh lab keys
    client.connect(
        host.ip, port=host.ssh_port, username=user, password=password,
        key_filename=None if password else host.private_key_path,
        look_for_keys=False, allow_agent=False, timeout=10,
    )
    return client


def ssh_run(client: paramiko.SSHClient, command: str, stdin: str | None = None
            ) -> tuple[int, str, str]:
    channel_in, channel_out, channel_err = client.exec_command(command, timeout=30)
    if stdin is not None:
        channel_in.write(stdin)
        channel_in.channel.shutdown_write()
    out, err = channel_out.read().decode(), channel_err.read().decode()
    return channel_out.channel.recv_exit_status(), out, err
