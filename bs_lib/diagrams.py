"""Block diagrams for the notebooks: rounded boxes of text joined by arrows (matplotlib only).

Notebooks 06 and 07 draw their models' data flow with these two calls, so
that the figure's code reads as the diagram: place the boxes, then connect them.
"""

from __future__ import annotations


def box(axis, x: float, y: float, text: str, colour):
    """A rounded box of text centred on (x, y); arrows attach to its outline."""
    return axis.text(x, y, text, ha="center", va="center", fontsize=9,
                     bbox={"boxstyle": "round,pad=0.5", "facecolor": colour, "edgecolor": "0.3"})


def arrow(axis, source, target, text: str = "", dashed: bool = False) -> None:
    """An arrow from box to box, clipped at their outlines, with an optional label above its middle."""
    (x0, y0), (x1, y1) = source.get_position(), target.get_position()
    axis.annotate("", xy=(x1, y1), xytext=(x0, y0),
                  arrowprops={"arrowstyle": "-|>", "color": "0.3", "linestyle": "--" if dashed else "-",
                              "patchA": source.get_bbox_patch(), "patchB": target.get_bbox_patch()})
    if text:
        axis.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.15, text, ha="center", va="bottom", fontsize=8, color="0.2")
