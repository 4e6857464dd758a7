"""Entry point of the `k3s` stand-in binary: `k3s server|agent|kubectl|--version`.

Why: the installed "binary" is a tiny script with a baked-in version that calls main(); like
the real multi-call binary it also answers as kubectl/crictl/ctr through symlinks.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import sys
import urllib.error
import urllib.request

import yaml

from sandbox.k3s import logs, secretsencrypt, snapshots
from sandbox.k3s.agent import Agent
from sandbox.k3s.bootstrap import TokenError, normalize_token
from sandbox.k3s.config import Settings, UsageError, flags_for, load
from sandbox.k3s.server import Server
from sandbox.k3s.versions import Release, release

REAL_KUBECTL_CANDIDATES = ("/usr/bin/kubectl", "/usr/local/sbin/kubectl")


def _real_kubectl() -> str:
    """The real kubectl, never our own symlink (which would exec us again)."""
    for candidate in REAL_KUBECTL_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("kubectl")
    if found and os.path.realpath(found) != os.path.realpath(sys.argv[0]):
        return found
    raise SystemExit("kubectl: the real kubectl binary was not found")


def _kubectl(args: list[str]) -> int:
    env = dict(os.environ)
    if "KUBECONFIG" not in env and os.path.exists("/etc/rancher/k3s/k3s.yaml"):
        env["KUBECONFIG"] = "/etc/rancher/k3s/k3s.yaml"
    os.execve(_real_kubectl(), ["kubectl", *args], env)  # noqa: S606 - exec, like k3s kubectl
    return 127


def _print_version(rel: Release) -> int:
    print(f"k3s version {rel.version} ({rel.git_commit})")
    print("go version go1.23.6")
    return 0


def main(version: str, argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    rel = release(version)
    invoked_as = os.path.basename(argv[0])
    if invoked_as == "kubectl":
        return _kubectl(argv[1:])
    if invoked_as in ("crictl", "ctr"):
        print(f"{invoked_as}: containers are not part of the K3s stand-in", file=sys.stderr)
        return 1
    args = argv[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print("NAME:\n   k3s - Kubernetes, but small and simple\n\nUSAGE:\n"
              "   k3s [global options] command [command options] [arguments...]\n\n"
              "COMMANDS:\n   server   Run management server\n   agent    Run node agent\n"
              "   kubectl  Run kubectl\n"
              "   secrets-encrypt  Control secrets encryption and keys rotation\n"
              "   etcd-snapshot    Manage etcd snapshots\n")
        return 0
    if args[0] in ("--version", "-v", "version"):
        return _print_version(rel)
    return _run_command(args[0], args[1:], rel)


def _secrets_encrypt(args: list[str]) -> int:
    """`k3s secrets-encrypt status`: ask the local supervisor, print K3s's text.

    Flags as K3s's: --data-dir (-d), --token (-t, else <data-dir>/server/token), --server
    (-s, default https://127.0.0.1:6443). Only `status` is part of the stand-in.
    """
    if not args or args[0] != "status":
        print(f"No help topic for '{args[0] if args else ''}'", file=sys.stderr)
        return 3
    options = {"data-dir": "/var/lib/rancher/k3s", "token": "",
               "server": "https://127.0.0.1:6443"}
    aliases = {"d": "data-dir", "t": "token", "s": "server"}
    rest = args[1:]
    while rest:
        name, _, value = rest.pop(0).lstrip("-").partition("=")
        name = aliases.get(name, name)
        if name not in options:
            print(f"Incorrect Usage: flag provided but not defined: -{name}", file=sys.stderr)
            return 1
        options[name] = value or (rest.pop(0) if rest else "")
    server_dir = os.path.join(options["data-dir"], "server")
    token = options["token"]
    try:
        if not token:
            with open(os.path.join(server_dir, "token"), encoding="utf-8") as handle:
                token = handle.read().strip()
        context = ssl.create_default_context(
            cafile=os.path.join(server_dir, "tls", "server-ca.crt"))
        url = options["server"].rstrip("/") + "/v1-k3s/encrypt/status"
        if not url.startswith("https://"):
            raise ValueError(f"the server URL must be https://, not {options['server']!r}")
        request = urllib.request.Request(url)  # noqa: S310 - https only, checked above
        credentials = base64.b64encode(f"server:{normalize_token(token)}".encode()).decode()
        request.add_header("Authorization", f"Basic {credentials}")
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:  # noqa: S310
            status = json.loads(answer.read())
    except (OSError, ValueError, TokenError) as exc:
        logs.fatal(f"Error: {getattr(exc, 'reason', None) or exc}")
        return 1
    print(secretsencrypt.render_status(status), end="")
    return 0


def _split_positionals(args: list[str]) -> tuple[list[str], list[str]]:
    """urfave/cli: flags (with their values) and positional arguments, in any order."""
    table = flags_for("etcd-snapshot")
    flags, positionals = [], []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        flags.append(arg)
        spec = table.get(arg.lstrip("-").partition("=")[0])
        if spec is not None and spec.kind != "bool" and "=" not in arg and rest:
            flags.append(rest.pop(0))
    return flags, positionals


def _snapshot_request(args: list[str]) -> tuple[dict, list[str], Settings]:
    """The /db/snapshot request of a command line; UsageError for a bad one."""
    commands = {"save": "save", "ls": "list", "list": "list", "delete": "delete",
                "rm": "delete", "prune": "prune"}
    operation = "save"
    if args and not args[0].startswith("-"):
        if args[0] not in commands:
            raise UsageError(f"No help topic for '{args[0]}'")
        operation = commands[args[0]]
        args = args[1:]
    flags, names = _split_positionals(args)
    settings = load("etcd-snapshot", flags)
    if operation == "save" and names:
        raise UsageError("this command does not take any arguments")
    if operation == "delete" and not names:
        raise UsageError("no snapshots given for removal")
    output = settings.text("output").lower()
    if output and output not in ("json", "yaml", "table"):
        raise UsageError(f"invalid output format: {output}")
    request: dict = {"operation": operation}
    if operation in ("save", "prune"):
        request["name"] = [settings.text("etcd-snapshot-name") or "on-demand"]
    elif operation == "delete":
        request["name"] = names
    if settings.text("etcd-snapshot-retention") and operation != "save":
        request["retention"] = int(settings.text("etcd-snapshot-retention"))
    # SnapshotRequest.Dir / Compress (pkg/etcd/snapshot_handler.go), sent when given.
    if settings.text("etcd-snapshot-dir"):
        request["dir"] = settings.text("etcd-snapshot-dir")
    if operation == "save" and settings.bool("etcd-snapshot-compress"):
        request["compress"] = True
    return request, names, settings


def _post_snapshot(request: dict, settings: Settings) -> dict:
    """POST the request to the server (basic auth server:<token>, the cluster CA)."""
    server_dir = os.path.join(settings.text("data-dir"), "server")
    token = settings.text("token")
    if not token:
        with open(os.path.join(server_dir, "token"), encoding="utf-8") as handle:
            token = handle.read().strip()
    context = ssl.create_default_context(cafile=os.path.join(server_dir, "tls", "server-ca.crt"))
    context.check_hostname = False
    url = settings.text("server").rstrip("/") + "/db/snapshot"
    if not url.startswith("https://"):
        raise ValueError(f"the server URL must be https://, not {settings.text('server')!r}")
    post = urllib.request.Request(  # noqa: S310 - https only, checked above
        url, data=json.dumps(request).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    credentials = base64.b64encode(f"server:{normalize_token(token)}".encode()).decode()
    post.add_header("Authorization", f"Basic {credentials}")
    try:
        with urllib.request.urlopen(post, context=context, timeout=120) as answer:  # noqa: S310
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as exc:
        raise ValueError(f"see server log for details: {url}: {exc.code} {exc.reason}") from None


def _etcd_snapshot(args: list[str]) -> int:
    """`k3s etcd-snapshot [save]|ls|list|delete|rm|prune`: ask the local server's /db/snapshot
    and print what K3s's CLI prints (k3s-io/k3s pkg/cli/etcdsnapshot/etcd_snapshot.go)."""
    logs.use_stderr()
    try:
        request, names, settings = _snapshot_request(args)
    except UsageError as exc:
        logs.fatal(f"Error: {exc}")
        return 1
    try:
        result = _post_snapshot(request, settings)
    except (OSError, ValueError, TokenError) as exc:
        logs.fatal(f"Error: {getattr(exc, 'reason', None) or exc}")
        return 1
    output = settings.text("output").lower()
    if request["operation"] == "list":
        if output == "json":
            print(json.dumps(result, indent=4))
        elif output == "yaml":
            print(yaml.safe_dump(result, sort_keys=False), end="")
        else:
            print(snapshots.table(result), end="")
        return 0
    for name in result.get("created", []):
        logs.info(f"Snapshot {name} saved.")
    for name in result.get("deleted", []):
        logs.info(f"Snapshot {name} deleted.")
    for name in names if request["operation"] == "delete" else []:
        if name not in result.get("deleted", []):
            logs.warn(f"Snapshot {name} not found.")
    return 0


TOOLS = {"kubectl": _kubectl, "secrets-encrypt": _secrets_encrypt,
         "etcd-snapshot": _etcd_snapshot}


def _run_command(command: str, rest: list[str], rel: Release) -> int:
    if command in TOOLS:
        return TOOLS[command](rest)
    if command not in ("server", "agent"):
        print(f"No help topic for '{command}'", file=sys.stderr)
        return 3
    try:
        settings = load(command, rest)
    except UsageError as exc:
        print(f"Incorrect Usage: {exc}", file=sys.stderr)
        logs.fatal(f"Error: {exc}")
        return 1
    try:
        if command == "server":
            return Server(settings, rel).run()

        return Agent(settings, rel).run()
    except logs.Fatal as exc:
        logs.fatal(str(exc))
        return 1
