"""Sliders where a slider teaches, and the same figure, drawn once, where nobody can move one.

``explore(draw, energy=(30, 120, 5, 60))`` shows ``draw(energy=...)`` with a
slider in a live notebook (JupyterLab, Colab). A headless run (the tests,
``python -m bs_lib report``, papermill with ``BS_STATIC=1``) draws it once at
the default values instead, so its output is the same on every run and the
figure is there for the report.

A control is ``(low, high, step, default)`` for a number, or a list of choices
whose first item is the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable

STATIC_ENV = "BS_STATIC"


def is_static() -> bool:
    """True when figures must not wait for a hand on a slider: ``$BS_STATIC`` is set (headless runs)."""
    return os.environ.get(STATIC_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def default_of(control) -> object:
    """The value a control starts at (and the static figure uses)."""
    if isinstance(control, tuple):
        return control[3]
    return next(iter(control))


def widget_of(name: str, control):
    """An ipywidgets slider (numbers) or dropdown (choices) for one control."""
    import ipywidgets

    if isinstance(control, tuple):
        low, high, step, default = control
        kind = ipywidgets.IntSlider if all(isinstance(v, int) for v in control) else ipywidgets.FloatSlider
        return kind(value=default, min=low, max=high, step=step, description=name, continuous_update=False)
    return ipywidgets.Dropdown(options=list(control), value=default_of(control), description=name)


def explore(draw: Callable[..., object], **controls) -> None:
    """``draw(**values)`` under sliders in a live notebook; once, at the defaults, when :func:`is_static`."""
    if is_static():
        draw(**{name: default_of(control) for name, control in controls.items()})
        return
    import ipywidgets

    ipywidgets.interact(draw, **{name: widget_of(name, control) for name, control in controls.items()})
