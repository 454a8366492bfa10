"""Acting as the chart's ServiceAccount: a token minted with the TokenRequest API, a kubeconfig that holds
only that token, and kubectl bound to it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.kube import Cli


def token_kubeconfig(admin: Cli, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig for the platform's API server whose only credential is a fresh token of `account`."""
    token = admin("create", "token", account, "--namespace", namespace, "--duration=1h").stdout.strip()
    config = json.loads(admin("config", "view", "--raw", "--minify", "-o", "json").stdout)
    user = f"system:serviceaccount:{namespace}:{account}"
    config["users"] = [{"name": user, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = user
        context["context"].pop("namespace", None)
    path.touch(mode=0o600)
    path.write_text(json.dumps(config))
    return path


def as_account(admin: Cli, kubeconfig: Path) -> Cli:
    """kubectl with the account's kubeconfig and nothing else (no namespace of its own)."""
    return Cli("kubectl", {**admin.env, "KUBECONFIG": str(kubeconfig)}, None, admin.timeout)


def can_i(kubectl: Cli, verb: str, resource: str, *scope: str) -> bool:
    result = kubectl("auth", "can-i", verb, resource, *scope, check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, f"kubectl auth can-i said {answer!r}: {result.stderr}"
    return answer == "yes"


def can_i_all(kubectl: Cli, questions: Sequence[Sequence[str]]) -> list[bool]:
    """Many `kubectl auth can-i` questions, asked side by side (each is one SelfSubjectAccessReview)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda question: can_i(kubectl, *question), questions))


def as_can_i_args(group: str, resource: str) -> tuple[str, ...]:
    """(resource.group, --subresource=...) as `kubectl auth can-i` spells a table entry."""
    name, _, subresource = resource.partition("/")
    qualified = f"{name}.{group}" if group else name
    return (qualified, f"--subresource={subresource}") if subresource else (qualified,)
