from __future__ import annotations

import pytest

from vidcap.models.quality import is_degenerate


@pytest.mark.parametrize(
    ("text", "degenerate"),
    [
        ("", True),
        ("   \n", True),
        ("A red car turns left at a busy junction while a cyclist waits.", False),
        ("The car is red. The car is red. The car is red. The car is red.", True),
        ("and then and then and then and then", True),
        ("road " * 30, True),
        ("A man walks his dog along the river, and the dog stops to sniff a bench.", False),
    ],
)
def test_degenerate(text: str, degenerate: bool) -> None:
    assert is_degenerate(text) is degenerate
