"""Reads a served page the way assistive technology would: labels, their inputs, buttons, links."""

from dataclasses import dataclass
from html.parser import HTMLParser


@dataclass
class Control:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class PageMarkup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[str, str] = {}  # for= -> label text
        self.inputs: dict[str, Control] = {}  # id -> input/select/textarea
        self.buttons: list[Control] = []
        self.links: list[Control] = []
        self.scripts: list[str] = []
        self.title = ""
        self._open: list[tuple[str, Control]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        control = Control(tag, values)
        if tag in ("input", "select", "textarea") and "id" in values:
            self.inputs[values["id"]] = control
        if tag == "script" and "src" in values:
            self.scripts.append(values["src"])
        if tag in ("label", "button", "a", "title"):
            self._open.append((tag, control))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            return
        _, control = self._open.pop()
        control.text = " ".join(control.text.split())
        if tag == "label":
            self.labels[control.attrs.get("for", "")] = control.text
        elif tag == "button":
            self.buttons.append(control)
        elif tag == "a":
            self.links.append(control)
        elif tag == "title":
            self.title = control.text

    def handle_data(self, data: str) -> None:
        for _, control in self._open:
            control.text += data

    def input_labelled(self, label: str) -> Control:
        """The input a visible <label for=...> with exactly this text names."""
        for target, text in self.labels.items():
            if text == label and target in self.inputs:
                return self.inputs[target]
        raise AssertionError(f"no input labelled {label!r}; labels: {self.labels}")

    def button_named(self, name: str) -> Control:
        for button in self.buttons:
            if button.text == name:
                return button
        raise AssertionError(f"no button named {name!r}; buttons: {[b.text for b in self.buttons]}")

    def link_named(self, name: str) -> Control:
        for link in self.links:
            if link.text == name:
                return link
        raise AssertionError(f"no link named {name!r}; links: {[a.text for a in self.links]}")


def parse_page(html: str) -> PageMarkup:
    page = PageMarkup()
    page.feed(html)
    page.close()
    return page
