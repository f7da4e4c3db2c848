"""The phone alphabet: every symbol either source can produce has a class."""

import pytest

from sonic_rt.audio import phoneset


def test_classes_are_the_articulatory_targets_plus_glottal():
    assert phoneset.CLASSES[:2] == ("rest", "h")
    assert set(phoneset.CLASSES) == set(phoneset.TARGETS) | {"h"}
    assert len(set(phoneset.CLASSES)) == len(phoneset.CLASSES)
    assert phoneset.CLASSES[phoneset.REST] == "rest"


def test_every_pocketsphinx_phone_has_a_class():
    """The phones of the CMU dictionary that ships with pocketsphinx's en-us model (the phones its
    acoustic model knows) all have a class, and map to it without stress digits."""
    from pocketsphinx import get_model_path

    spoken = set()
    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8", errors="replace") as f:
        for line in f:
            spoken.update(line.split()[1:])
    assert len(spoken) == 39 and spoken <= set(phoneset.CMU)
    for phone in spoken | {"SIL"}:
        assert all(c in phoneset.CLASS_INDEX for c in phoneset.cmu_classes(phone))
    assert phoneset.cmu_classes("+NSN+") == ("rest",)  # fillers: noise, breath


@pytest.mark.parametrize(
    ("symbol", "classes"),
    [("p", ("p",)), ("m", ("p",)), ("b", ("p",)), ("v", ("f",)), ("u:", ("u",)), ("w", ("w",)),
     ("aI", ("a", "ɪ")), ("_:", ("rest",)), ("h", ("h",)), ("iAu", ("i", "ɑ", "ʊ"))],
)  # fmt: skip
def test_espeak_mnemonics_map_to_classes(symbol, classes):
    assert phoneset.espeak_classes(symbol) == classes


@pytest.mark.parametrize(("phone", "classes"), [("P", ("p",)), ("M", ("p",)), ("F", ("f",)), ("UW", ("u",)),
                                                 ("OW", ("o", "ʊ")), ("SIL", ("rest",)), ("hh", ("h",))])  # fmt: skip
def test_cmu_phones_map_to_the_same_classes(phone, classes):
    assert phoneset.cmu_classes(phone) == classes
