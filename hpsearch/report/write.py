"""Writing a report: PNG files, a Markdown file and an HTML page that opens offline."""

from __future__ import annotations

import html
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from plotly.offline import get_plotlyjs

from hpsearch.report.build import Section, walk

PLOTLY_JS = "plotly.min.js"  # written beside index.html: the page needs no network
INLINE_CODE = re.compile(r"`([^`]+)`")  # the text is Markdown; the page shows its inline code as code
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1.5em;display:block;max-width:100%;overflow-x:auto}
td,th{padding:2px 8px;text-align:right;white-space:nowrap}
tr:nth-child(even){background:#f4f6f8}th{background:#e8edf3}img{max-width:100%}h3{margin-top:2em}"""


def _number(value: object) -> str:
    if isinstance(value, float):
        return "-" if pd.isna(value) else f"{value:.4g}"
    return "-" if value is None else str(value)


def _markdown_table(table: pd.DataFrame) -> str:
    header = [str(table.index.name or "")] + [str(c) for c in table.columns]
    rows = [[str(index)] + [_number(v) for v in row]
            for index, row in zip(table.index, table.itertuples(index=False), strict=True)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def write(sections: list[Section], title: str, out: Path) -> list[Path]:
    """Write every figure as PNG, then report.md and index.html; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for section, _ in walk(sections):
        for figure in section.figures:
            path = out / f"{figure.name}.png"
            figure.png.savefig(path, dpi=110)
            plt.close(figure.png)  # optuna's matplotlib plots live in pyplot's registry until closed
            written.append(path)

    markdown, page = [f"# {title}"], []
    for section, depth in walk(sections):
        markdown.append(f"{'#' * depth} {section.title}")
        page.append(f"<h{depth}>{html.escape(section.title)}</h{depth}>")
        for text in section.text:
            markdown.append(text)
            page.append("<p>" + INLINE_CODE.sub(r"<code>\1</code>", html.escape(text)) + "</p>")
        for caption, table in section.tables:
            markdown.append(f"**{caption}**\n\n{_markdown_table(table)}")
            page.append(f"<p><b>{html.escape(caption)}</b></p>"
                        + table.to_html(float_format=lambda v: f"{v:.4g}", na_rep="-", border=0))
        for figure in section.figures:
            markdown.append(f"![{figure.title}]({figure.name}.png)")
            if figure.interactive is not None:
                page.append(figure.interactive.to_html(full_html=False, include_plotlyjs=False,
                                                       config={"displaylogo": False}))
            else:
                page.append(f'<img src="{figure.name}.png" alt="{html.escape(figure.title)}">')
    (out / "report.md").write_text("\n\n".join(markdown) + "\n", encoding="utf-8")
    (out / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")
    (out / "index.html").write_text(
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<style>{STYLE}</style><script src="{PLOTLY_JS}"></script></head>\n<body><h1>{html.escape(title)}</h1>\n'
        + "\n".join(page) + "\n</body></html>\n", encoding="utf-8")
    return [*written, out / "report.md", out / "index.html", out / PLOTLY_JS]
