"""Prometheus metrics of one app (a registry of its own, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions_active = Gauge("sonic_rt_sessions_active", "Live sessions now", ["transport"], registry=r)
        self.sessions = Counter("sonic_rt_sessions", "Live sessions started", ["transport"], registry=r)
        self.rejected = Counter("sonic_rt_sessions_rejected", "Sessions refused", ["reason"], registry=r)
        self.frames = Counter("sonic_rt_frames", "Frames sent", ["transport"], registry=r)
        self.filled = Counter("sonic_rt_filled_seconds", "Silence filled in because audio was late", registry=r)
        self.stalls = Counter("sonic_rt_stalls", "Times a stream fell behind and its clock moved on", registry=r)
        self.errors = Counter("sonic_rt_errors", "Errors answered to clients", ["code"], registry=r)
        self.portraits = Counter("sonic_rt_portraits_enrolled", "Portraits enrolled", registry=r)
        self.renders = Counter("sonic_rt_renders", "Offline renders finished", registry=r)
        self.render_seconds = Histogram(
            "sonic_rt_render_seconds",
            "Wall time of offline renders",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.first_frame = Histogram(
            "sonic_rt_first_frame_seconds",
            "From start to the first frame sent",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 1, 2),
            registry=r,
        )

        self.replica_sessions = Gauge(
            "sonic_rt_replica_sessions", "Live sessions on each generator replica (--ray)", ["replica"], registry=r
        )
        self.batch_size = Histogram(
            "sonic_rt_model_batch_size",
            "Sessions' model calls merged into one (sonic_rt.motion.batch)",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16),
            registry=r,
        )
        self.worker_sessions = Gauge("sonic_rt_worker_sessions", "Live sessions on each worker process",
                                     ["worker"], registry=r)  # fmt: skip
        self.worker_cpu = Gauge("sonic_rt_worker_cpu_seconds", "CPU time each worker process has used (user + system)",
                                ["worker"], registry=r)  # fmt: skip
        self.worker_restarts = Counter("sonic_rt_worker_restarts", "Worker processes that died and were replaced",
                                       registry=r)  # fmt: skip
        # the server's limits at its edge (server.limits, server.connections)
        self.refused = Counter(
            "sonic_rt_refused",
            "Connections and requests refused, or closed, by the server's limits",
            ["reason"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "sonic_rt_event_loop_lag_seconds",
            "How late the server's event loop ran a callback due every 20 ms (live frames wait as long)",
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
            registry=r,
        )
        self.unstarted = Gauge("sonic_rt_websockets_unstarted", "WebSockets open without a session", registry=r)
        self.pending_offers = Gauge("sonic_rt_webrtc_pending", "WebRTC offers answered, not yet connected", registry=r)

    def observe_workers(self, load: list[dict]) -> None:
        """Set the worker gauges from ``WorkerPool.load()``."""
        for worker in load:
            label = str(worker["worker"])
            self.worker_sessions.labels(label).set(worker["sessions"])
            if worker.get("cpu_seconds") is not None:
                self.worker_cpu.labels(label).set(worker["cpu_seconds"])

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
