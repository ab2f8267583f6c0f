"""Tiny, randomly initialised models of the real architectures, saved like Hub checkpoints.

Qwen2.5-VL, Qwen3-VL and a Qwen2 causal LM, each with a small byte-level BPE
tokenizer trained here (with the Qwen special tokens and a chat template) and the
model's real processor classes. Loading them back goes through AutoProcessor /
AutoModel*, the same path a downloaded model takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|video_pad|>",
    "<|image_pad|>",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "A red car drives down a wet street at night while people cross at the light.",
    "Describe this video in detail. The camera pans slowly over a green field.",
    "Rewrite the description so that it is richer, with colours, light and motion.",
    "Frames show a dog running on a beach; waves roll in under a grey sky.",
]


def build_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 10, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )


def _text_config(tokenizer: Any, **extra: Any) -> dict[str, Any]:
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        **extra,
    )


def _vision_ids(tokenizer: Any) -> dict[str, int]:
    return {
        "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    }


def _save(model: Any, processor: Any, tokenizer: Any, out: Path) -> Path:
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_qwen25_vl(out: Path) -> Path:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = build_tokenizer()
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
    )
    config = Qwen2_5_VLConfig(
        # mrope sections sum to head_dim / 2 (64 / 4 heads / 2 = 8).
        text_config=_text_config(tok, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
        vision_config=dict(
            depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=64,
            fullatt_block_indexes=[1], window_size=56, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
        ),
        **_vision_ids(tok),
    )  # fmt: skip
    return _save(Qwen2_5_VLForConditionalGeneration(config), processor, tok, out)


def build_qwen3_vl(out: Path) -> Path:
    from transformers import Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    tok = build_tokenizer()
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16),
        video_processor=Qwen3VLVideoProcessor(),
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
    )
    config = Qwen3VLConfig(
        text_config=_text_config(
            tok,
            head_dim=16,
            rope_scaling={"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True},
        ),
        vision_config=dict(
            depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=64, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[1], num_position_embeddings=64,
        ),
        **_vision_ids(tok),
    )  # fmt: skip
    return _save(Qwen3VLForConditionalGeneration(config), processor, tok, out)


def build_qwen2_lm(out: Path) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer()
    model = Qwen2ForCausalLM(Qwen2Config(**_text_config(tok)))
    return _save(model, tok, tok, out)
