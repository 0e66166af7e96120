"""Rendering report blocks as Markdown and HTML, and writing both."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detect.report.blocks import Block
from detect.report.crops import CROP_PX
from imagery.atomic import atomic_write_text


def render_markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            lines += ["#" * blk[1] + " " + blk[2], ""]
        elif kind == "p":
            if blk[1]:
                lines += [blk[1], ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in blk[1]] + [""]
        elif kind == "img":
            lines += [f"![{blk[2]}]({blk[1]})", ""]
        elif kind == "link":
            lines += [f"[{blk[2]}]({blk[1]}){blk[3]}", ""]
        elif kind == "crops":
            lines.append("| crop | id | score | length (m) | low score |")
            lines.append("|---|---|---|---|---|")
            for c in blk[1]:
                crop = f"![{c['id']}]({c['file']})" if c["file"] else "(no image)"
                low = "low" if c["low_score"] else ""
                lines.append(f"| {crop} | {c['id']} | {c['score']:.3f} | {c['length_m']:.0f} | {low} |")
            lines.append("")
        elif kind == "table":
            df = blk[1]
            lines.append("| " + " | ".join(str(c) for c in df.columns) + " |")
            lines.append("|" + "---|" * len(df.columns))
            for row in df.itertuples(index=False):
                lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
            lines.append("")
    return "\n".join(lines)


def render_html(blocks: Sequence[Block], title: str) -> str:
    body: list[str] = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            body.append(f"<h{blk[1]}>{_inline(blk[2])}</h{blk[1]}>")
        elif kind == "p":
            if blk[1]:
                body.append(f"<p>{_inline(blk[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in blk[1]) + "</ul>")
        elif kind == "img":
            body.append(
                f'<p><img src="{html.escape(blk[1])}" alt="{html.escape(blk[2])}" style="max-width:100%"></p>'
            )
        elif kind == "link":
            body.append(f'<p><a href="{html.escape(blk[1])}">{_inline(blk[2])}</a>{_inline(blk[3])}</p>')
        elif kind == "crops":
            body.append('<div class="sheet">' + "".join(_crop_figure(c) for c in blk[1]) + "</div>")
        elif kind == "table":
            df = blk[1]
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
            rows = "".join(
                "<tr"
                + (' class="unobserved"' if "NA" in [_cell(v) for v in r] else "")
                + ">"
                + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r)
                + "</tr>"
                for r in df.itertuples(index=False)
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.4}"
        "table{border-collapse:collapse;font-size:85%}td,th{border:1px solid #ccc;padding:2px 6px}"
        "tr.unobserved{color:#888;background:#f4f4f4}code{background:#f0f0f0}"
        ".sheet{display:flex;flex-wrap:wrap;gap:8px}.crop{margin:0;width:144px;font-size:11px;line-height:1.3}"
        ".frame{position:relative;width:144px;height:144px;background:#000}"
        ".frame img{display:block;image-rendering:pixelated}.frame svg{position:absolute;left:0;top:0}"
        ".frame polygon{fill:none;stroke:#ff2d2d;stroke-width:.6}"
        ".low .frame polygon{stroke:#ff9900;stroke-dasharray:1.5 1}.lowtag{color:#c05000;font-weight:bold}"
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _crop_figure(c: dict[str, Any]) -> str:
    """One crop of a contact sheet: the image at 3× with the box drawn over it, then id, score, length."""
    side = 144
    img = (
        f'<img src="{html.escape(c["file"])}" alt="{html.escape(c["id"])}" width="{side}" height="{side}">'
        if c["file"]
        else ""
    )
    box = (
        f'<svg viewBox="0 0 {CROP_PX} {CROP_PX}" width="{side}" height="{side}" aria-hidden="true">'
        f'<polygon points="{html.escape(c["box_px"].replace(";", " "))}"/></svg>'
    )
    low = '<br><span class="lowtag">low score</span>' if c["low_score"] else ""
    return (
        f'<figure class="crop{" low" if c["low_score"] else ""}" id="{html.escape(c["id"])}">'
        f'<div class="frame">{img}{box}</div><figcaption><b>{html.escape(c["id"])}</b><br>'
        f"score {c['score']:.3f} · {c['length_m']:.0f} m{low}</figcaption></figure>"
    )


def _cell(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "NA"
    return str(v)


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def write_report(blocks: Sequence[Block], out_dir: Path, title: str) -> tuple[Path, Path]:
    md = atomic_write_text(out_dir / "report.md", render_markdown(blocks))
    ht = atomic_write_text(out_dir / "report.html", render_html(blocks, title))
    return md, ht
