"""Recorded PD answers shared by the unit tests."""

from __future__ import annotations

from typing import Any

# reference/tikv.md, GET /stores: an Up store with PD's size strings and a Down store with "0B".
REFERENCE_STORES: dict[str, Any] = {"count": 2, "stores": [
    {"store": {"id": 1, "address": "basic-tikv-0.basic-tikv-peer.tidb.svc:20160",
               "labels": [{"key": "zone", "value": "z1"}], "version": "8.5.0",
               "peer_address": "basic-tikv-0.basic-tikv-peer.tidb.svc:20160",
               "status_address": "basic-tikv-0.basic-tikv-peer.tidb.svc:20180",
               "git_hash": "5d1a4b1c", "start_timestamp": 1764000000, "deploy_path": "/",
               "last_heartbeat": 1764030000123456789, "state_name": "Up"},
     "status": {"capacity": "96.73GiB", "available": "51.41GiB", "used_size": "292.5MiB",
                "leader_count": 16, "leader_weight": 1, "leader_score": 16, "leader_size": 16,
                "region_count": 56, "region_weight": 1, "region_score": 617.73, "region_size": 56,
                "start_ts": "2026-11-24T16:00:00Z", "last_heartbeat_ts": "2026-11-25T00:20:00.123456789Z",
                "uptime": "8h20m0.12s"}},
    {"store": {"id": 4, "address": "basic-tikv-1.basic-tikv-peer.tidb.svc:20160", "state": 0,
               "status_address": "basic-tikv-1.basic-tikv-peer.tidb.svc:20180", "state_name": "Down",
               "last_heartbeat": 1764028000000000000},
     "status": {"capacity": "0B", "available": "0B", "used_size": "0B", "leader_count": 0,
                "leader_weight": 1, "leader_score": 0, "leader_size": 0, "region_count": 0,
                "region_weight": 1, "region_score": 0, "region_size": 0}}]}  # fmt: skip
