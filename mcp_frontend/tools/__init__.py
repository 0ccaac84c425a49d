"""The MCP tools, one module per family; each exposes ``register(mcp, deps)``."""
