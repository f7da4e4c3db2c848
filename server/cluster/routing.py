"""Session affinity: every call of a session goes to the replica the session started on.

Serve's own routers spread requests over replicas by load (or, for session ids, by consistent
hashing, which moves sessions when replicas come and go). A live session's state — its audio,
motion tail and renderer — lives in one replica's memory, so its calls must never move: the
first call of a session (``open``) goes to the replica with the fewest sessions, and every later
call carrying the same ``session_id`` goes there. When that replica has died, the call goes to
any replica, which answers that it does not hold the session (``SessionLost``): the session ends
with a clear error instead of waiting for a replica that will not come back.
"""

from __future__ import annotations

import random
from collections import Counter

from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

OPEN, CLOSE = "open", "close"  # the Generator methods that start and end a session


class SessionRouter(RequestRouter):
    """Sticky routing by ``handle.options(session_id=...)``; calls without one go anywhere."""

    def initialize_state(self, **kwargs) -> None:
        self._home: dict[str, ReplicaID] = {}  # session -> the replica holding it

    def sessions_on(self) -> Counter[ReplicaID]:
        return Counter(self._home.values())

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        meta = pending_request.metadata if pending_request is not None else None
        session = meta.session_id if meta is not None else ""
        if not session or not candidate_replicas:
            return [candidate_replicas]
        if meta.call_method == OPEN and session not in self._home:
            load = self.sessions_on()
            chosen = min(candidate_replicas, key=lambda r: (load[r.replica_id], random.random()))
            self._home[session] = chosen.replica_id
            return [[chosen]]
        home = self._home.get(session)
        if meta.call_method == CLOSE:
            self._home.pop(session, None)
        for replica in candidate_replicas:
            if replica.replica_id == home:
                return [[replica]]
        return [candidate_replicas]  # its replica is gone: any one answers SessionLost

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        super().on_replica_actor_died(replica_id)
        for session in [s for s, r in self._home.items() if r == replica_id]:
            del self._home[session]  # its calls now reach a replica that says the session is lost
