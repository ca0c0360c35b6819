"""What a person looks at: one contact sheet PNG per cluster (its faces, best first) and an
index.html showing every sheet, biggest cluster first."""

from __future__ import annotations

import html
import io
from pathlib import Path

from PIL import Image, ImageDraw

from facecnn.data.decode import read_image

THUMB = 96  # pixels per face on a sheet
COLUMNS = 8
MAX_FACES = 64  # a sheet shows the best faces of a bigger cluster, and says how many more
TITLE = 24


def contact_sheet(title: str, crops: list[Path], total: int,
                  qualities: list[float | None] | None = None) -> bytes:
    """A PNG of these face crops in a grid under a title line (with the count beyond), each
    with its face's quality in a corner where known."""
    shown = crops[:MAX_FACES]
    rows = max(1, -(-len(shown) // COLUMNS))
    sheet = Image.new("RGB", (COLUMNS * THUMB, TITLE + rows * THUMB), (245, 245, 245))
    more = f" (best {len(shown)} shown)" if total > len(shown) else ""
    ImageDraw.Draw(sheet).text((6, 6), f"{title}: {total} faces{more}", fill=(20, 20, 20))
    for k, crop in enumerate(shown):
        try:
            thumb = Image.fromarray(read_image(crop, size=THUMB))
        except ValueError:  # a crop replaced by something else: its tile stays blank
            continue
        x, y = (k % COLUMNS) * THUMB, TITLE + (k // COLUMNS) * THUMB
        sheet.paste(thumb, (x, y))
        quality = (qualities or [None] * len(shown))[k]
        if quality is not None:
            label = f"q {quality:.2f}"
            draw = ImageDraw.Draw(sheet)
            draw.rectangle((x, y + THUMB - 12, x + 6 * len(label) + 4, y + THUMB), fill=(0, 0, 0))
            draw.text((x + 2, y + THUMB - 12), label, fill=(255, 255, 255))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def index_page(entries: list[tuple[str, int, float | None, str]]) -> str:
    """index.html for (cluster, size, cohesion, sheet file name), in the order given."""
    sections = []
    for name, size, cohesion, sheet in entries:
        stated = "" if cohesion is None else f", cohesion {cohesion:.2f}"
        name, sheet = html.escape(name), html.escape(sheet)
        sections.append(f'<section id="{name}"><h2><a href="{name}/">{name}</a> '
                        f"<small>{size} faces{stated}</small></h2>"
                        f'<img src="{sheet}" alt="faces of {name}" loading="lazy"></section>')
    people = sum(1 for e in entries if e[2] is not None)
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>facecnn clusters"
            "</title><style>body{font-family:sans-serif;margin:1em}img{max-width:100%}"
            "small{color:#666;font-weight:normal}</style></head><body>\n"
            f"<h1>{people} clusters</h1>\n" + "\n".join(sections) + "\n</body></html>\n")
