"""The network edge on one port: HTTP API, the WebSocket protocol, WebRTC, metrics.

``server.protocol`` and ``server.client`` are light (no FastAPI, no models): a client program
imports only them. The app itself is built by ``server.app.create_app``.
"""
