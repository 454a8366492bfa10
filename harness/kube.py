"""kubectl and helm, run as subprocesses exactly as a person would type them."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class CommandFailed(AssertionError):
    """A kubectl/helm command exited non-zero where the test expected success."""


@dataclass(frozen=True)
class Cli:
    """One command-line tool bound to the platform's environment (and, for kubectl, a namespace)."""

    program: str
    env: Mapping[str, str]
    namespace: str | None = None
    timeout: float = 60

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.program, *args]
        if self.namespace is not None and not _names_namespace(args):
            argv += ["--namespace", self.namespace]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, env=dict(self.env),
            timeout=timeout or self.timeout, check=False,
        )
        if check and result.returncode != 0:
            raise CommandFailed(
                f"`{' '.join(argv)}` exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, manifest: str | dict[str, Any] | list[dict[str, Any]], check: bool = True,
              ) -> subprocess.CompletedProcess[str]:
        return self("apply", "-f", "-", input=to_yaml(manifest), check=check)

    def in_namespace(self, namespace: str | None) -> Cli:
        return Cli(self.program, self.env, namespace, self.timeout)


def _names_namespace(args: tuple[str, ...]) -> bool:
    return any(a in ("-n", "--namespace", "-A", "--all-namespaces") or a.startswith("--namespace=") for a in args)


def to_yaml(manifest: str | dict[str, Any] | list[dict[str, Any]]) -> str:
    if isinstance(manifest, str):
        return manifest
    documents = manifest if isinstance(manifest, list) else [manifest]
    return yaml.safe_dump_all(documents, sort_keys=False)


def eventually(probe: Callable[[], T], timeout: float = 30, interval: float = 0.25, what: str = "condition") -> T:
    """Poll until `probe` returns a truthy value (which is returned); fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except CommandFailed as error:
            last = error
        if last and not isinstance(last, CommandFailed):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last}")
        time.sleep(interval)
