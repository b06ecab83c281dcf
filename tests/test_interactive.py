"""Sliders in a live notebook, one static figure everywhere else."""

from bs_lib import interactive


def test_a_headless_run_draws_once_at_the_defaults(monkeypatch):
    monkeypatch.setenv("BS_STATIC", "1")
    calls = []
    interactive.explore(lambda energy, kind: calls.append((energy, kind)), energy=(30, 120, 5, 60),
                        kind=["soft", "bone"])
    assert calls == [(60, "soft")]


def test_a_live_notebook_gets_one_widget_per_control(monkeypatch):
    import ipywidgets

    monkeypatch.delenv("BS_STATIC", raising=False)
    seen = {}
    monkeypatch.setattr(ipywidgets, "interact", lambda draw, **widgets: seen.update(widgets))
    interactive.explore(lambda weight, kind: None, weight=(0.0, 1.0, 0.05, 0.5), kind=["soft", "bone"])
    assert isinstance(seen["weight"], ipywidgets.FloatSlider) and seen["weight"].value == 0.5
    assert isinstance(seen["kind"], ipywidgets.Dropdown) and seen["kind"].value == "soft"
    assert isinstance(interactive.widget_of("steps", (1, 50, 1, 20)), ipywidgets.IntSlider)
