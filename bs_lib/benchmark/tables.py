"""How the benchmark writes its numbers: the metric columns, Markdown and HTML tables, intervals."""

from __future__ import annotations

import html
from typing import NamedTuple


class Display(NamedTuple):
    """How one metric is shown in a leaderboard column."""

    title: str  # column title, with its unit and direction
    higher_is_better: bool | None  # None: shown but never marked best (a number kept to show a flaw)
    scale: float  # shown value = metric × scale
    decimals: int


#: metric key -> how its column is shown, in column order
DISPLAY: dict[str, Display] = {
    "psnr": Display("PSNR (dB) ↑", True, 1.0, 2),
    "bsr_symmetric": Display("BSR sym. (%) ↑", True, 100.0, 2),
    "bsr": Display("BSR official (%) ↑", True, 100.0, 2),
    "mse": Display("MSE (10⁻³) ↓", False, 1e3, 3),
    "ssim": Display("SSIM ↑", True, 1.0, 4),
    "ms_ssim": Display("MS-SSIM ↑", True, 1.0, 4),
    "psnr_uint8_official": Display("PSNR uint8 official (dB)", None, 1.0, 2),
    "lpips": Display("LPIPS ↓", False, 1.0, 3),
}


def format_difference(mean: float, low: float, high: float, digits: int = 2) -> str:
    """A mean difference with its interval, as the result tables print it: ``+0.22 [-0.02, +0.41]``."""
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    """A table whose cells may hold ``<b>`` (everything else escaped)."""

    def cell(text: str) -> str:
        return html.escape(text).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def versions_text(versions: dict[str, str] | str) -> str:
    """``{"bs_lib": "0.4", "torch": "2.5"}`` -> ``"bs_lib 0.4, torch 2.5"`` (a string stays as it is)."""
    if isinstance(versions, str):
        return versions
    return ", ".join(f"{name} {version}" for name, version in versions.items())
