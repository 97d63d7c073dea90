from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_gptimage.domain.capabilities import MODES
from django_gptimage.domain.sizes import RATIOS, TIERS
from django_gptimage.management.commands.gptimage_matrix import (
    REGENERATE_COMMAND,
    generated_block,
    render_docs,
)

SIZES_DOC = Path(__file__).resolve().parent.parent / "docs" / "sizes.md"
KEYS = {"ratio", "tier", "mode", "width", "height", "allowed", "reason"}


def run(*args: str) -> str:
    out = StringIO()
    call_command("gptimage_matrix", *args, stdout=out, no_color=True)
    return out.getvalue()


def rows(*args: str) -> list[dict]:
    return json.loads(run("--json", *args))


def cell(data: list[dict], ratio: str, tier: str, mode: str = "text-to-image") -> dict:
    (row,) = [r for r in data if (r["ratio"], r["tier"], r["mode"]) == (ratio, tier, mode)]
    return row


# --json -----------------------------------------------------------------------------------------


def test_json_has_every_cell_with_exactly_the_documented_keys():
    data = rows()
    assert len(data) == len(RATIOS) * len(TIERS) * len(MODES)
    assert all(set(r) == KEYS for r in data)
    assert {(r["ratio"], r["tier"], r["mode"]) for r in data} == {
        (ratio, tier, mode) for ratio in RATIOS for tier in TIERS for mode in MODES
    }


def test_json_values():
    data = rows("--model", "gpt-image-2")
    assert cell(data, "16:9", "4K") == {
        "ratio": "16:9",
        "tier": "4K",
        "mode": "text-to-image",
        "width": 3840,
        "height": 2160,
        "allowed": True,
        "reason": "",
    }
    square = cell(data, "1:1", "4K", "image-to-image")
    assert square["allowed"] is False
    assert "8,294,400" in square["reason"]
    assert cell(data, "auto", "1K")["width"] is None


def test_default_model_comes_from_settings(settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MODEL": "gpt-image-1"}
    assert cell(rows(), "16:9", "1K")["allowed"] is False
    assert cell(rows("--model", "gpt-image-2"), "16:9", "1K")["allowed"] is True


def test_gpt_image_1_matrix():
    allowed = {(r["width"], r["height"]) for r in rows("--model", "gpt-image-1") if r["allowed"]}
    assert allowed == {(1024, 1024), (1536, 1024), (1024, 1536), (None, None)}


def test_mode_filter():
    assert {r["mode"] for r in rows("--mode", "image-to-image")} == {"image-to-image"}


# --policy ---------------------------------------------------------------------------------------


def test_model_matrix_ignores_the_policy_unless_asked(settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ALLOWED_TIERS": ["1K", "2K"]}
    assert cell(rows(), "16:9", "4K")["allowed"] is True
    row = cell(rows("--policy"), "16:9", "4K")
    assert row["allowed"] is False
    assert row["reason"] == "Site policy does not allow 4K."
    assert (row["width"], row["height"]) == (3840, 2160)


def test_policy_never_widens_the_matrix(settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ALLOWED_TIERS": ["4K"]}
    data = rows("--policy")
    assert cell(data, "1:1", "4K")["allowed"] is False
    assert "pixel" in cell(data, "1:1", "4K")["reason"]
    assert {r["tier"] for r in data if r["allowed"]} == {"4K"}


# Unknown model ----------------------------------------------------------------------------------


def test_unknown_model_lists_known_models():
    with pytest.raises(CommandError) as info:
        run("--model", "dall-e-3")
    message = str(info.value)
    assert "'dall-e-3'" in message
    assert "gpt-image-2" in message and "gpt-image-1" in message


def test_unknown_default_model(settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MODEL": "dall-e-3"}
    with pytest.raises(CommandError, match="dall-e-3"):
        run()


def test_output_formats_are_exclusive():
    with pytest.raises(CommandError):
        run("--json", "--markdown")


# Plain text and Markdown ------------------------------------------------------------------------


def test_plain_table_is_aligned():
    lines = run("--mode", "text-to-image").splitlines()
    header = lines[0].split()
    assert header == ["ratio", "tier", "mode", "width", "height", "allowed", "reason"]
    assert len(lines) == 1 + len(RATIOS) * len(TIERS)
    allowed_col = lines[0].index("allowed")
    for line in lines[1:]:
        assert line[allowed_col : allowed_col + 3] in ("yes", "no ")
    assert any(line.split()[:5] == ["16:9", "4K", "text-to-image", "3840", "2160"] for line in lines)
    square_4k = next(line for line in lines if line.startswith("1:1  ") and " 4K " in line)
    assert "no" in square_4k.split() and "8,294,400" in square_4k


def test_plain_table_styles_allowed_and_refused():
    out = StringIO()
    call_command("gptimage_matrix", "--mode", "text-to-image", stdout=out, force_color=True)
    text = out.getvalue()
    assert "\x1b[" in text  # self.style colours: green for yes, red for no


def test_markdown_output():
    text = run("--markdown", "--model", "gpt-image-2")
    assert text.startswith("### gpt-image-2")
    assert "#### text-to-image" in text and "#### image-to-image" in text
    assert "| ratio | tier | mode | width | height | allowed | reason |" in text
    assert "| 16:9 | 4K | text-to-image | 3840 | 2160 | yes |  |" in text
    assert "| 16:9 | 1K | text-to-image | 1088 | 608 | yes |  |" in text  # raised to the pixel floor
    assert "| 1:1 | 4K | text-to-image | 3840 | 3840 | no | 1:1 at 4K would be" in text
    assert "| auto | 1K | image-to-image | auto | auto | yes |  |" in text


# docs/sizes.md ----------------------------------------------------------------------------------


def test_sizes_doc_is_up_to_date():
    text = SIZES_DOC.read_text(encoding="utf-8")
    for model in ("gpt-image-2", "gpt-image-1"):
        assert f"<!-- BEGIN GENERATED: {model} -->" in text
        assert f"<!-- END GENERATED: {model} -->" in text
    assert render_docs(text) == text, (
        f"The generated tables in docs/sizes.md are stale. Regenerate them with: {REGENERATE_COMMAND}"
    )


def test_sizes_doc_blocks_hold_the_generated_markdown():
    text = SIZES_DOC.read_text(encoding="utf-8")
    assert generated_block("gpt-image-2") in text
    assert generated_block("gpt-image-1") in text
    assert generated_block("gpt-image-2") == run("--markdown", "--model", "gpt-image-2").rstrip("\n") + "\n"


def test_write_docs_rewrites_only_the_marked_blocks(tmp_path):
    doc = tmp_path / "sizes.md"
    doc.write_text(
        "# Intro\n\n<!-- BEGIN GENERATED: gpt-image-1 -->\nold table\n<!-- END GENERATED: gpt-image-1 -->\n\nOutro\n",
        encoding="utf-8",
    )
    out = run("--write-docs", str(doc))
    assert "rewrote 1" in out
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Intro\n\n<!-- BEGIN GENERATED: gpt-image-1 -->\n### gpt-image-1\n")
    assert text.endswith("<!-- END GENERATED: gpt-image-1 -->\n\nOutro\n")
    assert "old table" not in text
    assert "| 3:2 | 1K | text-to-image | 1536 | 1024 | yes |  |" in text
    assert "up to date" in run("--write-docs", str(doc))
    assert doc.read_text(encoding="utf-8") == text


def test_write_docs_reproduces_the_committed_doc(tmp_path):
    copy = tmp_path / "sizes.md"
    copy.write_text(SIZES_DOC.read_text(encoding="utf-8"), encoding="utf-8")
    assert "up to date" in run("--write-docs", str(copy))


def test_write_docs_errors(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        run("--write-docs", str(tmp_path / "missing.md"))
    empty = tmp_path / "empty.md"
    empty.write_text("# nothing to generate\n", encoding="utf-8")
    with pytest.raises(CommandError, match="no <!-- BEGIN GENERATED"):
        run("--write-docs", str(empty))
    unknown = tmp_path / "unknown.md"
    unknown.write_text(
        "<!-- BEGIN GENERATED: dall-e-3 -->\n<!-- END GENERATED: dall-e-3 -->\n", encoding="utf-8"
    )
    with pytest.raises(CommandError, match="dall-e-3"):
        run("--write-docs", str(unknown))
