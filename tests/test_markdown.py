"""Labels, texts and commands in the Markdown convtune writes render as written: no code span
broken open, no raw HTML reaching a renderer that allows it."""

import pytest
from markdown_it import MarkdownIt

from convtune import markdown as md
from convtune.modeling.model_card import model_card

HOSTILE = ["a`b", "``", "`lead", "<img src=x onerror=alert(1)>", "x`<img src=x onerror=alert(1)>`y", "p|q", "*b* _i_"]
RENDER = MarkdownIt("commonmark", {"html": True}).enable("table")


@pytest.mark.parametrize("value", HOSTILE)
def test_a_code_span_shows_the_value_as_written(value):
    html = RENDER.render(md.code(value))
    assert "<img" not in html
    import html as h

    assert h.unescape(html.split("<code>")[1].split("</code>")[0]) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_plain_text_and_table_cells_show_the_value_as_written(value):
    rendered = RENDER.render(f"| a | b |\n|---|---|\n| {md.text(value)} | {md.code(value, in_table=True)} |\n")
    assert "<img" not in rendered and rendered.count("<td>") == 2  # no pipe split the row


def test_the_model_card_escapes_labels_and_the_command():
    manifest = {"model": {"encoder": "enc`x", "head": "cnn", "labels": HOSTILE}, "convtune_version": "0"}
    card = model_card(manifest, command="convtune train --data ```\n<img src=x onerror=alert(1)>", name="n<b>")
    html = RENDER.render(card.split("---\n", 2)[2])
    assert "<img" not in html and "<b>" not in html
    import html as h

    codes = [h.unescape(c.split("</code>")[0]) for c in html.split("<code>")[1:]]
    assert all(lab in codes for lab in HOSTILE)
