"""Filters, sorting and pagination for list endpoints (meta.pagination exactly as clients parse it)."""
from __future__ import annotations

import math

from .errors import invalid_input


def parse_bool(value: str, field: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise invalid_input(field, "must be true or false")


def parse_positive_int(value: str | None, field: str, default: int, maximum: int | None = None) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid_input(field, "must be a positive integer") from None
    if number < 1:
        raise invalid_input(field, "must be a positive integer")
    if maximum is not None and number > maximum:
        raise invalid_input(field, f"must be at most {maximum}")
    return number


def sort_items(items: list[dict], sorts: list[str], allowed: tuple[str, ...]) -> list[dict]:
    if not sorts:
        return sorted(items, key=lambda item: item["id"])
    keys = []
    for raw in sorts:
        field, _, direction = raw.partition(":")
        if field not in allowed or direction not in ("", "asc", "desc"):
            raise invalid_input(
                "sort", f"'{raw}' is not a valid sort: use one of {', '.join(allowed)} with optional ':asc' or ':desc'"
            )
        keys.append((field, direction == "desc"))
    result = sorted(items, key=lambda item: item["id"])
    for field, descending in reversed(keys):
        result.sort(key=lambda item, f=field: (item.get(f) is None, item.get(f) or ""), reverse=descending)
    return result


def paginate(items: list, page_param: str | None, per_page_param: str | None,
             max_per_page: int = 50) -> tuple[list, dict]:
    page = parse_positive_int(page_param, "page", 1)
    per_page = parse_positive_int(per_page_param, "per_page", 25, maximum=max_per_page)
    total = len(items)
    last_page = max(1, math.ceil(total / per_page))
    start = (page - 1) * per_page
    meta = {
        "pagination": {
            "page": page,
            "per_page": per_page,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < last_page else None,
            "last_page": last_page,
            "total_entries": total,
        }
    }
    return items[start:start + per_page], meta
