"""The operator's container image, built without a Docker engine: `hack/image build|load`.

buildah (Debian's) builds the repository's Dockerfile. Its base, the public python:3.11-slim-bookworm, cannot
be pulled on these machines, so the base is made here once per machine: debootstrap of the same Debian
release (bookworm) with Debian's Python 3.11, committed as localhost/tikv-platform/python:3.11-bookworm and
passed as the Dockerfile's PYTHON_IMAGE build argument (whose default stays the public image). Differences
from the public base, on purpose and only here: Python is Debian's (3.11.2, /usr/bin) rather than a
source build (3.11.14, /usr/local/bin); pip may install outside a venv (as in the public image); and the
base trusts the certificate authorities this machine trusts, with SSL_CERT_FILE set for uv, because this
machine may reach PyPI through a TLS-inspecting proxy. The operator's dependencies come from uv.lock as in
any build.

    hack/image build [--tag TAG]   build the image (the base once per machine; buildah caches layers)
    hack/image load [--tag TAG]    import it into the running platform's node (hack/platform up --with-node)

Standard library only, like hack/localplatform.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Its siblings, also when a test loads this file by path rather than running it as hack/image.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import apt_install, run

REPO = Path(__file__).resolve().parent.parent
BASE_IMAGE = "localhost/tikv-platform/python:3.11-bookworm"
OPERATOR_IMAGE = "localhost/tikv-operator:dev"
# The pod sandbox image the node's containerd is configured with (hack/localnode.py).
PAUSE_IMAGE = "localhost/tikv-platform/pause:3.4.1"
DEBIAN_RELEASE = "bookworm"
# What the public python:*-slim image offers the Dockerfile: python3, pip, useradd (passwd is in minbase).
BASE_PACKAGES = ["python3", "python3-venv", "python3-pip", "ca-certificates"]
MACHINE_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_IMAGE = ["buildah", "debootstrap"]


def log(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def buildah(*args: str) -> str:
    return run(["buildah", *args], capture_output=True).stdout.strip()


def image_exists(name: str) -> bool:
    return subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True,
                          check=False).returncode == 0


def debian_mirror() -> str:
    """The machine's own Debian mirror, so the base comes from where its packages come from."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def commit_rootfs(rootfs: Path, name: str, config: list[str]) -> None:
    container = buildah("from", "scratch")
    try:
        mount = Path(buildah("mount", container))
        run(["cp", "-a", f"{rootfs}/.", f"{mount}/"])
        buildah("umount", container)
        buildah("config", *config, container)
        buildah("commit", "--quiet", container, name)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


def ensure_base() -> None:
    if image_exists(BASE_IMAGE):
        return
    log(f"making {BASE_IMAGE} with debootstrap {DEBIAN_RELEASE} (once per machine, ~1 min)")
    with tempfile.TemporaryDirectory(prefix="tikv-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", DEBIAN_RELEASE,
             str(rootfs), debian_mirror()], stdout=subprocess.DEVNULL)
        # The public image's Python is not Debian's and carries no PEP 668 marker: `pip install` works.
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        shutil.copyfile(MACHINE_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        for cache in ("var/lib/apt/lists", "var/cache/apt"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        commit_rootfs(rootfs, BASE_IMAGE, [
            "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--env", "LANG=C.UTF-8", "--env", f"SSL_CERT_FILE={MACHINE_CA_BUNDLE}",
            "--label", f"org.opencontainers.image.description=debootstrap {DEBIAN_RELEASE} + Debian python3, "
                       "made by tikv-operator's hack/image for local builds",
            "--cmd", "python3"])


def ensure_packages() -> None:
    # The platform's installer: apt-get as root, or a message naming the packages.
    apt_install(APT_IMAGE)


def build(tag: str) -> None:
    ensure_packages()
    ensure_base()
    log(f"building {tag} from {REPO / 'Dockerfile'} on {BASE_IMAGE}")
    # chroot isolation: RUN steps need no user or network namespace of their own, and use the machine's
    # network (PyPI) as a Docker build would.
    run(["buildah", "build", "--isolation", "chroot", "--layers", "--pull=never", "--quiet",
         "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}", "--tag", tag, str(REPO)], stdout=subprocess.DEVNULL)
    config = image_config(tag)
    log(f"built {tag} ({config['User']} user, entrypoint {config['Entrypoint']})")


def image_config(name: str) -> dict[str, object]:
    inspected = json.loads(buildah("inspect", "--type", "image", name))
    return dict(inspected["OCIv1"]["config"])


def build_pause(pause_binary: Path) -> None:
    """The pod sandbox image: one static binary, as registry.k8s.io/pause is."""
    if image_exists(PAUSE_IMAGE):
        return
    with tempfile.TemporaryDirectory(prefix="tikv-pause-") as tmp:
        rootfs = Path(tmp)
        shutil.copy2(pause_binary, rootfs / "pause")
        commit_rootfs(rootfs, PAUSE_IMAGE, ["--entrypoint", '["/pause"]', "--user", "65535:65535"])


def export(name: str, archive: Path) -> None:
    """A docker-archive, which `ctr images import` reads with the image's name."""
    archive.unlink(missing_ok=True)
    run(["buildah", "push", "--quiet", name, f"docker-archive:{archive}:{name}"], stdout=subprocess.DEVNULL)


def containerd_import(name: str, containerd_address: str) -> None:
    with tempfile.TemporaryDirectory(prefix="tikv-image-") as tmp:
        archive = Path(tmp) / "image.tar"
        export(name, archive)
        run(["ctr", "--address", containerd_address, "--namespace", "k8s.io", "images", "import", str(archive)],
            stdout=subprocess.DEVNULL)


def cmd_build(args: argparse.Namespace) -> int:
    build(args.tag)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    address = os.environ.get("CONTAINERD_ADDRESS")
    if not address:
        state = subprocess.run([str(REPO / "hack" / "platform"), "env", "--json"], capture_output=True,
                               text=True, check=False)
        address = json.loads(state.stdout).get("CONTAINERD_ADDRESS", "") if state.returncode == 0 else ""
    if not address:
        log("no node to load into: start one with `hack/platform up --with-node`")
        return 1
    if not image_exists(args.tag):
        build(args.tag)
    containerd_import(args.tag, address)
    log(f"imported {args.tag} into the node's containerd ({address})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/image", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (("build", cmd_build, "build the image with buildah"),
                             ("load", cmd_load, "import the image into the platform's node")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--tag", default=OPERATOR_IMAGE, help=f"image name (default {OPERATOR_IMAGE})")
        command.set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except subprocess.CalledProcessError as error:
        detail = (error.stderr or "").strip().splitlines()[-3:] if isinstance(error.stderr, str) else []
        log(f"error: {' '.join(map(str, error.cmd[:3]))} ... failed with exit code {error.returncode}"
            + (": " + " | ".join(detail) if detail else ""))
        return 1


if __name__ == "__main__":
    sys.exit(main())
