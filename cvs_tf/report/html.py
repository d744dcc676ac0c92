"""The report's HTML: one self-contained page (inline CSS, figures and media as data URIs, no script, no network)."""

from __future__ import annotations

from html import escape

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;padding:0 18px 40px;
color:#1d1d1f;line-height:1.45}
h1{margin:18px 0 6px}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:34px}
.banner{background:#ffe08a;border:2px solid #c79a00;padding:10px 14px;font-weight:600;margin:12px 0}
.proto{color:#555;font-size:.9em;margin:2px 0 10px}
.missing{background:#f3f3f3;border-left:4px solid #999;padding:8px 12px;color:#444}
table.kv td{padding:2px 10px 2px 0;vertical-align:top}table.kv td:first-child{color:#555;white-space:nowrap}
table.grid{border-collapse:collapse;margin:8px 0}table.grid th,table.grid td{border:1px solid #ddd;padding:3px 8px;
text-align:right}table.grid th:first-child,table.grid td:first-child{text-align:left}
img.fig{max-width:100%;border:1px solid #eee}
nav a{margin-right:12px}
.gal{border:1px solid #ddd;border-radius:6px;margin:10px 0;padding:8px}
.gal h4{margin:0 0 6px;font-size:.95em}
.row{display:flex;gap:8px;flex-wrap:wrap;align-items:flex-start}
.item{width:170px;border:3px solid #ccc;border-radius:6px;padding:4px;font-size:.8em;background:#fff}
.item.query{border-color:#555;background:#f6f6f6}.item.right{border-color:#2e9d4a}.item.wrong{border-color:#d0342c}
.item img{max-width:160px;max-height:120px;display:block;margin:0 auto 4px;background:#fff}
.item audio{width:160px}.item .cap{font-style:italic;margin:2px 0}
.mark{font-weight:700}.right .mark{color:#2e9d4a}.wrong .mark{color:#d0342c}
.meta{color:#555;word-break:break-all}
"""


def page(title: str, banner: str | None, sections: list[tuple[str, str, str]]) -> str:
    """The whole page: ``sections`` are ``(anchor, heading, inner HTML)``."""
    nav = " ".join(f'<a href="#{a}">{escape(h)}</a>' for a, h, _ in sections)
    body = "\n".join(f'<section id="{a}"><h2>{escape(h)}</h2>\n{inner}</section>' for a, h, inner in sections)
    top = f'<div class="banner" id="synthetic-banner">{escape(banner)}</div>' if banner else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
            f'media-src data:; style-src \'unsafe-inline\'">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
            f"<h1>{escape(title)}</h1>{top}<nav>{nav}</nav>\n{body}\n</body></html>\n")


def protocol(text: str) -> str:
    return f'<p class="proto">{escape(text)}</p>'


def missing(text: str) -> str:
    return f'<p class="missing">not available: {escape(text)}</p>'


def figure(uri: str, alt: str) -> str:
    return f'<img class="fig" src="{uri}" alt="{escape(alt)}">'


def kv_table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{cells}</table>'


def grid(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="grid"><tr>{head}</tr>{body}</table>'


def _medium(media, modality: str, item_id: str) -> str:
    item = media.lookup(modality, item_id) if media is not None else None
    if item is None:
        return ""
    if item.kind == "image":
        return f'<img src="{item.data_uri}" alt="{escape(item_id)}">'
    if item.kind == "sound":
        return f'<audio controls preload="none" src="{item.data_uri}"></audio>'
    return f'<div class="cap">“{escape(item.text or "")}”</div>'


def _item(media, rec: dict, cls: str, head: str) -> str:
    return (f'<div class="item {cls}"><div class="mark">{escape(head)}</div>'
            f'{_medium(media, rec["modality"], rec["id"])}'
            f'<div class="meta">{escape(rec["modality"])} · {escape(rec["class"])}<br>{escape(rec["id"])}</div></div>')


def gallery(entries: list[dict], media, k: int) -> str:
    """One block per sampled query: the query, then its top ``k`` marked right (✓) or wrong (✗)."""
    blocks = []
    for e in entries:
        q, r = e["pair"]
        items = [_item(media, e["query"], "query", "query")]
        for rank, res in enumerate(e["results"], 1):
            mark = "✓" if res["right"] else "✗"
            partner = " partner" if res["partner"] else ""
            items.append(_item(media, res, "right" if res["right"] else "wrong",
                               f"{mark} #{rank} {res['score']:.3f}{partner}"))
        blocks.append(f'<div class="gal"><h4>{escape(q)} → {escape(r)}: top {k} for test query '
                      f'{escape(e["query"]["id"])}</h4><div class="row">{"".join(items)}</div></div>')
    return "\n".join(blocks)
