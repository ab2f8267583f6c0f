"""``vidcap`` command line. Every default shown here is read from the stage classes."""

from __future__ import annotations

import dataclasses
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from vidcap.stages.base import ConfigError, Stage
from vidcap.stages.caption_preparation import CaptionPreparationStage
from vidcap.stages.preview import PreviewStage
from vidcap.stages.splitting import ClipSplittingStage
from vidcap.stages.transcoding import ClipTranscodingStage

# Plain (click) help: rich panels truncate long flag names on narrow terminals.
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Videos in, captioned clip windows out.",
)
console = Console(stderr=True)
logger = logging.getLogger("vidcap")


def default(cls: type[Stage], name: str) -> Any:
    """The one place a CLI default comes from: the stage dataclass field."""
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == name:
            return f.default
    raise KeyError(f"{cls.__name__} has no field {name}")


class Splitting(StrEnum):
    fixed_stride = "fixed_stride"
    scene = "scene"
    none = "none"


class ExecutorName(StrEnum):
    local = "local"
    ray = "ray"


DEFAULT_SPLITTING = Splitting(default(ClipSplittingStage, "algorithm"))


def setup_logging(verbose: bool) -> None:
    handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


@app.command()
def run(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="A video, a folder (recursive) or a .txt list.")],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Folder for clips, previews and metadata.")],
    splitting_algorithm: Annotated[Splitting, typer.Option(help="How videos are cut into clips.")] = DEFAULT_SPLITTING,
    fixed_stride_split_duration: Annotated[
        float, typer.Option(help="Clip length and stride in seconds (fixed_stride).")
    ] = default(ClipSplittingStage, "clip_len_s"),
    fixed_stride_min_clip_length: Annotated[
        float, typer.Option(help="Drop clips shorter than this many seconds.")
    ] = default(ClipSplittingStage, "min_clip_length_s"),
    scene_threshold: Annotated[
        float, typer.Option(help="Content-detector threshold for --splitting-algorithm scene.")
    ] = default(ClipSplittingStage, "scene_threshold"),
    transcode_encoder: Annotated[
        str,
        typer.Option(help="ffmpeg H.264 encoder for clips (libx264, libopenh264, h264_nvenc)."),
    ] = default(ClipTranscodingStage, "encoder"),
    transcode_cpus_per_worker: Annotated[float, typer.Option(help="ffmpeg threads per clip encode.")] = default(
        ClipTranscodingStage, "num_cpus_per_worker"
    ),
    captioning_window_size: Annotated[int, typer.Option(help="Frames per caption window (at least 4).")] = default(
        CaptionPreparationStage, "window_size"
    ),
    captioning_remainder_threshold: Annotated[
        int, typer.Option(help="A leftover of at least this many frames becomes its own window.")
    ] = default(CaptionPreparationStage, "remainder_threshold"),
    captioning_sampling_fps: Annotated[
        float, typer.Option(help="Frames per second of video shown to the captioning model.")
    ] = default(CaptionPreparationStage, "sampling_fps"),
    generate_previews: Annotated[
        bool, typer.Option("--generate-previews", help="Write an animated WebP per window.")
    ] = False,
    preview_target_fps: Annotated[float, typer.Option(help="Frames per second in previews.")] = default(
        PreviewStage, "target_fps"
    ),
    preview_target_height: Annotated[
        int, typer.Option(help="Preview height in pixels; width keeps the aspect ratio.")
    ] = default(PreviewStage, "target_height"),
    preview_compression_level: Annotated[
        int, typer.Option(help="libwebp compression level 0-6 (0 = lossless).")
    ] = default(PreviewStage, "compression_level"),
    preview_quality: Annotated[int, typer.Option(help="libwebp quality 0-100.")] = default(PreviewStage, "quality"),
    executor: Annotated[
        ExecutorName, typer.Option(help="Run in this process, or on a Ray cluster.")
    ] = ExecutorName.local,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local Ray).")] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Process at most N videos (after skipping finished ones)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo videos already finished in OUTPUT.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More logging.")] = False,
) -> None:
    """Split, window, preview and write every video under INPUT into OUTPUT."""
    from vidcap.pipeline import Pipeline
    from vidcap.stages.reader import VideoReaderStage
    from vidcap.stages.writer import ClipWriterStage

    setup_logging(verbose)
    try:
        stages: list[Stage] = [
            VideoReaderStage(input_path, exclude=[output_path]),
            ClipSplittingStage(
                algorithm=splitting_algorithm.value,
                clip_len_s=fixed_stride_split_duration,
                clip_stride_s=fixed_stride_split_duration,
                min_clip_length_s=fixed_stride_min_clip_length,
                scene_threshold=scene_threshold,
            ),
            ClipTranscodingStage(
                encoder=transcode_encoder,
                num_cpus_per_worker=transcode_cpus_per_worker,
                # Window mp4s for previews are then packet copies instead of re-encodes.
                keyframe_interval=captioning_window_size if generate_previews else None,
            ),
            CaptionPreparationStage(
                window_size=captioning_window_size,
                remainder_threshold=captioning_remainder_threshold,
                sampling_fps=captioning_sampling_fps,
                keep_mp4=generate_previews,
                sample_frames=False,
                verbose=verbose,
            ),
        ]
        if generate_previews:
            stages.append(
                PreviewStage(
                    target_fps=preview_target_fps,
                    target_height=preview_target_height,
                    compression_level=preview_compression_level,
                    quality=preview_quality,
                    verbose=verbose,
                )
            )
        stages.append(ClipWriterStage(output_path, overwrite=overwrite))
        pipeline = Pipeline(stages, limit=limit)
        result = _run_with_progress(pipeline, executor, ray_address)
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    failed = [r for r in result.reports if r.status == "failed"]
    logger.info(
        "done in %.1f s: %d videos processed (%d failed), %d already done; see %s",
        result.wall_s, len(result.reports), len(failed), len(result.skipped), output_path / "summary.json",
    )  # fmt: skip
    if result.discovered == 0:
        console.print(f"[bold red]error:[/] no videos found in {input_path}", highlight=False)
        raise typer.Exit(1)


def _run_with_progress(pipeline: Any, executor_name: ExecutorName, ray_address: str | None) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vidcap.executors.base import Executor
    from vidcap.executors.local import LocalExecutor

    executor: Executor
    if executor_name is ExecutorName.ray:
        from vidcap.executors.ray import RayExecutor

        executor = RayExecutor(address=ray_address)
    else:
        executor = LocalExecutor()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("videos", total=None)

        def on_report(report: Any) -> None:
            progress.advance(task)
            if report.status == "failed":
                logger.warning("%s failed: %s", report.relative_path, report.errors[0]["reason"])

        def on_plan(todo: int, done: int) -> None:
            progress.update(task, total=todo)

        return pipeline.run(executor, on_report=on_report, on_plan=on_plan)


@app.command()
def doctor() -> None:
    """Check ffmpeg, PyAV, torch/CUDA, vLLM, Ray and say what to install."""
    from rich.markup import escape

    from vidcap.checks import all_checks

    out = Console()
    bad_required = False
    for check in all_checks():
        mark = "[green]ok      [/]" if check.ok else ("[red]MISSING [/]" if check.required else "[yellow]optional[/]")
        line = f"{mark} {escape(check.name)}: {escape(check.detail)}"
        if not check.ok and check.fix:
            line += f"  ->  {escape(check.fix)}"
        out.print(line, highlight=False, soft_wrap=True)
        bad_required |= check.required and not check.ok
    raise typer.Exit(1 if bad_required else 0)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
