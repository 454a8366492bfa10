"""Values printed the way PD (Go) prints them."""

import json

import pytest

from tikv_sim.go_format import go_duration, go_float, rfc3339_nano
from tikv_sim.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (96.73 * 1024**3, "96.73GiB"),
        (1.636 * 1024**4, "1.636TiB"),
        (292.5 * 1024**2, "292.5MiB"),
        (100 * 1024**3, "100GiB"),
        (1023.99 * 1024**2, "1024MiB"),  # %.4g rounds up without switching unit, as go-units does
    ],
)
def test_sizes_have_four_significant_digits_binary_units_and_no_space(size: float, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize("text", ["96.73GiB", "1.636TiB", "0B", "937 GiB"])
def test_sizes_parse_back_in_both_pd_styles(text: str) -> None:
    assert format_size(parse_size(text)) == text.replace(" ", "")


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (8 * 3600 * 10**9 + 20 * 60 * 10**9 + 120_000_000, "8h20m0.12s"),
        (90 * 10**9, "1m30s"),
        (3600 * 10**9, "1h0m0s"),
        (1_500_000, "1.5ms"),
        (2_500, "2.5µs"),
        (999, "999ns"),
        (10**9 + 1, "1.000000001s"),
    ],
)
def test_uptime_is_a_go_duration_string(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def test_timestamps_are_rfc3339_with_nanoseconds_trimmed() -> None:
    assert rfc3339_nano(1_764_000_000 * 10**9) == "2025-11-24T16:00:00Z"
    assert rfc3339_nano(1_764_030_000_123_456_789) == "2025-11-25T00:20:00.123456789Z"
    assert rfc3339_nano(1_764_030_000_120_000_000) == "2025-11-25T00:20:00.12Z"


def test_whole_floats_are_printed_like_go() -> None:
    assert json.dumps({"w": go_float(1.0), "s": go_float(617.73)}) == '{"w": 1, "s": 617.73}'
