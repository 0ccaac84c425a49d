"""Checks of tool inputs, run before any model is touched."""
