"""Prompt texts, one place. Variants are picked by name; ``prompt_text`` overrides them."""

from __future__ import annotations

from vidcap.errors import SettingError

CAPTION_PROMPTS: dict[str, str] = {
    "default": (
        "Describe this video in detail. Cover what is visible (people, objects, places, colours, text on "
        "screen), what happens and in which order, how things move, and how the camera moves. Write flowing "
        "prose in the present tense and describe only what can be seen."
    ),
    "av": (
        "This video comes from a dash camera of a car being driven. Describe in detail how the ego car moves "
        "(speed changes, turns, lane changes, stops), the road and its lanes and markings, the other vehicles, "
        "cyclists and pedestrians and what they do, traffic signs and signals and their states, any risky or "
        "unusual driving by anyone, the weather and light, and landmarks along the way."
    ),
    "av-surveillance": (
        "This video comes from a fixed surveillance camera overlooking a road or intersection. Describe in "
        "detail the road layout and lanes, each vehicle, cyclist and pedestrian and how they move, traffic "
        "signs and signals and their states, any risky or unusual behaviour, near misses or collisions, the "
        "weather and light, and notable landmarks in view."
    ),
}

# Second pass: the model sees the same frames again with the first instruction and its first caption.
STAGE2_PROMPT = (
    "{instruction}\n\nA first description of this video, written for the request above:\n\n{caption}\n\n"
    "Watch the video again and write an improved description that answers the request above: fix anything "
    "the first one got wrong, add details it missed, and keep what it got right. Answer with the description only."
)


def stage2_text(template: str, instruction: str, caption: str) -> str:
    """The refinement prompt: the original instruction (always, so its focus survives) and the first caption."""
    if "{instruction}" not in template:
        template = "{instruction}\n\n" + template
    return with_caption(template.replace("{instruction}", instruction), caption)


ENHANCE_PROMPTS: dict[str, str] = {
    "default": (
        "Rewrite the video description below so that it is richer and more vivid: add concrete detail about "
        "colours, textures, lighting, motion and atmosphere that fits what it says, and make it longer than "
        "the original. Do not invent events that contradict it. Reply with the rewritten description only, "
        "without any introduction or comment.\n\nDescription:\n{caption}"
    ),
    "av-surveillance": (
        "Rewrite the description below of a surveillance-camera video of traffic so that it is richer and more "
        "precise: spell out each road user's position, direction and speed, the lane layout, signals and "
        "signs, and any risky behaviour, with vivid but faithful detail, longer than the original. Reply with "
        "the rewritten description only, without any introduction or comment.\n\nDescription:\n{caption}"
    ),
}


def pick(prompts: dict[str, str], variant: str, kind: str) -> str:
    if variant not in prompts:
        raise SettingError(
            "prompt_variant",
            f"{kind} prompt variant {{prompt_variant}} must be one of {', '.join(prompts)}, got {variant!r}",
        )
    return prompts[variant]


def with_caption(template: str, caption: str) -> str:
    """Put ``caption`` into a template at ``{caption}``, or after it when the template has no slot."""
    if "{caption}" in template:
        return template.replace("{caption}", caption)
    return f"{template.rstrip()}\n\n{caption}"
