"""Adapters that make a sonic-rt session the avatar of a voice-agent framework.

``integrations.pipecat`` is an avatar service for pipecat pipelines (``SonicRTVideoService``),
``integrations.livekit`` a ``VideoGenerator`` for LiveKit Agents' ``AvatarRunner`` (and the
``AvatarSession`` that wires it into an ``AgentSession``). Both drive one ``AvatarDriver``
(``integrations.driver``): the agent's speech in, the face's frames and the speech they play
out, a turn at a time, with interrupts guarded so that no stale frame follows one. The session
runs in this process or on a ``sonic-rt serve`` over the WebSocket protocol
(``integrations.backend``), chosen per instance.

Dependencies point one way: this package imports ``streaming``, ``server`` and ``sonic_rt``,
never the reverse; the frameworks are optional extras (``pip install "sonic-rt[pipecat]"``,
``"sonic-rt[livekit]"``), imported only by their own modules.
"""
