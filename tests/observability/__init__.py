"""Tests for logs, metrics, the change feed, the observability endpoints and statecharts."""
