"""What the operator process shares between its handlers: the API clients, the writer, the Secret cache, the
notifier and leadership, started once (kopf's startup) and kept in kopf's memo under one typed name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import kopf
from aiohttp import web
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config import ConfigException

from tikv_operator.alerts.core.delivery import AlertPolicy
from tikv_operator.alerts.notifier import Notifier
from tikv_operator.checks.core.settings import DEFAULT_INTERVAL
from tikv_operator.election.leadership import Leadership, user_agent
from tikv_operator.health import serve_health
from tikv_operator.kube.api import TimedApiClient
from tikv_operator.kube.credentials import SecretCache
from tikv_operator.kube.writer import KubeWriter


@dataclass(frozen=True)
class ProcessOptions:
    """What the process was started with (`run`, `monitor`), for the services kopf's startup builds."""

    leadership: Leadership = field(default_factory=Leadership)
    default_interval: timedelta = DEFAULT_INTERVAL
    only_cluster: str | None = None  # `monitor`: check this TiKVCluster alone
    health_port: int | None = None
    bind_address: str = "0.0.0.0"  # noqa: S104  (probes come from outside the pod)
    alertmanager_urls: Sequence[str] = ()  # the default for clusters whose spec names none
    alert_policy: AlertPolicy = field(default_factory=AlertPolicy)


@dataclass
class Services:
    writer: KubeWriter
    notifier: Notifier
    # One cache for every cluster: Secrets are read once a minute per Secret, not once per check per cluster.
    credentials: SecretCache
    leadership: Leadership = field(default_factory=Leadership)
    default_interval: timedelta = DEFAULT_INTERVAL
    only_cluster: str | None = None
    api: TimedApiClient | None = None
    health: web.AppRunner | None = None

    @classmethod
    async def start(cls, options: ProcessOptions) -> Services:
        try:
            config.load_incluster_config()
        except ConfigException:
            await config.load_kube_config()
        leadership = options.leadership
        # Every write of this process passes the fence: a replica that does not hold the Lease writes nothing.
        api = TimedApiClient(fence=leadership.acting, fence_time_left=leadership.time_left,
                             user_agent=user_agent(leadership.identity))
        writer = KubeWriter.connect(api)
        health = None
        if options.health_port is not None:
            try:
                health = await serve_health(options.bind_address, options.health_port)
            except BaseException:
                await api.close()
                raise
        notifier = Notifier(options.alert_policy, options.alertmanager_urls, writer, active=leadership.acting)
        notifier.start()
        return cls(writer=writer, notifier=notifier, credentials=SecretCache(client.CoreV1Api(api)),
                   leadership=leadership, default_interval=options.default_interval,
                   only_cluster=options.only_cluster, api=api, health=health)

    async def close(self) -> None:
        await self.notifier.close()  # no "resolved" goes out: a restarted operator takes over the same alerts
        if self.api is not None:
            await self.api.close()
        if self.health is not None:
            await self.health.cleanup()


def services_of(memo: kopf.Memo) -> Services | None:
    """The process's services; None until kopf's startup has built them."""
    services = memo.get("services")
    return services if isinstance(services, Services) else None


def options_of(memo: kopf.Memo) -> ProcessOptions:
    """What runner.py put in the memo; the defaults when something else started kopf."""
    options = memo.get("options")
    return options if isinstance(options, ProcessOptions) else ProcessOptions()
