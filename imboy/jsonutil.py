"""JSON on hot paths, through ujson, in one place."""
from __future__ import annotations

from typing import Any

import ujson


def dumps(value: Any) -> str:
    # ensure_ascii=False: UTF-8 on the wire; escape_forward_slashes=False so
    # URLs and PEM keys read as they are.
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False)


def loads(text: str | bytes) -> Any:
    """Parse JSON; raises ValueError for anything that is not JSON."""
    return ujson.loads(text)
