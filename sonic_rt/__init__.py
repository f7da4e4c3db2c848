"""sonic-rt model core: pure computation, no sockets, no event loop.

``sonic_rt.generate(portrait, audio, output, **params)`` makes a talking video (see
``sonic_rt.offline``); it is imported on first use, so ``import sonic_rt`` stays light.
"""

__version__ = "0.1.0"
__all__ = ["generate", "prepare", "JobParams"]


def __getattr__(name: str):
    if name in __all__:
        from . import offline

        return getattr(offline, name)
    raise AttributeError(f"module 'sonic_rt' has no attribute {name!r}")
