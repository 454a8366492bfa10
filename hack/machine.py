"""What hack's scripts share about this machine: running a command, installing Debian packages, the TCP
ports in use, and the error whose message is meant for the person at the terminal.

A leaf: it imports none of its siblings, so localplatform, localimage and localnode can all import it
without importing each other back. Standard library only, like them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

# Debian packages whose install starts a system daemon where an init system lets it, with the port it
# would take: the platform runs its own copies on free loopback ports, so those must not linger.
DISTRO_SERVICES = {"prometheus": 9090, "prometheus-alertmanager": 9093}


class PlatformError(Exception):
    """A failure with a message meant for the person at the terminal."""


def log(message: str) -> None:
    print(f"[platform] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, **kwargs)  # type: ignore[call-overload]


def missing_debs(packages: list[str]) -> list[str]:
    missing = []
    for package in packages:
        query = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
        )
        if "install ok installed" not in query.stdout:
            missing.append(package)
    return missing


def apt_install(packages: list[str]) -> None:
    missing = missing_debs(packages)
    if not missing:
        return
    if os.geteuid() != 0:
        raise PlatformError(
            f"missing Debian packages {' '.join(missing)}; install them (apt-get install {' '.join(missing)})"
        )
    log(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    policy = subprocess.run(["apt-cache", "policy", missing[0]], capture_output=True, text=True, check=False)
    if "Candidate: (none)" in policy.stdout or not policy.stdout.strip():
        run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env,
        stdout=subprocess.DEVNULL)
    for package in missing:
        if package in DISTRO_SERVICES:
            stop_distro_service(package, DISTRO_SERVICES[package])


def stop_distro_service(service: str, port: int) -> None:
    """Stop and disable the daemon a Debian package's postinst may have started (it would listen on
    0.0.0.0, and Alertmanager's would gossip on 0.0.0.0:9094). Containers usually have a policy-rc.d
    that forbids the start; machines with systemd or sysvinit do not."""
    if Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "disable", "--now", service], capture_output=True, check=False)
    elif Path(f"/etc/init.d/{service}").exists():
        subprocess.run(["update-rc.d", service, "disable"], capture_output=True, check=False)
        if port in listening_ports():
            subprocess.run([f"/etc/init.d/{service}", "stop"], capture_output=True, check=False)
    if port in listening_ports():
        log(f"warning: something still listens on port {port} after installing {service}; "
            f"the platform does not use it (stop it with: service {service} stop)")


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state on any address, from /proc (no ss or netstat needed)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
