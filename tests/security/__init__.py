"""Hostile input and security: fuzzed tool arguments, paths, SSRF, secrets, HTTP auth."""
