"""URL converters: what a variable part of a route's path may be."""

from __future__ import annotations

from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

from coordinator_app.db import INT_MAX


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route (``create_app`` installs it under that name): the id of a
    row, 1 to ``INT_MAX``. A larger number is refused with 400 before the view runs, since
    PostgreSQL fails on it instead of finding nothing."""

    def to_python(self, value: str) -> int:
        # Ten digits at most: int() of thousands of digits is slow, then refused by Python.
        number = int(value) if len(value) <= len(str(INT_MAX)) else 0
        if not 1 <= number <= INT_MAX:
            raise BadRequest(f"{value[:20]} is not an id: ids are 1 to {INT_MAX}")
        return number
