"""What the LM Studio end-to-end tests share: the models and a quick configuration."""

from __future__ import annotations

from orchestrator import Config

QWEN = "qwen/qwen3-4b"
GEMMA = "google/gemma-3-4b"

FAST = Config(
    retry_attempts=1,
    retry_initial_s=0.0,
    retry_jitter_s=0.0,
    verify_initial_interval_s=0.01,
    verify_max_interval_s=0.05,
    verify_deadline_s=0.5,
    breaker_threshold=3,
    breaker_cooldown_s=600.0,
    unload_timeout_s=5.0,
    shutdown_timeout_s=5.0,
)
"""Quick retries and verification, so a failure shows in well under a second."""
