"""sonic-rt model core: pure computation, no sockets, no event loop."""

__version__ = "0.1.0"
