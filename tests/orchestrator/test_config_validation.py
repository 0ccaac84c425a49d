"""Every configuration key refuses bad values with one line naming the key, value and remedy.

The table covers every field of every section (a new field without bad values
fails ``test_the_table_covers_every_key``). Each bad value goes in the way a
user would set it: its environment variable where it has one, else the TOML
file. The same table drives ``lmsorch serve``, which must exit 2 with that one
line and no traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mcp_frontend.cli import main
from orchestrator import Config, ConfigError
from orchestrator.config import LlamaCppSettings, LMStudioSettings
from orchestrator.config_checks import LMSTUDIO_ENV

SECONDS = ["-1", "0", "nan", "inf", "1e12", "soon"]
SECONDS_OR_ZERO = ["-1", "inf", "1e12", "later"]

# (section, field) -> bad values, each written as the raw text a user would type.
BAD: dict[tuple[str, str], list[str]] = {
    ("", "backend"): ["olama", ""],
    ("", "default_model"): ["", "   "],
    ("", "default_embedding_model"): [" "],
    **{
        ("", f): SECONDS
        for f in (
            "default_ttl_s",
            "temporary_ttl_s",
            "max_ttl_s",
            "request_timeout_s",
            "verify_initial_interval_s",
            "verify_max_interval_s",
            "verify_deadline_s",
            "breaker_cooldown_s",
            "unload_timeout_s",
            "shutdown_timeout_s",
            "reconcile_interval_s",
        )
    },
    **{
        ("", f): SECONDS_OR_ZERO
        for f in (
            "retry_initial_s",
            "retry_max_s",
            "retry_jitter_s",
            "catalog_ttl_s",
        )
    },
    ("", "retry_attempts"): ["0", "-3", "1000", "1.5", "x"],
    ("", "breaker_threshold"): ["0", "-1", "99999999", "x"],
    ("", "max_loaded_models"): ["0", "-1", "100000", "many"],
    ("", "memory_budget_bytes"): ["-1", "0", "1e400", "lots"],
    ("", "scheduler"): ["lru", ""],
    ("", "swap_max_wait_s"): ["0", "-1", "inf", "soon"],
    ("", "swap_wait_load_factor"): ["-1", "nan", "1e9", "big"],
    ("", "swap_wait_floor_s"): ["0", "-2", "inf"],
    ("", "swap_max_batches"): ["0", "-1", "many"],
    ("", "mailbox_size"): ["0", "10000000000", "x"],
    ("", "adopt_loaded"): ["maybe", "2"],
    ("", "manage_foreign"): ["perhaps", "3"],
    ("", "allow_downloads"): ["maybe", "2"],
    ("", "log_level"): ["loud", ""],
    ("lmstudio", "base_url"): ["localhost:1234", "ftp://host", "http://:80", "http://h:99999"],
    ("lmstudio", "api_token"): ['""', '"  "'],
    ("lmstudio", "lms_cli"): ["/nonexistent/lms", "no-such-lms-binary"],
    ("lmstudio", "prefer_cli"): ['"maybe"', "2"],
    **{
        ("lmstudio", f): ["-1", "0", "inf", '"x"']
        for f in (
            "cli_timeout_s",
            "read_timeout_s",
            "http_timeout_s",
            "load_timeout_s",
            "download_poll_s",
        )
    },
    ("llamacpp", "models_dir"): [""],
    ("llamacpp", "threads"): ["0", "-2", "5000", "x"],
    ("llamacpp", "parallel"): ["0", "-1", "257", "x"],
    ("llamacpp", "context_length"): ["0", "-1", "99999999999", "x"],
    ("llamacpp", "port_min"): ["80", "70000", "x"],
    ("llamacpp", "port_max"): ["0", "70000", "18000"],  # 18000 < the default port_min
    ("llamacpp", "server_binary"): ["/nonexistent/llama-server"],
    ("llamacpp", "start_timeout_s"): SECONDS,
    ("llamacpp", "stop_timeout_s"): SECONDS,
    ("llamacpp", "download_allow_http_loopback"): ['"maybe"', "2"],
}
SECTIONS = {"": Config, "lmstudio": LMStudioSettings, "llamacpp": LlamaCppSettings}
CASES = [(section, name, value) for (section, name), values in BAD.items() for value in values]


def _variable(section: str, name: str) -> str | None:
    if section == "":
        return f"LMSORCH_{name.upper()}"
    if section == "llamacpp":
        return f"LMSORCH_LLAMACPP_{name.upper()}"
    return LMSTUDIO_ENV.get(name) if name != "api_token" else None  # empty env = unset


def _toml_value(value: str) -> str:
    """Numbers and quoted strings stay as written; anything else becomes a TOML string."""
    try:
        float(value)
    except ValueError:
        return value if value.startswith('"') else f'"{value}"'
    return value if value not in ("nan", "inf") else f'"{value}"'


def _set(section: str, name: str, value: str, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment and config file that set ``section.name`` to ``value``."""
    config = tmp_path / "lmsorch.toml"
    variable = _variable(section, name)
    if variable is not None:
        config.write_text("")
        return {variable: value.strip('"')}, config
    header = f"[{section}]\n" if section else ""
    config.write_text(f"{header}{name} = {_toml_value(value)}\n")
    return {}, config


def _as_number(text: str) -> str:
    try:
        return repr(float(text))
    except ValueError:
        return text


def test_the_table_covers_every_key() -> None:
    keys = {
        (section, name)
        for section, cls in SECTIONS.items()
        for name in cls.__struct_fields__
        if name not in ("lmstudio", "llamacpp")
    }
    assert keys == set(BAD)


@pytest.mark.parametrize(("section", "name", "value"), CASES)
def test_a_bad_value_is_one_line_naming_the_key(
    section: str, name: str, value: str, tmp_path: Path
) -> None:
    env, config = _set(section, name, value, tmp_path)
    with pytest.raises(ConfigError) as caught:
        Config.load(config, env=env)
    message = str(caught.value)
    assert "\n" not in message
    key = f"{section}.{name}" if section else name
    assert message.startswith(f"{key} = ") or f" {key} = " in message, message
    given = value.strip('"').strip()
    assert given in message or _as_number(given) in message, message  # the value given
    assert "(set by " in message  # and where to change it


@pytest.mark.parametrize(("section", "name", "value"), CASES[::3])
def test_serve_exits_2_with_one_line_and_no_traceback(
    section: str,
    name: str,
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env, config = _set(section, name, value, tmp_path)
    for variable, text in env.items():
        monkeypatch.setenv(variable, text)
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("lmsorch serve: error: ")
    assert "Traceback" not in err[0]


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("LMSORCH_DEFUALT_TTL_S", "LMSORCH_DEFAULT_TTL_S"),
        ("LMSORCH_MAX_LOADED_MODEL", "LMSORCH_MAX_LOADED_MODELS"),
        ("LMSORCH_LLAMACPP_THREAD", "LMSORCH_LLAMACPP_THREADS"),
        ("LMSORCH_HTTP_TOKNE", "LMSORCH_HTTP_TOKEN"),
    ],
)
def test_a_misspelt_variable_is_refused_with_the_closest_name(
    variable: str, suggestion: str
) -> None:
    with pytest.raises(ConfigError, match=f"{variable}: did you mean {suggestion}\\?"):
        Config.load(env={variable: "1"})


def test_variables_read_by_other_parts_are_not_refused() -> None:
    env = {
        "LMSORCH_CONFIG": "",
        "LMSORCH_HTTP_TOKEN": "t",
        "LMSORCH_STATUS_URL": "http://127.0.0.1:8765",
        "LMSORCH_MCP_MAX_IMAGES": "2",  # checked by the MCP settings, which know their names
        "LMSORCH_AGENT_MAX_ROUNDS": "3",
    }
    assert Config.load(env=env).default_ttl_s == 600.0


def test_the_real_process_exits_2_with_one_line(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "mcp_frontend.cli", "serve"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LMSORCH_LLAMACPP_PORT_MIN": "80"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "llamacpp.port_min = 80" in result.stderr
