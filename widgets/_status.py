"""A lab's status line: callbacks that report their errors there instead of raising into the
widget machinery (where they would vanish into the browser console)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as W

__all__ = ["StatusLine"]


class StatusLine:
    """Mixin for a lab with a ``_status`` HTML widget and an optional ``_unsubscribe`` hook."""

    _status: W.HTML
    last_error: str | None = None

    def _guard(self, fn: Callable[[], Any]) -> None:
        """Run ``fn``; on an exception show it in the status line and keep the lab alive."""
        try:
            fn()
            self.last_error = None
        except Exception as err:
            self.last_error = f"{type(err).__name__}: {err}"
            self._set_status(f"⚠ {self.last_error}", error=True)

    def _set_status(self, text: str, *, error: bool = False) -> None:
        color = "#b00020" if error else "#333"
        self._status.value = f"<span style='color:{color}'>{html.escape(text)}</span>"

    def close(self) -> None:
        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()
        super().close()  # type: ignore[misc]
