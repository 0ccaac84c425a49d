"""Model names, case by case: each refusal for its own reason, and the boundaries.

The property test in ``tests/security`` shows that whatever is accepted is safe;
these pin down *why* a name is refused (the message an agent reads) and the
edges a random search finds only by luck: exactly 256 characters, non-string
input, and a ``..`` segment next to each separator.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import InvalidModelName
from orchestrator.names import MAX_MODEL_NAME_LENGTH, validate_model_name


def reason(name: object) -> str:
    with pytest.raises(InvalidModelName) as info:
        validate_model_name(name)
    return info.value.reason


def test_the_limit_is_256_characters_inclusive() -> None:
    assert MAX_MODEL_NAME_LENGTH == 256
    exactly = "a" * 256
    assert validate_model_name(exactly) == exactly
    assert reason("a" * 257) == "longer than 256 characters"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a" * 255 + "$", "contains '$'; allowed: letters, digits and ._-/@:+()"),
        ("-" + "a" * 255, "must not start with '-'"),
        ("a" * 253 + "/..", "contains a '..' path segment"),
    ],
)
def test_a_name_of_exactly_256_characters_is_refused_for_its_real_fault(
    name: str, why: str
) -> None:
    assert len(name) == MAX_MODEL_NAME_LENGTH
    assert reason(name) == why  # not "longer than 256 characters": it is not


@pytest.mark.parametrize(("name", "type_name"), [(None, "NoneType"), (42, "int"), (b"m", "bytes")])
def test_a_name_that_is_not_a_string_is_refused_as_such(name: object, type_name: str) -> None:
    assert reason(name) == f"must be a string, not {type_name}"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("-m", "must not start with '-'"),
        ("a\x00b", "contains control characters"),
        ("a\x7fb", "contains control characters"),
        ("a b", "contains whitespace"),
        ("a\u00a0b", "contains whitespace"),  # non-ASCII space: not a control character
    ],
)
def test_each_refusal_names_its_own_reason(name: str, why: str) -> None:
    assert reason(name) == why


@pytest.mark.parametrize(
    "name",
    ["..", "a/..", "../a", "a/../b", "a:..", "..:a", "a@..", "..@a", "a\\..\\b", "a:../b"],
)
def test_a_dot_dot_segment_next_to_any_separator_is_refused(name: str) -> None:
    assert reason(name) == "contains a '..' path segment"


@pytest.mark.parametrize(
    "name", ["a..b", "...", "a/.../b", "a.b", "org/model:q4@v2", "A-Z_0.9", "m-"]
)
def test_dots_that_are_not_a_whole_segment_are_accepted(name: str) -> None:
    assert validate_model_name(name) == name


def test_characters_outside_the_alphabet_are_listed_sorted_and_capped_at_eight() -> None:
    assert reason("a$b") == "contains '$'; allowed: letters, digits and ._-/@:+()"
    assert reason("a\\b") == "contains '\\\\'; allowed: letters, digits and ._-/@:+()"
    nine = "".join(sorted("!#$%&*;=~"))
    assert reason(nine) == f"contains {nine[:8]!r}...; allowed: letters, digits and ._-/@:+()"
    assert reason("!#$%&*;=") == "contains '!#$%&*;='; allowed: letters, digits and ._-/@:+()"


_ALPHABET = set(string.ascii_letters + string.digits + "._-/@:+()")


def _breaks_no_rule(name: str) -> bool:
    """The documented rules, one by one (the function has a fast path for valid names)."""
    segments = name.replace("\\", "/").replace(":", "/").replace("@", "/").split("/")
    return (
        bool(name.strip())
        and len(name) <= MAX_MODEL_NAME_LENGTH
        and not name.startswith("-")
        and set(name) <= _ALPHABET
        and ".." not in segments
    )


@settings(max_examples=500)
@given(
    st.one_of(
        st.text(alphabet="./-@:+()\\ \t\x00\x7fé_aZ9", max_size=12),
        st.text(alphabet="a./-", min_size=250, max_size=260),
        st.text(max_size=40),
    )
)
def test_a_name_is_accepted_exactly_when_it_breaks_no_rule(name: str) -> None:
    try:
        accepted = validate_model_name(name)
    except InvalidModelName:
        assert not _breaks_no_rule(name)
    else:
        assert accepted == name
        assert _breaks_no_rule(name)
