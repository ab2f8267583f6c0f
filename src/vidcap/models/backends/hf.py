"""transformers backend: CPU or GPU, batched ``generate``; bf16 on a GPU, fp32 on the CPU."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidcap.models.backends.base import SAMPLING, Backend, Generation, Request, Result
from vidcap.models.inputs import InputFormat, LLMInput

logger = logging.getLogger(__name__)


def load_processor(model_path: Path, trust_remote_code: bool = False) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(model_path), trust_remote_code=trust_remote_code)


def load_tokenizer(model_path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_path))


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(
        self,
        model_path: Path,
        *,
        vision: InputFormat | None = None,
        tokenizer: Any | None = None,
        device: str | None = None,
        model: Any | None = None,
    ) -> None:
        """``vision`` (with its processor) for a VL model; ``tokenizer`` for a text LM; ``model`` one already
        built (a benchmark's random full-size model) instead of the weights under ``model_path``."""
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one bar per load would break the run's own progress display

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.vision = vision
        if vision is not None:
            assert vision.processor is not None
            self.tokenizer = vision.processor.tokenizer
            auto: Any = AutoModelForImageTextToText
        else:
            self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_path)
            auto = AutoModelForCausalLM
        self.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        if model is None:
            model = auto.from_pretrained(str(model_path), dtype=dtype)
        self.model = model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = {e for e in (eos if isinstance(eos, list) else [eos]) if e is not None}
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
        logger.info("transformers: %s on %s (%s)", model_path, self.device, dtype)

    def _batch(self, requests: Sequence[Request]) -> Any:
        if self.vision is not None:
            assert all(isinstance(r, LLMInput) for r in requests), "a vision model takes window inputs only"
            return self.vision.processor_inputs(list(requests))  # type: ignore[arg-type]
        return self.tokenizer([r.prompt for r in requests], padding=True, return_tensors="pt")

    def generate(self, requests: Sequence[Request], max_tokens: int) -> list[Result]:
        import torch

        batch = self._batch(requests).to(self.device)
        prompt_len = batch["input_ids"].shape[1]
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                max_new_tokens=max_tokens,
                min_new_tokens=min(SAMPLING.min_tokens, max_tokens),
                do_sample=False,
                repetition_penalty=SAMPLING.repetition_penalty,
                eos_token_id=sorted(self.eos_ids),
                pad_token_id=self.pad_id,
            )
        results: list[Result] = []
        for row, mask in zip(out[:, prompt_len:].tolist(), batch["attention_mask"], strict=True):
            # Generated ids end at the first end token; what follows is padding.
            stop = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
            ids = row if stop is None else row[:stop]
            text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
            results.append(
                Generation(
                    text=text,
                    prompt_tokens=int(mask.sum()),
                    output_tokens=len(ids) + (0 if stop is None else 1),
                    finished=stop is not None,
                )
            )
        return results

    def close(self) -> None:
        import torch

        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
