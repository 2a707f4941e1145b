"""Retry policy of apply, as values: the exact backoff sequence and the journal payload."""

from __future__ import annotations

from reconciler.app.apply import BACKOFF, result_ids_of_payload
from reconciler.app.backoff import wait_seconds
from reconciler.app.watch import ERROR_BACKOFF


def test_infrastructure_backoff_doubles_from_2_s_up_to_120_s() -> None:
    waits = [wait_seconds(BACKOFF, attempt=attempt) for attempt in range(1, 10)]
    assert waits == [2, 4, 8, 16, 32, 64, 120, 120, 120]


def test_a_failing_watch_pass_backs_off_from_5_s_up_to_5_minutes() -> None:
    waits = [wait_seconds(ERROR_BACKOFF, attempt=attempt) for attempt in range(1, 9)]
    assert waits == [5, 10, 20, 40, 80, 160, 300, 300]


def test_a_lease_payload_names_exactly_the_results_of_its_batch() -> None:
    from reconciler.core.identity import result_identity

    preimage = {"v": 1, "build": "b" * 64, "test": "t/a", "timeout": 5}
    payload = (
        '{"subtests": ["one", "two"], "unit": "u", "unit_preimage": '
        '{"build": "' + "b" * 64 + '", "test": "t/a", "timeout": 5, "v": 1}}'
    )
    assert result_ids_of_payload(payload) == [
        result_identity(preimage, "one").hex,
        result_identity(preimage, "two").hex,
    ]
