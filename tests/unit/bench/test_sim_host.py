"""The simulator host's scrape targets: every store and PD member of a cluster, labelled so that one
TiKVCluster's labelMatchers pick out its own cluster's series."""

from bench.sim_host import target_groups

SUMMARY = {"clusters": [{
    "name": "c1",
    "stores": [{"instance": "127.0.0.1:20180", "metrics_url": "http://127.0.0.1:4001/metrics"}],
    "pd_members": [{"metrics_url": "http://127.0.0.1:5001/metrics", "leader": True},
                   {"metrics_url": "http://127.0.0.1:5002/metrics", "leader": False}],
}]}


def test_stores_and_pd_members_carry_the_cluster_label_and_the_extra_labels():
    groups = target_groups(SUMMARY, "bench_cluster", {"bench_run": "r1"}, "15s")
    assert groups == [
        {"targets": ["127.0.0.1:4001"], "labels": {"instance": "127.0.0.1:20180", "bench_run": "r1",
                                                   "bench_cluster": "c1", "__scrape_interval__": "15s"}},
        {"targets": ["127.0.0.1:5001"], "labels": {"bench_run": "r1", "bench_cluster": "c1",
                                                   "__scrape_interval__": "15s"}},
        {"targets": ["127.0.0.1:5002"], "labels": {"bench_run": "r1", "bench_cluster": "c1",
                                                   "__scrape_interval__": "15s"}},
    ]


def test_without_a_scrape_interval_and_without_pd_members():
    summary = {"clusters": [{**SUMMARY["clusters"][0], "pd_members": []}]}
    assert [g["labels"] for g in target_groups(summary, "k", {}, None)] == [
        {"instance": "127.0.0.1:20180", "k": "c1"}]
