"""The JSON shapes of PD answers (tikv/pd pkg/response/store.go and server/api), as checks."""

import re
from typing import Any

SIZE_PATTERN = r"^(0|[0-9]+(\.[0-9]+)?)(B|KiB|MiB|GiB|TiB|PiB)$"
RFC3339_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$"

STORE_META_REQUIRED = {"id", "address", "state_name"}
STORE_META_ALLOWED = STORE_META_REQUIRED | {
    "state", "labels", "version", "peer_address", "status_address", "git_hash", "start_timestamp",
    "deploy_path", "last_heartbeat", "node_state", "physically_destroyed",
}  # fmt: skip
STATUS_REQUIRED = {
    "capacity", "available", "used_size", "leader_count", "leader_weight", "leader_score", "leader_size",
    "region_count", "region_weight", "region_score", "region_size",
}  # fmt: skip
STATUS_OMITEMPTY = {
    "learner_count", "witness_count", "pending_peer_count", "slow_score", "network_slow_score", "slow_trend",
    "sending_snap_count", "receiving_snap_count", "is_busy", "start_ts", "last_heartbeat_ts", "uptime",
    "pause_leader_transfer_in", "pause_leader_transfer_out",
}  # fmt: skip
MEMBER_KEYS = {"name", "member_id", "peer_urls", "client_urls", "deploy_path", "binary_version", "git_hash"}


def check_store_info(info: dict[str, Any]) -> None:
    assert set(info) == {"store", "status"}
    meta, status = info["store"], info["status"]
    assert STORE_META_REQUIRED <= set(meta) <= STORE_META_ALLOWED, set(meta) ^ STORE_META_ALLOWED
    assert isinstance(meta["id"], int)
    assert meta["state_name"] in {"Up", "Disconnected", "Down", "Offline", "Tombstone"}
    # Go's omitempty: the zero state (Up) is absent, never `"state": 0`.
    assert meta.get("state", 0) != 0 or "state" not in meta
    assert STATUS_REQUIRED <= set(status) <= STATUS_REQUIRED | STATUS_OMITEMPTY
    for key in ("capacity", "available", "used_size"):
        assert re.match(SIZE_PATTERN, status[key]), status[key]
    for key in ("start_ts", "last_heartbeat_ts"):
        if key in status:
            assert re.match(RFC3339_PATTERN, status[key]), status[key]
    for key in STATUS_OMITEMPTY & set(status):
        assert status[key] not in (0, False, "", None), f"{key} is present with its zero value"


def by_id(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """/stores entries by store id: PD lists them in a new order on every call (a Go map)."""
    return {info["store"]["id"]: info for info in body["stores"]}
