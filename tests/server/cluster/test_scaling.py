"""Autoscaling by session count."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from server.cluster.scaling import SESSIONS_METRIC, SessionsPolicy


def ctx(*sessions: float):
    return SimpleNamespace(aggregated_metrics={SESSIONS_METRIC: {f"r{i}": n for i, n in enumerate(sessions)}})


@pytest.mark.parametrize(
    ("per_replica", "sessions", "replicas"),
    [(3, (), 1), (3, (0,), 1), (3, (3,), 1), (3, (3, 1), 2), (2, (2, 2, 1), 3), (1, (4,), 4)],
)
def test_replicas_follow_the_sessions(per_replica, sessions, replicas):
    assert SessionsPolicy(per_replica)(ctx(*sessions))[0] == replicas


def test_no_metrics_yet_means_one_replica():
    assert SessionsPolicy(2)(SimpleNamespace(aggregated_metrics=None))[0] == 1


def test_sessions_per_replica_is_checked():
    with pytest.raises(ValueError):
        SessionsPolicy(0)
