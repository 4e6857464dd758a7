"""Host-side stand-ins for systemctl and journalctl, run inside lab hosts.

Why: lab hosts have no systemd (PID 1 is the lab's init), yet the K3s install script and the
panel drive K3s through `systemctl` and read its logs with `journalctl`. These tools honour
real unit files under /etc/systemd/system and keep state under the host's private /run, so
they need only the standard library and run with the system python.
"""
