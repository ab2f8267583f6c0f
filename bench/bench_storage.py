"""What object storage costs a run: the same job from a local folder into a local folder, and from a bucket into
a bucket (moto's S3 server on 127.0.0.1, started here), alternating, median of --repeat.

moto keeps objects in memory on this machine, so the figure is vidcap's own overhead (listing, copies of the
sources, whole-object puts, the journal and lock objects, HEADs for resume), not a network's.

    .venv/bin/python bench/bench_storage.py [--videos 4] [--seconds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

logger = logging.getLogger("bench")


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)


def make_videos(folder: Path, count: int, seconds: float) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             "testsrc2=size=1280x720:rate=30", "-t", str(seconds), "-vf", "noise=alls=3:allf=t,format=yuv420p",
             "-c:v", "libx264", "-preset", "veryfast", str(folder / f"v{i}.mp4")],
            check=True,
        )  # fmt: skip


def run_once(source: str, output: str) -> float:
    from vidcap.config import RunConfig, build_pipeline

    config = RunConfig(input_path=source, output_path=output, fixed_stride_split_duration=5.0,
                       transcode_preset="veryfast", generate_previews=True)  # fmt: skip
    start = time.perf_counter()
    result = build_pipeline(config).run()
    wall = time.perf_counter() - start
    assert result.summary and result.summary["videos"]["ok"] == result.discovered, result.summary
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    logging.getLogger("vidcap").setLevel(logging.WARNING)
    server, endpoint = start_moto()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint)  # fmt: skip
    try:
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("bench")
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "in"
            make_videos(src, args.videos, args.seconds)
            fs.put(f"{src}/", "bench/in/", recursive=True)
            times: dict[str, list[float]] = {"local": [], "bucket": []}
            for k in range(args.repeat):
                order = ["local", "bucket"] if k % 2 == 0 else ["bucket", "local"]
                for side in order:
                    if side == "local":
                        times[side].append(run_once(str(src), f"{tmp}/out{k}"))
                    else:
                        times[side].append(run_once("s3://bench/in", f"s3://bench/out{k}"))
            local, bucket = statistics.median(times["local"]), statistics.median(times["bucket"])
            logger.info("%d videos of %.0f s at 720p, previews on, median of %d:", args.videos, args.seconds,
                        args.repeat)  # fmt: skip
            logger.info("  local folder -> local folder: %.2f s", local)
            logger.info("  s3 bucket -> s3 bucket (moto on 127.0.0.1): %.2f s", bucket)
            logger.info("  bucket / local: x%.2f", bucket / local)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


if __name__ == "__main__":
    main()
