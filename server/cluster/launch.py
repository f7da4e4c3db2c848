"""Start (or join) a Ray cluster and deploy the generator replicas on Ray Serve.

``sonic-rt serve --ray`` calls ``start`` in the front end's lifespan: with no address it starts a
local cluster in the front end's own process group (several replicas on one host); with
``--ray-address`` it joins a running cluster (``ray start --head`` on one machine, ``ray start
--address`` on the others), whose nodes then hold the replicas. Serve's own HTTP proxy is not
started: the front end is the only port.
"""

from __future__ import annotations

from dataclasses import dataclass

APP = "sonic-rt"
DEPLOYMENT = "Generator"


@dataclass(frozen=True)
class RaySettings:
    """``serve --ray`` options: the cluster, and how the generator deployment scales."""

    address: str | None = None  # a running cluster ("auto", "ray://host:10001", "host:6379"); None: start one here
    min_replicas: int = 1
    max_replicas: int = 2
    sessions_per_replica: int = 3  # the autoscaling target (what one 2-core replica holds in real time)
    replica_cpus: float = 1.0  # Ray CPUs reserved per replica
    replica_gpus: float = 0.0  # Ray GPUs per replica (a fraction shares one GPU between replicas)
    batching: bool | None = None  # a replica's sessions' model calls as one batch (None: when it has a GPU)
    workers: int | None = None  # threads per replica for its sessions' work (default: 2 per core)
    cpus: int | None = None  # CPUs of a cluster started here (default: the machine's)

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 1 <= min_replicas <= max_replicas")
        if self.sessions_per_replica < 1:
            raise ValueError("sessions_per_replica must be at least 1")


def application(settings: RaySettings):
    """The Serve application: the Generator deployment with session routing and scaling."""
    from ray import serve
    from ray.serve.config import AutoscalingConfig, AutoscalingPolicy, RequestRouterConfig

    from .generator import Generator
    from .routing import SessionRouter
    from .scaling import SessionsPolicy

    deployment = serve.deployment(
        Generator,
        name=DEPLOYMENT,
        ray_actor_options={"num_cpus": settings.replica_cpus, "num_gpus": settings.replica_gpus},
        max_ongoing_requests=1000,  # sessions' calls are short and many; admission is the front end's
        request_router_config=RequestRouterConfig(request_router_class=SessionRouter),
        autoscaling_config=AutoscalingConfig(
            min_replicas=settings.min_replicas,
            initial_replicas=settings.min_replicas,
            max_replicas=settings.max_replicas,
            upscale_delay_s=2.0,
            downscale_delay_s=30.0,
            policy=AutoscalingPolicy(
                policy_function=SessionsPolicy,
                policy_kwargs={"sessions_per_replica": settings.sessions_per_replica},
            ),
        ),
    )
    return deployment.bind(settings.workers, settings.batching)


def start(settings: RaySettings):
    """Connect to (or start) the cluster, deploy, and return the Generator deployment's handle."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        # "local": a new cluster of our own, even where `ray start` left one (or a stale address) behind
        ray.init(address=settings.address or "local", num_cpus=settings.cpus if settings.address is None else None,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)  # fmt: skip
    serve.start(proxy_location="Disabled")
    return serve.run(application(settings), name=APP, route_prefix=None, blocking=False)


def running_replicas() -> int:
    """Generator replicas up and taking sessions now (Serve's own count)."""
    from ray import serve

    app = serve.status().applications.get(APP)
    deployment = app.deployments.get(DEPLOYMENT) if app is not None else None
    return deployment.replica_states.get("RUNNING", 0) if deployment is not None else 0


def stop(started_here: bool = True) -> None:
    """Remove the deployment; shut the cluster down if ``start`` started it."""
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.delete(APP)
        if started_here:
            serve.shutdown()
            ray.shutdown()
