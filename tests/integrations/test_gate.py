"""The generation gate: after an interrupt no frame is current until the session says where fresh ones start."""

from integrations.gate import FrameGate


def test_frames_made_before_an_interrupt_never_pass_again():
    gate = FrameGate()
    assert gate.current(0) and gate.current(7)
    epoch = gate.close()
    assert not gate.current(7) and not gate.current(100)  # none while the interrupt is under way
    assert gate.open(epoch, 9)
    assert not gate.current(8) and gate.current(9) and gate.current(10)


def test_an_older_interrupts_answer_does_not_open_the_gate():
    gate = FrameGate()
    first = gate.close()
    second = gate.close()
    assert not gate.open(first, 5)
    assert not gate.current(5)
    assert gate.open(second, 6)
    assert gate.current(6) and not gate.current(5)
