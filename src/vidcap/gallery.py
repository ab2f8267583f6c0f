"""``vidcap gallery``: one static page with every window's preview beside its captions."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vidcap import paths
from vidcap.data import CAPTION_FAMILIES, ENHANCEMENT_ALGORITHMS
from vidcap.errors import ConfigError, redact

# Marks a page vidcap wrote, so it rewrites its own index.html and never a user's.
MARK = "<!-- vidcap gallery -->"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; background: #fafafa; color: #222; }
header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
input, select { font-size: 1rem; padding: .3rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1rem; margin-top: 1rem; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6rem; min-width: 0;
         overflow-wrap: anywhere; }
figure img { max-width: 100%; height: auto; display: block; background: #eee; }
.nopreview { height: 120px; display: flex; align-items: center; justify-content: center; background: #eee; }
.meta { font-size: .8rem; color: #666; margin: .4rem 0; word-break: break-all; }
.status { font-weight: 600; padding: 0 .3rem; border-radius: 3px; }
.ok { background: #d8f3dc; } .truncated { background: #fff3bf; } .error { background: #ffc9c9; }
.skipped { background: #e9ecef; } .flag { background: #ffd8a8; }
.caption { white-space: pre-wrap; overflow-wrap: anywhere; font-size: .9rem; margin: .3rem 0; }
.label { font-size: .75rem; text-transform: uppercase; color: #888; }
.problems { margin-top: 1rem; background: #fff4e6; padding: .5rem 1rem; border-radius: 6px; }
.problems table { border-collapse: collapse; } .problems td { padding: .2rem .6rem; vertical-align: top; }
.problems td.n { text-align: right; font-weight: 600; } .problems ul { margin: .2rem 0; padding-left: 1.2rem; }
.totals { color: #444; }
"""

SCRIPT = """
const q = document.getElementById('q'), s = document.getElementById('status');
function filter() {
  const text = q.value.toLowerCase(), want = s.value;
  let shown = 0;
  for (const f of document.querySelectorAll('figure')) {
    const match = want === 'degenerate' ? f.dataset.degenerate === '1' : f.dataset.status === want;
    const ok = (!want || match) && f.textContent.toLowerCase().includes(text);
    f.hidden = !ok; shown += ok;
  }
  document.getElementById('count').textContent = shown;
}
q.addEventListener('input', filter); s.addEventListener('change', filter);
"""


def _text(label: str, text: str | None) -> str:
    if not text:
        return ""
    return f'<div class="label">{html.escape(label)}</div><p class="caption">{html.escape(text)}</p>'


def _figure(row: dict[str, Any]) -> str:
    e = html.escape
    status = row.get("caption_status") or "skipped"
    preview = row.get("preview_path")
    media = (
        f'<img loading="lazy" src="{e(preview)}" alt="preview {e(row["clip_uuid"])}">'
        if preview
        else '<div class="nopreview">no preview</div>'
    )
    texts = [_text(f"{family} caption", row.get(f"{family}_caption")) for family in CAPTION_FAMILIES] + [
        _text(f"{algo} enhanced", row.get(f"{algo}_enhanced_caption")) for algo in ENHANCEMENT_ALGORITHMS
    ]
    if row.get("caption_error"):
        texts.append(f'<p class="caption error">{e(row["caption_error"])}</p>')
    flag = ' <span class="status flag">degenerate</span>' if row.get("caption_degenerate") else ""
    tokens = f" · {row['output_tokens']} tokens" if row.get("output_tokens") is not None else ""
    degenerate = "1" if row.get("caption_degenerate") else "0"
    return (
        f'<figure data-status="{e(status)}" data-degenerate="{degenerate}">{media}'
        f'<div class="meta">{e(row.get("relative_path") or row["source_video"])} · '
        f"{row['start_s']:.2f}-{row['end_s']:.2f} s · frames {row['start_frame']}-{row['end_frame']}{tokens}<br>"
        f'<a href="{e(row.get("clip_path") or "")}">{e(row["clip_uuid"])}</a> '
        f'<span class="status {e(status)}">{e(status)}</span>{flag}</div>'
        f"{''.join(texts)}</figure>"
    )


def _filtered_figure(clip: dict[str, Any]) -> str:
    """A clip a filter took out: no windows, no preview; why, its scores, and its file."""
    e = html.escape
    reasons = "".join(f'<p class="caption">{e(stage)}: {e(str(why))}</p>' for stage, why in clip["filtered"].items())
    scores = "; ".join(f"{e(k)} {e(json.dumps(v))}" for k, v in clip["scores"].items())
    span = clip.get("duration_span") or [0, 0]
    return (
        f'<figure data-status="filtered" data-degenerate="0"><div class="nopreview">filtered</div>'
        f'<div class="meta">{e(clip.get("relative_path") or "")} · {span[0]:.2f}-{span[1]:.2f} s<br>'
        f'<a href="{e(clip.get("clip_path") or "")}">{e(clip["clip_uuid"])}</a> '
        f'<span class="status flag">filtered</span></div>{reasons}'
        f"{f'<p class=meta>{scores}</p>' if scores else ''}</figure>"
    )


def problem_kind(failure: dict[str, Any]) -> str:
    """What a problem is, without the numbers that differ per video: its stage and the reason's gist."""
    reason = re.split(r"[:(]", str(failure.get("reason") or ""), maxsplit=1)[0]
    reason = re.sub(r"\d+(\.\d+)?", "N", reason).strip()
    return f"{failure.get('stage')}: {reason}"


def _failures(failures: Sequence[dict[str, Any]]) -> str:
    """Every problem of the run in plain view, grouped by kind with a count each."""
    if not failures:
        return ""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for f in failures:
        kinds.setdefault(problem_kind(f), []).append(f)
    rows = []
    for kind, items in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        retry = " (a rerun may fix these)" if any(f.get("retry") for f in items) else ""
        listed = "".join(
            f"<li><b>{html.escape(str(f.get('video')))}</b>: {html.escape(str(f.get('reason')))}</li>" for f in items
        )
        rows.append(f'<tr><td class="n">{len(items)}</td><td>{html.escape(kind)}{retry}<ul>{listed}</ul></td></tr>')
    return (
        f'<section class="problems"><h2>{len(failures)} problems in {len(kinds)} kinds</h2>'
        f"<table>{''.join(rows)}</table></section>"
    )


def render_gallery(
    rows: Sequence[dict[str, Any]],
    title: str,
    failures: Sequence[dict[str, Any]] = (),
    filtered: Sequence[dict[str, Any]] = (),
) -> str:
    counts = Counter(r.get("caption_status") or "skipped" for r in rows)
    degenerate = sum(1 for r in rows if r.get("caption_degenerate"))
    choices = [*sorted(counts.items()), ("degenerate", degenerate), ("filtered", len(filtered))]
    options = "".join(
        f'<option value="{html.escape(s)}">{html.escape(s)} ({n})</option>' for s, n in choices if n or s in counts
    )
    figures = "\n".join([*(_figure(r) for r in rows), *(_filtered_figure(c) for c in filtered)])
    return f"""<!doctype html>
{MARK}
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><header><h1>{html.escape(title)}</h1><span><span id="count">{len(rows)}</span> windows</span>
<input id="q" type="search" placeholder="search captions and names">
<select id="status"><option value="">any status</option>{options}</select></header>
{_failures(failures)}
<main class="grid">
{figures}
</main><script>{SCRIPT}</script></body></html>
"""


def is_our_page(data: bytes) -> bool:
    return MARK.encode() in data[:4096]


def write_gallery(output: str | Path) -> str:
    """OUTPUT/index.html from OUTPUT/windows.parquet; paths inside are relative, so the folder can move."""
    from vidcap.output import output_at
    from vidcap.output.manifest import is_our_parquet

    out = output_at(output)
    where = out.url.rstrip("/")
    try:
        manifest = out.read(paths.WINDOWS_PARQUET)
        if manifest is None:
            raise ConfigError(f"{where}/{paths.WINDOWS_PARQUET} not found: run `vidcap run INPUT {output}` first")
        if out.foreign(paths.GALLERY_HTML, is_our_page):
            raise ConfigError(f"{where}/{paths.GALLERY_HTML} exists and was not written by vidcap: move it away to "
                              "write the gallery there")  # fmt: skip
        if not is_our_parquet(manifest):
            raise ConfigError(
                f"{where}/{paths.WINDOWS_PARQUET} was not written by vidcap (it is not a parquet file with vidcap's "
                f"window columns): point `vidcap gallery` at a folder `vidcap run` wrote"
            )
        rows = pq.read_table(pa.BufferReader(manifest)).to_pylist()
        try:
            data = json.loads(out.read(paths.SUMMARY_JSON) or b"{}")
        except ValueError:
            data = {}
        name = Path(out.root).resolve().name if isinstance(out.root, Path) else where.rsplit("/", 1)[-1]
        page = render_gallery(rows, f"vidcap · {name}", data.get("failures", []), data.get("filtered_clips", []))
        out.write([(paths.GALLERY_HTML, page.encode())])
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"cannot write {where}/{paths.GALLERY_HTML}: {redact(getattr(exc, 'strerror', None) or str(exc))}"
        ) from exc
    finally:
        out.close_journal()
    return f"{where}/{paths.GALLERY_HTML}"
