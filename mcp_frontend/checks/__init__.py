"""Checks of tool arguments and inputs, run before any model is touched.

- ``unknown_arguments``: the middleware that rejects argument names a tool does not take.
- ``prompt_size``: the ``max_prompt_chars`` limit.
- ``json_schema``: response-format schemas, and answers against them.
- ``images``: image files and data URLs for the vision tool.
- ``remote_images``: fetching remote images safely (public addresses only, bounded).
"""
