"""Pipeline stages, one per file, in the order a pipeline usually lists them."""

from vidcap.errors import ConfigError
from vidcap.stages.base import Reader, Resources, Stage, Writer
from vidcap.stages.caption_enhancement import CaptionEnhancementStage
from vidcap.stages.caption_generation import CaptionGenerationStage
from vidcap.stages.caption_preparation import CaptionPreparationStage
from vidcap.stages.motion_filter import MotionFilterStage
from vidcap.stages.preview import PreviewStage
from vidcap.stages.reader import VideoReaderStage
from vidcap.stages.splitting import ClipSplittingStage
from vidcap.stages.transcoding import ClipTranscodingStage
from vidcap.stages.transnetv2 import TransNetV2ClipExtractionStage
from vidcap.stages.writer import ClipWriterStage

__all__ = [
    "CaptionEnhancementStage",
    "CaptionGenerationStage",
    "CaptionPreparationStage",
    "ClipSplittingStage",
    "ClipTranscodingStage",
    "ClipWriterStage",
    "ConfigError",
    "MotionFilterStage",
    "PreviewStage",
    "Reader",
    "Resources",
    "Stage",
    "TransNetV2ClipExtractionStage",
    "VideoReaderStage",
    "Writer",
]
