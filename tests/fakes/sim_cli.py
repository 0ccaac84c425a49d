"""The server side of the fake ``lms``: argv in, (exit code, stdout, stderr) out.

``tests/fakes/bin/lms`` posts its argv to ``/__sim__/lms`` and prints what
comes back, so the CLI shares the HTTP server's state. Behaviour follows
``reference/lmstudio-api.md`` §6: messages on stderr, JSON on stdout, exit 1
on failures, but exit 0 for ``unload`` of an unknown identifier; ``load``
fuzzy-matches its key and needs ``-y`` when several models match. Texts and
rules quoted from ``lmstudio-ai/lms`` at ``07b7252`` are tabled with their
source in ``docs/backends.md`` ("The simulator and its sources").
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import trio

from .sim_downloads import lms_get
from .sim_faults import CliCall
from .sim_inference import perform_load
from .sim_state import SimError, SimInstance, SimModel

if TYPE_CHECKING:
    from .lmstudio_sim import Simulator

__all__ = ["run_cli"]

_GLOBAL_WITH_VALUE = {"--host", "--port", "--log-level"}
_GLOBAL_FLAGS = {"--quiet", "--verbose"}

REMOTE_CLIENT_REFUSED = (
    "Error: lms connected with --host as an unprivileged remote client "
    "(lms-cli-remote-*), which carries no API token, and LM Studio requires authentication."
)
"""[inf] The wording is ours: lms src/createClient.ts @07b7252 gives a ``--host``
client a random ``lms-cli-remote-*`` identity and no token, and with "Require
Authentication" on every client needs one (docs ``1_developer/0_core/authentication.mdx``);
the exact text LM Studio sends back is not public (findings F2)."""

NOT_FOUND_BLOCK = """Model not found

No model found that matches model key "{key}".

To see a list of all downloaded models, run:

    lms ls

To select a model interactively, remove the --yes flag:

    lms load
"""
"""lms src/subcommands/load.ts @07b7252: ``makeTitledPrettyError`` printed with
``errorWithoutPrefix`` (no ``Error:``), exit 1."""


def _answer(code: int, stdout: str = "", stderr: str = "") -> dict[str, Any]:
    return {"exit_code": code, "stdout": stdout, "stderr": stderr}


def _strip_globals(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif arg not in _GLOBAL_FLAGS:
            out.append(arg)
    return out


def _options(args: list[str], with_value: set[str]) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    options: dict[str, str] = {}
    it = iter(args)
    for arg in it:
        if arg in with_value:
            options[arg] = next(it, "")
        elif arg.startswith("-"):
            options[arg] = ""
        else:
            positional.append(arg)
    return positional, options


async def run_cli(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    """Run one fake ``lms`` command against the simulator's state."""
    argv = [str(a) for a in body.get("argv", [])]
    sim.cli_calls.append(CliCall(argv=tuple(argv), pid=int(body.get("pid", 0))))
    sim.notify()
    args = _strip_globals(argv)
    sub = args[0] if args else ""
    faults = sim.faults
    if sub in faults.cli_hang or "*" in faults.cli_hang:
        await faults.hang()
        return _answer(1, stderr="Error: released at shutdown\n")
    if sub in faults.cli_fail:
        code, stderr = faults.cli_fail[sub]
        return _answer(code, stderr=stderr)
    if sub in faults.cli_stdout:
        return _answer(0, stdout=faults.cli_stdout[sub])
    if sim.api_token and "--host" in argv:
        return _answer(1, stderr=REMOTE_CLIENT_REFUSED + "\n")
    sim.state.expire()
    sim.downloads.settle()
    try:
        if sub == "get":
            # A SIGINT to lms get asks whether to go on in the background
            # (handleDownloadWithProgressBar.ts): the download is not cancelled.
            code, stderr = await lms_get(sim, args[1:])
            return _answer(code, stderr=stderr)
        if sub == "load":
            pid = int(body.get("pid", 0))
            with trio.CancelScope() as scope:
                sim.cli_loads[pid] = scope
                try:
                    return await _load(sim, args[1:])
                finally:
                    del sim.cli_loads[pid]
            # SIGINT to lms load aborts the load inside LM Studio (load.ts sigintListener).
            return _answer(1, stderr="Load cancelled.\n")
        if sub == "unload":
            return _unload(sim, args[1:])
        if sub == "ps":
            return _ps(sim, args[1:])
        if sub == "ls":
            return _ls(sim, args[1:])
        if sub == "server" and args[1:2] == ["status"]:
            port = sim.base_url.rpartition(":")[2]
            return _answer(0, stdout=json.dumps({"running": True, "port": int(port)}) + "\n")
        if sub == "daemon" and args[1:2] == ["status"]:
            # lms src/subcommands/daemon/status.ts @07b7252: stdout, no version in --json.
            if "--json" in args:
                return _answer(0, stdout=json.dumps({"status": "running", "pid": 4242}) + "\n")
            return _answer(0, stdout=f"LM Studio v{sim.version} is running (PID: 4242)\n")
        if sub in ("-v", "--version", "version"):
            return _answer(0, stdout="CLI commit: 0000000 (simulator)\n")
    except SimError as err:
        return _answer(1, stderr=f"Error: {err.message}\n")
    return _answer(1, stderr=f"error: unknown command '{sub}'\n")


def _fuzzy(query: str, text: str) -> bool:
    it = iter(text.lower())
    return all(ch in it for ch in query.lower())


async def _load(sim: Simulator, args: list[str]) -> dict[str, Any]:
    positional, opts = _options(
        args, {"--identifier", "--ttl", "-c", "--context-length", "--gpu", "--parallel"}
    )
    ttl: int | None = None
    if "--ttl" in opts:
        if not opts["--ttl"].isdigit():
            return _answer(
                1,
                stderr=f"error: option '--ttl' argument {opts['--ttl']!r} is invalid. Not a number",
            )
        ttl = int(opts["--ttl"])
        if ttl < 1:
            return _answer(
                1, stderr="error: option '--ttl' Number out of range, must be at least 1\n"
            )
    ctx_raw = opts.get("-c") or opts.get("--context-length")
    query = positional[0] if positional else ""
    # lms load fuzzy-filters its argument against the base model keys only (load.ts
    # @07b7252): "key@q4_k_m" matches no key, so a variant is "not found" (findings F4).
    exact = sim.state.catalog.get(query)
    matches = [exact] if exact else [m for m in sim.state.catalog.values() if _fuzzy(query, m.key)]
    yes = "-y" in opts or "--yes" in opts
    if not matches:
        return _answer(1, stderr=NOT_FOUND_BLOCK.format(key=query))
    if len(matches) > 1 and not yes:
        # [inf] the real lms opens an interactive picker, which fails on a closed stdin.
        raise SimError("Several models match; choosing one needs an interactive terminal (use -y)")
    model: SimModel = matches[0]
    if "--estimate-only" in opts:
        return _answer(0, stderr=_estimate(sim, model, int(ctx_raw) if ctx_raw else None))
    started = time.monotonic()
    inst = await perform_load(
        sim,
        model.key,
        identifier=opts.get("--identifier") or None,
        ttl_s=float(ttl) if ttl is not None else None,
        context_length=int(ctx_raw) if ctx_raw else None,
        via="cli",
    )
    return _answer(
        0,
        stderr=f"Model loaded successfully in {time.monotonic() - started:.2f}s.\n"
        f"({model.size_bytes / 2**30:.2f} GiB)\n"
        f'To use the model in the API/SDK, use the identifier "{inst.identifier}".\n',
    )


def _estimate(sim: Simulator, model: SimModel, context_length: int | None) -> str:
    """lms load.ts ``printEstimatedResourceUsage`` @07b7252 (logger.info goes to stderr)."""
    gib = f"{model.size_bytes * 1.1 / 2**30:.2f} GiB"
    fits = model.key not in sim.faults.load_errors
    verdict = "may be loaded" if fits else "will fail to load"
    lines = [f"Model: {model.key}"]
    if context_length is not None:
        lines.append(f"Context Length: {context_length:,}")
    lines += [
        f"Estimated GPU Memory:   {gib}",
        f"Estimated Total Memory: {gib}",
        "",
        f"Estimate: This model {verdict} based on your resource guardrails settings.",
    ]
    return "\n".join(lines) + "\n"


def _unload(sim: Simulator, args: list[str]) -> dict[str, Any]:
    positional, opts = _options(args, set())
    state = sim.state
    if "--all" in opts or "-a" in opts:
        ids = list(state.instances)
        for ident in ids:
            state.remove(ident)
        if not ids:
            return _answer(0, stderr="No models to unload.\n")
        noun = "model" if len(ids) == 1 else "models"
        return _answer(0, stderr=f"Unloaded {len(ids)} {noun}.\n")
    if not positional:
        if not state.instances:
            return _answer(
                1, stderr='You don\'t have any models loaded. Use "lms load" to load a model.\n'
            )
        if len(state.instances) > 1:
            raise SimError("Several models are loaded; choosing one needs an interactive terminal")
        positional = list(state.instances)
    ident = positional[0]
    if state.remove(ident):
        return _answer(0, stderr=f'Model "{ident}" unloaded.\n')
    # Exit 0 on purpose: the real lms returns without an error code here.
    return _answer(
        0, stderr=f'Model Not Found\nCannot find a model with the identifier "{ident}".\n'
    )


def _info(model: SimModel) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": "embedding" if model.type == "embedding" else "llm",
        "modelKey": model.key,
        "format": "gguf",
        "displayName": model.key.rpartition("/")[2],
        "publisher": model.publisher,
        "path": f"{model.publisher}/{model.key}/{model.key.rpartition('/')[2]}.gguf",
        "sizeBytes": model.size_bytes,
        "architecture": model.arch,
        "quantization": {"name": model.quantization, "bits": 4},
        "maxContextLength": model.max_context_length,
        "deviceIdentifier": model.device,
    }
    if model.type != "embedding":
        info |= {
            "vision": model.vision,
            "trainedForToolUse": model.tool_use,
            "paramsString": model.params,
        }
    return info


def _ps_entry(sim: Simulator, inst: SimInstance) -> dict[str, Any]:
    model = sim.state.catalog[inst.key]
    return {
        **_info(model),
        "identifier": inst.identifier,
        "ttlMs": int(inst.ttl_s * 1000) if inst.ttl_s is not None else None,
        "lastUsedTime": int(time.time() * 1000),
        "contextLength": inst.context_length,
        "status": inst.status,
        "queued": inst.active,
        "parallel": None if model.type == "embedding" else 4,
        "deviceIdentifier": inst.device,
    }


def _ps(sim: Simulator, args: list[str]) -> dict[str, Any]:
    entries = [_ps_entry(sim, i) for i in sim.state.instances.values()]
    if "--json" in args:
        return _answer(0, stdout=json.dumps(entries) + "\n")
    if not entries:
        return _answer(0, stderr="No models are currently loaded.\n")
    lines = [f"{e['identifier']}  {e['modelKey']}  {e['status'].upper()}" for e in entries]
    return _answer(0, stdout="IDENTIFIER  MODEL  STATUS\n" + "\n".join(lines) + "\n")


def _ls(sim: Simulator, args: list[str]) -> dict[str, Any]:
    models = list(sim.state.catalog.values())
    if "--llm" in args:
        models = [m for m in models if m.type != "embedding"]
    if "--embedding" in args:
        models = [m for m in models if m.type == "embedding"]
    if "--json" in args:
        return _answer(0, stdout=json.dumps([_info(m) for m in models]) + "\n")
    return _answer(0, stdout="\n".join(m.key for m in models) + "\n")
