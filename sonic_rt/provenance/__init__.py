"""Provenance: a session in; out, what every frame carries (the invisible watermark naming the
session, the optional visible label) and the session's record in the tamper-evident audit log; and
back again: a video's watermark read, and its record found."""
