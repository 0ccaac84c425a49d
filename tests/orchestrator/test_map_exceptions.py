"""map_exceptions: foreign exceptions become ours at the backend seam, with the cause kept."""

from __future__ import annotations

import pytest

from orchestrator import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnreachable,
    UnknownModel,
)
from orchestrator.errors import map_exceptions

MAPPING: dict[type[Exception], type[BackendError]] = {
    ConnectionError: BackendUnreachable,
    TimeoutError: BackendTimeout,
    OSError: BackendProtocolError,
}


def test_a_foreign_exception_becomes_ours_with_its_message_and_cause() -> None:
    original = ConnectionRefusedError("connection refused by 127.0.0.1:1234")
    with pytest.raises(BackendUnreachable) as caught, map_exceptions(MAPPING):
        raise original
    assert str(caught.value) == "connection refused by 127.0.0.1:1234"
    assert caught.value.__cause__ is original


def test_the_first_matching_entry_wins() -> None:
    # TimeoutError is an OSError too: its own entry comes first, so it is a timeout.
    with pytest.raises(BackendTimeout), map_exceptions(MAPPING):
        raise TimeoutError("read timed out")
    with pytest.raises(BackendProtocolError), map_exceptions(MAPPING):
        raise FileNotFoundError("gone")


def test_a_message_is_bounded_and_an_empty_one_names_the_type() -> None:
    with pytest.raises(BackendUnreachable) as caught, map_exceptions(MAPPING):
        raise ConnectionResetError("x" * 10_000)
    assert len(str(caught.value)) < 1_000
    with (
        pytest.raises(BackendUnreachable, match=r"^ConnectionResetError$"),
        map_exceptions(MAPPING),
    ):
        raise ConnectionResetError()


def test_our_errors_and_unmatched_ones_pass_through_unchanged() -> None:
    ours = UnknownModel("m", ["a"])
    with pytest.raises(UnknownModel) as caught, map_exceptions(MAPPING):
        raise ours
    assert caught.value is ours
    with pytest.raises(KeyError), map_exceptions(MAPPING):
        raise KeyError("not mapped")
