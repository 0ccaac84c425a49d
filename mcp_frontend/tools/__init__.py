"""The MCP tools, one module per family exposing ``register(mcp, deps)``, and their helpers.

Tool families: ``lifecycle``, ``downloads``, ``inference`` (which also holds ``run_inference``,
the one way a tool runs inference), ``vision``, ``schema_validation`` and
``agents``. Helpers: ``io_types`` and ``agent_outputs`` (the TypedDicts the
tools take and return), ``chat`` (chat requests and answers) and ``progress``
(MCP progress while a call waits on a model).
"""
