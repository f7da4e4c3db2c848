"""The ``sonic-rt`` command line: one group, its commands by what they work on — a portrait
(``enroll``, ``preview``: ``portrait``), a video (``generate``: ``video``), what was made
(``audit``, ``watermark``: ``provenance``). ``server.cli`` adds ``serve`` and ``keys``.

At load time these modules import click and the parameters' ranges only: ``--help`` and usage
errors answer without numpy, torch or OpenCV, and each command imports what it needs when it runs.
"""

from __future__ import annotations

import click

from . import portrait, provenance, video


@click.group()
@click.version_option(package_name="sonic-rt")
def main() -> None:
    """sonic-rt: one portrait + audio -> a lip-synced talking face, in real time on a CPU."""


for command in (portrait.enroll, portrait.preview, video.generate, provenance.audit, provenance.watermark):
    main.add_command(command)
