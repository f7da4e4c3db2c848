"""Live sessions generated in worker processes that the server starts and supervises.

The server's own process keeps the network, WebRTC, encoding, audit and admission; each live
session's generation (phonetic track, motion, rendering, watermark) runs in one of a pool of
worker processes (``pool``), so sessions are not held to one interpreter's GIL. A session's
calls travel over a Unix socket of its own and its frames through shared memory (``session``);
the worker's side is ``host``.
"""
