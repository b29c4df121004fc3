"""Pure: the captures of one tracked article, oldest first -> its versions and changes.

A capture starts a new version only when the article's editorial content (normalised)
differs from the current version, when fixed READ targets are swapped, when it goes or
comes back (404/410), or when it now redirects elsewhere. Captures that are not the
article (errors, bot challenges, consent walls, empty or implausibly short extractions)
are suspect: recorded and shown, never versions.

Confirm before alarm: with ``confirm``, a capture whose content differs is compared with
a second render fetched seconds later (role ``confirm``; failing that, the next capture).
Only changes both renders show are edits; what differs between the two renders is
per-render noise. Its blocks are learned (``learn_noise``) by their structural signature,
per site, so later captures of any page of the site ignore them without a second fetch;
fields and READ targets that flip between renders are recorded as variants.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from functools import cached_property

from archiver.page.article import Article, Ref
from archiver.edits.diff import (BodyOp, Change, content_digest, diff_articles, is_current_digest, normalize, normalized_paragraphs,
                   ref_targets)
from archiver.edits.noise import learn_noise, mask, settle, settle_own

FIXED_AFTER = 3  # identical READ targets in this many captures in a row make them fixed
SHORT_RATIO = 0.3  # an extraction under this share of the current version's words is suspect
GONE_STATUSES = (404, 410)
CHALLENGE_TITLES = re.compile(
    r"just a moment|attention required|access denied|checking your browser|verify(ing)? you are (a )?human|"
    r"are you a robot|ddos-guard|security check|captcha|one more step", re.I)
CONSENT_WORDS = re.compile(r"\b(cookies?|consent|privacy choices)\b", re.I)
ERROR_TITLES = re.compile(r"\b(404|not found|page not found|error \d{3}|server error|no encontrada|introuvable)\b", re.I)


@dataclass(frozen=True)
class CaptureRef:
    warc: str
    offset: int
    fetched_at: str


@dataclass(frozen=True)
class Observation:
    """One capture of a tracked URL: the end of its redirect chain in one snapshot."""
    capture: CaptureRef
    status: int | None
    final_url: str
    article: Article | None  # None: no response, or not an HTML page
    error: str = ""
    challenge: str = ""  # set from response headers, e.g. "cf-mitigated: challenge"
    digest: str = ""  # content_digest(article) as stored: "" when not yet worked out
    confirm: bool = False  # a confirming fetch of the observation before it (role confirm)


@dataclass
class Version:
    number: int
    first: CaptureRef
    last: CaptureRef
    final_url: str
    article: Article | None  # None while the article is gone (404/410)
    status: int | None
    kinds: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()
    since: CaptureRef | None = None  # the capture the changes are measured from
    since_version: int = 0
    revert_of: int | None = None
    captures: int = 1
    fixed_refs: tuple[Ref, ...] | None = None
    read_seen: dict[str, int] = field(default_factory=dict)  # READ target -> captures that showed it
    digest: str = ""  # content_digest(article) once known (see _version_digest)
    unconfirmed: bool = False  # no second render has shown its changes yet
    second: Article | None = None  # the render fetched right after its first capture, to confirm it

    @property
    def gone(self) -> bool:
        return self.article is None

    @cached_property
    def words(self) -> int:
        return _words(self.article)

    @property
    def text_sha256(self) -> str:
        text = "\n\n".join(normalized_paragraphs(self.article.paragraphs)) if self.article else ""
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Suspect:
    capture: CaptureRef
    status: int | None
    reason: str


@dataclass(frozen=True)
class Variant:
    """A field, READ box or block that two renders of the same content disagreed on."""
    capture: CaptureRef
    field: str  # title | byline | published | modified | cross_refs | body
    values: tuple[str, ...]


@dataclass
class History:
    versions: list[Version] = field(default_factory=list)
    suspects: list[Suspect] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)
    read_boxes: str = "unknown"  # unknown | fixed | rotating | fixed and rotating (ReadBoxes.status)
    # Content digests worked out while building, for observations stored without a
    # current one: update_history stores them, so each is worked out once.
    computed: dict[CaptureRef, str] = field(default_factory=dict)
    learned: frozenset[str] = frozenset()  # noise keys learned from this URL's confirming fetches
    awaiting_confirm: CaptureRef | None = None  # the last capture's changes, not yet confirmed
    # Captures whose article was masked (noise taken out, variants made one) -> a tag of
    # what was done; their digests are stored with it, and trusted only under the same tag.
    tags: dict[CaptureRef, str] = field(default_factory=dict)
    # Versions before the last, by (final URL, content digest), for _reverted_to.
    by_content: dict[tuple[str, str], list[Version]] = field(default_factory=dict)
    indexed: int = 0


class ReadBoxes:
    """The READ boxes of a page, each told fixed or rotating by itself: a page may hold an
    editor's box beside a plugin's rotating one under another call to action."""

    def __init__(self) -> None:
        self.boxes: dict[str, ReadBox] = {}
        self.swapped: list[str] = []  # the boxes the last observe found swapped

    def observe(self, refs: tuple[Ref, ...], other_edits: bool) -> tuple[tuple[Ref, ...], tuple[Ref, ...]] | None:
        """(before, after) of the fixed boxes whose targets were swapped; None otherwise."""
        groups = _by_cta(refs)
        for block in groups:
            self.boxes.setdefault(block, ReadBox())
        swaps = {block: box.observe(groups.get(block, ()), other_edits) for block, box in self.boxes.items()}
        self.swapped = [block for block, swap in swaps.items() if swap is not None]
        if not self.swapped:
            return None
        return tuple(r for b in self.swapped for r in swaps[b][0]), tuple(r for b in self.swapped for r in swaps[b][1])

    def in_swapped(self, refs: tuple[Ref, ...]) -> tuple[Ref, ...]:
        """refs (of another render) standing in the boxes the last observe found swapped."""
        groups = _by_cta(refs)
        return tuple(r for block in self.swapped for r in groups.get(block, ()))

    def rotated(self, refs: tuple[Ref, ...], other: tuple[Ref, ...]) -> None:
        """Two renders of one page: a box whose targets differ between them rotates (READ
        targets re-picked between two renders are never an editor's choice)."""
        mine, theirs = _by_cta(refs), _by_cta(other)
        for block in mine.keys() | theirs.keys():
            if ref_targets(mine.get(block, ())) != ref_targets(theirs.get(block, ())):
                self.boxes.setdefault(block, ReadBox()).status = "rotating"

    @property
    def fixed(self) -> tuple[Ref, ...] | None:
        fixed = [box.fixed for box in self.boxes.values() if box.status == "fixed" and box.fixed is not None]
        return tuple(r for refs in fixed for r in refs) if fixed else None

    @property
    def status(self) -> str:
        """unknown, fixed, rotating, or "fixed and rotating" for a page with boxes of both kinds."""
        found = sorted({box.status for box in self.boxes.values()} - {"unknown"})
        return " and ".join(found) or "unknown"


def _by_cta(refs: tuple[Ref, ...]) -> dict[str, tuple[Ref, ...]]:
    """READ refs by box, told apart by their call to action ("read also", "lea también";
    article._read_signature): where a box stands can change with random class names."""
    groups: dict[str, list[Ref]] = {}
    for ref in refs:
        groups.setdefault(ref.block.rpartition("|")[2] if "|" in ref.block else "", []).append(ref)
    return {block: tuple(group) for block, group in groups.items()}


class ReadBox:
    """Tells fixed READ targets (an editor's choice: a swap is an edit) from rotating ones
    (re-picked on every render: recorded, never an edit)."""

    def __init__(self) -> None:
        self.status = "unknown"
        self.streak: tuple[str, ...] | None = None
        self.streak_len = 0
        self.fixed: tuple[Ref, ...] | None = None
        self.just_swapped = False
        self.unexplained = 0  # changes of targets while nothing else changed, before they were fixed

    def observe(self, refs: tuple[Ref, ...], other_edits: bool) -> tuple[tuple[Ref, ...], tuple[Ref, ...]] | None:
        """(before, after) when fixed targets were swapped; None otherwise."""
        targets = ref_targets(refs)
        if self.status == "rotating":
            return None
        if self.status == "fixed":
            return self._observe_fixed(refs, targets, other_edits)
        if self.streak is not None and targets != self.streak:
            self.unexplained += 0 if other_edits else 1
            if self.unexplained >= 2:  # one change could be an editor's; two is the plugin re-picking
                self.status = "rotating"
                return None
            self.streak_len = 0
        self.streak, self.streak_len = targets, self.streak_len + 1
        if self.streak_len >= FIXED_AFTER:
            self.status, self.fixed = "fixed", refs
        return None

    def _observe_fixed(self, refs: tuple[Ref, ...], targets: tuple[str, ...], other_edits: bool):
        assert self.fixed is not None
        if targets == ref_targets(self.fixed):
            self.just_swapped = False
            return None
        if self.just_swapped and not other_edits:
            self.status = "rotating"  # swapped again at once: the site has started rotating
            return None
        before, self.fixed, self.just_swapped = self.fixed, refs, True
        return before, refs


def build_history(observations: list[Observation], noise: frozenset[str] = frozenset(),
                  confirm: bool = False) -> History:
    """Versions, suspects, variants and READ-box status from a URL's observations, oldest
    first; each observation is of its own capture (one CaptureRef, one article).
    ``noise``: keys of blocks known to change per render on this site (learn_noise);
    ``confirm``: changes are edits only once a second render shows them too."""
    history = History()
    learned, flips = _learned(history, observations)
    history.learned = learned
    observations = _masked(history, observations, noise | learned, flips)
    boxes = ReadBoxes()
    doubted: list[Observation] = []  # consecutive suspect captures with the same content
    for i, obs in enumerate(observations):
        live = _last_live(history)
        reason = suspect_reason(obs, live)
        if reason:
            history.suspects.append(Suspect(obs.capture, obs.status, reason))
            doubted = _doubted(history, doubted, obs, reason)
            if len(doubted) >= FIXED_AFTER:  # the same page again and again: it is the article now
                del history.suspects[-len(doubted):]
                for again in doubted:
                    _observe(history, again, boxes)
                doubted = []
            continue
        doubted = []
        _observe(history, obs, boxes, _confirmer(observations, i, live) if confirm and not obs.confirm else None,
                 decide=confirm)
    history.read_boxes = boxes.status
    return history


FIELDS = ("title", "byline", "published", "modified")


def _learned(history: History, observations: list[Observation]) -> tuple[frozenset[str], dict[str, set[str]]]:
    """From each observation and the confirming fetch right after it: noise keys, the
    values of fields seen to flip between two renders (an A/B-tested headline), and the
    variants to show."""
    keys: set[str] = set()
    flips: dict[str, set[str]] = {}
    for first, second in zip(observations, observations[1:]):
        if second.confirm and first.article is not None and second.article is not None:
            keys |= learn_noise(first.article, second.article)
            for variant in _variants(first, second):
                history.variants.append(variant)
                if variant.field in FIELDS:
                    flips.setdefault(variant.field, set()).update(normalize(v) for v in variant.values)
    return frozenset(keys), flips


def _variants(obs: Observation, other: Observation) -> list[Variant]:
    """Fields, READ targets and paragraphs that differ between two renders."""
    a, b = obs.article, other.article
    assert a is not None and b is not None
    out = [Variant(obs.capture, name, (getattr(a, name), getattr(b, name)))
           for name in FIELDS if normalize(getattr(a, name)) != normalize(getattr(b, name))]
    if ref_targets(a.read_refs) != ref_targets(b.read_refs):
        out.append(Variant(obs.capture, "cross_refs",
                           (" ".join(ref_targets(a.read_refs)), " ".join(ref_targets(b.read_refs)))))
    flipped = set(normalized_paragraphs(a.paragraphs)) ^ set(normalized_paragraphs(b.paragraphs))
    if flipped:
        out.append(Variant(obs.capture, "body", tuple(sorted(flipped))[:4]))
    return out


def _masked(history: History, observations: list[Observation], noise: frozenset[str],
            flips: dict[str, set[str]]) -> list[Observation]:
    """Observations whose articles lost their noise blocks, and whose flipping fields
    show one value for all their variants. A digest stored for such an observation is of
    its masked article, tagged with what was masked: it stands while the same is."""
    out = []
    for obs in observations:
        if obs.article is not None:
            article, used = mask(obs.article, noise)
            article, fields = _one_variant(article, flips)
            if used or fields:
                tag = hashlib.sha1(repr((sorted(used), sorted(fields.items()))).encode()).hexdigest()[:16]
                history.tags[obs.capture] = tag
                stored = obs.digest[len(tag) + 1:] if obs.digest.startswith(tag + "/") else ""
                obs = replace(obs, article=article, digest=stored)
        out.append(obs)
    return out


def _one_variant(article: Article, flips: dict[str, set[str]]) -> tuple[Article, dict[str, str]]:
    fields = {name: min(values) for name, values in flips.items() if normalize(getattr(article, name)) in values}
    fields = {name: value for name, value in fields.items() if normalize(getattr(article, name)) != value}
    return (replace(article, **fields) if fields else article), fields


def stored_digest(history: History, capture: CaptureRef, digest: str) -> str:
    """How a digest worked out while building is stored: tagged when masked."""
    tag = history.tags.get(capture)
    return f"{tag}/{digest}" if tag else digest


AWAITING, FAILED = "awaiting", "failed"


def _confirmer(observations: list[Observation], i: int, live: Version | None) -> Observation | str:
    """What settles observation i's changes: its confirming fetch when that got the page,
    else the next ordinary capture that did; AWAITING when nothing came after it yet,
    FAILED when what came after could not settle it."""
    later_ones = observations[i + 1:]
    for later in later_ones:
        usable = later.article is not None and not suspect_reason(later, live)
        if usable:
            return later
        if not later.confirm:
            return FAILED
    return FAILED if later_ones else AWAITING


def _observe(history: History, obs: Observation, boxes: ReadBoxes,
             confirmer: Observation | str | None = None, decide: bool = False) -> None:
    current = history.versions[-1] if history.versions else None
    if obs.article is None:
        _observe_gone(history, obs, current)
    elif obs.confirm and current is not None:
        if current.last == current.first and current.second is None and current.article is not None:
            current.second = obs.article  # what in the version is per-render noise (see _confirmed)
            boxes.rotated(current.article.read_refs, obs.article.read_refs)
        _extend(current, obs)  # evidence of the decision on the capture before it, never a version
    else:
        _observe_live(history, obs, current, boxes, confirmer if decide else None)


def _doubted(history: History, doubted: list[Observation], obs: Observation, reason: str) -> list[Observation]:
    """Content suspects (a page far shorter, emptied, or an error or consent page served
    with 200) that repeat unchanged may be the real article: a retraction, a soft
    deletion, a gutted text. Errors, challenges and failed fetches never are."""
    if obs.article is None or reason.startswith(("HTTP", "no response", "bot challenge", "not an HTML")):
        return []
    if doubted and _obs_digest(history, doubted[-1]) != _obs_digest(history, obs):
        return [obs]
    return doubted + [obs]


def _last_live(history: History) -> Version | None:
    return next((v for v in reversed(history.versions) if not v.gone), None)


def _observe_gone(history: History, obs: Observation, current: Version | None) -> None:
    if current is not None and current.gone:
        _extend(current, obs)
        return
    changes = (Change("gone", f"HTTP {current.status}", f"HTTP {obs.status}"),) if current else ()
    _start(history, obs, None, ("gone",) if current else (), changes, since=current, fixed_refs=None)


def _observe_live(history: History, obs: Observation, current: Version | None, boxes: ReadBoxes,
                  confirmer: Observation | str | None = None) -> None:
    article = obs.article
    assert article is not None
    previous = _last_live(history)
    core_changed = previous is None or _version_digest(history, previous) != _obs_digest(history, obs)
    swap = boxes.observe(article.read_refs, other_edits=core_changed)
    redirected = current is not None and obs.final_url != current.final_url
    if current is not None and not current.gone and not core_changed and not swap and not redirected:
        _extend(current, obs)
        return
    changes, kinds = _changes(previous, current, article, swap, obs)
    if confirmer == AWAITING and previous is None:
        history.awaiting_confirm = obs.capture  # a first capture is confirmed too: its own noise
    unconfirmed = False
    if confirmer is not None and previous is not None and changes:
        changes, unconfirmed = _confirmed(history, obs, previous, current, swap, changes, confirmer, boxes)
        if not changes:
            _extend(current or previous, obs)
            return
        kinds = tuple(dict.fromkeys(c.kind for c in changes))
    # Changes are measured from the last live version when there is one.
    version = _start(history, obs, article, kinds, changes, since=previous or current, fixed_refs=boxes.fixed,
                     digest=obs.digest)
    version.unconfirmed = unconfirmed


def _confirmed(history: History, obs: Observation, previous: Version, current: Version | None, swap,
               changes: tuple[Change, ...], confirmer: Observation | str, boxes: ReadBoxes
               ) -> tuple[tuple[Change, ...], bool]:
    """(the changes a second render shows too, whether they are still unconfirmed). With
    no second render yet, or a failed one, all changes stand, unconfirmed: nothing is
    dropped because a fetch failed."""
    if not isinstance(confirmer, Observation):
        if confirmer == AWAITING:
            history.awaiting_confirm = obs.capture
        return changes, True
    assert confirmer.article is not None and obs.article is not None and previous.article is not None
    other_swap = (swap[0], boxes.in_swapped(confirmer.article.read_refs)) if swap else None
    own = previous.article  # less what its own two renders disagreed on: an ad one render had
    if previous.second is not None:
        own = settle_own(own, previous.second)
    base, render = settle(own, obs.article, confirmer.article)
    seen, _ = _changes(previous, current, render, swap, obs, base)
    base, render = settle(own, confirmer.article, obs.article)
    again, _ = _changes(previous, current, render, other_swap, confirmer, base)
    agreed = tuple(c for c in seen if c in again)
    boxes.rotated(obs.article.read_refs, confirmer.article.read_refs)
    return agreed, False


def _obs_digest(history: History, obs: Observation) -> str:
    assert obs.article is not None
    return _digest(history, obs.capture, obs.digest, obs.article)


def _version_digest(history: History, version: Version) -> str:
    assert version.article is not None
    version.digest = _digest(history, version.first, version.digest, version.article)
    return version.digest


def _digest(history: History, capture: CaptureRef, stored: str, article: Article) -> str:
    """A capture's content digest: as stored when of this KEY_VERSION, else worked out
    (only when a comparison needs it: never for a URL's first capture) and kept in
    history.computed for the catalog."""
    if is_current_digest(stored):
        return stored
    if capture not in history.computed:
        history.computed[capture] = content_digest(article)
    return history.computed[capture]


def _changes(previous: Version | None, current: Version | None, article: Article, swap, obs: Observation,
             base: Article | None = None):
    """The changes from the previous live version's article (or base) to article."""
    changes: list[Change] = []
    if current is not None and current.gone:
        changes.append(Change("restored", f"HTTP {current.status}", f"HTTP {obs.status}"))
    if current is not None and obs.final_url != current.final_url:
        changes.append(Change("redirected", current.final_url, obs.final_url))
    if previous is not None and previous.article is not None:
        changes += diff_articles(base or previous.article, article, swap)[0]
    kinds = tuple(dict.fromkeys(c.kind for c in changes))
    return tuple(changes), kinds


def _start(history: History, obs: Observation, article: Article | None, kinds, changes, since: Version | None,
           fixed_refs: tuple[Ref, ...] | None, digest: str = "") -> Version:
    version = Version(number=len(history.versions) + 1, first=obs.capture, last=obs.capture,
                      final_url=obs.final_url, article=article, status=obs.status, kinds=tuple(kinds),
                      changes=tuple(changes), since=since.last if since else None,
                      since_version=since.number if since else 0, fixed_refs=fixed_refs, digest=digest)
    version.revert_of = _reverted_to(history, version)
    _count_read(version, article)
    history.versions.append(version)
    return version


def _extend(version: Version, obs: Observation) -> None:
    """A capture of the version; a confirming fetch is evidence, not a capture of its own."""
    version.last = obs.capture
    if not obs.confirm:
        version.captures += 1
        _count_read(version, obs.article)


def _count_read(version: Version, article: Article | None) -> None:
    for url in ref_targets(article.read_refs if article else ()):
        version.read_seen[url] = version.read_seen.get(url, 0) + 1


def _same_content(history: History, a: Version, b: Version) -> bool:
    """Same editorial content, same final URL; fixed READ targets compared where both
    versions had them (before they were known to be fixed there is nothing to compare)."""
    if a.article is None or b.article is None:
        return False
    if a.final_url != b.final_url or _version_digest(history, a) != _version_digest(history, b):
        return False
    return a.fixed_refs is None or b.fixed_refs is None or ref_targets(a.fixed_refs) == ref_targets(b.fixed_refs)


def _reverted_to(history: History, version: Version) -> int | None:
    """The latest earlier, non-adjacent version with the same content: looked up by final
    URL and content digest, so an article with a thousand versions is not compared with
    each of them on every capture."""
    earlier = history.versions[:-1]
    for old in earlier[history.indexed:]:
        if old.article is not None:
            history.by_content.setdefault((old.final_url, _version_digest(history, old)), []).append(old)
    history.indexed = len(earlier)
    if version.article is None or not history.by_content:
        return None
    same = history.by_content.get((version.final_url, _version_digest(history, version)), [])
    return next((old.number for old in reversed(same) if _same_content(history, old, version)), None)


def suspect_reason(obs: Observation, live: Version | None) -> str:
    """Why a capture is not the article, or "" if it is (404/410 are answers, not suspect);
    live is the current live version."""
    if obs.status is None:
        return f"no response: {obs.error}" if obs.error else "no response"
    if obs.challenge:
        return f"bot challenge ({obs.challenge})"
    if obs.status in GONE_STATUSES:
        return ""
    if not 200 <= obs.status < 300:
        return f"HTTP {obs.status}"
    if obs.article is None:
        return "not an HTML page"
    return _content_suspect(obs.article, live.article if live else None, live.words if live else 0)


def _content_suspect(article: Article, current: Article | None, current_words: int) -> str:
    """The current live version's article is the yardstick for "far shorter"."""
    words = _words(article, up_to=max(150, SHORT_RATIO * current_words))  # exact below that: all asked here
    title = normalize(article.title)
    if words < 150 and CHALLENGE_TITLES.search(title):
        return f"bot challenge page ({title[:60]})"
    if words < 150 and CONSENT_WORDS.search(title + " " + " ".join(article.paragraphs[:3])) and \
            (current is None or words < SHORT_RATIO * current_words):
        return "consent page"
    if words < 150 and ERROR_TITLES.search(title) and \
            (current is None or not ERROR_TITLES.search(normalize(current.title))):
        return f"error page served with HTTP 200 ({title[:60]})"
    if words == 0:
        return "empty extraction"
    if current is not None and words < SHORT_RATIO * current_words:
        return f"extraction far shorter than the current version ({words} vs {current_words} words)"
    return ""


def _words(article: Article | None, up_to: float = float("inf")) -> int:
    """The article's words, counted until there are up_to: a long article is not counted
    through on every rebuild of its history only to learn that it is not short."""
    count = 0
    for paragraph in article.paragraphs if article else ():
        count += len(paragraph.split())
        if count >= up_to:
            break
    return count


def diff_versions(old: Version, new: Version) -> tuple[list[Change], list[BodyOp]]:
    """Changes between any two versions (not only neighbours)."""
    if old.article is None or new.article is None:
        kind = "gone" if new.article is None else "restored"
        if old.article is None and new.article is None:
            return [], []
        return [Change(kind, f"HTTP {old.status}", f"HTTP {new.status}")], []
    refs = (old.fixed_refs, new.fixed_refs) if old.fixed_refs is not None and new.fixed_refs is not None else None
    changes, ops = diff_articles(old.article, new.article, refs)
    if old.final_url != new.final_url:
        changes.insert(0, Change("redirected", old.final_url, new.final_url))
    return changes, ops
