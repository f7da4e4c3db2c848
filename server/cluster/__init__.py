"""Serving on Ray Serve: generator replicas behind the one-port front end (``sonic-rt serve --ray``).

The front end is the ordinary server (REST, WebSocket, WebRTC, auth, audit, the page); only the
sessions' generation moves out: every session lives on one replica of the ``Generator``
deployment (``generator``), which runs its ``streaming.Session`` — audio features, motion,
rendering — with one batched model runner shared by all the sessions it holds. The front end
reaches it through a Serve deployment handle (``remote``) whose router keeps each session on the
replica it started on (``routing``); the deployment scales with the number of sessions
(``scaling``); ``launch`` starts or joins the Ray cluster and deploys it.
"""
