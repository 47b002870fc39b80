"""Text written by people outside the team (issues, comments, repository files), made fit to
show the model: what a maintainer could not see on GitHub is removed, and what remains is
marked as data, never as instructions.

A maintainer who adds the trigger label has read the rendered issue. HTML comments, markdown
comments (link definitions to `#`), image alt text, link titles, unrendered HTML attributes
(alt, title, aria-*, data-*, placeholder), zero-width, bidi and other invisible format
characters do not show there, so an instruction hidden in them would reach the model unseen:
they go.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
# Text GitHub keeps out of sight: image alt text (shown only when the image fails), link
# titles (on hover), and HTML attributes that are never rendered.
IMAGE_ALT = re.compile(r"!\[[^\]\n]{1,1000}\]\(")
LINK_TITLE = re.compile(r"(\[[^\]\n]*\]\([^)\s]+)\s+(?:\"[^\"\n]*\"|'[^'\n]*')\)")
HIDDEN_ATTRIBUTE = re.compile(
    r"""\s(?:alt|title|aria-[\w-]+|data-[\w-]+|placeholder)\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""",
    re.I,
)
HTML_TAG = re.compile(r"<[a-zA-Z][^<>]*>")
# `[//]: # (hidden)`, `[comment]: <> "hidden"`: link definitions nothing links to, a common way
# to hide text in markdown.
MARKDOWN_COMMENT = re.compile(r"^ {0,3}\[[^\]\n]*\]:[ \t]*(?:#|<>)(?:[ \t].*)?$", re.M)


@dataclass
class Cleaned:
    """Text with its hidden parts removed, and how many were."""

    text: str
    removed: int


def clean(text: str) -> Cleaned:
    """Remove the parts of ``text`` that GitHub does not render visibly."""
    removed = 0
    text, count = HTML_COMMENT.subn("", text)
    removed += count
    text, count = MARKDOWN_COMMENT.subn("", text)
    removed += count
    text, count = IMAGE_ALT.subn("![](", text)
    removed += count
    text, count = LINK_TITLE.subn(r"\1)", text)
    removed += count
    tags_before = text
    text = HTML_TAG.sub(lambda tag: HIDDEN_ATTRIBUTE.sub("", tag.group(0)), text)
    removed += int(text != tags_before)
    # Format characters (Unicode category Cf): zero-width spaces and joiners, bidi embeddings,
    # overrides and isolates, the BOM, soft hyphens, invisible tag characters.
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    removed += len(text) - len(visible)
    return Cleaned(visible.replace("\r\n", "\n"), removed)


def wrap(kind: str, text: str) -> str:
    """``text`` between markers the model is told to treat as data. The marker's id comes from
    the text itself: text cannot contain its own closing marker, and the same text always gets
    the same marker (prompt caching stays possible)."""
    tag = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f'<untrusted-data kind="{kind}" id="{tag}">\n{text}\n</untrusted-data id="{tag}">'
