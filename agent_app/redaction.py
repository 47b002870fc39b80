"""The one filter for everything that leaves the agent: progress events, results and errors for
the coordinator, the transcript, commit messages, pull request titles and bodies, and command
output shown to the model.

Known secrets are replaced however they appear: as they are, reversed, in hex, or inside any
base64 text (at each of the three byte alignments, standard and URL-safe alphabets); so are
tokens of well-known formats, whoever's they are. A diff is checked with :meth:`findings`: one
that holds a secret is not pushed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any

REPLACEMENT = "[REDACTED]"
# Credentials of well-known formats: GitHub tokens (classic, fine-grained, OAuth, App user,
# installation, refresh), Anthropic keys, and this project's agent keys.
TOKEN_FORMATS = {
    "GitHub token": r"\bgh[pousr]_[A-Za-z0-9]{30,255}\b",
    "GitHub fine-grained token": r"\bgithub_pat_[A-Za-z0-9_]{40,255}\b",
    "Anthropic API key": r"\bsk-ant-[A-Za-z0-9_-]{16,}",
    "cluster agent key": r"\bccca_[A-Za-z0-9_-]{20,}",
}
# Shorter values would match by chance inside encoded text.
MIN_ENCODED_LENGTH = 12


def encodings(secret: str) -> dict[str, str]:
    """The forms of ``secret`` to look for, each with the name of its encoding."""
    raw = secret.encode()
    forms = {secret: "plain", secret[::-1]: "reversed"}
    if len(secret) < MIN_ENCODED_LENGTH:
        return forms
    forms[raw.hex()] = forms[raw.hex().upper()] = "hex"
    for offset in range(3):
        # The characters that encode only the secret's own bits, whatever precedes it.
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        core = encoded[(8 * offset + 5) // 6 : (8 * (offset + len(raw))) // 6]
        forms[core] = "base64"
        forms[core.replace("+", "-").replace("/", "_")] = "base64"
    return forms


class Redactor:
    """Replaces ``secrets`` (in every form) and well-known token formats in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._names: dict[str, str] = {}
        for secret in secrets:
            if secret and len(secret) >= 4:
                self._names.update(encodings(secret))
        needles = sorted(self._names, key=len, reverse=True)  # longest first
        alternatives = [re.escape(n) for n in needles] + list(TOKEN_FORMATS.values())
        self._pattern = re.compile("|".join(alternatives))
        self._formats = {name: re.compile(rx) for name, rx in TOKEN_FORMATS.items()}

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REPLACEMENT, text)

    def scrub(self, value: Any) -> Any:
        """``value`` with every string in it (keys too) redacted: JSON-like data."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def findings(self, text: str) -> list[str]:
        """What kinds of secret ``text`` holds (never the secret itself), e.g. "a known secret
        (base64)", "GitHub token"."""
        found = set()
        for match in self._pattern.finditer(text):
            value = match.group(0)
            if value in self._names:
                found.add(f"a secret of this agent ({self._names[value]})")
            else:
                found.update(n for n, rx in self._formats.items() if rx.fullmatch(value))
        return sorted(found)
