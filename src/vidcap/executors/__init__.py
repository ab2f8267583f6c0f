"""Executors run a list of stages over videos; the per-video loop lives in ``base``."""

from vidcap.executors.base import Executor
from vidcap.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor"]
