"""Model-ready inputs: per-family prompt layout, frame sizes within the pixel budget, video metadata.

The chat template and the tensors come from the model's own processor
(transformers AutoProcessor); this module decides what goes into it, so that
the model sees the true time of every frame and no more pixels than its budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vidcap.models.registry import CaptionModel, PixelBudget

Messages = list[dict[str, Any]]


@dataclass
class LLMInput:
    """One window, ready for any backend."""

    text: str  # the instruction
    messages: Messages  # chat messages; {"type": "video"} marks where the frames go
    prompt: str | None  # messages through the model's chat template (None without a local processor)
    frames: np.ndarray  # (n, h, w, 3) uint8 RGB, sides multiples of the budget's factor
    frame_indices: list[int]  # source frame of each, counted from the window's first frame
    fps: float  # source frame rate
    window_frames: int  # native frames in the window

    @property
    def timestamps(self) -> list[float]:
        return [i / self.fps for i in self.frame_indices]

    @property
    def sampled_fps(self) -> float:
        """Sampled frames per second of the window: n frames over its T source frames at fps, n / T * fps. This
        is the rate the model's own reference (qwen-vl-utils) derives ``second_per_grid_ts`` from, and vLLM
        too; vidcap gives it on every backend."""
        return len(self.frame_indices) / self.window_frames * self.fps

    def video_metadata(self) -> dict[str, Any]:
        return {
            "total_num_frames": self.window_frames,
            "fps": self.fps,
            "frames_indices": list(self.frame_indices),
            "duration": self.window_frames / self.fps,
            "width": int(self.frames.shape[2]),
            "height": int(self.frames.shape[1]),
            "video_backend": "pyav",
        }


@dataclass
class TextInput:
    messages: Messages
    prompt: str | None


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(height, width) rounded to multiples of ``factor`` with the area inside [min_pixels, max_pixels]."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def frame_pixels(budget: PixelBudget, num_frames: int) -> int:
    """Per-frame pixel ceiling: the per-frame cap, or an even share of the video's total.

    Qwen2.5-VL (qwen-vl-utils) shares the total among temporal patches; Qwen3-VL's processor, and the
    encoder cache vLLM sizes from it, among all frames (padded to whole patches): a window over that is
    shrunk again by the processor, or refused by vLLM.
    """
    if budget.total_over_frames:
        padded = -(-max(num_frames, 1) // budget.temporal_patch) * budget.temporal_patch
        share = budget.total_pixels / padded
    else:
        share = budget.total_pixels / max(num_frames, 1) * budget.temporal_patch
    return max(min(budget.max_pixels, int(share)), int(budget.min_pixels * 1.05))


def frame_size(budget: PixelBudget, width: int, height: int, num_frames: int) -> tuple[int, int]:
    """(width, height) to resize decoded frames to, before the processor sees them."""
    if budget.fixed_size is not None:
        return budget.fixed_size
    h, w = smart_resize(height, width, budget.factor, budget.min_pixels, frame_pixels(budget, num_frames))
    return w, h


class InputFormat:
    """How one model family wants a window: prompt layout and processor call."""

    def __init__(self, model: CaptionModel, processor: Any | None = None) -> None:
        self.model = model
        self.processor = processor

    def messages(self, text: str) -> Messages:
        raise NotImplementedError

    def template_messages(self, messages: Messages) -> Messages:
        """What the model's chat template gets (some families spell the video as text)."""
        return messages

    def build(
        self, text: str, frames: np.ndarray, frame_indices: list[int], fps: float, window_frames: int
    ) -> LLMInput:
        messages = self.messages(text)
        prompt = self.render(messages) if self.processor is not None else None
        return LLMInput(text, messages, prompt, frames, list(frame_indices), fps, window_frames)

    def rebuild(self, inp: LLMInput, text: str) -> LLMInput:
        """The same frames with a new instruction (stage-2 refinement)."""
        return self.build(text, inp.frames, inp.frame_indices, inp.fps, inp.window_frames)

    def templated(self, inp: LLMInput) -> LLMInput:
        """``inp`` with its prompt rendered by this format's processor (when it has one)."""
        if inp.prompt is not None or self.processor is None:
            return inp
        return replace(inp, prompt=self.render(inp.messages))

    def render(self, messages: Messages) -> str:
        assert self.processor is not None
        return str(
            self.processor.apply_chat_template(
                self.template_messages(messages),
                tokenize=False,
                add_generation_prompt=True,
                **self.model.chat_template_kwargs,
            )
        )

    def processor_inputs(self, inputs: list[LLMInput]) -> Any:
        raise NotImplementedError(f"{self.model.variant} inputs cannot be built for transformers here")


class QwenVLFormat(InputFormat):
    """Qwen2.5-VL and Qwen3-VL: the video first, then the instruction, in one user turn."""

    def messages(self, text: str) -> Messages:
        return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]

    def processor_inputs(self, inputs: list[LLMInput]) -> Any:
        """Tensors for ``generate``: frames already sized and sampled, metadata for true timestamps."""
        from transformers.video_utils import VideoMetadata

        assert self.processor is not None
        metadata = [VideoMetadata(**i.video_metadata()) for i in inputs]
        # Frames arrive sampled and sized within the budget: the processor only normalises and patches them.
        options: dict[str, Any] = dict(self.model.video_kwargs)
        known = getattr(getattr(self.processor.video_processor, "valid_kwargs", None), "__annotations__", {})
        if "cap_pixels_per_frame" in known:
            options["cap_pixels_per_frame"] = True  # no effect without resizing; states the intent, stops a warning
        batch = self.processor(
            text=[i.prompt for i in inputs],
            videos=[i.frames for i in inputs],
            video_metadata=metadata,
            padding=True,
            return_tensors="pt",
            **options,
        )
        if "second_per_grid_ts" in batch:
            # The reference rule (qwen-vl-utils): temporal patch / (n / T * fps), as vLLM computes it.
            patch = self.model.budget.temporal_patch
            batch["second_per_grid_ts"] = [patch / i.sampled_fps for i in inputs]
        return batch


class NemotronVLFormat(InputFormat):
    """Nemotron Nano VL: reasoning off in the system turn; the user turn is the video then the instruction.

    Its template takes the video as the text ``<video>``, which the engine expands
    into one "Frame i sampled at t seconds" block per frame.
    """

    def messages(self, text: str) -> Messages:
        return [
            {"role": "system", "content": "/no_think"},
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]},
        ]

    def template_messages(self, messages: Messages) -> Messages:
        out: Messages = []
        for message in messages:
            content = message["content"]
            if isinstance(content, list):
                parts = ["<video>" if c["type"] == "video" else c.get("text", "") for c in content]
                content = "\n".join(parts)
            out.append({"role": message["role"], "content": content})
        return out


class NemotronOmniFormat(NemotronVLFormat):
    """Nemotron 3 Nano Omni: Nano VL's layout without the ``/no_think`` turn (its template's
    ``enable_thinking`` switch, in the variant's chat_template_kwargs, turns reasoning off)."""

    def messages(self, text: str) -> Messages:
        return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]


INPUT_FORMATS: dict[str, type[InputFormat]] = {
    "qwen_vl": QwenVLFormat,
    "nemotron_vl": NemotronVLFormat,
    "nemotron_omni": NemotronOmniFormat,
}


def input_format(model: CaptionModel, processor: Any | None = None) -> InputFormat:
    return INPUT_FORMATS[model.input_format](model, processor)
