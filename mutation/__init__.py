"""Mutation testing of the core: ``python -m mutation`` (see ``docs/mutation.md``)."""
