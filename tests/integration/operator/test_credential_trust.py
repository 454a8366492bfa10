"""The confused deputy: whoever may create a TiKVCluster may name any Secret of its namespace and point
prometheus.url at their own server. The operator sends only Secrets labelled tikvops.io/credentials=true,
never a ServiceAccount token, and says so on the TiKVCluster (CredentialsAvailable). A Secret it cannot
use means PD / Prometheus were not contacted: that is no pd_unreachable / prometheus_unreachable ticket."""

from __future__ import annotations

import base64
from typing import Any

from harness.kube import Cli, eventually
from harness.operator_process import OperatorProcess, SimulatedCluster, cluster_manifest, still, tickets
from harness.prometheus import Prometheus, ScrapeTargets

from tests.support.recording_prometheus import Recorder

CLOSED = "http://127.0.0.1:9"


def cluster(name: str, prometheus_url: str, secret: str) -> dict[str, Any]:
    return {
        "apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster", "metadata": {"name": name},
        "spec": {"interval": "1s", "pd": {"url": CLOSED, "timeout": "1s"},
                 "prometheus": {"url": prometheus_url, "timeout": "2s", "authSecret": {"name": secret}}},
    }


def conditions_of(kubectl: Cli, name: str) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in kubectl.json("get", "tkc", name).get("status", {}).get("conditions", [])}


def credentials_condition(kubectl: Cli, name: str) -> dict[str, Any] | None:
    return conditions_of(kubectl, name).get("CredentialsAvailable")


def test_a_secret_that_did_not_opt_in_or_a_service_account_token_is_never_sent(
    kubectl: Cli, operator: OperatorProcess, recorder: Recorder,
) -> None:
    kubectl("create", "secret", "generic", "plain", "--from-literal=token=PLAIN-TOKEN-VALUE")
    kubectl.apply({
        "apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "sa-token", "labels": {"tikvops.io/credentials": "true"},
            "annotations": {"kubernetes.io/service-account.name": "default"}},
        "type": "kubernetes.io/service-account-token",
    })
    eventually(lambda: "token" in (kubectl.json("get", "secret", "sa-token").get("data") or {}), timeout=30,
               what="the token controller to fill the ServiceAccount token")
    kubectl.apply(cluster("plain", recorder.url, "plain"))
    kubectl.apply(cluster("satoken", recorder.url, "sa-token"))

    for name, reason in (("plain", "is not labelled tikvops.io/credentials=true"),
                         ("satoken", "is a ServiceAccount token")):
        condition = eventually(lambda n=name: credentials_condition(kubectl, n), timeout=30,
                               what=f"CredentialsAvailable on {name}")
        assert (condition["status"], condition["reason"]) == ("False", "SecretRefused"), condition
        assert reason in condition["message"], condition
        prometheus = conditions_of(kubectl, name)["PrometheusReachable"]
        assert (prometheus["status"], prometheus["reason"]) == ("Unknown", "NotContacted"), prometheus
    sa_token = base64.b64decode(kubectl.json("get", "secret", "sa-token")["data"]["token"]).decode()
    assert recorder.authorizations == [], "the operator contacted the recording server"
    assert sa_token not in operator.log()
    assert "PLAIN-TOKEN-VALUE" not in operator.log()

    # The owner opts the Secret in: now, and only now, it is sent.
    kubectl("label", "secret", "plain", "tikvops.io/credentials=true")
    eventually(lambda: "Bearer PLAIN-TOKEN-VALUE" in recorder.authorizations, timeout=30,
               what="the opted-in token to reach Prometheus")
    assert not any(sa_token in (header or "") for header in recorder.authorizations)


def test_a_missing_secret_is_credentials_unavailable_not_an_unreachable_ticket(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, prometheus: Prometheus,
    prom_targets: ScrapeTargets,
) -> None:
    # PD and Prometheus are fine; only the Secrets the spec names do not exist. A grace period of 1s would
    # open pd_unreachable / prometheus_unreachable within seconds if a missing Secret still counted as them.
    manifest = cluster_manifest("nosecret", tikv.pd_url, prometheus.url, prom_targets.labels, interval="1s",
                                invariants={"pd_unreachable": {"gracePeriod": "1s"},
                                            "prometheus_unreachable": {"gracePeriod": "1s"}})
    manifest["spec"]["pd"]["tlsSecret"] = {"name": "absent-pd-client"}
    manifest["spec"]["prometheus"]["authSecret"] = {"name": "absent-prom-auth"}
    kubectl.apply(manifest)
    namespace = kubectl.json("get", "tkc", "nosecret")["metadata"]["namespace"]

    condition = eventually(lambda: credentials_condition(kubectl, "nosecret"), timeout=30,
                           what="CredentialsAvailable on nosecret")
    assert (condition["status"], condition["reason"]) == ("False", "SecretUnreadable"), condition
    assert f"Secret {namespace}/absent-pd-client not found" in condition["message"], condition
    assert f"Secret {namespace}/absent-prom-auth not found" in condition["message"], condition
    status = kubectl.json("get", "tkc", "nosecret")["status"]
    assert status["health"] == "Unknown", status
    assert status["message"].startswith("credentials unavailable, PD not contacted: "), status["message"]
    conditions = conditions_of(kubectl, "nosecret")
    for reachable in ("PDReachable", "PrometheusReachable"):
        assert (conditions[reachable]["status"], conditions[reachable]["reason"]) == ("Unknown", "NotContacted")
    still(lambda: tickets(kubectl) == [], seconds=6)
    assert kubectl("get", "operatortickets").stdout.strip() == ""  # "No resources found" is on stderr

    # The Prometheus Secret appears (opted in): Prometheus is asked again within the error TTL (10 s),
    # while PD, whose Secret is still missing, stays not contacted and ticketless.
    kubectl("create", "secret", "generic", "absent-prom-auth", "--from-literal=token=PROM-TOKEN-VALUE")
    kubectl("label", "secret", "absent-prom-auth", "tikvops.io/credentials=true")
    eventually(lambda: conditions_of(kubectl, "nosecret")["PrometheusReachable"]["status"] == "True", timeout=30,
               what="PrometheusReachable True once its Secret exists")
    condition = credentials_condition(kubectl, "nosecret")
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "SecretUnreadable"), condition
    assert "absent-prom-auth" not in condition["message"], condition
    assert tickets(kubectl) == []
    assert "PROM-TOKEN-VALUE" not in operator.log()
