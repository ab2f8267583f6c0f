"""Running the ffmpeg CLI and asking what it can do."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable

logger = logging.getLogger(__name__)


# What ffmpeg says when the input itself is bad; such a failure is final.
_SOURCE_FAULTS = (
    "invalid data found when processing input",
    "moov atom not found",
    "could not find codec parameters",
    "error while decoding",
    "corrupt",
    "does not contain any stream",
    "no such file or directory",
)
# What it says when the machine failed it; such a failure is worth a rerun even when it mentions the input.
_MACHINE_FAULTS = (
    "no space left on device",
    "input/output error",
    "cannot allocate memory",
    "resource temporarily unavailable",
    "disk quota exceeded",
    "timed out after",
)


class FFmpegError(RuntimeError):
    """An ffmpeg command failed; carries the command line and what ffmpeg said."""

    def __init__(
        self, command: list[str], output: str, returncode: int | None = None, *, timed_out: bool = False
    ) -> None:
        self.command = command
        self.output = output.strip()
        self.returncode = returncode
        self.timed_out = timed_out
        last = self.output.splitlines()[-1] if self.output else f"exit code {returncode}"
        super().__init__(f"ffmpeg failed: {last}")

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)

    @property
    def retryable(self) -> bool:
        """A rerun may succeed: ffmpeg was killed, timed out, or the machine failed it (disk, memory), or
        the encoder could not run. Only complaints about the input itself are final: the source was
        already probed and decoded once, so anything else is more likely this machine than the data."""
        text = self.output.lower()
        if self.timed_out or (self.returncode is not None and self.returncode < 0):
            return True
        if any(m in text for m in _MACHINE_FAULTS) or self._lost_own_file():
            return True
        return not any(m in text for m in _SOURCE_FAULTS)

    def _lost_own_file(self) -> bool:
        """A file ffmpeg was to write (its scratch folder removed, OUTPUT deleted mid-run) is missing: not the
        source's fault, however it is worded."""
        inputs = {self.command[i + 1] for i, arg in enumerate(self.command[:-1]) if arg == "-i"}
        for line in self.output.splitlines():
            path, sep, reason = _PREFIX.sub("", line).rpartition(": ")
            if sep and reason.strip().lower() == "no such file or directory" and path and path not in inputs:
                return True
        return False


def ffmpeg_binary() -> str | None:
    return shutil.which("ffmpeg")


def _die_with_parent() -> list[str]:
    """A command prefix that has the kernel kill ffmpeg when the vidcap thread that started it is gone, even on
    kill -9 (Linux's parent-death signal, set by util-linux's setpriv before it becomes ffmpeg). A
    ``preexec_fn`` would do the same from Python, but is unsafe in a process with threads."""
    if not sys.platform.startswith("linux"):
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


_PREFIX_COMMAND = _die_with_parent()


def run_ffmpeg(
    args: list[str], timeout: float | None = None, stdin: bytes | Iterable[bytes] | None = None
) -> list[str]:
    """Run ffmpeg quietly; raise FFmpegError with its output on failure.

    Returns what ffmpeg still reported at error level on success (damaged input
    it concealed, a file that ends early), one cleaned line each, sorted, so
    that callers can flag the source instead of passing garbled output on
    silently (sorted: threaded decoders report in a different order each run).
    ``timeout`` (seconds) stops a hung ffmpeg; it dies with vidcap too. ``stdin`` feeds an input ``-``: bytes,
    or chunks written as they come, so a long input is never held whole.
    """
    binary = ffmpeg_binary()
    if binary is None:
        raise FFmpegError(["ffmpeg", *args], "ffmpeg not found on PATH (Debian: apt-get install -y ffmpeg)")
    command = [binary, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    proc = subprocess.Popen(
        [*_PREFIX_COMMAND, *command],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, stop) if timeout else None
    feeder = None
    if stdin is not None:
        chunks = [stdin] if isinstance(stdin, bytes | bytearray | memoryview) else stdin
        feeder = threading.Thread(target=_feed, args=(proc, chunks), name="vidcap-ffmpeg-stdin", daemon=True)
        feeder.start()
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        assert proc.stderr is not None
        err = proc.stderr.read()
        returncode = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if feeder is not None:
            feeder.join()
        if proc.stderr is not None:
            proc.stderr.close()
    if timed_out.is_set():
        raise FFmpegError(command, f"timed out after {timeout:.0f} s", timed_out=True)
    if returncode != 0:
        raise FFmpegError(command, err.decode("utf-8", "replace"), returncode)
    return sorted(complaints(err.decode("utf-8", "replace")))


def _feed(proc: subprocess.Popen[bytes], chunks: Iterable[bytes]) -> None:
    assert proc.stdin is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
    except (BrokenPipeError, OSError):
        pass  # ffmpeg stopped reading: its exit code and stderr say why
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()


_PREFIX = re.compile(r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*")
# ffmpeg's note that it folded identical lines: not a complaint of its own.
_REPEATED = re.compile(r"^Last message repeated \d+ times?$")


def complaints(stderr: str) -> list[str]:
    """Distinct stderr lines without ffmpeg's ``[codec @ 0x...]`` prefixes, in order."""
    seen: dict[str, None] = {}
    for line in stderr.splitlines():
        text = _PREFIX.sub("", line.strip())
        if text and not _REPEATED.match(text):
            seen.setdefault(text, None)
    return list(seen)


@functools.cache
def ffmpeg_encoders() -> frozenset[str]:
    """Names of the encoders this ffmpeg was built with (empty when ffmpeg is missing)."""
    binary = ffmpeg_binary()
    if binary is None:
        return frozenset()
    out = subprocess.run([binary, "-hide_banner", "-encoders"], capture_output=True, check=False).stdout
    names = set()
    for line in out.decode("utf-8", "replace").splitlines():
        fields = line.split()
        # Encoder rows look like " V....D libx264   description".
        if len(fields) >= 2 and len(fields[0]) == 6 and fields[0][0] in "VAS":
            names.add(fields[1])
    return frozenset(names)


def ffmpeg_version() -> str | None:
    binary = ffmpeg_binary()
    if binary is None:
        return None
    out = subprocess.run([binary, "-version"], capture_output=True, check=False).stdout.decode()
    first = out.splitlines()[0] if out else ""
    return first.split()[2] if first.startswith("ffmpeg version") else first


# A generous ceiling for one ffmpeg call: a floor for start-up, plus seconds per second of video
# scaled by how much larger than 1080p30 it is. Only a hung encoder comes near it.
TIMEOUT_FLOOR_S = 120.0
TIMEOUT_PER_VIDEO_S = 30.0
_1080P30 = 1920 * 1080 * 30


def ffmpeg_timeout(duration_s: float, width: int = 1920, height: int = 1080, fps: float = 30.0) -> float:
    """Seconds one ffmpeg call on ``duration_s`` of such video may take before it counts as hung."""
    load = max(1.0, width * height * max(fps, 1.0) / _1080P30)
    return TIMEOUT_FLOOR_S + TIMEOUT_PER_VIDEO_S * max(duration_s, 0.0) * load


def try_encoder(encoder: str, *, preset: str | None = None, extra: list[str] | None = None) -> str | None:
    """Encode two frames of a tiny test pattern with ``encoder``; None when it works, else ffmpeg's reason.

    Listing an encoder (``ffmpeg -encoders``) does not mean it runs here: h264_nvenc is listed on
    machines without an NVIDIA GPU, and a wrong preset is only refused once encoding starts.
    """
    args = ["-f", "lavfi", "-i", "testsrc2=size=128x96:rate=10:duration=0.2", "-frames:v", "2", "-c:v", encoder]
    if preset:
        args += ["-preset", preset]
    args += [*(extra or []), "-f", "null", "-"]
    try:
        run_ffmpeg(args, timeout=60)
    except FFmpegError as exc:
        lines = [ln for ln in exc.output.splitlines() if ln.strip()]
        return _PREFIX.sub("", lines[0] if lines else str(exc)).strip()
    return None
