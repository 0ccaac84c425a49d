"""Reliability tests: the chaos soak, the plan's failure scenarios, shutdown and restart."""
