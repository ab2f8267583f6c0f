"""``vidcap`` command line. Every default shown here is read from the stage classes."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from vidcap.data import ENHANCEMENT_ALGORITHMS
from vidcap.models.backends import BACKEND_CHOICES
from vidcap.models.prompts import CAPTION_PROMPTS, ENHANCE_PROMPTS
from vidcap.models.registry import CAPTION_MODELS, ENHANCE_MODELS
from vidcap.stages.base import ConfigError, Stage
from vidcap.stages.caption_enhancement import CaptionEnhancementStage
from vidcap.stages.caption_generation import CaptionGenerationStage
from vidcap.stages.caption_preparation import CaptionPreparationStage
from vidcap.stages.preview import PreviewStage
from vidcap.stages.splitting import ALGORITHMS, ClipSplittingStage
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


def one_of(values: Any) -> str:
    """Choices in the help text; the stages validate the value with a clear message."""
    return f" One of: {', '.join(values)}."


def setup_logging(verbose: bool) -> None:
    handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


@app.command()
def run(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="A video, a folder (recursive) or a .txt list.")],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="Folder for clips, previews and metadata.")],
    # -- splitting and transcoding
    splitting_algorithm: Annotated[
        str, typer.Option(help="How videos are cut into clips." + one_of(ALGORITHMS))
    ] = default(ClipSplittingStage, "algorithm"),
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
        str, typer.Option(help="ffmpeg H.264 encoder for clips (libx264, libopenh264, h264_nvenc).")
    ] = default(ClipTranscodingStage, "encoder"),
    transcode_cpus_per_worker: Annotated[float, typer.Option(help="ffmpeg threads per clip encode.")] = default(
        ClipTranscodingStage, "num_cpus_per_worker"
    ),
    transcode_preset: Annotated[
        str | None, typer.Option(help="Encoder preset, e.g. libx264 ultrafast..veryslow (default: the encoder's).")
    ] = default(ClipTranscodingStage, "preset"),
    # -- previews
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
    # -- captions
    generate_captions: Annotated[
        bool, typer.Option("--generate-captions", help="Caption every window with a vision-language model.")
    ] = False,
    captioning_algorithm: Annotated[
        str, typer.Option(help="Captioning model variant (see `vidcap models`)." + one_of(CAPTION_MODELS))
    ] = default(CaptionGenerationStage, "model_variant"),
    captioning_model: Annotated[
        str | None,
        typer.Option(help="Local folder or Hub id instead of the variant's weights (served model name for openai)."),
    ] = default(CaptionGenerationStage, "model"),
    captioning_backend: Annotated[
        str, typer.Option(help="auto: vllm with a GPU, else transformers." + one_of(BACKEND_CHOICES))
    ] = default(CaptionGenerationStage, "backend"),
    captioning_window_size: Annotated[int, typer.Option(help="Frames per caption window (at least 4).")] = default(
        CaptionPreparationStage, "window_size"
    ),
    captioning_remainder_threshold: Annotated[
        int, typer.Option(help="A leftover of at least this many frames becomes its own window.")
    ] = default(CaptionPreparationStage, "remainder_threshold"),
    captioning_sampling_fps: Annotated[
        float, typer.Option(help="Frames per second of video shown to the captioning model.")
    ] = default(CaptionPreparationStage, "sampling_fps"),
    captioning_prompt_variant: Annotated[
        str, typer.Option(help="Built-in captioning prompt." + one_of(CAPTION_PROMPTS))
    ] = default(CaptionPreparationStage, "prompt_variant"),
    captioning_prompt_text: Annotated[
        str | None, typer.Option(help="Your own captioning prompt (replaces the variant).")
    ] = default(CaptionPreparationStage, "prompt_text"),
    captioning_batch_size: Annotated[int, typer.Option(help="Windows per generate call.")] = default(
        CaptionGenerationStage, "caption_batch_size"
    ),
    captioning_max_output_tokens: Annotated[
        int, typer.Option(help="Token limit per caption; a caption cut here is marked truncated.")
    ] = default(CaptionGenerationStage, "max_output_tokens"),
    captioning_use_fp8_weights: Annotated[
        bool, typer.Option("--captioning-use-fp8-weights", help="Quantise the captioning model to fp8 (vllm).")
    ] = default(CaptionGenerationStage, "fp8"),
    captioning_stage2_caption: Annotated[
        bool,
        typer.Option("--captioning-stage2-caption", help="Second pass: the model refines its own first caption."),
    ] = default(CaptionGenerationStage, "stage2_caption"),
    captioning_stage2_prompt_text: Annotated[
        str | None, typer.Option(help="Second-pass prompt; {caption} marks where the first caption goes.")
    ] = default(CaptionGenerationStage, "stage2_prompt_text"),
    # -- enhancement
    enhance_captions: Annotated[
        bool, typer.Option("--enhance-captions", help="Rewrite each caption richer with a text LLM.")
    ] = False,
    enhance_captions_algorithm: Annotated[
        str, typer.Option(help="Enhancement algorithm." + one_of(ENHANCEMENT_ALGORITHMS))
    ] = default(CaptionEnhancementStage, "algorithm"),
    enhance_captions_model_variant: Annotated[
        str, typer.Option(help="qwen2.5: Qwen2.5-14B-Instruct; qwen3: Qwen3-14B." + one_of(ENHANCE_MODELS))
    ] = default(CaptionEnhancementStage, "model_variant"),
    enhance_captions_model: Annotated[
        str | None, typer.Option(help="Local folder or Hub id instead of the variant's weights.")
    ] = default(CaptionEnhancementStage, "model"),
    enhance_captions_backend: Annotated[
        str, typer.Option(help="auto: vllm with a GPU, else transformers." + one_of(BACKEND_CHOICES))
    ] = default(CaptionEnhancementStage, "backend"),
    enhance_captions_batch_size: Annotated[int, typer.Option(help="Captions per generate call.")] = default(
        CaptionEnhancementStage, "batch_size"
    ),
    enhance_captions_max_output_tokens: Annotated[
        int, typer.Option(help="Token limit per enhanced caption.")
    ] = default(CaptionEnhancementStage, "max_output_tokens"),
    enhance_captions_prompt_variant: Annotated[
        str, typer.Option(help="Built-in enhancement prompt." + one_of(ENHANCE_PROMPTS))
    ] = default(CaptionEnhancementStage, "prompt_variant"),
    enhance_captions_prompt_text: Annotated[
        str | None, typer.Option(help="Your own enhancement prompt; {caption} marks where the caption goes.")
    ] = default(CaptionEnhancementStage, "prompt_text"),
    enhance_captions_use_fp8_weights: Annotated[
        bool, typer.Option("--enhance-captions-use-fp8-weights", help="Quantise the enhancement model to fp8 (vllm).")
    ] = default(CaptionEnhancementStage, "fp8"),
    openai_base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint for the openai backend (key: $OPENAI_API_KEY).")
    ] = default(CaptionGenerationStage, "openai_base_url"),
    openai_concurrency: Annotated[
        int, typer.Option(help="Requests in flight at once for the openai backend.")
    ] = default(CaptionGenerationStage, "openai_concurrency"),
    model_dir: Annotated[str, typer.Option(help="Where Hub weights are downloaded on first use.")] = default(
        CaptionGenerationStage, "model_dir"
    ),
    # -- run
    executor: Annotated[
        str, typer.Option(help="Run in this process, or on a Ray cluster." + one_of(["local", "ray"]))
    ] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local Ray).")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Process at most N videos (after skipping finished ones).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo videos already finished in OUTPUT.")] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Also redo videos that failed on their source (unreadable, too short, damaged). "
            "Videos that failed on a model or the disk are redone anyway.",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More logging.")] = False,
) -> None:
    """Split, window, caption, preview and write every video under INPUT into OUTPUT."""
    from vidcap.pipeline import Pipeline
    from vidcap.stages.reader import VideoReaderStage
    from vidcap.stages.writer import ClipWriterStage

    setup_logging(verbose)
    shared: dict[str, Any] = {
        "model_dir": model_dir,
        "openai_base_url": openai_base_url,
        "openai_concurrency": openai_concurrency,
        "verbose": verbose,
    }
    try:
        if executor not in ("local", "ray"):
            raise ConfigError(f"--executor must be local or ray, got {executor!r}")
        if enhance_captions and not generate_captions:
            raise ConfigError("--enhance-captions rewrites captions, so it needs --generate-captions too")
        stages: list[Stage] = [
            VideoReaderStage(input_path, exclude=[output_path]),
            ClipSplittingStage(
                algorithm=splitting_algorithm,
                clip_len_s=fixed_stride_split_duration,
                clip_stride_s=fixed_stride_split_duration,
                min_clip_length_s=fixed_stride_min_clip_length,
                scene_threshold=scene_threshold,
            ),
            ClipTranscodingStage(
                encoder=transcode_encoder,
                num_cpus_per_worker=transcode_cpus_per_worker,
                preset=transcode_preset,
                # Window mp4s for previews are then packet copies instead of re-encodes.
                keyframe_interval=captioning_window_size if generate_previews else None,
            ),
            CaptionPreparationStage(
                model_variant=captioning_algorithm,
                prompt_variant=captioning_prompt_variant,
                prompt_text=captioning_prompt_text,
                sampling_fps=captioning_sampling_fps,
                window_size=captioning_window_size,
                remainder_threshold=captioning_remainder_threshold,
                keep_mp4=generate_previews,
                sample_frames=generate_captions,
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
        if generate_captions:
            stages.append(
                CaptionGenerationStage(
                    model_variant=captioning_algorithm,
                    backend=captioning_backend,
                    model=captioning_model,
                    caption_batch_size=captioning_batch_size,
                    fp8=captioning_use_fp8_weights,
                    max_output_tokens=captioning_max_output_tokens,
                    stage2_caption=captioning_stage2_caption,
                    stage2_prompt_text=captioning_stage2_prompt_text,
                    **shared,
                )
            )
        if enhance_captions:
            stages.append(
                CaptionEnhancementStage(
                    algorithm=enhance_captions_algorithm,
                    model_variant=enhance_captions_model_variant,
                    backend=enhance_captions_backend,
                    model=enhance_captions_model,
                    prompt_variant=enhance_captions_prompt_variant,
                    prompt_text=enhance_captions_prompt_text,
                    batch_size=enhance_captions_batch_size,
                    fp8=enhance_captions_use_fp8_weights,
                    max_output_tokens=enhance_captions_max_output_tokens,
                    **shared,
                )
            )
        stages.append(ClipWriterStage(output_path, overwrite=overwrite, retry_failed=retry_failed))
        pipeline = Pipeline(stages, limit=limit)
        result = _run_with_progress(pipeline, executor, ray_address)
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    failed = [r for r in result.reports if r.status == "failed"]
    logger.info(
        "done in %.1f s: %d videos processed (%d failed), %d already done; see %s",
        result.wall_s, len(result.reports), len(failed), len(result.skipped), output_path / "summary.json",
    )  # fmt: skip
    if result.discovered == 0:
        console.print(f"[bold red]error:[/] no videos found in {escape(str(input_path))}", highlight=False)
        raise typer.Exit(1)


@app.command()
def gallery(
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="A folder written by `vidcap run`.")],
) -> None:
    """Write OUTPUT/index.html: every window's preview beside its captions, searchable."""
    from vidcap.gallery import write_gallery

    setup_logging(False)
    try:
        target = write_gallery(output_path)
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    logger.info("wrote %s", target)


@app.command()
def models(
    model_dir: Annotated[str, typer.Option(help="Where Hub weights are looked for.")] = default(
        CaptionGenerationStage, "model_dir"
    ),
) -> None:
    """The model table: what each variant needs and whether its weights are already here."""
    from rich.table import Table

    from vidcap.models.download import is_complete, local_copy

    table = Table(title=f"vidcap models (weights looked for under {model_dir})")
    for column in ("use", "variant", "weights (Hub id)", "precision", "GPU memory", "backends", "downloaded"):
        table.add_column(column, overflow="fold")

    def here(hf_id: str) -> str:
        return "yes" if is_complete(local_copy(model_dir, hf_id)) else "no"

    for m in CAPTION_MODELS.values():
        backends = ", ".join(m.backends) + (f" ({m.note})" if m.note else "")
        gpu = f"~{m.gpu_memory_gb} GB"
        table.add_row("captioning", m.variant, m.hf_id, m.precision, gpu, backends, here(m.hf_id))
    for e in ENHANCE_MODELS.values():
        gpu = f"~{e.gpu_memory_gb} GB"
        table.add_row("enhancement (qwen_lm)", e.variant, e.hf_id, e.precision, gpu, ", ".join(e.backends),
                      here(e.hf_id))  # fmt: skip
    Console(width=max(Console().width, 160)).print(table)


def _run_with_progress(pipeline: Any, executor_name: str, ray_address: str | None) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vidcap.executors.base import Executor
    from vidcap.executors.local import LocalExecutor

    executor: Executor
    if executor_name == "ray":
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
def doctor(
    model_dir: Annotated[str, typer.Option(help="Where Hub weights are looked for.")] = default(
        CaptionGenerationStage, "model_dir"
    ),
) -> None:
    """Check ffmpeg, PyAV, torch/CUDA, vLLM, Ray and the model cache; say what to install."""
    from vidcap.checks import all_checks

    out = Console()
    bad_required = False
    for check in all_checks(model_dir):
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
