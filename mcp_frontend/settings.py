"""Frontend settings: input limits and what the vision tool may read.

These bound what a tool call may ask of the machine (prompt size, image files,
remote fetches) before anything reaches a backend. They are read from
``LMSORCH_MCP_<FIELD>`` environment variables, for example
``LMSORCH_MCP_ALLOW_REMOTE_IMAGES=1`` or
``LMSORCH_MCP_ALLOWED_IMAGE_ROOTS=/home/me/pictures:/tmp/shots`` (separated by
``os.pathsep``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from orchestrator import ConfigError, implicit_root
from orchestrator.env_settings import paths_list, settings_from_env

__all__ = ["ENV_PREFIX", "FrontendSettings"]

ENV_PREFIX = "LMSORCH_MCP_"


class FrontendSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits and permissions of the MCP tools.

    Attributes:
        allowed_image_roots: directories image files may be read from (symlinks
            are resolved before the check); empty means the current directory,
            unless that is ``/``, the home directory or above it (then none).
        allow_remote_images: let ``analyze_image`` fetch ``http(s)`` URLs
            (public addresses only, size-capped); off by default.
        max_prompt_chars: most characters of text one call may send.
        max_image_bytes: largest single image accepted.
        max_images: most images in one ``analyze_image`` call.
        max_embedding_inputs: most texts in one ``generate_embeddings`` call.
        max_schema_depth: deepest subschema nesting a JSON schema may have.
        max_schema_bytes: largest JSON schema accepted (encoded size).
        remote_image_timeout_s: deadline for fetching one remote image.
        progress_interval_s: how long a waiting tool stays quiet before it reports progress.
        progress_heartbeat_s: how often a long call (a load, an agent round) says it is
            still going, with its elapsed time, while nothing else is reported.
        response_chain_ttl_s: how long an emulated Responses chain is kept after its
            last use (backends whose Responses API keeps no state: llama.cpp).
        max_response_chains: most emulated response ids kept (least recently used
            evicted first).
        max_response_chain_chars: most text one emulated chain keeps (oldest turns
            dropped first).
    """

    allowed_image_roots: tuple[str, ...] = ()
    allow_remote_images: bool = False
    max_prompt_chars: int = 200_000
    max_image_bytes: int = 10 * 1024 * 1024
    max_images: int = 8
    max_embedding_inputs: int = 512
    max_schema_depth: int = 16
    max_schema_bytes: int = 64 * 1024
    remote_image_timeout_s: float = 20.0
    progress_interval_s: float = 0.25
    progress_heartbeat_s: float = 5.0
    response_chain_ttl_s: float = 3600.0
    max_response_chains: int = 256
    max_response_chain_chars: int = 200_000

    def __post_init__(self) -> None:
        for name in (
            "max_prompt_chars",
            "max_image_bytes",
            "max_images",
            "max_embedding_inputs",
            "max_schema_depth",
            "max_schema_bytes",
            "max_response_chains",
            "max_response_chain_chars",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be at least 1")
        for name in (
            "remote_image_timeout_s",
            "progress_interval_s",
            "progress_heartbeat_s",
            "response_chain_ttl_s",
        ):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a positive number")

    def image_roots(self) -> tuple[Path, ...]:
        """Return the allowed image roots, resolved.

        When none is set, the current directory is the root, unless it is the
        filesystem root, the home directory or one of its ancestors: MCP clients
        often start servers there, and it would open every file of the user's.
        Then there is no root (image files are refused until roots are set).
        """
        if self.allowed_image_roots:
            return tuple(Path(r).expanduser().resolve() for r in self.allowed_image_roots)
        root = implicit_root()
        return () if root is None else (root,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> FrontendSettings:
        """Build settings from ``LMSORCH_MCP_*`` variables, then ``overrides``.

        Raises:
            ConfigError: a variable is unknown to us, or its value is invalid.
        """
        return settings_from_env(
            cls,
            ENV_PREFIX,
            env,
            overrides,
            what="MCP frontend setting",
            parsers={"allowed_image_roots": paths_list},
        )
