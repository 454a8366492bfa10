"""Credentials read from real Secrets through the platform's kube-apiserver, as the operator reads them;
a Secret that is missing or incomplete means the probe is not attempted, and says why (never "unreachable")."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.kube import Cli
from harness.platform import PlatformInfo
from harness.prometheus import Prometheus
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from tikv_operator.checks.core.invariants import evaluate
from tikv_operator.checks.core.settings import ClusterSettings, configure
from tikv_operator.checks.probe import observe
from tikv_operator.kube.credentials import (
    BasicAuth,
    BearerToken,
    ClusterCredentials,
    SecretCache,
    TLSClientCredentials,
    load_credentials,
)
from tikv_operator.model.cluster_resource import TiKVClusterSpec
from tikv_sim.embedded import SimulatorThread
from tikv_sim.simulator import SimConfig


def spec(pd_secret: str | None = None, prometheus_secret: str | None = None,
         pd_url: str = "https://basic-pd.tidb:2379", prometheus_url: str = "http://basic-prometheus.tidb:9090",
         ) -> TiKVClusterSpec:
    pd: dict[str, Any] = {"url": pd_url}
    prometheus: dict[str, Any] = {"url": prometheus_url}
    if pd_secret:
        pd["tlsSecret"] = {"name": pd_secret}
    if prometheus_secret:
        prometheus["authSecret"] = {"name": prometheus_secret}
    return TiKVClusterSpec.model_validate({"pd": pd, "prometheus": prometheus})


def load(platform: PlatformInfo, namespace: str, cluster: TiKVClusterSpec) -> ClusterCredentials:
    async def scenario() -> ClusterCredentials:
        configuration = Configuration()
        await config.load_kube_config(config_file=platform.kubeconfig, client_configuration=configuration)
        async with ApiClient(configuration) as api:
            return await load_credentials(SecretCache(CoreV1Api(api)), namespace, cluster)

    return asyncio.run(scenario())


def opt_in(kubectl: Cli, *names: str) -> None:
    for name in names:
        kubectl("label", "secret", name, "tikvops.io/credentials=true")


def test_tls_and_token_secrets_are_read(platform: PlatformInfo, kubectl: Cli, namespace: str,
                                        tmp_path: Path) -> None:
    key = b"-----BEGIN PRIVATE KEY-----\nMIIE\xffbinary-safe\n-----END PRIVATE KEY-----\n"
    (tmp_path / "tls.key").write_bytes(key)
    (tmp_path / "token").write_text("eyJhbGciOi.token\n")  # --from-file keeps the trailing newline
    kubectl("create", "secret", "generic", "basic-cluster-client-secret", "--from-literal=ca.crt=CA",
            "--from-literal=tls.crt=CERT", f"--from-file=tls.key={tmp_path / 'tls.key'}")
    kubectl("create", "secret", "generic", "prom-token", f"--from-file=token={tmp_path / 'token'}")
    opt_in(kubectl, "basic-cluster-client-secret", "prom-token")

    credentials = load(platform, namespace, spec("basic-cluster-client-secret", "prom-token"))

    assert credentials.pd_error == ""
    assert credentials.prometheus_error == ""
    assert credentials.pd_tls == TLSClientCredentials(
        secret=f"{namespace}/basic-cluster-client-secret", ca=b"CA", cert=b"CERT", key=key
    )
    assert credentials.prometheus_auth == BearerToken(secret=f"{namespace}/prom-token", token="eyJhbGciOi.token")
    assert "binary-safe" not in repr(credentials)
    assert "eyJhbGciOi" not in repr(credentials)


def test_basic_auth_secret_is_read(platform: PlatformInfo, kubectl: Cli, namespace: str) -> None:
    kubectl("create", "secret", "generic", "prom-basic", "--from-literal=username=ops",
            "--from-literal=password=s3cret")
    opt_in(kubectl, "prom-basic")

    credentials = load(platform, namespace, spec(prometheus_secret="prom-basic"))

    assert credentials.prometheus_auth == BasicAuth(secret=f"{namespace}/prom-basic", username="ops",
                                                    password="s3cret")
    assert credentials.pd_tls is None


def test_no_secrets_named_means_no_credentials(platform: PlatformInfo, namespace: str) -> None:
    assert load(platform, namespace, spec()) == ClusterCredentials()


def test_missing_secret_and_missing_key_are_named(platform: PlatformInfo, kubectl: Cli, namespace: str) -> None:
    kubectl("create", "secret", "generic", "half-client-secret", "--from-literal=ca.crt=CA",
            "--from-literal=tls.crt=CERT")
    opt_in(kubectl, "half-client-secret")

    credentials = load(platform, namespace, spec("half-client-secret", "no-such-secret"))

    assert credentials.pd_tls is None
    assert credentials.pd_error == f"PD client certificate: Secret {namespace}/half-client-secret has no key tls.key"
    assert credentials.prometheus_auth is None
    assert credentials.prometheus_error == f"Prometheus credentials: Secret {namespace}/no-such-secret not found"


def test_a_missing_secret_means_pd_was_not_contacted_not_that_it_is_unreachable(
    platform: PlatformInfo, namespace: str, prometheus: Prometheus,
) -> None:
    with SimulatorThread(SimConfig(stores=1, control_port=None)) as sim:
        cluster = spec("absent-client-secret", pd_url=sim.pd_url.replace("http:", "https:"),
                       prometheus_url=prometheus.url)
        credentials = load(platform, namespace, cluster)
        observation = asyncio.run(observe("basic", ClusterSettings.of(cluster), credentials, datetime.now(UTC)))

    findings = {f.invariant: f for f in evaluate(observation, configure(cluster))}
    assert observation.pd.not_contacted is not None
    assert observation.pd.not_contacted.failure == "unreadable"
    assert findings["pd_unreachable"].verdict == "unknown"
    assert findings["pd_unreachable"].cause == "credentials"
    assert findings["pd_unreachable"].evidence["credentials"] == (
        f"PD client certificate: Secret {namespace}/absent-client-secret not found"
    )
    assert findings["prometheus_unreachable"].verdict == "ok"


def test_a_secret_that_did_not_opt_in_is_refused_by_name(platform: PlatformInfo, kubectl: Cli,
                                                          namespace: str) -> None:
    kubectl("create", "secret", "generic", "unlabelled", "--from-literal=token=x")

    credentials = load(platform, namespace, spec(prometheus_secret="unlabelled"))

    assert credentials.prometheus_auth is None
    assert credentials.prometheus_error.startswith(
        f"Prometheus credentials: Secret {namespace}/unlabelled is not labelled tikvops.io/credentials=true"
    )
