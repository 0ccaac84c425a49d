"""Hypothesis strategies for hostile tool arguments, derived from each tool's input schema.

:func:`arguments_for` builds a strategy from a tool's ``inputSchema``: every
property gets values of its schema's shape drawn from the hostile pool for its
name (:data:`FIELD_POOLS`), and the whole dictionary is then mutated: required
arguments dropped, values replaced by arbitrary JSON of the wrong type, and
unknown arguments added. A property whose name has no pool is a test failure
(see ``test_every_tool_argument_has_a_hostile_pool``), so a new tool's
arguments cannot go unfuzzed by accident.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from hypothesis import strategies as st

from .server_thread import PNG_1PX

__all__ = [
    "BASELINE",
    "FIELD_POOLS",
    "KNOWN_MODELS",
    "VALID",
    "VALID_VALUES",
    "arguments_for",
    "hostile_json",
    "hostile_names",
    "hostile_numbers",
    "hostile_text",
    "nested_dicts",
    "nested_lists",
]

KNOWN_MODELS = (
    "qwen/qwen3-4b",
    "google/gemma-3-4b",
    "openai/gpt-oss-20b",
    "text-embedding-nomic-embed-text-v1.5",
)
# Text that has broken parsers, shells, terminals and path checks somewhere.
_NASTY = (
    "",
    " ",
    "\x00",
    "\x1b[31mred\x1b[0m",
    "\r\n",
    "\u202e\u2066evil",  # bidi overrides
    "\ufeff",  # BOM (lone surrogates cannot cross JSON)
    "../../../../etc/passwd",
    "..",
    "/",
    "~",
    "~/.ssh/id_rsa",
    "-rf",
    "--help",
    "$(id)",
    "`id`",
    "; rm -rf /",
    "%00",
    "%2e%2e%2f",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "'; DROP TABLE models; --",
    "Ω≈ç√∫µ≤≥÷",
    "🔥" * 50,
    "a" * 10_000,
    "x" * 300_000,  # beyond max_prompt_chars (200 000)
)

hostile_text = st.one_of(
    st.sampled_from(_NASTY),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
)
"""Arbitrary and known-nasty text."""

hostile_names = st.one_of(
    st.sampled_from(KNOWN_MODELS),
    st.sampled_from(KNOWN_MODELS).map(lambda k: k.upper()),
    st.sampled_from(KNOWN_MODELS).map(lambda k: f"-{k}"),
    st.sampled_from(KNOWN_MODELS).map(lambda k: f"{k}/../../x"),
    st.sampled_from(KNOWN_MODELS).map(lambda k: f"{k}\x00"),
    st.sampled_from(KNOWN_MODELS).map(lambda k: f" {k}\n"),
    st.from_regex(r"[A-Za-z0-9._\-/@:]{1,300}", fullmatch=True),
    hostile_text,
)
"""Model names: real ones, near-misses, option and path injections, unicode, 10k characters."""

hostile_numbers = st.one_of(
    st.sampled_from(
        [0, -1, 1, 2, -0.0, 1e-300, 1e308, -1e308, 2**31, 2**63, 2**64 + 1, 10**30, 3.5, 1_000_001]
    ),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=True),
    st.sampled_from(["5", "soon", "inf", "NaN", "-1", "1e400", ""]),
)
"""Numbers out of every range (NaN is excluded: JSON cannot carry it from our client)."""


def hostile_json(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values, including deep nesting and wrong types."""
    leaves = st.one_of(
        st.none(), st.booleans(), hostile_numbers, hostile_text.map(lambda s: s[:200])
    )
    return st.one_of(
        st.recursive(
            leaves,
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=max_leaves,
        ),
        st.integers(1, 60).map(nested_lists),
        st.integers(1, 60).map(nested_dicts),
    )


def nested_lists(depth: int) -> Any:
    """``[[...[]...]]``, ``depth`` levels deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def nested_dicts(depth: int) -> Any:
    """``{"a": {"a": ...}}``, ``depth`` levels deep."""
    value: Any = {}
    for _ in range(depth):
        value = {"a": value}
    return value


_TTLS = st.one_of(
    hostile_numbers, st.floats(min_value=1e-6, max_value=1e6), st.just(math.inf), st.none()
)

_images_one = st.one_of(
    st.sampled_from(
        [
            "data:image/png;base64," + base64.b64encode(PNG_1PX).decode(),
            "data:image/png;base64,!!!!",
            "data:image/png;base64,",
            "data:image/png,raw",
            "data:text/html;base64," + base64.b64encode(b"<script>1</script>").decode(),
            "data:image/svg+xml;base64," + base64.b64encode(b"<svg/>").decode(),
            "data:image/png;base64," + "A" * 14_000_000,  # decodes to over the 10 MiB limit
            "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
            "data:;base64,",
            "data:",
            "/etc/passwd",
            "/etc/shadow",
            "/proc/self/environ",
            "/dev/zero",
            "/dev/stdin",
            "~/.ssh/id_rsa",
            "../../../../../../etc/hosts",
            "images/../../secret.png",
            "file:///etc/passwd",
            "http://127.0.0.1/x.png",
            "https://images.example/cat.png",
            "https://images.example/missing.png",
            "http://intranet/x.png",
            "http://localhost:1234/v1/models",
            "https://[::1/x",
            "http://2130706433/",
            "https://user:pw@images.example/cat.png",
            "http://169.254.169.254/latest/meta-data/",
            "https://[::1]/x.png",
            "gopher://127.0.0.1:25/",
            "\\\\server\\share\\x.png",
            "C:\\Windows\\win.ini",
            "a" * 5000,
        ]
    ),
    hostile_text,
)
_images = st.one_of(_images_one, st.lists(_images_one, max_size=10))
_workdirs_one = st.one_of(
    st.sampled_from(
        [
            "/",
            "~",
            "..",
            "../../..",
            "~/.ssh",
            "/proc/self",
            ".",
            "a\x00b",
            "file:///etc",
            "a" * 5000,
        ]
    ),
    hostile_text,
)

_schemas = st.one_of(
    st.sampled_from(
        [
            {},
            {"type": "object", "properties": {"a": {"type": "string"}}},
            {"$ref": "#"},
            {"$ref": "#/$defs/missing"},
            {
                "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
                "$ref": "#/$defs/a",
            },
            {"$ref": "http://169.254.169.254/schema.json"},
            {"$ref": "file:///etc/passwd"},
            {"$schema": "http://evil.example/schema", "type": "object"},
            {"type": "string", "pattern": "("},
            {"type": "string", "pattern": "(a+)+$"},
            {"type": "integer", "maximum": 10**40},
            {"type": 5},
            {"type": ["object", "null"]},
            {"properties": {f"p{i}": {"type": "string"} for i in range(3000)}},
            {"enum": list(range(20_000))},
            nested_dicts(200),
            {"items": nested_lists(100)},
        ]
    ),
    hostile_json().filter(lambda v: isinstance(v, dict)),
    st.recursive(
        st.just({"type": "string"}),
        lambda inner: (
            st.builds(lambda s: {"type": "object", "properties": {"x": s}}, inner)
            | st.builds(lambda s: {"type": "array", "items": s}, inner)
            | st.builds(lambda s, t: {"anyOf": [s, t]}, inner, inner)
        ),
        max_leaves=40,
    ),
)

_messages = st.one_of(
    st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["system", "user", "assistant", "tool", "developer", ""]),
                "content": st.one_of(hostile_text, hostile_json(4)),
            }
        ),
        max_size=6,
    ),
    st.lists(hostile_json(6), max_size=4),
)

FIELD_POOLS: dict[str, st.SearchStrategy[Any]] = {
    # names
    "model": hostile_names,
    # numbers
    "ttl_s": _TTLS,
    "timeout_s": _TTLS,
    "temperature": st.one_of(hostile_numbers, st.floats(0, 2)),
    "max_tokens": st.one_of(hostile_numbers, st.integers(1, 64)),
    "max_output_tokens": st.one_of(hostile_numbers, st.integers(1, 64)),
    "context_length": st.one_of(hostile_numbers, st.integers(1, 65536)),
    # text
    "prompt": hostile_text,
    "system_prompt": hostile_text,
    "input_text": hostile_text,
    "instructions": hostile_text,
    "question": hostile_text,
    "text": st.one_of(hostile_text, st.lists(hostile_text, max_size=8), st.just(["x"] * 600)),
    "stop_sequences": st.lists(hostile_text, max_size=20),
    "previous_response_id": st.one_of(
        hostile_text, st.from_regex(r"[A-Za-z0-9_-]{1,200}", fullmatch=True)
    ),
    # structured
    "messages": _messages,
    "response_format": st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["json_schema", "json_schema", "text", "json_object"]),
                "json_schema": st.fixed_dictionaries(
                    {"name": st.one_of(st.just("answer"), hostile_text), "schema": _schemas},
                    optional={"strict": st.one_of(st.booleans(), hostile_text)},
                ),
            }
        ),
        hostile_json(8),
    ),
    "schema": _schemas,
    # images
    "images": _images,
    # enums and flags: the schema's own values plus junk
    "kind": st.one_of(st.sampled_from(["llm", "vlm", "embedding", "LLM", "*"]), hostile_text),
    "mode": st.one_of(
        st.sampled_from(["describe", "ocr", "compare", "objects", "question"]), hostile_text
    ),
    "style": st.one_of(
        st.sampled_from(["detailed", "brief", "technical", "creative"]), hostile_text
    ),
    "detail": st.one_of(st.sampled_from(["auto", "low", "high"]), hostile_text),
    "reasoning_effort": st.one_of(st.sampled_from(["low", "medium", "high"]), hostile_text),
    "reasoning": st.one_of(st.sampled_from(["off", "low", "medium", "high"]), hostile_text),
    "refresh": st.one_of(st.booleans(), hostile_json(2)),
    "check": st.one_of(st.booleans(), hostile_json(2)),
    # agent tools
    "task": hostile_text,
    "max_rounds": st.one_of(hostile_numbers, st.integers(1, 3)),
    "api": st.one_of(st.sampled_from(["chat", "responses"]), hostile_text),
    "mcp_name": st.one_of(st.sampled_from(["filesystem", "../x", "-e", "*"]), hostile_text),
    "mcp_names": st.lists(
        st.one_of(st.sampled_from(["filesystem", "../x", "-e", "*"]), hostile_text), max_size=25
    ),
    "keep_loaded": st.one_of(st.booleans(), hostile_json(2)),
    # listing and downloads
    "key_contains": st.one_of(st.sampled_from(["", "qwen", "%", ".*", "\x00"]), hostile_text),
    "quantization": st.one_of(st.sampled_from(["Q4_K_M", "", "@", "../x"]), hostile_text),
    "wait": st.one_of(st.booleans(), hostile_json(2)),
    "job_id": st.one_of(st.sampled_from(["dl-1", "dl-0", "", "../x"]), hostile_text),
    "working_directory": st.one_of(
        _workdirs_one, st.lists(_workdirs_one, max_size=10), hostile_json(2)
    ),
}
"""Hostile values by argument name; every tool argument must have one."""


_DATA_URL = "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()

VALID_VALUES: dict[str, Any] = {
    "model": KNOWN_MODELS[0],
    "prompt": "say hi",
    "input_text": "say hi",
    "text": "embed me",
    "task": "say hi",
    "mcp_name": "filesystem",
    "mcp_names": ["filesystem"],
    "images": _DATA_URL,
    "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
    "job_id": "dl-1",
}
VALID: dict[str, st.SearchStrategy[Any]] = {n: st.just(v) for n, v in VALID_VALUES.items()} | {
    "model": st.sampled_from(KNOWN_MODELS)
}
"""Well-formed values for required arguments, so a call gets past them to the hostile one."""

BASELINE: dict[str, dict[str, Any]] = {"chat_completion": {"prompt": "say hi"}}
"""Optional arguments a tool needs one of (chat takes a prompt or messages)."""


@st.composite
def arguments_for(draw: st.DrawFn, tool: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments for ``tool``: valid ones, one or two of them hostile, sometimes mangled.

    Raises:
        KeyError: an argument has no pool in :data:`FIELD_POOLS` (or, if required,
            no value in :data:`VALID`).
    """
    properties = sorted(schema.get("properties", {}))
    pools = {name: FIELD_POOLS[name] for name in properties}
    args: dict[str, Any] = {n: draw(VALID[n]) for n in schema.get("required", [])}
    args |= BASELINE.get(tool, {})
    if properties:
        for name in draw(
            st.lists(st.sampled_from(properties), min_size=1, max_size=2, unique=True)
        ):
            args[name] = draw(pools[name])
            if name == "messages":
                args.pop("prompt", None)
    dice = draw(st.integers(0, 9))
    if dice == 7 and args:  # a required or chosen argument goes missing
        args.pop(draw(st.sampled_from(sorted(args))))
    elif dice == 8 and properties:  # a value of the wrong type entirely
        args[draw(st.sampled_from(properties))] = draw(hostile_json(6))
    elif dice == 9:  # names the tool does not take
        extra = st.one_of(
            st.sampled_from(["__proto__", "", "x" * 500, "Model", "model ", "temprature"]),
            st.text(max_size=10),
        )
        args |= draw(st.dictionaries(extra, hostile_json(4), min_size=1, max_size=2))
    return args
