"""Autoscaling by session count: as many replicas as the sessions need at ``sessions_per_replica`` each.

Each replica reports how many sessions it holds (``Generator.record_autoscaling_stats``); Serve
calls the policy with those figures and clamps its answer to ``min_replicas``..``max_replicas``
and its up/downscale delays. Request counts, Serve's default signal, say little here: a session
makes many short calls, and an idle one makes them as often as a talking one.
"""

from __future__ import annotations

import math
from typing import Any

SESSIONS_METRIC = "sessions"


class SessionsPolicy:
    """``desired replicas = ceil(sessions / sessions_per_replica)`` (at least one)."""

    def __init__(self, sessions_per_replica: int = 2) -> None:
        if sessions_per_replica < 1:
            raise ValueError("sessions_per_replica must be at least 1")
        self.sessions_per_replica = sessions_per_replica

    def __call__(self, ctx) -> tuple[int, dict[str, Any]]:
        per_replica = (ctx.aggregated_metrics or {}).get(SESSIONS_METRIC, {})
        sessions = sum(per_replica.values())
        return max(1, math.ceil(sessions / self.sessions_per_replica)), {}
