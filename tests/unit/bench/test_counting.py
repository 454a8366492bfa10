"""Classifying Kubernetes API requests for the counting proxy."""

from bench.counting import RequestCounter, classify


def test_a_status_patch_of_a_custom_resource():
    r = classify("patch", "/apis/tikvops.io/v1alpha1/namespaces/ns1/tikvclusters/basic/status")
    assert (r.method, r.resource, r.namespace, r.name) == ("PATCH", "tikvclusters/status", "ns1", "basic")
    assert r.write


def test_a_create_in_a_namespace_and_an_event():
    r = classify("POST", "/apis/tikvops.io/v1alpha1/namespaces/ns1/operatortickets")
    assert (r.resource, r.namespace, r.name) == ("operatortickets", "ns1", "")
    e = classify("POST", "/api/v1/namespaces/ns1/events")
    assert (e.resource, e.namespace) == ("events", "ns1")


def test_watches_and_reads_are_not_writes():
    r = classify("GET", "/apis/tikvops.io/v1alpha1/namespaces/ns1/tikvclusters?watch=true&resourceVersion=5")
    assert r.watch
    assert not r.write
    old = classify("GET", "/api/v1/watch/namespaces/ns1/pods")
    assert old.watch
    assert old.resource == "pods"


def test_cluster_scoped_and_non_resource_paths():
    assert classify("DELETE", "/api/v1/namespaces/ns1").resource == "namespaces"
    assert classify("DELETE", "/api/v1/namespaces/ns1").name == "ns1"
    assert classify("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions").resource == (
        "customresourcedefinitions")
    assert classify("GET", "/version").resource == "/version"
    assert classify("GET", "/apis/tikvops.io/v1alpha1").resource == "(group discovery)"


def test_request_counter_counts_by_host_and_path():
    counter = RequestCounter()
    counter.record("http://127.0.0.1:9090/api/v1/query?query=up")
    counter.record("http://127.0.0.1:9090/api/v1/query?query=x")
    counter.record("http://127.0.0.1:2379/pd/api/v1/stores")
    assert counter.total("/api/v1/query") == 2
    assert counter.total("/pd/api/v1/stores", "127.0.0.1:2379") == 1
    counter.reset()
    assert counter.total("/api/v1/query") == 0
