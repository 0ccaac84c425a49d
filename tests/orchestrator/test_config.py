"""Configuration loading and secrets."""

from __future__ import annotations

import pytest

from orchestrator import Config, ConfigError


def test_env_overrides_defaults_and_lmstudio_names() -> None:
    config = Config.load(
        env={
            "LMSORCH_DEFAULT_TTL_S": "900",
            "LMSTUDIO_API_TOKEN": "s3cret",
            "LMSORCH_LLAMACPP_THREADS": "1",
        }
    )
    assert config.default_ttl_s == 900.0
    assert config.lmstudio.api_token == "s3cret"
    assert config.llamacpp.threads == 1


def test_the_api_token_never_shows_in_a_repr() -> None:
    config = Config.load(env={"LMSTUDIO_API_TOKEN": "s3cret"})
    assert "s3cret" not in repr(config.lmstudio)
    assert "s3cret" not in repr(config)
    assert "<set>" in repr(config.lmstudio)


@pytest.mark.parametrize(
    "env",
    [
        {"LMSORCH_DEFAULT_TTL_S": "-1"},
        {"LMSORCH_DEFAULT_TTL_S": "7200"},
        {"LMSORCH_MAX_LOADED_MODELS": "0"},
    ],
)
def test_out_of_range_values_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Config.load(env=env)


def test_unknown_keys_are_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "lmsorch.toml"
    path.write_text("defualt_ttl_s = 10\n")
    with pytest.raises(ConfigError, match="defualt_ttl_s"):
        Config.load(path, env={})
