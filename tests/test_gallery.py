from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from test_pipeline import build

from vidcap.gallery import render_gallery


def test_gallery_lists_every_window_with_its_preview(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(corpus, out).run()
    proc = subprocess.run([sys.executable, "-m", "vidcap.cli", "gallery", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    page = (out / "index.html").read_text()
    sources = re.findall(r'<img loading="lazy" src="([^"]+)"', page)
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "windows.parquet").to_pylist()
    assert len(sources) == len(rows) == page.count("<figure")
    assert all((out / s).is_file() for s in sources)  # relative links that resolve
    # The corpus' three unreadable files, in plain view with a count per kind.
    assert "3 problems in 2 kinds" in page and "truncated.mp4" in page
    assert '<td class="n">2</td><td>video_reader: not a readable video container' in page


def test_captions_are_escaped() -> None:
    row = {
        "clip_uuid": "2c07bf50-4d24-5cb1-a028-f93c5afbea2e",
        "source_video": "/v.mp4",
        "relative_path": "v.mp4",
        "start_s": 0.0,
        "end_s": 8.5,
        "start_frame": 0,
        "end_frame": 255,
        "qwen_caption": "<script>alert(1)</script> & more",
        "qwen_lm_enhanced_caption": "richer",
        "caption_status": "ok",
        "caption_degenerate": True,
        "output_tokens": 12,
        "preview_path": None,
        "clip_path": "clips/x.mp4",
    }
    page = render_gallery([row], "t")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "richer" in page and "degenerate" in page and "no preview" in page


def test_gallery_without_a_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vidcap.cli", "gallery", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "windows.parquet not found" in " ".join(proc.stderr.split())
