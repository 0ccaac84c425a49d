"""How ``lmsorch status`` renders the table and the watched events."""

from __future__ import annotations

from mcp_frontend.commands.status import format_event, format_scheduler, format_table


def test_the_table_aligns_columns_and_shortens_errors() -> None:
    table = format_table(
        [
            {"model": "qwen", "state": "READY", "in_flight": 2, "expires_in_s": None},
            {
                "model": "a-much-longer-model-name",
                "state": "BREAKER_OPEN",
                "consecutive_failures": 5,
                "retry_after_s": 42.04,
                "last_error": "connection\nrefused " + "x" * 200,
            },
        ]
    )
    header, first, second = table.splitlines()
    assert header.index("STATE") == first.index("READY") == second.index("BREAKER_OPEN")
    assert first.split() == ["qwen", "READY", "2", "-", "0", "-", "-"]
    assert second.split()[:6] == [
        "a-much-longer-model-name",
        "BREAKER_OPEN",
        "0",
        "-",
        "5",
        "42.0s",
    ]
    assert "connection refused" in second  # one line, whatever the error held
    assert len(second) < 200
    assert format_table([]) == "no models managed yet (they appear on first use)\n"


def test_events_render_as_one_line_each() -> None:
    line = format_event(
        {
            "type": "transition",
            "model": "qwen",
            "src": "LOADING",
            "dst": "BREAKER_OPEN",
            "input": "LOAD_FAILED",
            "duration_s": 1.5,
            "at": 0.0,
            "last_error": "out of\nmemory",
        }
    )
    assert line == (
        "00:00:00.000 qwen: LOADING -> BREAKER_OPEN (LOAD_FAILED, 1.500s in LOADING)"
        " last error: out of memory\n"
    )
    assert format_event({"type": "dropped", "count": 7}) == (
        "... 7 transitions dropped (this client read too slowly)\n"
    )


def test_the_scheduler_lines_show_queues_and_swaps_only_when_there_are_some() -> None:
    text = format_scheduler(
        {
            "policy": "swap_aware",
            "queues": [
                {
                    "model": "a",
                    "queued": 0,
                    "oldest_wait_s": 0.0,
                    "wait_bound_s": 6.0,
                    "closed": "fairness_bound",
                },
                {
                    "model": "b",
                    "queued": 3,
                    "oldest_wait_s": 6.25,
                    "wait_bound_s": 6.0,
                    "closed": None,
                },
            ],
            "swaps": {"fairness_bound": 1, "drained": 4},
        }
    )
    assert text.splitlines() == [
        "draining to be swapped out: a (fairness_bound)",
        "waiting for a slot: b: 3 queued, oldest 6.2s (swap forced at 6.0s)",
        "swaps (swap_aware): 5: drained 4, fairness_bound 1",
    ]
    assert format_scheduler({"policy": "fifo", "queues": [], "swaps": {}}) == ""
    assert format_scheduler(None) == ""
