"""Running the ffmpeg CLI and asking what it can do."""

from __future__ import annotations

import functools
import logging
import re
import shlex
import shutil
import subprocess

logger = logging.getLogger(__name__)


class FFmpegError(RuntimeError):
    """An ffmpeg command failed; carries the command line and what ffmpeg said."""

    def __init__(self, command: list[str], output: str, returncode: int | None = None) -> None:
        self.command = command
        self.output = output.strip()
        self.returncode = returncode
        last = self.output.splitlines()[-1] if self.output else f"exit code {returncode}"
        super().__init__(f"ffmpeg failed: {last}")

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)


def ffmpeg_binary() -> str | None:
    return shutil.which("ffmpeg")


def run_ffmpeg(args: list[str], timeout: float | None = None) -> list[str]:
    """Run ffmpeg quietly; raise FFmpegError with its output on failure.

    Returns what ffmpeg still reported at error level on success (damaged input
    it concealed, a file that ends early), one cleaned line each, so that callers
    can flag the source instead of passing garbled output on silently.
    """
    binary = ffmpeg_binary()
    if binary is None:
        raise FFmpegError(["ffmpeg", *args], "ffmpeg not found on PATH (Debian: apt-get install -y ffmpeg)")
    command = [binary, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    try:
        proc = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise FFmpegError(command, f"timed out after {timeout} s") from exc
    if proc.returncode != 0:
        raise FFmpegError(command, proc.stderr.decode("utf-8", "replace"), proc.returncode)
    return complaints(proc.stderr.decode("utf-8", "replace"))


_PREFIX = re.compile(r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*")


def complaints(stderr: str) -> list[str]:
    """Distinct stderr lines without ffmpeg's ``[codec @ 0x...]`` prefixes, in order."""
    seen: dict[str, None] = {}
    for line in stderr.splitlines():
        text = _PREFIX.sub("", line.strip())
        if text:
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
