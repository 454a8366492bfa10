"""Secrets become credentials whose values never show in a repr or an error. (Reading them through the
real API server is in tests/integration/probes/test_credentials.py.)"""

from __future__ import annotations

import base64

import pytest
from kubernetes_asyncio.client import V1ObjectMeta, V1Secret

from tikv_operator.kube.credentials import (
    BasicAuth,
    BearerToken,
    ClusterCredentials,
    CredentialsError,
    TLSClientCredentials,
    auth_from_secret,
    opted_in,
    tls_from_secret,
)

KEY = b"-----BEGIN PRIVATE KEY-----\nMIIEvQ-very-secret-key-bytes\n-----END PRIVATE KEY-----\n"
WHERE = "tidb/basic-cluster-client-secret"


def secret(**values: bytes | str) -> V1Secret:
    """A Secret as the API returns it: every value base64-encoded under `data`."""
    encoded = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for k, v in values.items()}
    return V1Secret(data=encoded)


def tls_secret() -> V1Secret:
    return secret(**{"ca.crt": b"CA-PEM", "tls.crt": b"CERT-PEM", "tls.key": KEY})


def test_tls_secret_is_decoded() -> None:
    tls = tls_from_secret(tls_secret(), WHERE)

    assert (tls.ca, tls.cert, tls.key) == (b"CA-PEM", b"CERT-PEM", KEY)
    assert tls.secret == WHERE


def test_reprs_hide_every_value() -> None:
    tls = tls_from_secret(tls_secret(), WHERE)
    token = BearerToken(secret="tidb/prom", token="tok-123-secret")
    basic = BasicAuth(secret="tidb/prom", username="ops-user", password="pw-456-secret")
    shown = " ".join([repr(tls), str(tls), f"{token}", repr(basic),
                      repr(ClusterCredentials(pd_tls=tls, prometheus_auth=token))])

    for value in ("CA-PEM", "CERT-PEM", "very-secret-key", "tok-123-secret", "ops-user", "pw-456-secret"):
        assert value not in shown
    assert repr(tls) == f"TLSClientCredentials(secret='{WHERE}', ca=<hidden>, cert=<hidden>, key=<hidden>)"
    assert repr(basic) == "BasicAuth(secret='tidb/prom', username=<hidden>, password=<hidden>)"


@pytest.mark.parametrize("missing", ["ca.crt", "tls.crt", "tls.key"])
def test_tls_secret_without_a_key_names_the_key(missing: str) -> None:
    values = {"ca.crt": b"CA-PEM", "tls.crt": b"CERT-PEM", "tls.key": KEY}
    del values[missing]

    with pytest.raises(CredentialsError) as caught:
        tls_from_secret(secret(**values), WHERE)

    assert str(caught.value) == f"Secret {WHERE} has no key {missing}"


def test_empty_secret_names_the_first_missing_key() -> None:
    with pytest.raises(CredentialsError, match=f"^Secret {WHERE} has no key ca.crt$"):
        tls_from_secret(V1Secret(data=None), WHERE)


def test_bad_base64_is_reported_without_the_value() -> None:
    broken = V1Secret(data={"ca.crt": "Q0E=", "tls.crt": "Q0E=", "tls.key": "not*base64*SECRETVALUE"})

    with pytest.raises(CredentialsError) as caught:
        tls_from_secret(broken, WHERE)

    assert str(caught.value) == f"key tls.key of Secret {WHERE} is not valid base64"


def test_token_is_stripped_of_the_newline_kubectl_from_file_keeps() -> None:
    auth = auth_from_secret(secret(token="abc.def\n"), "tidb/prom")

    assert auth == BearerToken(secret="tidb/prom", token="abc.def")


def test_username_and_password_give_basic_auth() -> None:
    auth = auth_from_secret(secret(username="ops", password="pa ss"), "tidb/prom")

    assert auth == BasicAuth(secret="tidb/prom", username="ops", password="pa ss")


def test_token_wins_over_basic_auth() -> None:
    assert isinstance(auth_from_secret(secret(token="t", username="u", password="p"), "tidb/prom"), BearerToken)


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"username": "ops"}, "Secret tidb/prom has neither key token nor keys username and password"),
        ({"token": "  \n"}, "key token of Secret tidb/prom is empty"),
        ({"token": "abc\r\nX-Injected: SECRETVALUE"}, "key token of Secret tidb/prom holds control characters"),
        ({"token": b"\xff\xfeSECRETVALUE"}, "key token of Secret tidb/prom is not UTF-8 text"),
    ],
)
def test_unusable_prometheus_secrets_are_explained_without_values(values: dict[str, str | bytes], error: str) -> None:
    with pytest.raises(CredentialsError) as caught:
        auth_from_secret(secret(**values), "tidb/prom")

    assert str(caught.value) == error
    assert "SECRETVALUE" not in str(caught.value)


def test_tls_credentials_are_comparable_for_caching() -> None:
    one = TLSClientCredentials(secret=WHERE, ca=b"a", cert=b"b", key=b"c")

    assert one == TLSClientCredentials(secret=WHERE, ca=b"a", cert=b"b", key=b"c")
    assert hash(one) == hash(TLSClientCredentials(secret=WHERE, ca=b"a", cert=b"b", key=b"c"))


def labelled(kind: str = "Opaque", **labels: str) -> V1Secret:
    return V1Secret(type=kind, metadata=V1ObjectMeta(name="s", labels=labels or None),
                    data={"token": base64.b64encode(b"SECRETVALUE").decode()})


def test_only_secrets_that_opt_in_are_used() -> None:
    assert opted_in(labelled(**{"tikvops.io/credentials": "true"}), WHERE).data
    for refused in (labelled(), labelled(**{"tikvops.io/credentials": "yes"}), V1Secret(data={"token": "eA=="})):
        with pytest.raises(CredentialsError, match=r"not labelled tikvops\.io/credentials=true") as error:
            opted_in(refused, WHERE)
        assert "SECRETVALUE" not in str(error.value)


def test_service_account_tokens_are_never_used_even_when_labelled() -> None:
    token = labelled("kubernetes.io/service-account-token", **{"tikvops.io/credentials": "true"})
    with pytest.raises(CredentialsError, match="ServiceAccount token"):
        opted_in(token, WHERE)
