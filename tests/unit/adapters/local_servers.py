"""Real HTTP(S) servers on 127.0.0.1 for the probe clients to talk to, and a throwaway PKI made with openssl."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

HOST = "127.0.0.1"


@asynccontextmanager
async def serving(app: web.Application, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port for the duration of the block; yields the base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if tls else 'http'}://{HOST}:{port}"
    finally:
        await runner.cleanup()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Pki:
    directory: Path

    def read(self, name: str) -> bytes:
        return (self.directory / name).read_bytes()

    def server_context(self) -> ssl.SSLContext:
        """A PD-like server that demands a client certificate signed by the CA."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.directory / "ca.crt"))
        context.load_cert_chain(self.directory / "server.crt", self.directory / "server.key")
        context.verify_mode = ssl.CERT_REQUIRED
        return context


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def _signed(directory: Path, name: str, subject: str, ca: str, extensions: str) -> None:
    _openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj", subject,
             "-out", f"{name}.csr")
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")


def make_pki(directory: Path) -> Pki:
    """ca (trusted by both sides), server (127.0.0.1), client; plus other-ca and an encrypted client key."""
    for ca in ("ca", "other-ca"):
        _openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                 "-subj", f"/CN={ca}", "-days", "2", "-out", f"{ca}.crt")
    _signed(directory, "server", "/CN=pd", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _signed(directory, "client", "/CN=tikv-operator", "ca", "extendedKeyUsage=clientAuth\n")
    _openssl(directory, "pkey", "-in", "client.key", "-aes256", "-passout", "pass:hunter2",
             "-out", "client-encrypted.key")
    return Pki(directory)
