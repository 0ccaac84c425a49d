"""Model names reach the ``lms`` argv and URLs: whatever is accepted is safe there.

Property-based: for any string, ``validate_model_name`` either accepts it, and
then it cannot be read as an option, escape a path, or carry whitespace,
control or non-ASCII characters; or refuses it with a short, printable message.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import InvalidModelName
from orchestrator.names import MAX_MODEL_NAME_LENGTH, validate_model_name

from .hostile import hostile_names

SAFE = set(string.ascii_letters + string.digits + "._-/@:+()")
names = st.one_of(
    hostile_names,
    st.text(),
    st.text(alphabet="./-@:+()\\ \t\nab", max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=400),
)


@settings(max_examples=500)
@given(names)
def test_accepted_names_are_safe_in_argv_and_urls(name: str) -> None:
    try:
        accepted = validate_model_name(name)
    except InvalidModelName as exc:
        message = str(exc)
        assert len(message) <= 250
        assert message.isprintable()
        return

    assert accepted == name
    assert set(name) <= SAFE
    assert 0 < len(name) <= MAX_MODEL_NAME_LENGTH
    assert not name.startswith("-")
    assert ".." not in name.replace("\\", "/").replace(":", "/").replace("@", "/").split("/")


def test_keys_of_user_imported_models_are_accepted() -> None:
    """F14: LM Studio keys may carry ``+`` and parentheses; ``$``, spaces, ``;`` stay out."""
    for key in ("me/Llama-3+RP(Q4_K_M)", "c++coder", "model(1)"):
        assert validate_model_name(key) == key
    for bad in ("$(id)", "a b", "a;b", "-(x)"):
        with pytest.raises(InvalidModelName):
            validate_model_name(bad)
