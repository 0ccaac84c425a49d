"""How the server is reached, and the process that serves it.

- ``serve``: the ``lmsorch serve`` process: backend, orchestrator, transport, shutdown order.
- ``stdio``: MCP over stdin and stdout, with reads trio can cancel.
- ``http``: streamable HTTP behind an optional bearer token, on hypercorn's trio worker.
- ``observability``: ``/metrics``, ``/status`` and ``/events``, next to ``/mcp`` or alone.
"""
