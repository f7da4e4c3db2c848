"""The real-time engine: live sessions that turn audio chunks into a paced stream of frames.

``streaming`` sits between the model core (``sonic_rt``) and the network edge (``server``):
nothing here opens a socket, so every part is testable without a network.
"""
