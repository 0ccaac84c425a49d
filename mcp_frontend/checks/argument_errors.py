"""Argument errors in the documented trimmed form: field, problem, accepted values.

The SDK reports a missing or wrong-typed argument with pydantic's own text:
a header naming an internal model (``load_modelArguments``), each problem
followed by ``[type=..., input_value=..., input_type=...]`` and a line
pointing at a pydantic.dev URL. A calling model needs none of that; it needs
which field, what is wrong, and (for a choice) which values are accepted,
which pydantic's problem line already says (``Input should be 'system',
'user' or 'assistant'``). :func:`trim_validation_error` rewrites the text to::

    Error executing tool load_model: 1 argument error
    model
      Field required

and leaves any other text alone.
"""

from __future__ import annotations

import re

__all__ = ["trim_validation_error"]

_HEADER = re.compile(r"^(?P<prefix>.*?: )?(?P<count>\d+) validation errors? for \w+Arguments$")
_DETAIL = re.compile(r"\s*\[type=[^\],]*(?:,.*)?\]$")
_URL = re.compile(r"^\s+For further information visit https?://\S+$")


def trim_validation_error(text: str) -> str:
    """Return ``text`` in the trimmed form if it is a pydantic argument error, else unchanged.

    Args:
        text: the text of a tool error result.

    Returns:
        The header as ``N argument error(s)``, then each field and its problem,
        without pydantic's type tags, input echoes and documentation URLs.
    """
    lines = text.split("\n")
    header = _HEADER.match(lines[0])
    if header is None:
        return text
    count = int(header["count"])
    out = [f"{header['prefix'] or ''}{count} argument error{'s' if count != 1 else ''}"]
    for line in lines[1:]:
        if _URL.match(line):
            continue
        out.append(_DETAIL.sub("", line))
    return "\n".join(out)
