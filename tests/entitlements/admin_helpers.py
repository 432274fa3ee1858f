"""Read an admin form the way a browser would submit it, so tests keep
working when other apps add inlines to the same page."""

from __future__ import annotations

from html.parser import HTMLParser


class _FormParser(HTMLParser):
    def __init__(self, form_id: str | None):
        super().__init__()
        self.form_id = form_id
        self.in_form = False
        self.data: list[tuple[str, str]] = []
        self._textarea: str | None = None
        self._textarea_value = ""
        self._select: str | None = None
        self._select_value: str | None = None
        self._select_first: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and (self.form_id is None or attrs.get("id") == self.form_id):
            self.in_form = True
            return
        if not self.in_form:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            kind = attrs.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.data.append((name, attrs.get("value", "on")))
            elif kind not in ("submit", "button", "file", "image"):
                self.data.append((name, attrs.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._textarea_value = name, ""
        elif tag == "select" and name:
            self._select, self._select_value, self._select_first = name, None, None
        elif tag == "option" and self._select is not None:
            value = attrs.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in attrs:
                self._select_value = value

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea_value += data

    def handle_endtag(self, tag):
        if tag == "form" and self.in_form:
            self.in_form = False
        elif tag == "textarea" and self._textarea is not None:
            self.data.append((self._textarea, self._textarea_value.lstrip("\n")))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            value = self._select_value if self._select_value is not None else (self._select_first or "")
            self.data.append((self._select, value))
            self._select = None


def form_data(html: str, form_id: str | None = None) -> dict[str, str]:
    parser = _FormParser(form_id)
    parser.feed(html)
    return dict(parser.data)
