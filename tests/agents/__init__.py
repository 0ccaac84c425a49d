"""Tests of the agent layer: discovery, toolbox, safety, the loop, the tools."""
