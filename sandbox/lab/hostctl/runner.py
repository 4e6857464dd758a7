"""The supervisor of one running unit: what systemd's PID 1 does for a service.

Started detached by `systemctl start` (own session, re-parented to the host's init), so the
service outlives the SSH session that started it. It runs ExecStart with the unit's
environment, sends its output to the journal, waits for READY=1 on NOTIFY_SOCKET for
Type=notify, restarts per Restart=/RestartSec= with systemd's start rate limit, and on stop
kills per KillMode= (control-group: every process carrying the unit's INVOCATION_ID).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from sandbox.lab.hostctl import journal, unitfile, unitstate
from sandbox.lab.hostctl.paths import DEFAULT_PATH, RUNNER_COMM, unit_runtime_dir

CLEAN_SIGNALS = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE}
EXIT_NAMES = {0: "SUCCESS", 1: "FAILURE", 2: "INVALIDARGUMENT", 3: "NOTIMPLEMENTED",
              4: "NOPERMISSION", 5: "NOTINSTALLED", 6: "NOTCONFIGURED", 7: "NOTRUNNING",
              200: "CHDIR", 203: "EXEC", 217: "USER"}
EXEC_FAILED = 203


def describe_exit(returncode: int) -> tuple[str, str, int]:
    """Popen return code -> (code, 'status=N/NAME' text, status number) as systemd prints it."""
    if returncode < 0:
        signum = -returncode
        name = signal.Signals(signum).name[3:]
        return "killed", f"{signum}/{name}", signum
    return "exited", f"{returncode}/{EXIT_NAMES.get(returncode, str(returncode))}", returncode


def should_restart(policy: str, code: str, status: int, timed_out: bool) -> bool:
    clean_exit = code == "exited" and status == 0
    clean_signal = code == "killed" and status in CLEAN_SIGNALS
    unclean_signal = code == "killed" and not clean_signal
    return {
        "always": True,
        "on-success": clean_exit or clean_signal,
        "on-failure": not (clean_exit or clean_signal) or timed_out,
        "on-abnormal": unclean_signal or timed_out,
        "on-abort": unclean_signal,
    }.get(policy, False)


def unit_processes(invocation_id: str, main_pid: int) -> list[int]:
    """The unit's 'control group': every process that inherited its INVOCATION_ID."""
    marker = f"INVOCATION_ID={invocation_id}".encode()
    found = {main_pid} if unitstate.process_alive(main_pid) else set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0") and \
                    unitstate.process_alive(int(entry)):
                found.add(int(entry))
    return sorted(found)


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


class Supervisor:
    def __init__(self, unit_name: str) -> None:
        self.name = unit_name
        self.journal = journal.Writer(unit_name)
        self.stop_requested = threading.Event()
        self.start_now = threading.Event()
        self.ready = threading.Event()
        previous = unitstate.read(unit_name)
        self.state: dict[str, Any] = {
            **unitstate.INACTIVE, "runner_pid": os.getpid(),
            "n_restarts": previous["n_restarts"], "outcomes": {},
        }

    # -- state ---------------------------------------------------------------------------
    def publish(self, **changes: Any) -> None:
        if "active_state" in changes and changes["active_state"] != self.state["active_state"]:
            changes.setdefault("since", time.time())
        self.state.update(changes)
        unitstate.write(self.name, self.state)

    def settle(self, outcome: str) -> None:
        """Tell a waiting `systemctl start` how this start attempt ended."""
        outcomes = dict(self.state["outcomes"])
        outcomes[str(self.state["cycle"])] = outcome
        self.publish(outcomes=dict(list(outcomes.items())[-5:]))

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        starts: deque[float] = deque()
        while True:
            unit = unitstate.loaded(self.name)
            if unit is None:
                self.journal.systemd(f"{self.name}: Unit not found.")
                self.publish(active_state="failed", sub_state="failed", result="resources")
                self.settle("failed")
                return 1
            interval = unitfile.parse_seconds(unit.get("Unit", "StartLimitIntervalSec", "10s"), 10)
            burst = int(unit.get("Unit", "StartLimitBurst", "5"))
            now = time.monotonic()
            starts.append(now)
            while interval and starts and now - starts[0] > interval:
                starts.popleft()
            self.publish(cycle=self.state["cycle"] + 1)
            if interval and len(starts) > burst:
                self.journal.systemd(f"{self.name}: Start request repeated too quickly.")
                self.journal.systemd(f"{self.name}: Failed with result 'start-limit-hit'.")
                self.journal.systemd(f"Failed to start {unit.description}.")
                self.publish(active_state="failed", sub_state="failed", result="start-limit-hit")
                self.settle("failed")
                return 1
            code, status, timed_out = self.run_once(unit)
            if self.stop_requested.is_set():
                self.journal.systemd(f"Stopped {unit.description}.")
                self.publish(active_state="inactive", sub_state="dead", main_pid=0)
                return 0
            policy = unit.get("Service", "Restart", "no")
            if unit.type == "oneshot" or not should_restart(policy, code, status, timed_out):
                return self.finish(unit, code, status, timed_out)
            if code != "exited" or status != 0 or timed_out:
                result = "timeout" if timed_out else (
                    "exit-code" if code == "exited" else "signal")
                self.journal.systemd(f"{self.name}: Failed with result '{result}'.")
                self.publish(result=result)
            if not self.wait_before_restart(unit):
                self.journal.systemd(f"Stopped {unit.description}.")
                self.publish(active_state="inactive", sub_state="dead", main_pid=0)
                return 0

    def finish(self, unit: unitfile.Unit, code: str, status: int, timed_out: bool) -> int:
        failed = timed_out or (not (code == "exited" and status == 0) and not (
            code == "killed" and status in CLEAN_SIGNALS and unit.type != "oneshot"))
        if failed:
            result = "timeout" if timed_out else ("exit-code" if code == "exited" else "signal")
            self.journal.systemd(f"{self.name}: Failed with result '{result}'.")
            if unit.type == "oneshot":
                self.journal.systemd(f"Failed to start {unit.description}.")
            self.publish(active_state="failed", sub_state="failed", result=result, main_pid=0)
            return 1
        self.journal.systemd(f"{self.name}: Deactivated successfully.")
        if unit.type == "oneshot":
            self.journal.systemd(f"Finished {unit.description}.")
            if unit.get("Service", "RemainAfterExit", "no") in ("yes", "true", "1", "on"):
                self.publish(active_state="active", sub_state="exited", main_pid=0)
                self.wait_for_stop_forever(unit)
                return 0
        self.publish(active_state="inactive", sub_state="dead", result="success", main_pid=0)
        return 0

    def wait_for_stop_forever(self, unit: unitfile.Unit) -> None:
        self.stop_requested.wait()
        self.journal.systemd(f"Stopped {unit.description}.")
        self.publish(active_state="inactive", sub_state="dead")

    def wait_before_restart(self, unit: unitfile.Unit) -> bool:
        delay = unitfile.parse_seconds(unit.get("Service", "RestartSec", "100ms"), 0.1) or 0
        self.publish(active_state="activating", sub_state="auto-restart",
                     n_restarts=self.state["n_restarts"] + 1)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self.start_now.is_set():
            if self.stop_requested.wait(0.05):
                return False
        self.start_now.clear()
        self.journal.systemd(f"{self.name}: Scheduled restart job, restart counter is at "
                             f"{self.state['n_restarts']}.")
        return True

    # -- one run of ExecStart ---------------------------------------------------------------
    def environment(self, unit: unitfile.Unit, invocation_id: str) -> dict[str, str]:
        env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", **unitfile.default_environment(),
               "INVOCATION_ID": invocation_id}
        user = unit.get("Service", "User")
        if user:
            entry = pwd.getpwnam(user)
            env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user, SHELL=entry.pw_shell)
        env.update(unitfile.environment(unit))
        if unit.type == "notify":
            env["NOTIFY_SOCKET"] = str(unit_runtime_dir(self.name) / "notify")
        return env

    def run_once(self, unit: unitfile.Unit) -> tuple[str, int, bool]:
        """Run the service until it exits or is stopped: (code, status, timed_out)."""
        invocation_id = uuid.uuid4().hex
        self.ready.clear()
        self.publish(active_state="activating", sub_state="start", invocation_id=invocation_id,
                     main_pid=0, result="success")
        self.journal.systemd(f"Starting {unit.description}...")
        try:
            env = self.environment(unit, invocation_id)
        except (unitfile.UnitError, KeyError) as error:
            self.journal.systemd(f"{self.name}: {error}")
            self.journal.systemd(f"{self.name}: Failed to run 'start' task: No such file or "
                                 "directory")
            self.settle("failed")
            return "exited", EXEC_FAILED, False
        commands = unit.values("Service", "ExecStart")
        last: tuple[str, int, bool] = ("exited", 0, False)
        for index, line in enumerate(commands):
            flags, argv = unitfile.split_command(line)
            argv = unitfile.expand_variables(argv, env)
            final = index == len(commands) - 1
            ignore_failure = "-" in flags
            last = self.run_process(unit, argv, env, final, ignore_failure)
            ignore_failure = ignore_failure and last[0] == "exited"
            if self.stop_requested.is_set() or (last[1] != 0 and not ignore_failure):
                break
            if ignore_failure:
                last = ("exited", 0, False)
        return last

    def run_process(
        self, unit: unitfile.Unit, argv: list[str], env: dict[str, str], final: bool,
        ignore_failure: bool,
    ) -> tuple[str, int, bool]:
        notify = self.open_notify_socket() if unit.type == "notify" else None
        try:
            process = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True,
                cwd=unit.get("Service", "WorkingDirectory", "/").lstrip("-") or "/",
                user=unit.get("Service", "User") or None,
            )
        except OSError as error:
            self.journal.systemd(f"{self.name}: Failed to execute {argv[0] if argv else '?'}: "
                                 f"{error.strerror}")
            self.journal.systemd(f"{self.name}: Main process exited, code=exited, "
                                 f"status={EXEC_FAILED}/EXEC")
            # Type=simple reports success as soon as it forked, so the failure shows later.
            self.settle("started" if unit.type == "simple" else "failed")
            if notify:
                notify.close()
            return "exited", EXEC_FAILED, False
        ident = os.path.basename(argv[0])
        threading.Thread(target=self.copy_output, args=(process, ident), daemon=True).start()
        self.publish(main_pid=process.pid)
        if unit.type in ("simple", "exec"):
            self.publish(active_state="active", sub_state="running")
            self.journal.systemd(f"Started {unit.description}.")
            self.settle("started")
        timed_out = self.wait_for_exit(unit, process, notify)
        if self.stop_requested.is_set() and process.poll() is None:
            self.stop(unit, process)
        process.wait()
        if notify:
            notify.close()
        code, text, status = describe_exit(process.returncode)
        if not self.stop_requested.is_set() or code != "killed":
            self.journal.systemd(f"{self.name}: Main process exited, code={code}, status={text}")
        self.publish(exec_main_code=code, exec_main_status=status)
        if self.state["active_state"] == "activating" and self.state["sub_state"] == "start":
            succeeded = unit.type == "oneshot" and code == "exited" and (
                status == 0 or ignore_failure)
            if not succeeded:
                self.settle("failed")
            elif final:
                self.settle("started")
        return code, status, timed_out

    def wait_for_exit(
        self, unit: unitfile.Unit, process: subprocess.Popen[bytes], notify: socket.socket | None
    ) -> bool:
        """Until the process exits or a stop is requested; True if READY=1 never came in time."""
        timeout = unitfile.parse_seconds(unit.get("Service", "TimeoutStartSec", "90s"), 90)
        started = time.monotonic()
        while process.poll() is None and not self.stop_requested.is_set():
            if notify is None or self.state["active_state"] != "activating":
                self.stop_requested.wait(0.1)
                continue
            self.read_notifications(notify, process.pid)
            if self.ready.is_set():
                self.publish(active_state="active", sub_state="running")
                self.journal.systemd(f"Started {unit.description}.")
                self.settle("started")
            elif timeout is not None and time.monotonic() - started > timeout:
                self.journal.systemd(f"{self.name}: start operation timed out. Terminating.")
                self.kill(unit, process, reason="timeout")
                return True
        return False

    def copy_output(self, process: subprocess.Popen[bytes], ident: str) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            self.journal.write(ident, process.pid, raw.decode(errors="replace").rstrip("\n"))

    def open_notify_socket(self) -> socket.socket:
        path = unit_runtime_dir(self.name) / "notify"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        os.chmod(path, 0o777)  # noqa: S103 - services may run as any User=
        sock.settimeout(0.1)
        return sock

    def read_notifications(self, sock: socket.socket, main_pid: int) -> None:
        try:
            data = sock.recv(4096).decode(errors="replace")
        except TimeoutError:
            return
        for line in data.splitlines():
            key, _, value = line.partition("=")
            if key == "READY" and value == "1":
                self.ready.set()
            elif key == "STATUS":
                self.publish(status_text=value)
            elif key == "MAINPID" and value.isdigit():
                self.publish(main_pid=int(value))

    # -- stopping ---------------------------------------------------------------------------
    def stop(self, unit: unitfile.Unit, process: subprocess.Popen[bytes]) -> None:
        self.publish(active_state="deactivating", sub_state="stop-sigterm")
        self.journal.systemd(f"Stopping {unit.description}...")
        self.kill(unit, process, reason="stop")

    def kill(self, unit: unitfile.Unit, process: subprocess.Popen[bytes], reason: str) -> None:
        mode = unit.get("Service", "KillMode", "control-group")
        invocation = self.state["invocation_id"]
        timeout = unitfile.parse_seconds(unit.get("Service", "TimeoutStopSec", "90s"), 90)
        if mode == "none":
            targets: list[int] = []
        elif mode in ("process", "mixed"):
            targets = [process.pid]
        else:
            targets = unit_processes(invocation, process.pid)
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(unitstate.process_alive(pid) for pid in targets):
            if deadline is not None and time.monotonic() > deadline:
                self.journal.systemd(f"{self.name}: State 'stop-sigterm' timed out. Killing.")
                break
            time.sleep(0.05)
        leftovers = [process.pid] if process.poll() is None else []
        if mode in ("control-group", "mixed"):
            leftovers = unit_processes(invocation, process.pid)
        for pid in leftovers:
            self.journal.systemd(f"{self.name}: Killing process {pid} ({process_name(pid)}) "
                                 "with signal SIGKILL.")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if mode in ("process", "none"):
            for pid in unit_processes(invocation, 0):
                self.journal.systemd(f"{self.name}: Unit process {pid} ({process_name(pid)}) "
                                     "remains running after unit stopped.")
        if reason == "stop":
            self.journal.systemd(f"{self.name}: Deactivated successfully.")


def set_process_name(name: str) -> None:
    """So `ps`/`pkill k3s` see 'lab-systemd', not the unit's name."""
    libc = ctypes.CDLL(None)
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


def main(argv: list[str]) -> int:
    del argv
    unit_name = os.environ["LAB_UNIT"]
    set_process_name(RUNNER_COMM)
    supervisor = Supervisor(unit_name)
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop_requested.set())
    signal.signal(signal.SIGUSR1, lambda *_: supervisor.start_now.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return supervisor.run()
