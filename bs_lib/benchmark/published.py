"""The published comparison table, kept apart from ours: other data, resolution and budget.

The GL-LCM re-evaluation (MICCAI 2025, by the BS-LDM authors) measured ten
methods on real dual-energy radiographs (SZCH-X-Rays, JSRT) at 1024² with full
training. Its numbers are printed *beside* the benchmark's, never ranked with them.
"""

from __future__ import annotations

import html

import pandas as pd

from bs_lib.benchmark.tables import html_table, markdown_table

PUBLISHED_SOURCE = ("GL-LCM re-evaluation (MICCAI 2025, the BS-LDM authors): mean ± std at 1024² with fixed "
                    "(float) MSE/PSNR code; BSR in %, MSE in 10⁻³; LPIPS with AlexNet weights")
PUBLISHED_CAVEAT = ("Different data (real dual-energy radiographs of SZCH-X-Rays and JSRT), 1024² resolution, "
                    "full training budgets and the official (one-sided) BSR. These numbers are shown for "
                    "orientation only: they are not comparable with ours and never ranked with them.")
PUBLISHED_HEADER = ("Method", "BSR (%) ↑", "MSE (10⁻³) ↓", "PSNR ↑", "LPIPS ↓")
PUBLISHED: dict[str, list[tuple[str, str, str, str, str]]] = {
    "SZCH-X-Rays": [
        ("VAE", "91.281 ± 3.088", "1.169 ± 1.059", "30.018 ± 2.007", "0.237 ± 0.047"),
        ("VQ-VAE", "94.485 ± 2.407", "0.645 ± 0.596", "32.600 ± 2.071", "0.137 ± 0.029"),
        ("VQGAN", "94.330 ± 3.402", "0.923 ± 2.478", "32.096 ± 2.420", "0.083 ± 0.020"),
        ("Gusarev et al.", "94.142 ± 2.666", "1.028 ± 2.201", "31.369 ± 2.385", "0.156 ± 0.031"),
        ("MCA-Net", "95.442 ± 2.095", "0.611 ± 0.435", "32.689 ± 1.939", "0.079 ± 0.018"),
        ("ResNet-BS", "94.508 ± 1.733", "0.646 ± 0.339", "32.265 ± 1.635", "0.107 ± 0.022"),
        ("Wang et al.", "89.767 ± 6.079", "1.080 ± 0.610", "29.963 ± 1.378", "0.072 ± 0.016"),
        ("BS-Diff", "92.428 ± 3.258", "0.947 ± 0.510", "30.627 ± 1.690", "0.212 ± 0.041"),
        ("BS-LDM", "94.159 ± 2.751", "0.701 ± 0.293", "31.953 ± 1.969", "0.070 ± 0.018"),
        ("GL-LCM", "95.611 ± 1.529", "0.512 ± 0.293", "33.347 ± 1.829", "0.056 ± 0.015"),
    ],
    "JSRT": [
        ("VAE", "85.646 ± 9.327", "1.224 ± 0.749", "29.814 ± 2.364", "0.155 ± 0.032"),
        ("VQ-VAE", "86.445 ± 8.881", "0.986 ± 0.596", "30.712 ± 2.273", "0.062 ± 0.017"),
        ("VQGAN", "86.594 ± 8.916", "1.002 ± 0.606", "30.635 ± 2.255", "0.061 ± 0.017"),
        ("Gusarev et al.", "89.283 ± 8.288", "0.821 ± 0.570", "31.700 ± 2.594", "0.100 ± 0.024"),
        ("MCA-Net", "86.887 ± 9.825", "0.876 ± 0.625", "31.577 ± 2.905", "0.057 ± 0.017"),
        ("ResNet-BS", "88.782 ± 8.905", "0.960 ± 0.661", "31.021 ± 2.576", "0.060 ± 0.016"),
        ("Wang et al.", "89.679 ± 9.477", "1.013 ± 0.655", "30.681 ± 2.431", "0.075 ± 0.015"),
        ("BS-Diff", "88.707 ± 8.859", "1.003 ± 0.655", "30.765 ± 2.504", "0.154 ± 0.037"),
        ("BS-LDM", "89.322 ± 9.562", "0.783 ± 0.632", "32.307 ± 3.231", "0.058 ± 0.017"),
        ("GL-LCM", "90.056 ± 10.635", "0.746 ± 0.680", "32.951 ± 3.799", "0.052 ± 0.015"),
    ],
}
PUBLISHED_TITLE = "Published numbers: DIFFERENT DATA, resolution and training budget (not ranked with ours)"


def published_table(dataset: str = "SZCH-X-Rays") -> pd.DataFrame:
    """The published table of one dataset as a DataFrame, labelled in ``.attrs`` (title, source, caveat)."""
    if dataset not in PUBLISHED:
        raise ValueError(f"No published table for {dataset!r}: choose one of {', '.join(PUBLISHED)}.")
    frame = pd.DataFrame(PUBLISHED[dataset], columns=list(PUBLISHED_HEADER)).set_index("Method")
    frame.attrs.update(title=f"{PUBLISHED_TITLE}: {dataset}", source=PUBLISHED_SOURCE, caveat=PUBLISHED_CAVEAT)
    return frame


def published_markdown() -> str:
    parts = [f"## {PUBLISHED_TITLE}", "", f"Source: {PUBLISHED_SOURCE}.", "", f"**{PUBLISHED_CAVEAT}**"]
    for dataset, rows in PUBLISHED.items():
        parts += ["", f"### {dataset} (published, 1024², real data)", "",
                  markdown_table(list(PUBLISHED_HEADER), [list(row) for row in rows])]
    return "\n".join(parts)


def published_html() -> str:
    parts = [f"<div class='different-data'><h2>{html.escape(PUBLISHED_TITLE)}</h2>",
             f"<p>Source: {html.escape(PUBLISHED_SOURCE)}.</p><p><b>{html.escape(PUBLISHED_CAVEAT)}</b></p>"]
    for dataset, rows in PUBLISHED.items():
        parts += [f"<h3>{html.escape(dataset)} (published, 1024², real data)</h3>",
                  html_table(list(PUBLISHED_HEADER), [list(row) for row in rows])]
    return "\n".join(parts) + "</div>"
