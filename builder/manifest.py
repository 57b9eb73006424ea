"""What a web page says about its app: the HTML's manifest link, icons and theme colour, and
the web app manifest itself, with the fallbacks the W3C spec and browsers apply.

Pure functions over text already fetched; URLs come back absolute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import orjson

Display = Literal["fullscreen", "standalone", "minimal-ui", "browser"]
_DISPLAYS: tuple[Display, ...] = ("fullscreen", "standalone", "minimal-ui", "browser")
_HEX = re.compile(r"#([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_RGB = re.compile(r"rgba?\(\s*(\d{1,3})[\s,]+(\d{1,3})[\s,]+(\d{1,3})\s*(?:[,/][^)]*)?\)")
_NAMED = {
    "white": "#FFFFFF",
    "black": "#000000",
    "red": "#FF0000",
    "green": "#008000",
    "blue": "#0000FF",
    "gray": "#808080",
    "grey": "#808080",
    "yellow": "#FFFF00",
    "orange": "#FFA500",
    "purple": "#800080",
    "navy": "#000080",
    "teal": "#008080",
}


@dataclass(frozen=True, slots=True)
class Icon:
    src: str  # absolute URL
    sizes: tuple[int, ...] = ()  # the widths of square sizes it declares; () when unknown
    type: str | None = None
    purpose: frozenset[str] = frozenset({"any"})

    @property
    def largest(self) -> int:
        return max(self.sizes, default=0)


@dataclass(frozen=True, slots=True)
class Page:
    url: str
    manifest_url: str | None = None
    title: str | None = None
    theme_color: str | None = None
    icons: tuple[Icon, ...] = ()


@dataclass(frozen=True, slots=True)
class WebApp:
    name: str
    short_name: str
    start_url: str
    scope: str
    display: Display
    theme_color: str | None
    background_color: str | None
    icons: tuple[Icon, ...] = field(default=())
    orientation: str | None = None
    manifest_url: str | None = None


def parse_color(value: object) -> str | None:
    """A CSS colour as #RRGGBB (alpha dropped); None when it is not one we understand."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _HEX.fullmatch(text):
        digits = text[1:]
        if len(digits) in (3, 4):
            digits = "".join(ch * 2 for ch in digits[:3])
        return "#" + digits[:6].upper()
    if m := _RGB.fullmatch(text.lower()):
        channels = [int(v) for v in m.groups()]
        if all(c <= 255 for c in channels):
            return "#" + "".join(f"{c:02X}" for c in channels)
    return _NAMED.get(text.lower())


def _sizes(value: object) -> tuple[int, ...]:
    if not isinstance(value, str):
        return ()
    found = []
    for token in value.lower().split():
        w, _, h = token.partition("x")
        if w.isdigit() and w == h:
            found.append(int(w))
    return tuple(sorted(found))


class _HeadParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.manifest: str | None = None
        self.theme: str | None = None
        self.icons: list[tuple[str, str | None, str | None]] = []
        self.title_parts: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        rel = set(a.get("rel", "").lower().split())
        href = a.get("href", "").strip()
        if tag == "base" and href and self.base is None:
            self.base = href
        elif tag == "link" and href:
            if "manifest" in rel and self.manifest is None:
                self.manifest = href
            if rel & {"icon", "apple-touch-icon"}:
                self.icons.append((href, a.get("sizes"), a.get("type")))
        elif tag == "meta" and a.get("name", "").lower() == "theme-color":
            # The first one without a media query is the default; else the first at all.
            if self.theme is None or ("media" not in a and self._theme_had_media):
                self.theme = a.get("content")
                self._theme_had_media = "media" in a
        elif tag == "title":
            self._in_title = True

    _theme_had_media = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)


def parse_html(html: str, page_url: str) -> Page:
    parser = _HeadParser()
    parser.feed(html)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    title = " ".join("".join(parser.title_parts).split()) or None
    icons = tuple(
        Icon(src=urljoin(base, href), sizes=_sizes(sizes), type=kind or None)
        for href, sizes, kind in parser.icons
    )
    return Page(
        url=page_url,
        manifest_url=urljoin(base, parser.manifest) if parser.manifest else None,
        title=title,
        theme_color=parse_color(parser.theme),
        icons=icons,
    )


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _text(value: object, limit: int = 100) -> str | None:
    if isinstance(value, str) and (cleaned := " ".join(value.split())):
        return cleaned[:limit]
    return None


def _manifest_icons(raw: object, manifest_url: str) -> tuple[Icon, ...]:
    if not isinstance(raw, list):
        return ()
    icons = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("src"), str):
            continue
        purpose = frozenset(str(item.get("purpose") or "any").lower().split()) or {"any"}
        icons.append(
            Icon(
                src=urljoin(manifest_url, item["src"]),
                sizes=_sizes(item.get("sizes")),
                type=_text(item.get("type")),
                purpose=frozenset(purpose),
            )
        )
    return tuple(icons)


def parse_manifest(raw: bytes | str | None, page: Page) -> WebApp:
    """The web app from its manifest (`raw`, None when there is none) and its page.

    Fallbacks: name <- short_name <- page title <- host; start_url <- the page (also when the
    manifest's is on another origin); scope <- start_url's directory; colours and icons <-
    the page's meta theme-color and link icons. Malformed JSON counts as no manifest.
    """
    data: dict[str, Any] = {}
    if raw:
        try:
            loaded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            loaded = None
        if isinstance(loaded, dict):
            data = loaded
    manifest_url = page.manifest_url or page.url
    host = urlsplit(page.url).hostname or "app"

    start_url = page.url
    if isinstance(data.get("start_url"), str):
        candidate = urljoin(manifest_url, data["start_url"])
        if _origin(candidate) == _origin(page.url):
            start_url = candidate
    default_scope = urljoin(start_url, ".")
    scope = default_scope
    if isinstance(data.get("scope"), str):
        candidate = urljoin(manifest_url, data["scope"])
        if _origin(candidate) == _origin(start_url) and start_url.startswith(candidate):
            scope = candidate

    name = _text(data.get("name")) or _text(data.get("short_name")) or page.title or host
    display = data.get("display")
    icons = _manifest_icons(data.get("icons"), manifest_url) or page.icons
    return WebApp(
        name=name,
        short_name=_text(data.get("short_name"), 30) or name[:30],
        start_url=start_url,
        scope=scope,
        display=display if display in _DISPLAYS else "standalone",
        theme_color=parse_color(data.get("theme_color")) or page.theme_color,
        background_color=parse_color(data.get("background_color")),
        icons=icons,
        orientation=_text(data.get("orientation"), 30),
        manifest_url=page.manifest_url if data else None,
    )


def best_icon(icons: Iterable[Icon], min_size: int = 192) -> Icon | None:
    """The icon to build a launcher icon from: PNG, purpose `any`, smallest >= min_size
    (else the largest), preferring declared sizes over unknown ones."""

    def rank(icon: Icon) -> tuple[int, int, int, int]:
        png = icon.type == "image/png" or urlsplit(icon.src).path.lower().endswith(".png")
        big_enough = icon.largest >= min_size
        return (
            0 if "any" in icon.purpose else 1,
            0 if png else 1,
            0 if big_enough else 1,
            icon.largest if big_enough else -icon.largest,
        )

    candidates = [i for i in icons if not urlsplit(i.src).path.lower().endswith(".svg")]
    return min(candidates, key=rank, default=None)
