"""Documentation that shows code runs it: every ```python block of the checked pages is executed
in order (one namespace per page), and a ```text block right after one must be what it prints."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKED = ["docs/custom_layers.md"]

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def examples(text: str) -> list[tuple[str, str | None]]:
    """``(code, expected output or None)`` for every ```python block, in order."""
    fences = list(_FENCE.finditer(text))
    found = []
    for i, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        expected = None
        if i + 1 < len(fences):
            after = fences[i + 1]
            between = text[fence.end():after.start()]
            if after.group(1) == "text" and not between.strip():
                expected = after.group(2)
        found.append((fence.group(2), expected))
    return found


def run(code: str, namespace: dict) -> str:
    """Execute ``code`` in ``namespace`` and return what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<docs>", "exec"), namespace)  # noqa: S102 - our own docs
    return printed.getvalue()


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.rstrip("\n").splitlines()]


@pytest.mark.parametrize("page", CHECKED)
def test_code_blocks_run_and_print_what_the_page_shows(page, registry):
    # `registry` (tests/conftest.py): what the page registers is gone after the test
    blocks = examples((ROOT / page).read_text())
    assert blocks, f"{page} has no python blocks"
    namespace = {"__name__": "docs_" + pathlib.Path(page).stem}
    for number, (code, expected) in enumerate(blocks, 1):
        printed = run(code, namespace)
        if expected is not None:
            assert _lines(printed) == _lines(expected), (
                f"{page}, python block {number}: the page shows another output than the code "
                f"prints:\n{printed}")
