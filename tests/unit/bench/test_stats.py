"""The benchmarks' figure helpers: percentiles, histogram quantiles, exposition parsing."""

import math

import pytest
from bench.stats import (
    bucket_delta,
    fmt,
    fraction_at_most,
    histogram_buckets,
    histogram_quantile,
    parse_samples,
    percentile,
    summarize,
)


def test_percentile_interpolates_like_numpy():
    values = [1, 2, 3, 4]
    assert percentile(values, 0) == 1
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4
    assert percentile(range(1, 21), 99) == pytest.approx(19.81)


def test_percentile_edge_cases():
    assert math.isnan(percentile([], 50))
    assert percentile([7], 99) == 7
    with pytest.raises(ValueError, match="within"):
        percentile([1], 101)


def test_summarize():
    s = summarize([3.0, 1.0, 2.0])
    assert (s.n, s.mean, s.p50, s.minimum, s.maximum) == (3, 2.0, 2.0, 1.0, 3.0)
    assert summarize([]).n == 0


def test_histogram_quantile_matches_prometheus():
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.3)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)


def test_histogram_quantile_in_the_inf_bucket_gives_the_highest_bound():
    assert histogram_quantile(0.99, [(1.0, 1.0), (math.inf, 10.0)]) == 1.0


def test_histogram_quantile_without_observations_is_nan():
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))


EXPOSITION = """\
# HELP tikv_operator_check_lag_seconds Delay
# TYPE tikv_operator_check_lag_seconds histogram
tikv_operator_check_lag_seconds_bucket{le="0.1"} 8.0
tikv_operator_check_lag_seconds_bucket{le="1.0"} 9.0
tikv_operator_check_lag_seconds_bucket{le="+Inf"} 10.0
tikv_operator_check_lag_seconds_count 10.0
tikv_operator_checks_total{namespace="a",cluster="x"} 3.0
tikv_operator_checks_total{namespace="a",cluster="y"} 4.0
tikv_operator_checks_created{namespace="a",cluster="y"} 1.7e9
"""


def test_parse_samples_and_buckets():
    assert sum(v for _, v in parse_samples(EXPOSITION, "tikv_operator_checks_total")) == 7
    assert parse_samples(EXPOSITION, "tikv_operator_checks_total")[0][0] == {"namespace": "a", "cluster": "x"}
    buckets = histogram_buckets(EXPOSITION, "tikv_operator_check_lag_seconds")
    assert buckets == [(0.1, 8.0), (1.0, 9.0), (math.inf, 10.0)]
    assert fraction_at_most(1.0, buckets) == 0.9


def test_bucket_delta():
    before = [(1.0, 2.0), (math.inf, 3.0)]
    after = [(1.0, 5.0), (math.inf, 9.0)]
    assert bucket_delta(after, before) == [(1.0, 3.0), (math.inf, 6.0)]


def test_fmt():
    assert fmt(float("nan")) == "n/a"
    assert fmt(0.0) == "0"
    assert fmt(0.012345) == "0.0123"
    assert fmt(12345.6) == "12346"
