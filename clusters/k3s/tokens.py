"""K3s join tokens: the short and the secure form, the server and the agent token.

Why: a joining node given the short form (`<password>`) trusts whatever CA the address it
dials presents, so a man in the middle between it and an Internet load balancer sees the
password. The secure form `K10<sha256 of the cluster CA cert, hex>::<username>:<password>`
makes it download /cacerts, hash it and refuse a mismatch before it sends anything
(k3s pkg/clientaccess/token.go). And the server token is full admin: agents get their own
token (`agent-token:` on every server, user `node`), which only lets a node join.

Facts (docs.k3s.io/cli/token, k3s pkg/clientaccess and pkg/daemons/control/deps):
- the CA hash exists only after the first server generated the CA, so that server starts with
  the short form; K3s then writes the secure forms to /var/lib/rancher/k3s/server/token
  (`K10<hash>::server:<password>`) and .../agent-token (`K10<hash>::node:<agent password>`,
  a link to `token` when no agent token is set);
- an agent authenticates as `node` whatever user its token names, so without an agent token
  the `node` password is the server token's password;
- the agent token must be set on all servers (each server writes the `node` password it was
  given into the shared bootstrap data).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field

from clusters.core.errors import PermanentError

PREFIX = "K10"
SERVER_USER = "server"
AGENT_USER = "node"
SERVER_TOKEN_PATH = "/var/lib/rancher/k3s/server/token"  # noqa: S105 - a path
AGENT_TOKEN_PATH = "/var/lib/rancher/k3s/server/agent-token"  # noqa: S105 - a path
_CA_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class JoinToken:
    """One parsed token; `ca_hash` and `username` are empty for the short form."""

    password: str = field(repr=False)
    ca_hash: str = ""
    username: str = ""

    @property
    def secure(self) -> bool:
        return bool(self.ca_hash)


def parse_token(text: str) -> JoinToken:
    """Read a token as K3s does (parseToken): a bare password, or K10<hash>::<user>:<pass>."""
    text = text.strip()
    if not text:
        raise PermanentError("A K3s token must not be empty.")
    if not text.startswith(PREFIX):
        return JoinToken(password=text)
    ca_hash, sep, credentials = text[len(PREFIX):].partition("::")
    if not sep:
        return JoinToken(password=text)  # K3s too reads "K10…" without "::" as a password
    if ca_hash and not _CA_HASH.fullmatch(ca_hash):
        raise PermanentError("The K3s token's CA hash is not 64 hex digits.")
    username, colon, password = credentials.partition(":")
    if not colon or not password:
        raise PermanentError("The K3s token is not in the form K10<CA-HASH>::<USER>:<PASSWORD>.")
    return JoinToken(password=password, ca_hash=ca_hash, username=username)


def password_of(text: str) -> str:
    """The password part of either form (what K3s keys its bootstrap data and logins on)."""
    return parse_token(text).password


def secure_token(ca_hash: str, username: str, password: str) -> str:
    """`K10<ca_hash>::<username>:<password>`, the form that pins the cluster CA."""
    if not _CA_HASH.fullmatch(ca_hash):
        raise PermanentError(f"{ca_hash!r} is not a cluster CA hash (64 hex digits).")
    return f"{PREFIX}{ca_hash}::{username}:{password_of(password)}"


def same_password(text: str, password: str) -> bool:
    """Whether a token (either form) carries this password; compared in constant time."""
    if not text or not password:
        return False
    try:
        mine = password_of(text)
    except PermanentError:
        return False
    return hmac.compare_digest(mine.encode(), password_of(password).encode())


def verified_ca_hash(server_file: str, agent_file: str, *, server_password: str,
                     agent_password: str = "") -> str:
    """The cluster CA hash from a server's token and agent-token files, once both are proven
    to be this cluster's (right users and passwords, one hash)."""
    server, agent = parse_token(server_file), parse_token(agent_file)
    if not server.secure or server.username != SERVER_USER:
        raise PermanentError(f"{SERVER_TOKEN_PATH} does not hold a secure server token.")
    if not same_password(server_file, server_password):
        raise PermanentError(f"{SERVER_TOKEN_PATH} holds another cluster's token than this "
                             "cluster's; the host runs a K3s the panel did not set up.")
    if agent.ca_hash != server.ca_hash:
        raise PermanentError(f"{AGENT_TOKEN_PATH} and {SERVER_TOKEN_PATH} name different CAs.")
    expected = agent_password or server_password
    if not same_password(agent_file, expected):
        raise PermanentError(f"{AGENT_TOKEN_PATH} does not hold this cluster's agent token: "
                             "a server runs without the agent-token every server must have.")
    return server.ca_hash
