"""The error codes the README documents, read from it: a code the server answers with that is not
among them is a failure of the stress tests (the docs and the server must agree)."""

from __future__ import annotations

import re

from tests.stress.tally import REPO

README = REPO / "README.md"
_CODE = re.compile(r"`([a-z][a-z0-9_]*)`(?! codes)")  # not "the `say` codes"


def _paragraph(text: str, start: str, end: str) -> str:
    begin = text.index(start)
    return text[begin : text.index(end, begin)]


def ws_codes() -> frozenset[str]:
    """The WebSocket protocol's error codes: the paragraph "Error codes: ..." of its section."""
    text = README.read_text()
    return frozenset(_CODE.findall(_paragraph(text, "Error codes: `", "A non-fatal error")))


def rest_codes() -> frozenset[str]:
    """The REST API's error codes: the command line's table ("error code | when"), the codes the
    Live server section adds, and access control's."""
    text = README.read_text()
    table = _paragraph(text, "| error code | when |", "\n\n")
    cli = _first_column(table)
    server = _CODE.findall(_paragraph(text, 'Errors are `{"error"', "\n\n"))
    access = _paragraph(text, "| code | HTTP | WebSocket | when |", "\n\n")
    return frozenset(cli | set(server) | _first_column(access))


def _first_column(table: str) -> set[str]:
    return {code for line in table.splitlines() for code in _CODE.findall(line.split("|")[1])}
