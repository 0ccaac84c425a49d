"""Authentication and the lms CLI (findings F2, F11, F14): which path carries the token.

``lms`` without ``--host`` is LM Studio's privileged local client; with
``--host`` it is an unprivileged guest that cannot send a token
(``lmstudio-ai/lms`` ``src/createClient.ts`` @07b7252). The simulator enforces
that, so these tests fail if the backend sends ``--host`` with auth on.
"""

from __future__ import annotations

import pytest

from orchestrator import Config
from orchestrator.backends.lmstudio_cli import LmsCli, cli_route
from orchestrator.errors import BackendRejected
from tests.fakes import open_simulator
from tests.fakes.fixtures import make_backend
from tests.fakes.sim_cli import REMOTE_CLIENT_REFUSED

QWEN = "qwen/qwen3-4b"
TOKEN = "sk-lm-abcdefgh:abcdefghijklmnopqrst"


def test_cli_route_keeps_lms_local_and_never_carries_a_token_it_cannot_send() -> None:
    assert cli_route("http://127.0.0.1:1234", token=True)[0] == []
    assert cli_route("http://localhost:1234", token=False)[0] == []
    assert cli_route("http://127.0.0.1:4321", token=True)[0] == ["--port", "4321"]
    assert cli_route("http://localhost:80", token=False)[0] == ["--port", "80"]
    remote = ["--host", "10.0.0.5", "--port", "1234"]
    assert cli_route("http://10.0.0.5:1234", token=False)[0] == remote
    args, why = cli_route("http://10.0.0.5:1234", token=True)
    assert args is None
    assert "cannot send the API token" in why
    args, why = cli_route("https://lmstudio.example:443", token=False)
    assert args is None  # lms builds ws://host:port: no TLS
    assert "https" in why


async def test_remote_host_with_auth_loads_with_the_token_and_says_how(lms: str) -> None:
    async with open_simulator(api_token=TOKEN, host="127.0.0.2") as sim:
        backend = make_backend(sim, lms_cli=lms, api_token=TOKEN)
        assert backend.cli() is None
        await backend.load(QWEN, identifier=QWEN, ttl_s=600)
        assert sim.cli_calls == []
        (record,) = sim.state.loads
        assert (record.via, record.ttl_s) == ("jit", 600.0)
        assert {c.authorization for c in sim.calls} == {f"Bearer {TOKEN}"}
        health = await backend.health()
        assert health.reachable
        assert "loads via JIT loads with ttl, token sent" in health.detail
        assert "unprivileged remote client" in health.detail
        await backend.aclose()


async def test_remote_host_without_auth_still_uses_lms_with_host(lms: str) -> None:
    async with open_simulator(host="127.0.0.2") as sim:
        backend = make_backend(sim, lms_cli=lms)
        await backend.load(QWEN, identifier=QWEN, ttl_s=600)
        (run,) = sim.cli_runs("load")
        assert run.argv[-4:-2] == ("--host", "127.0.0.2")
        await backend.aclose()


async def test_the_simulator_refuses_lms_with_host_when_auth_is_on(lms: str) -> None:
    """What LM Studio does to a tokenless guest; the backend must never get here."""
    async with open_simulator(api_token=TOKEN) as sim:
        cli = LmsCli(lms, ["--host", "127.0.0.1", "--port", sim.base_url.rpartition(":")[2]])
        with pytest.raises(BackendRejected, match="unprivileged remote client"):
            await cli.ps(timeout_s=10)
        assert REMOTE_CLIENT_REFUSED.startswith("Error:")
        local = LmsCli(lms, ["--port", sim.base_url.rpartition(":")[2]])
        assert await local.ps(timeout_s=10) == []


def test_lm_api_token_is_read_and_lmstudio_api_token_wins() -> None:
    """F11: LM Studio's docs and JS SDK say LM_API_TOKEN; ours comes first."""
    assert Config.load(env={"LM_API_TOKEN": "theirs"}).lmstudio.api_token == "theirs"
    both = {"LM_API_TOKEN": "theirs", "LMSTUDIO_API_TOKEN": "ours"}
    assert Config.load(env=both).lmstudio.api_token == "ours"
    assert Config.load(env={"LM_API_TOKEN": ""}).lmstudio.api_token is None


async def test_health_reports_lm_studios_version_from_the_local_lms(
    lms: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F13: ``lms daemon status`` names the version; only the local client can ask."""
    async with open_simulator() as sim:
        monkeypatch.setenv("LMS_SIM_URL", sim.base_url)  # the fake's "local LM Studio"
        sim.version = "0.4.21"
        backend = make_backend(sim, lms_cli=lms)
        assert (await backend.health()).version == "0.4.21"
        assert (await backend.health()).version == "0.4.21"
        (run,) = sim.cli_runs("daemon")
        assert run.argv == ("daemon", "status")  # no --port: daemon status does not take it
        await backend.aclose()
    async with open_simulator(host="127.0.0.2") as sim:
        backend = make_backend(sim, lms_cli=lms)
        assert (await backend.health()).version is None  # a --host client cannot ask
        assert sim.cli_runs("daemon") == []
        await backend.aclose()
