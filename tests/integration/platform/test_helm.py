"""helm installs, upgrades and uninstalls a chart on the local platform."""

from __future__ import annotations

import json
from pathlib import Path

from harness.kube import Cli

CHART = str(Path(__file__).parent / "smoke-chart")


def test_helm_install_upgrade_uninstall(helm: Cli, kubectl: Cli) -> None:
    helm("lint", "--strict", CHART)

    install = helm("install", "smoke", CHART, "--wait", "--timeout=60s")
    assert "STATUS: deployed" in install.stdout
    assert kubectl.json("get", "configmap", "smoke-greeting")["data"] == {"greeting": "hello"}

    helm("upgrade", "smoke", CHART, "--set", "greeting=bonjour", "--wait", "--timeout=60s")
    assert kubectl.json("get", "configmap", "smoke-greeting")["data"] == {"greeting": "bonjour"}
    releases = json.loads(helm("list", "-o", "json").stdout)
    assert [(r["name"], r["revision"], r["status"]) for r in releases] == [("smoke", "2", "deployed")]

    helm("uninstall", "smoke", "--wait", "--timeout=60s")
    assert "NotFound" in kubectl("get", "configmap", "smoke-greeting", check=False).stderr
    assert json.loads(helm("list", "-o", "json").stdout) == []
