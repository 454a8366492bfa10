"""--verbose is the operator's own debug log: no library that logs what goes over the wire (the Kubernetes
client logs every response body, Secrets included) writes a line below INFO, whatever its logger's level."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import pytest

from tikv_operator.runner import WIRE_LOGGERS, configure_logging

TOKEN = "opted-in-token-value"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = ("tikv_operator", "kopf", "kopf.objects", "kopf.activities.startup", *WIRE_LOGGERS,
             "kubernetes_asyncio.client.rest")
    levels = {name: logging.getLogger(name).level for name in names}
    filters = {id(h): list(h.filters) for h in handlers}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for handler in handlers:
        handler.filters[:] = filters[id(handler)]
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_verbose_logs_the_operators_debug_but_no_response_body(
    restored_logging: None, capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(verbose=True)
    encoded = base64.b64encode(TOKEN.encode()).decode()
    body = f'{{"kind":"Secret","data":{{"token":"{encoded}"}},"stringData":{{"token":"{TOKEN}"}}}}'
    logging.getLogger("kubernetes_asyncio.client.rest").debug("response body: %s", body)
    logging.getLogger("httpx").debug("Authorization: Bearer %s", TOKEN)
    logging.getLogger("tikv_operator.checks").debug("checked the cluster")
    # Someone turns a library's logger up anyway: the handlers still drop its debug lines.
    logging.getLogger("kubernetes_asyncio.client.rest").setLevel(logging.DEBUG)
    logging.getLogger("kubernetes_asyncio.client.rest").debug("response body: %s", body)
    written = capsys.readouterr().err
    assert "checked the cluster" in written
    assert TOKEN not in written
    assert encoded not in written


def test_without_verbose_the_libraries_say_only_warnings(restored_logging: None) -> None:
    configure_logging(verbose=False)
    assert all(logging.getLogger(name).getEffectiveLevel() >= logging.WARNING for name in WIRE_LOGGERS)
    assert logging.getLogger().getEffectiveLevel() == logging.INFO
