"""sonic_rt.spares: what an owner held is kept when the owner goes and given again, cleaned; what
is kept is made only when none is."""

import gc
import threading

from sonic_rt.spares import Spares


class Part:
    def __init__(self) -> None:
        self.dirty = False


class Owner:
    pass


def spares() -> tuple[Spares, list[Part]]:
    cleaned: list[Part] = []

    def clean(part: Part) -> None:
        part.dirty = False
        cleaned.append(part)

    return Spares(Part, clean), cleaned


def test_a_part_is_kept_when_its_owner_goes_and_given_again_cleaned():
    kept, cleaned = spares()
    first = Owner()
    part = kept.take(first)
    assert (kept.made, kept.kept, cleaned) == (1, 0, [])
    part.dirty = True
    del first
    assert kept.kept == 1  # the owner freed by its reference count: kept at once
    second = Owner()
    again = kept.take(second)
    assert again is part and not again.dirty and cleaned == [part]
    assert (kept.made, kept.kept) == (1, 0)
    third = Owner()
    assert kept.take(third) is not part and kept.made == 2  # one held: a new one for the next owner
    del second, third
    assert kept.kept == 2


def test_an_owner_in_a_reference_cycle_gives_its_part_back_when_it_is_collected():
    kept, _ = spares()
    owner = Owner()
    owner.me = owner
    kept.take(owner)
    del owner
    gc.collect()
    assert kept.kept == 1


def test_stock_makes_what_is_missing_and_no_more():
    kept, cleaned = spares()
    kept.stock(2)
    assert (kept.made, kept.kept) == (2, 2)
    owner = Owner()
    kept.take(owner)
    kept.stock(2)
    assert (kept.made, kept.kept) == (3, 2)
    kept.stock(1)
    assert kept.made == 3 and len(cleaned) == 1


def test_owners_in_many_threads_each_get_a_part_of_their_own():
    kept, _ = spares()
    kept.stock(4)
    got: list[Part] = []
    owners = [Owner() for _ in range(8)]
    threads = [threading.Thread(target=lambda o=o: got.append(kept.take(o))) for o in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len({id(p) for p in got}) == 8 and kept.made == 8  # 4 kept, 4 made; none given twice
    del owners, threads
    assert kept.kept == 8
