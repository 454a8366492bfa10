"""OperatorTickets through the Kubernetes API with the user's kubeconfig, for the `tickets` commands.

Every request is what kubectl would send: the kubeconfig of $KUBECONFIG (else ~/.kube/config), its current
context and namespace, plain GET/LIST, and JSON merge patches without a resourceVersion.
Every failure leaves this module as a KubernetesError whose text is one readable line.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml  # type: ignore[import-untyped]  # no stubs in the locked dev tools
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from tikv_operator.kube.api import TimedApiClient, server_message
from tikv_operator.model.vocabulary import GROUP, VERSION

PLURAL = "operatortickets"
RESOURCE = f"{PLURAL}.{GROUP}"
MERGE_PATCH = "application/merge-patch+json"
# Long enough for a slow API server, short enough that a black-holed address does not hang a terminal.
REQUEST_TIMEOUT_S = 30
# kubectl's page size: a namespace with thousands of resolved tickets is read in bounded pieces.
PAGE_SIZE = 500
DEFAULT_NAMESPACE = "default"
# The client would pick strategic merge for a dict body, which the API server refuses for custom resources.
# (Passed as a dict: the client's type hints do not list these per-request options.)
_PATCH_OPTIONS: dict[str, Any] = {"_content_type": MERGE_PATCH, "_request_timeout": REQUEST_TIMEOUT_S}

T = TypeVar("T")


class KubernetesError(Exception):
    """The API server refused, failed or could not be reached; str() is the line to show, worded as kubectl's."""


class TicketNotFound(KubernetesError):
    """The named ticket does not exist (any more)."""


def kubeconfig_paths() -> str:
    """$KUBECONFIG (one or more files, as kubectl merges them) or ~/.kube/config, if one of them exists."""
    # Read at call time: kubernetes_asyncio reads $KUBECONFIG once, when it is imported.
    paths = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if not any(Path(p).expanduser().is_file() for p in paths.split(os.pathsep) if p):
        raise KubernetesError(f"error: no kubeconfig found at {paths} (set KUBECONFIG to the file of your cluster)")
    return paths


class TicketApi:
    """OperatorTicket requests on one API client; made by `connect()`."""

    def __init__(self, api: client.CustomObjectsApi, default_namespace: str) -> None:
        self._api = api
        self.default_namespace = default_namespace

    async def list(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every ticket of `namespace`, or of all namespaces when it is None."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page: dict[str, Any] = {"limit": PAGE_SIZE, "_request_timeout": REQUEST_TIMEOUT_S}
            if token:
                page["_continue"] = token
            try:
                if namespace is None:
                    answer = await _call(self._api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **page))
                else:
                    answer = await _call(
                        self._api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **page)
                    )
            except TicketNotFound as error:
                # A list is only ever 404 when the resource type itself is unknown to the server.
                raise KubernetesError(
                    f"error: the server doesn't have a resource type {RESOURCE} (are the CRDs of crds/ installed?)"
                ) from error
            items.extend(answer.get("items") or [])
            token = (answer.get("metadata") or {}).get("continue")
            if not token:
                return items

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await _call(
                self._api.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT_S
                )
            )
        except TicketNotFound:
            return None

    async def patch_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        request = self._api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, body, **_PATCH_OPTIONS
        )
        await _call(request)

    async def patch(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        request = self._api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, body, **_PATCH_OPTIONS
        )
        await _call(request)


    async def upsert_cluster(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        """Create the TiKVCluster, or merge `spec` into the existing one (as `kubectl apply` would)."""
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TiKVCluster", "metadata": {"name": name}, "spec": spec}
        try:
            await _call(self._api.create_namespaced_custom_object(GROUP, VERSION, namespace, "tikvclusters", body))
        except KubernetesError as error:
            if "AlreadyExists" not in str(error) and "already exists" not in str(error):
                raise
            await _call(self._api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "tikvclusters", name, {"spec": spec}, **_PATCH_OPTIONS))


@asynccontextmanager
async def connect() -> AsyncIterator[TicketApi]:
    """A TicketApi for the kubeconfig's current context; the default namespace is the context's, as kubectl's."""
    paths = kubeconfig_paths()
    configuration = client.Configuration()
    try:
        loader = await config.load_kube_config(
            config_file=paths, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, yaml.YAMLError, KeyError, ValueError, TypeError, AssertionError, OSError) as error:
        # kubernetes_asyncio reports some malformed kubeconfigs with bare asserts and lookups.
        reason = str(error) or type(error).__name__
        raise KubernetesError(_one_line(f"error: cannot use the kubeconfig {paths}: {reason}")) from error
    context = (loader.current_context or {}).get("context") or {}
    namespace = context.get("namespace") or DEFAULT_NAMESPACE
    async with TimedApiClient(configuration) as api_client:
        yield TicketApi(client.CustomObjectsApi(api_client), str(namespace))


async def _call(request: Awaitable[T]) -> T:
    """Await one API request, turning what can go wrong into a KubernetesError of one line."""
    try:
        return await request
    except ApiException as error:
        if error.status == 404:
            raise TicketNotFound(server_message(error)) from error
        raise KubernetesError(server_message(error)) from error
    except TimeoutError as error:
        # Before OSError, of which TimeoutError is a subclass; its own text is usually empty.
        raise KubernetesError(
            f"Unable to connect to the server: no answer within {REQUEST_TIMEOUT_S}s"
        ) from error
    except (aiohttp.ClientError, OSError) as error:
        raise KubernetesError(f"Unable to connect to the server: {error}") from error


def _one_line(text: str) -> str:
    return " ".join(text.split())

