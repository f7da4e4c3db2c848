"""The factory that chooses an avatar's backend once, by its config: ``LocalBackend`` in this
process, or ``RemoteBackend`` on a ``sonic-rt serve`` when the config has a ``url``. Apart from
``integrations.backend``, whose types both backends use, so that no module imports its own users."""

from __future__ import annotations

from .backend import AGENT_TRANSPORTS, AvatarConfig, Backend


def open_backend(config: AvatarConfig, transport: str) -> Backend:
    """The backend ``config`` asks for; ``transport`` (``pipecat``/``livekit``) names the framework."""
    if transport not in AGENT_TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(AGENT_TRANSPORTS)}, got {transport!r}")
    if config.remote:
        from .remote import RemoteBackend

        return RemoteBackend(config)
    from .local import LocalBackend

    return LocalBackend(config, transport)
