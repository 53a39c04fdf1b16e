"""Tests for the jittered, capped exponential back-off (``agents/core/backoff.py``).

Covers: every delay lies in ``[base/2, base]`` with ``base = min(maximum, initial * factor**attempt)``;
the cap at ``maximum`` (also after very many attempts); ``reset()``; parameter validation; and that a
seeded RNG gives reproducible, actually jittered delays.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.core.backoff import Backoff


def expected_base(initial: float, maximum: float, factor: float, attempt: int) -> float:
    return min(maximum, initial * factor**attempt)


def test_defaults() -> None:
    backoff = Backoff()
    assert (backoff.initial, backoff.maximum, backoff.factor, backoff.attempt) == (0.5, 60.0, 2.0, 0)


def test_delays_within_equal_jitter_bounds() -> None:
    backoff = Backoff(initial=0.5, maximum=60.0, factor=2.0, rng=random.Random(1))
    for attempt in range(20):
        base = expected_base(0.5, 60.0, 2.0, attempt)
        delay = backoff.next_delay()
        assert base / 2 <= delay <= base, (attempt, delay)
        assert backoff.attempt == attempt + 1


def test_delays_grow_then_are_capped_at_maximum() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, factor=2.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(50)]
    # attempts 0..3 have bases 1, 2, 4, 8; from attempt 3 on the base stays at the cap.
    assert 0.5 <= delays[0] <= 1.0
    assert 1.0 <= delays[1] <= 2.0
    assert 2.0 <= delays[2] <= 4.0
    assert all(4.0 <= d <= 8.0 for d in delays[3:])
    assert max(delays) <= 8.0


def test_many_attempts_do_not_overflow() -> None:
    backoff = Backoff(initial=0.5, maximum=60.0, factor=2.0, rng=random.Random(3))
    backoff.attempt = 10_000
    for _ in range(5):
        assert 30.0 <= backoff.next_delay() <= 60.0


def test_reset_starts_over() -> None:
    backoff = Backoff(initial=1.0, maximum=100.0, factor=3.0, rng=random.Random(5))
    for _ in range(6):
        backoff.next_delay()
    assert backoff.attempt == 6
    backoff.reset()
    assert backoff.attempt == 0
    assert 0.5 <= backoff.next_delay() <= 1.0
    assert backoff.attempt == 1


def test_factor_one_gives_constant_base() -> None:
    backoff = Backoff(initial=2.0, maximum=2.0, factor=1.0, rng=random.Random(11))
    assert all(1.0 <= backoff.next_delay() <= 2.0 for _ in range(100))


@pytest.mark.parametrize(
    ("initial", "maximum", "factor"),
    [
        (0.0, 10.0, 2.0),
        (-1.0, 10.0, 2.0),
        (5.0, 1.0, 2.0),
        (1.0, 10.0, 0.5),
        (1.0, 10.0, 0.0),
        (1.0, 10.0, -2.0),
    ],
)
def test_invalid_parameters_raise_value_error(initial: float, maximum: float, factor: float) -> None:
    with pytest.raises(ValueError, match="back-off needs"):
        Backoff(initial=initial, maximum=maximum, factor=factor)


def test_seeded_rng_is_jittered_and_reproducible() -> None:
    first = Backoff(initial=4.0, maximum=4.0, factor=2.0, rng=random.Random(42))
    second = Backoff(initial=4.0, maximum=4.0, factor=2.0, rng=random.Random(42))
    a = [first.next_delay() for _ in range(20)]
    b = [second.next_delay() for _ in range(20)]
    assert a == b
    # Same base every time, yet the delays differ: jitter is applied.
    assert len(set(a)) > 10
    assert all(2.0 <= d <= 4.0 for d in a)


def test_different_gateways_do_not_reconnect_in_lock_step() -> None:
    delays = [Backoff(initial=1.0, maximum=1.0, rng=random.Random(seed)).next_delay() for seed in range(50)]
    assert len(set(delays)) == 50
    assert all(0.5 <= d <= 1.0 for d in delays)


@settings(max_examples=300, deadline=None)
@given(
    initial=st.floats(min_value=1e-3, max_value=100.0),
    extra=st.floats(min_value=0.0, max_value=1000.0),
    factor=st.floats(min_value=1.0, max_value=10.0),
    attempts=st.integers(min_value=1, max_value=80),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_delay_bounds_property(initial: float, extra: float, factor: float, attempts: int, seed: int) -> None:
    maximum = initial + extra
    backoff = Backoff(initial=initial, maximum=maximum, factor=factor, rng=random.Random(seed))
    for attempt in range(attempts):
        base = min(maximum, initial * factor ** min(attempt, 64))
        delay = backoff.next_delay()
        assert base / 2 <= delay <= base
        assert delay <= maximum
