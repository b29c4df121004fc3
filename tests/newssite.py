"""A local news site with several page templates and the noise real sites add per render.

Every render varies what is not editorial: READ boxes re-picked from a pool (when the
article's READ targets rotate), relative timestamps, nonces and CSRF tokens, view and
share counters, ads inside and outside the body, a shuffled "trending" list,
cache-busting asset URLs, the footer year, and soft hyphens / no-break spaces sprinkled
into the text. Editorial content changes only when a test edits the ``Story``.
"""

from __future__ import annotations

import html
import json
import random
from dataclasses import dataclass, field

from .site import Site, send

TEMPLATES = ("wordpress", "newscms", "oldtable")


@dataclass
class Story:
    title: str = "Defence Office Opens in Marenburg Amid Protests"
    byline: str = "Ana Petrović"
    published: str = "2026-11-02T09:30:00+00:00"
    paragraphs: list[str] = field(default_factory=lambda: [
        "The defence ministry of Ruritania opened a representative office in Marenburg on Monday, "
        "according to a statement released by the ministry.",
        "The office will employ 12 people and coordinate training on equipment delivered since 2019. "
        "Officials said the mission is purely technical.",
        "Opposition deputies in Borduria called the move a step towards a permanent military presence. "
        "They demanded a debate in parliament.",
        "Neighbouring governments have not commented. Analysts expect the question to return at the "
        "next regional summit in the spring.",
    ])
    # In-body links: (start of the paragraph they close, href, anchor text).
    links: list[tuple[str, str, str]] = field(default_factory=lambda: [
        ("The defence ministry", "/docs/ministry-statement", "a statement"),
        ("Opposition deputies", "/docs/parliament-motion", "a debate")])
    read_targets: list[tuple[str, str]] = field(default_factory=lambda: [
        ("/2026/10/pipeline-deal/", "Pipeline Deal Signed Despite Objections"),
        ("/2026/09/airbase-rumours/", "Airbase Rumours Denied Again")])
    read_pool: list[tuple[str, str]] | None = None  # when set, READ boxes rotate over this pool
    status: int = 200


class NewsSite:
    """Serves ``/article/<template>/`` for each template from one Story, noise per render."""

    def __init__(self, site: Site, story: Story | None = None, seed: int = 7):
        self.site = site
        self.story = story or Story()
        self.rng = random.Random(seed)
        for template in TEMPLATES:
            site.routes[f"/article/{template}/"] = self._handler(template)

    def url(self, template: str) -> str:
        return self.site.url(f"/article/{template}/")

    def _handler(self, template: str):
        def handle(h) -> None:
            if self.story.status != 200:
                send(h, self.story.status, b"<html><body><h1>Not found</h1></body></html>", "text/html")
                return
            send(h, 200, self.render(template).encode(), "text/html; charset=utf-8")
        return handle

    def render(self, template: str) -> str:
        return {"wordpress": self._wordpress, "newscms": self._newscms, "oldtable": self._oldtable}[template]()

    # ---- noise ------------------------------------------------------------------------

    def _noisy(self, text: str) -> str:
        """Sprinkle soft hyphens and no-break spaces, differently on every render."""
        words = html.escape(text).split(" ")
        out = []
        for w in words:
            if len(w) > 7 and self.rng.random() < 0.3:
                cut = self.rng.randrange(3, len(w) - 3)
                w = w[:cut] + "&shy;" + w[cut:]
            out.append(w)
        return "".join(word + ("&nbsp;" if self.rng.random() < 0.1 else " ") for word in out).rstrip()

    def _read_targets(self) -> list[tuple[str, str]]:
        pool = self.story.read_pool
        return self.rng.sample(pool, 2) if pool else self.story.read_targets

    def _read_box(self, href: str, title: str) -> str:
        cls = "u%032x" % self.rng.getrandbits(128)
        return (f'<div style="clear:both; margin-top:0em; margin-bottom:1em;"><a href="{href}" target="_blank" '
                f'rel="nofollow" class="{cls}"><style>.{cls}{{padding:0}}</style><div style="padding-left:1em;">'
                f'<span class="ctaText">READ</span>&nbsp; <span class="postTitle">{html.escape(title)}</span>'
                f'</div></a></div>')

    def _body_paragraphs(self) -> list[str]:
        """Paragraphs with in-body links, READ boxes after the 1st and 3rd, an ad after the 2nd."""
        reads = self._read_targets()
        out = []
        for i, text in enumerate(self.story.paragraphs):
            out.append(f"<p>{self._noisy(text)}{self._links_closing(text)}</p>")
            if i in (0, 2) and reads:
                out.append(self._read_box(*reads[0 if i == 0 else 1]))
            if i == 1:
                out.append(f'<div class="advert-inline"><a href="/ads/click?id={self.rng.randint(1, 10**6)}">'
                           f'Sponsored: Buy {self.rng.choice(["tyres", "phones", "loans"])} now</a></div>')
        return out

    def _links_closing(self, paragraph: str) -> str:
        return "".join(f' See <a href="{href}">{html.escape(anchor)}</a>.'
                       for start, href, anchor in self.story.links if paragraph.startswith(start))

    def _chrome(self, title: str, head_extra: str, main: str) -> str:
        nonce = "%016x" % self.rng.getrandbits(64)
        trending = [f'<li><a href="/trending/{i}/">Trending story {i}</a></li>' for i in range(1, 7)]
        self.rng.shuffle(trending)
        return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)} | Marenburg Monitor</title>
<link rel="stylesheet" href="/static/site.css?v={self.rng.randint(1, 10**9)}">
<script nonce="{nonce}">window.csrf = "{nonce}";</script>{head_extra}</head><body>
<header><nav><a href="/">Home</a> <a href="/politics/">Politics</a></nav>
<div class="ticker">{self.rng.randint(1, 59)} minutes ago: markets open higher</div></header>
{main}
<aside class="sidebar"><h3>Trending</h3><ul>{''.join(trending)}</ul>
<div class="ad-slot"><a href="/ads/{self.rng.randint(1, 999)}">Advertisement</a></div></aside>
<form class="newsletter"><input type="hidden" name="csrf" value="{nonce}"><input name="email"></form>
<footer>Copyright &copy; {self.rng.choice([2025, 2026])} Marenburg Monitor</footer></body></html>"""

    def _meta_line(self) -> str:
        return (f'<div class="post-meta"><span class="views">{self.rng.randint(100, 99999):,} views</span> '
                f'<span class="shares">{self.rng.randint(0, 999)} shares</span> '
                f'<span class="ago">Updated {self.rng.randint(2, 50)} minutes ago</span></div>')

    def _wordpress(self) -> str:
        s = self.story
        head = (f'<meta property="og:title" content="{html.escape(s.title)}">'
                f'<meta property="article:published_time" content="{s.published}">'
                f'<meta name="author" content="{html.escape(s.byline)}">')
        main = (f'<main><article><h1 class="entry-title">{html.escape(s.title)}</h1>'
                f'<div class="byline">By <a rel="author" href="/author/x/">{html.escape(s.byline)}</a></div>'
                f'{self._meta_line()}<div class="entry-content">{"".join(self._body_paragraphs())}'
                f'<div class="share-buttons"><a href="https://share.example/?u={self.rng.random()}">Share</a></div>'
                f'</div></article></main>')
        return self._chrome(s.title, head, main)

    def _newscms(self) -> str:
        s = self.story
        ld = json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "headline": s.title,
                         "author": {"@type": "Person", "name": s.byline}, "datePublished": s.published,
                         "dateModified": "2026-11-02T12:00:00+00:00"})
        main = (f'<div id="content"><h1 itemprop="headline">{html.escape(s.title)}</h1>'
                f'<p class="author">{html.escape(s.byline)}</p>'
                f'<time datetime="{s.published}">{s.published[:10]}</time>{self._meta_line()}'
                f'<div itemprop="articleBody">{"".join(self._body_paragraphs())}</div></div>')
        return self._chrome(s.title, f'<script type="application/ld+json">{ld}</script>', main)

    def _oldtable(self) -> str:
        s = self.story
        paragraphs = [self._noisy(text) + self._links_closing(text) for text in s.paragraphs]
        reads = self._read_targets()
        read = f'<br><br><b>READ:</b> <a href="{reads[0][0]}">{html.escape(reads[0][1])}</a>' if reads else ""
        main = (f'<h1>Marenburg Monitor</h1><table><tr><td class="main"><h2>{html.escape(s.title)}</h2>'
                f'<i>by {html.escape(s.byline)}, {s.published[:10]}</i><br><br>'
                + "<br><br>".join(paragraphs[:2]) + read + "<br><br>" + "<br><br>".join(paragraphs[2:])
                + f'</td><td class="side">Visitors today: {self.rng.randint(1000, 9999)}</td></tr></table>')
        return self._chrome(s.title, f'<meta property="og:title" content="{html.escape(s.title)}">', main)
