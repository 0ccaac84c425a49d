"""Settings from the environment, ``--http`` parsing, and the ``serve`` command's guards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_frontend import cli
from mcp_frontend.backend_factory import make_backend
from mcp_frontend.settings import FrontendSettings
from mcp_frontend.transports.http import check_exposure, parse_bind
from orchestrator import Config, ConfigError
from tests.reliability.server_process import server_env

ROOT = Path(__file__).resolve().parents[2]


def test_settings_come_from_lmsorch_mcp_variables(tmp_path: Path) -> None:
    env = {
        "LMSORCH_MCP_ALLOWED_IMAGE_ROOTS": f"{tmp_path}{os.pathsep}~/pictures",
        "LMSORCH_MCP_ALLOW_REMOTE_IMAGES": "true",
        "LMSORCH_MCP_MAX_PROMPT_CHARS": "1000",
        "LMSORCH_MCP_MAX_IMAGE_BYTES": "2048",
        "UNRELATED": "x",
    }

    s = FrontendSettings.from_env(env)

    assert s.allowed_image_roots == (str(tmp_path), "~/pictures")
    assert s.image_roots() == (tmp_path.resolve(), Path("~/pictures").expanduser().resolve())
    assert (s.allow_remote_images, s.max_prompt_chars, s.max_image_bytes) == (True, 1000, 2048)


def test_defaults_read_images_from_the_current_directory_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    s = FrontendSettings.from_env({})

    assert s.image_roots() == (tmp_path.resolve(),)
    assert s.allow_remote_images is False


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"LMSORCH_MCP_MAX_PROMT_CHARS": "5"},
            "unknown setting LMSORCH_MCP_MAX_PROMT_CHARS; "
            "did you mean LMSORCH_MCP_MAX_PROMPT_CHARS",
        ),
        ({"LMSORCH_MCP_MAX_PROMPT_CHARS": "lots"}, "invalid MCP frontend setting"),
        ({"LMSORCH_MCP_MAX_IMAGES": "0"}, "LMSORCH_MCP_MAX_IMAGES must be at least 1"),
        ({"LMSORCH_MCP_PROGRESS_INTERVAL_S": "-1"}, "must be a positive number"),
    ],
)
def test_bad_settings_are_config_errors(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        FrontendSettings.from_env(env)


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        ("8765", ("127.0.0.1", 8765)),
        (":8765", ("127.0.0.1", 8765)),
        ("[::1]:9000", ("::1", 9000)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_http_binds_parse(text: str, bind: tuple[str, int]) -> None:
    assert parse_bind(text) == bind


@pytest.mark.parametrize("text", ["localhost:http", "1.2.3.4:70000", ""])
def test_bad_http_binds_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_bind(text)


def test_only_loopback_may_go_without_a_token() -> None:
    check_exposure("127.0.0.1", None)
    check_exposure("::1", None)
    check_exposure("localhost", None)
    check_exposure("0.0.0.0", "token")
    with pytest.raises(ConfigError, match=r"refusing to serve on 0\.0\.0\.0 without a token"):
        check_exposure("0.0.0.0", None)


def test_serve_refuses_an_exposed_bind_without_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LMSORCH_HTTP_TOKEN", raising=False)

    code = cli.main(["serve", "--http", "0.0.0.0:8765"])

    assert code == 2
    assert "refusing to serve on 0.0.0.0 without a token" in capsys.readouterr().err


async def test_the_backend_factory_builds_the_configured_backend(tmp_path: Path) -> None:
    config = Config.load(env={"LMSORCH_LLAMACPP_MODELS_DIR": str(tmp_path)})

    for kind in ("llamacpp", "lmstudio", None):
        backend = make_backend(config, kind)
        assert backend.name == (kind or config.backend)
        await backend.aclose()
    with pytest.raises(ConfigError, match="unknown backend 'ollama'"):
        make_backend(config, "ollama")


def test_the_cli_help_does_not_import_the_mcp_sdk() -> None:
    probe = "import sys, mcp_frontend.cli as c; c._parser(); print('mcp' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"


# Run in a fresh interpreter from the checkout (where ``benchmarks`` is importable): the
# whole ``lmsorch serve`` path, parser to server, until stdin's EOF stops it.
_SERVE_AND_REPORT = """
import json, sys
before = list(sys.path)
from mcp_frontend.cli import main
code = main(["serve", "--backend", "llamacpp"])
seen = sorted(m for m in sys.modules if m.split(".")[0] == "benchmarks")
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "benchmarks": seen, "path_kept": sys.path == before}, out)
"""


def test_lmsorch_serve_imports_nothing_from_benchmarks(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    env = server_env(tmp_path, LMSORCH_LLAMACPP_MODELS_DIR=str(tmp_path))

    subprocess.run(
        [sys.executable, "-c", _SERVE_AND_REPORT, str(report)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        cwd=ROOT,
        check=True,
        timeout=60,
    )

    assert json.loads(report.read_text()) == {"code": 0, "benchmarks": [], "path_kept": True}
