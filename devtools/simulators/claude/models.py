"""The model ids the simulator accepts, and the ``/v1/models`` listing."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Aliases the real API serves; a dated id (alias + "-YYYYMMDD") is accepted for each of them.
DEFAULT_MODELS: tuple[str, ...] = (
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-5",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-1",
    "claude-opus-4-0",
    "claude-sonnet-4-0",
    "claude-3-7-sonnet-latest",
    "claude-3-5-haiku-latest",
    "claude-opus-5",
    "claude-sonnet-5",
)
# Dated ids the real API lists whose date is not simply alias + date.
_EXTRA_DATED = ("claude-opus-4-20250514", "claude-sonnet-4-20250514", "claude-3-7-sonnet-20250219")
_DATE_SUFFIX = re.compile(r"^(?P<alias>.+)-(?P<date>20\d{6})$")


class ModelCatalog:
    """Which model ids are known: aliases plus their dated variants."""

    def __init__(self, models: Iterable[str] | None = None) -> None:
        self.aliases: tuple[str, ...] = tuple(models) if models is not None else DEFAULT_MODELS
        self._exact = set(self.aliases) | set(_EXTRA_DATED if models is None else ())

    def is_known(self, model: str) -> bool:
        """True for a listed id, or a listed alias followed by ``-YYYYMMDD``."""
        if model in self._exact:
            return True
        dated = _DATE_SUFFIX.match(model)
        return bool(dated and dated.group("alias") in self._exact)

    def listing(self) -> dict[str, object]:
        """The ``GET /v1/models`` page (one page, every model)."""
        data = [
            {
                "type": "model",
                "id": model,
                "display_name": model.replace("-", " ").title(),
                "created_at": "2025-01-01T00:00:00Z",
            }
            for model in self.aliases
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
