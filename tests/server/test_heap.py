"""server.heap: what is alive at ``freeze`` is kept out of later collections; garbage made
before is collected by it, and garbage made after is still collected."""

from __future__ import annotations

import gc
import weakref

import pytest

from server import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite's process collects as before


def test_what_is_alive_is_frozen_and_garbage_before_and_after_is_collected(unfrozen):
    kept, dropped = Node(), Node()
    gone_before = weakref.ref(dropped)
    del dropped
    frozen = heap.freeze()
    assert gone_before() is None  # garbage at the time was collected, not frozen
    # frozen objects whose last reference goes (in this or another thread) leave the permanent
    # generation, so its count only falls after the freeze
    assert frozen >= gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())  # the permanent generation is in no generation's list
    after = Node()
    gone_after = weakref.ref(after)
    del after
    gc.collect()
    assert gone_after() is None  # a cycle made since is collected as ever
    assert kept.me is kept
