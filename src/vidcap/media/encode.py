"""Encoding: clips with the ffmpeg CLI, window mp4s in-process with PyAV, previews with libwebp."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidcap.media.ffmpeg import FFmpegError, run_ffmpeg
from vidcap.media.scratch import scratch_dir
from vidcap.media.timeline import Timeline, scan
from vidcap.windowing import WEBP_MAX_SIDE

# Square pixels at the display aspect ratio (a 720x480 source with 32:27 pixels becomes 852x480), and even
# sizes for yuv420p encoders (641x359 becomes 640x358). Previews and model frames then need no correction.
SQUARE_EVEN_FILTER = "scale=trunc(iw*sar/2)*2:trunc(ih/2)*2,setsar=1"


def transcode_clip(
    source: Path,
    start_frame: int,
    stop_frame: int,
    fps_fraction: str,
    *,
    timeline: Timeline | None = None,
    encoder: str = "libx264",
    threads: int = 0,
    with_audio: bool = True,
    keyframe_interval: int | None = None,
    preset: str | None = None,
    bit_rate: int | None = None,
    timeout: float | None = None,
) -> tuple[bytes, list[str]]:
    """An mp4 (H.264 by default) of exactly the source frames ``[start_frame, stop_frame)`` (presentation order),
    once each, and ffmpeg's complaints about the source (empty when it decoded cleanly).

    Frames are taken by their true times (``timeline``): every frame between the midpoints to its neighbours
    outside the span, so no rate, start offset or rounding can double or drop one. The clip is re-timed to a
    constant rate, frame ``i`` at ``i / fps``: later stages count frames and the model sees true times.
    Sources ffmpeg cannot seek exactly (MPEG-TS, a clock that restarts) are cut from their packets first.
    """
    fps = Fraction(fps_fraction)
    timeline = timeline or scan(source, float(fps))
    lo, hi = timeline.bounds(start_frame, stop_frame)
    count = stop_frame - start_frame
    with scratch_dir() as tmp:
        out = tmp / "clip.mp4"
        if timeline.indexed:
            # -noaccurate_seek: ffmpeg starts at the keyframe and trims nothing itself; the select below does.
            inputs = ["-noaccurate_seek", "-ss", f"{timeline.seek_time(start_frame):.6f}", "-i", str(source)]
        else:
            part = tmp / "part.nut"
            extract_packets(source, timeline, start_frame, stop_frame, part, with_audio=with_audio)
            inputs = ["-i", str(part)]
        # Slice threads only for decoding: how frame threads conceal a damaged source can depend on their
        # timing, and a rerun must give the same clip.
        args = ["-threads", str(threads), "-thread_type", "slice", "-copyts", *inputs]
        args += ["-map", "0:v:0"]
        if with_audio:
            args += ["-map", "0:a:0?", "-af", f"atrim=start={lo:.6f}:end={hi:.6f},asetpts=PTS-STARTPTS", "-c:a", "aac"]
        else:
            args += ["-an"]
        select = f"select='gte(t,{lo:.6f})*lt(t,{hi:.6f})',setpts=N*{fps.denominator}/{fps.numerator}/TB"
        args += ["-vf", f"{select},{SQUARE_EVEN_FILTER}", "-fps_mode", "passthrough", "-r", fps_fraction]
        args += ["-pix_fmt", "yuv420p", "-c:v", encoder, "-threads", str(threads)]
        if bit_rate:
            args += ["-b:v", str(bit_rate)]
        elif encoder == "libvpx-vp9":  # constant quality, as NeMo Curator encodes VP9 clips
            args += ["-b:v", "0", "-crf", "31"]
        if encoder == "libvpx-vp9":
            args += ["-deadline", "good", "-cpu-used", "4", "-row-mt", "1", "-tile-columns", "2"]
        if preset:
            args += ["-preset", preset]
        if keyframe_interval:
            args += ["-force_key_frames", f"expr:eq(mod(n,{keyframe_interval}),0)"]
        args += ["-frames:v", str(count), "-map_metadata", "-1", "-movflags", "+faststart", str(out)]
        problems = run_ffmpeg(args, timeout=timeout)
        return (out.read_bytes() if out.is_file() else b""), problems


def extract_packets(
    source: Path, timeline: Timeline, start_frame: int, stop_frame: int, target: Path, *, with_audio: bool
) -> None:
    """The packets a decoder needs for frames ``[start_frame, stop_frame)``, copied (no decoding) into a NUT
    file with the timeline's timestamps: from the keyframe before the span, found by its byte position, to
    the last packet of the span, and the audio of the same stretch. No decoder ever starts mid-GOP, and a
    clock that restarted in the source runs on here."""
    begin, end = timeline.packet_range(start_frame, stop_frame)
    lo, hi = timeline.bounds(start_frame, stop_frame)
    tb = timeline.time_base
    by_pos = {int(p): k for k, p in enumerate(timeline.pos) if p >= 0}
    positioned = len(by_pos) == timeline.num_frames
    # Audio is muxed near, not with, its video: start reading a little earlier to have all of it.
    early = begin
    if with_audio and positioned:
        early = int(np.searchsorted(timeline.dts * float(tb), timeline.dts[begin] * float(tb) - 2.0))
    with av.open(str(source), metadata_errors="ignore") as src, av.open(str(target), "w", format="nut") as dst:
        video = src.streams.video[0]
        audio = src.streams.audio[0] if with_audio and src.streams.audio else None
        if audio is not None and not audio.codec_context.sample_rate:
            audio = None  # its parameters could not be found near the start: cut the video alone
        v_out = dst.add_stream_from_template(video)
        a_out = dst.add_stream_from_template(audio) if audio is not None else None
        if positioned:
            src.seek(int(timeline.pos[early]), unsupported_byte_offset=True)
        counted = -1
        video_done = False
        shift = 0  # ticks added to the audio: the clock reset the last video packet read was after
        audio_until = -1.0
        for packet in src.demux([s for s in (video, audio) if s is not None]):
            if packet.size == 0:
                continue
            if packet.stream is video:
                counted += 1
                k = by_pos.get(packet.pos if packet.pos is not None else -1, -1) if positioned else counted
                if packet.pos is not None:
                    shift = timeline.offset_at(packet.pos)
                if k >= end + 50:
                    break  # well past the span: the audio that belongs to it has come by
                if begin <= k < end:
                    packet.pts, packet.dts = int(timeline.pts[k]), int(timeline.dts[k])
                    packet.time_base = tb
                    packet.stream = v_out
                    dst.mux(packet)
                    video_done = k == end - 1
                    if video_done and a_out is None:
                        break
            elif a_out is not None and packet.pts is not None and packet.time_base is not None:
                ticks = round(shift * tb / packet.time_base)
                t = float((packet.pts + ticks) * packet.time_base)
                if t > hi + 1.0 and video_done:
                    break
                # Outside the stretch, or audio of the other side of a clock reset muxed across it.
                if not lo - 1.0 <= t <= hi + 1.0 or t <= audio_until:
                    continue
                audio_until = t
                packet.pts += ticks
                if packet.dts is not None:
                    packet.dts += ticks
                packet.stream = a_out
                dst.mux(packet)


class Mp4Writer:
    """Frames in, H.264 mp4 bytes out, in memory; pts are renumbered from 0."""

    def __init__(self, fps: Fraction, width: int, height: int, *, preset: str = "veryfast", threads: int = 0):
        self._buf = io.BytesIO()
        self._out = av.open(self._buf, "w", format="mp4")
        self._stream = self._out.add_stream("libx264", rate=fps)
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.options = {"preset": preset, "crf": "23"}
        self._stream.codec_context.thread_count = threads
        self._time_base = Fraction(1, 1) / fps
        self._count = 0

    def add(self, frame: av.VideoFrame) -> None:
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        frame.pts = self._count
        frame.time_base = self._time_base
        frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder choose keyframes
        self._out.mux(self._stream.encode(frame))
        self._count += 1

    def finish(self) -> bytes:
        self._out.mux(self._stream.encode(None))
        self._out.close()
        return self._buf.getvalue()


def remux_mp4(template: av.video.stream.VideoStream, packets: list[av.Packet]) -> bytes:
    """An mp4 of ``packets`` copied as they are (no re-encode), timestamps moved to start at 0.

    Only right when the first packet is a keyframe and nothing refers outside the run.
    """
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream_from_template(template)
        pts0 = min(p.pts for p in packets if p.pts is not None)
        for src in packets:
            packet = av.Packet(bytes(src))
            packet.pts = None if src.pts is None else src.pts - pts0
            packet.dts = None if src.dts is None else src.dts - pts0
            packet.duration = src.duration
            packet.is_keyframe = src.is_keyframe
            packet.time_base = src.time_base
            packet.stream = stream
            out.mux(packet)
    return buf.getvalue()


def webp_output(dst: Path, *, compression_level: int, quality: int) -> list[str]:
    """ffmpeg output arguments for an animated WebP with libwebp; compression level 0 means lossless."""
    return [
        "-c:v", "libwebp",
        "-lossless", "1" if compression_level == 0 else "0",
        "-compression_level", str(compression_level),
        "-q:v", str(quality),
        "-loop", "0",
        str(dst),
    ]  # fmt: skip


def webp_command(
    src: Path,
    dst: Path,
    *,
    target_fps: float,
    target_height: int,
    compression_level: int,
    quality: int,
    threads: int,
) -> list[str]:
    """ffmpeg arguments for an animated WebP of a video file: every frame decoded, one per 1/fps s kept."""
    return [
        "-threads", str(threads),
        "-i", str(src),
        "-an",
        # Within libwebp's 16383 px a side, the shape kept.
        "-vf", f"fps={target_fps},scale=-1:{target_height},scale='min(iw,{WEBP_MAX_SIDE})':-1",
        *webp_output(dst, compression_level=compression_level, quality=quality),
    ]  # fmt: skip


def encode_webp(
    mp4_bytes: bytes,
    *,
    target_fps: float,
    target_height: int,
    compression_level: int,
    quality: int,
    threads: int,
    timeout: float | None = None,
) -> bytes:
    """Animated WebP preview of an mp4; raises FFmpegError (with the command) on failure."""
    with scratch_dir() as tmp:
        src, dst = tmp / "window.mp4", tmp / "preview.webp"
        src.write_bytes(mp4_bytes)
        command = webp_command(
            src,
            dst,
            target_fps=target_fps,
            target_height=target_height,
            compression_level=compression_level,
            quality=quality,
            threads=threads,
        )
        run_ffmpeg(command, timeout=timeout)
        return dst.read_bytes()


def encode_webp_frames(
    frames: np.ndarray,
    *,
    fps: float,
    compression_level: int,
    quality: int,
    repeats: list[int] | None = None,
) -> bytes:
    """Animated WebP of frames already picked and scaled ((n, h, w, 3) RGB), by libwebp in this process (PyAV):
    the same encoder, options and bytes as ffmpeg's ``-c:v libwebp`` on these frames, without an ffmpeg process
    per preview (libwebp runs on one thread; a few frames take milliseconds). ``repeats``: how many times each
    frame is shown; copies are encoded as they go, never held. Raises FFmpegError on failure."""
    _, height, width, _ = frames.shape
    counts = repeats if repeats is not None else [1] * len(frames)
    rate = Fraction(fps).limit_denominator(1_000_000)
    options = {"lossless": "1" if compression_level == 0 else "0", "compression_level": str(compression_level),
               "quality": str(quality)}  # fmt: skip
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format="webp", options={"loop": "0"}) as out:
            stream = out.add_stream("libwebp", rate=rate, options=options)
            # bgra, as ffmpeg picks for RGB input: libwebp converts to YUV itself (so the bytes match ffmpeg's).
            stream.width, stream.height, stream.pix_fmt = width, height, "bgra"
            pts = 0
            for frame, count in zip(frames, counts, strict=True):
                image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="bgra")
                for _ in range(count):
                    image.pts, image.time_base = pts, 1 / rate
                    out.mux(stream.encode(image))
                    pts += 1
            out.mux(stream.encode(None))
    except (av.error.FFmpegError, ValueError) as exc:
        raise FFmpegError(["libwebp", f"{width}x{height}", f"{len(frames)} frames"], str(exc)) from exc
    return buffer.getvalue()
