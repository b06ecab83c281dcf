"""Checked claims: how a notebook states what it has just shown, in one readable line.

A notebook cell ends with the claim it makes, checked::

    check(student_ms < teacher_ms, f"the student is {teacher_ms / student_ms:.1f}× faster than its teacher")

prints ``✓ the student is 2.7× faster than its teacher``, or stops the notebook
with :class:`ClaimFailed` and ``✗ ...`` when the claim does not hold, so the
tests (nbval, papermill) fail loudly and a reader sees what was expected.

A claim about what *training* achieved (a model beats doing nothing, the loss
fell) is marked ``trained=True``. When training is capped for a test of the
code path (``$BS_MAX_STEPS``, see :func:`bs_lib.config.max_steps`), two steps
prove nothing about learning: such a claim is printed as not checked instead.
Every other claim (a shape, a formula, a property of the data) is checked
always.
"""

from __future__ import annotations

from bs_lib.config import MAX_STEPS_ENV, max_steps


class ClaimFailed(AssertionError):
    """A notebook's checked claim does not hold."""


def check(condition, claim: str, *, trained: bool = False) -> None:
    """Print ``✓ claim`` when ``condition`` holds, else raise :class:`ClaimFailed` (``✗ claim``).

    ``trained=True``: the claim is about what training achieved; under a step
    cap it is reported as not checked.
    """
    if trained and max_steps() is not None:
        print(f"– not checked under {MAX_STEPS_ENV}={max_steps()} (training capped): {claim}")
        return
    if not bool(condition):
        raise ClaimFailed(f"✗ {claim}")
    print(f"✓ {claim}")
