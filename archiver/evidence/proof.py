"""The ledger proof an export carries, and its check: every exported capture's ledger
entry, chained to a signed checkpoint (or to the signed entry recording the key).

For each exported capture entry the export carries every entry after it up to the first
signed one: whole if it is exported, a checkpoint or key entry, or written before entries
were hashed as prev + body digest (ledger.py); otherwise only its seq, hash and body digest
("omitted"), which is all the chain needs and says nothing of what was captured. The check
walks the lines once, recomputing each hash from the one before it; a run of entries is
proven when it reaches a signed entry whose count and head are the hash before it and
whose signature verifies with a key the caller accepts. Nothing else is proven.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from archiver.archive.keys import verify_signature
from archiver.errors import ArchiverError
from archiver.archive.ledger import CHAIN_VERSION, Ledger, body_digest, canonical, checkpoint_message, entry_hash, key_message, link_hash
from archiver.evidence.package import BadPackage, parse_json

HEX64 = re.compile(r"[0-9a-f]{64}")
RECORD_FIELDS = ("id", "type", "block_digest", "payload_digest")


@dataclass
class Slice:
    lines: list[str] = field(default_factory=list)
    found: set[str] = field(default_factory=set)      # record ids the exported entries hold
    uncovered: list[int] = field(default_factory=list)  # exported entries no signed entry follows


def ledger_proof(ledger: Ledger, ids: set[str]) -> Slice:
    """The proof for the capture entries holding any of these record ids (one pass)."""
    out = Slice()
    for number, entry, raw in ledger.entries():
        if entry is None:
            if out.uncovered:
                raise ArchiverError(f"{ledger.path.name}:{number}: not a ledger entry, in the chain an export "
                                    "must carry; run archiver verify")
            continue
        exported = entry.get("type") == "capture" and any(
            isinstance(r, dict) and r.get("id") in ids for r in entry.get("records") or [])
        if exported:
            out.found.update(r.get("id") for r in entry["records"] if isinstance(r, dict))
            out.uncovered.append(entry.get("seq"))
        if out.uncovered:
            out.lines.append(raw if exported or _kept_whole(entry) else omitted(entry))
            if signed(entry):
                out.uncovered = []
    return out


def _kept_whole(entry: dict[str, Any]) -> bool:
    return entry.get("type") in ("checkpoint", "key") or entry.get("v") != CHAIN_VERSION


def omitted(entry: dict[str, Any]) -> str:
    return canonical({"hash": entry.get("hash"), "omitted": body_digest(entry), "seq": entry.get("seq")})


def signed(entry: dict[str, Any]) -> bool:
    return entry.get("type") in ("checkpoint", "key") and "signature" in entry


def signed_message(entry: dict[str, Any]) -> str:
    count, head, time = entry.get("count", -1), entry.get("head", ""), entry.get("time", "")
    if entry.get("type") == "key":
        return key_message(count, head, time, entry.get("public_key", ""))
    return checkpoint_message(count, head, time)


class Sink(Protocol):
    """Where the checker puts what entries list, and which of them a signature covers."""
    def listed(self, seq: int, records: list[dict[str, str]]) -> None: ...
    def prove(self, first: int, last: int) -> None: ...


@dataclass
class ProofChecker:
    """Feed it the proof's lines in order (line), then call end; problems go to problem(where,
    message). key_problem(public_key) says why a signer is not accepted, or None."""
    sink: Sink
    key_problem: Callable[[str], str | None]
    problem: Callable[[str, str], None]
    where: str = "ledger/ledger.jsonl"
    running: str | None = None     # hash of the last entry, when the chain up to it holds
    last_seq: int | None = None
    waiting: int | None = None     # first capture entry not yet covered by a signature
    entries: int = 0
    proofs: int = 0                # signed entries that covered captures

    def line(self, number: int, raw: bytes) -> None:
        where = f"{self.where}:{number}"
        entry = self._entry(where, raw)
        if entry is None:
            self._break()
            return
        self.entries += 1
        seq = entry["seq"]
        linked = self.running is not None and seq == (self.last_seq or 0) + 1
        if self.last_seq is not None and seq <= self.last_seq:
            self.problem(where, f"entry {seq} comes after entry {self.last_seq}: out of order")
            self._break()
        elif not linked:
            self._break()
        self.last_seq = seq
        if "omitted" in entry:
            self._omitted(where, entry, linked)
        else:
            self._whole(where, entry, linked)

    def end(self) -> None:
        self._break()

    def _entry(self, where: str, raw: bytes) -> dict[str, Any] | None:
        try:
            entry = parse_json(raw, where)
        except BadPackage as e:
            self.problem(where, e.message)
            return None
        if not isinstance(entry, dict) or type(entry.get("seq")) is not int:
            self.problem(where, "not a ledger entry (an object with an integer seq)")
            return None
        return entry

    def _omitted(self, where: str, entry: dict[str, Any], linked: bool) -> None:
        body = entry.get("omitted")
        if not linked or not isinstance(body, str) or not HEX64.fullmatch(body):
            self.problem(where, "an omitted entry must follow the entry before it and give its body's "
                                "SHA-256: its place in the chain cannot be checked")
            self._break()
            return
        self.running = link_hash(self.running or "", body)
        if entry.get("hash", self.running) != self.running:
            self.problem(where, "omitted entry's hash does not follow from the chain before it")
            self._break()

    def _whole(self, where: str, entry: dict[str, Any], linked: bool) -> None:
        if linked and entry.get("prev") != self.running:
            self.problem(where, "prev does not match the hash of the entry before it")
            self._break()
        digest = entry_hash(entry)
        if digest != entry.get("hash"):
            self.problem(where, "entry was edited: its hash does not match its content")
            self._break()
            return
        if entry.get("type") == "capture":
            self._capture(where, entry)
        if signed(entry):
            self._signed(where, entry)
        self.running = digest

    def _capture(self, where: str, entry: dict[str, Any]) -> None:
        records = entry.get("records")
        if not isinstance(records, list) or not all(_record_ok(r) for r in records):
            self.problem(where, "capture entry whose records are not a list of record summaries")
            return
        self.sink.listed(entry["seq"], records)
        if self.waiting is None:
            self.waiting = entry["seq"]

    def _signed(self, where: str, entry: dict[str, Any]) -> None:
        kind = entry["type"]
        if (entry.get("count"), entry.get("head")) != (entry["seq"] - 1, entry.get("prev")):
            self.problem(where, f"{kind} count/head do not match the chain before it")
            return
        if not _verifies(entry.get("public_key"), signed_message(entry), entry.get("signature")):
            self.problem(where, f"{kind} signature does not verify")
            return
        refused = self.key_problem(str(entry.get("public_key")))
        if refused:
            self.problem(where, f"{kind} {refused}")
            return
        if self.waiting is not None:
            self.sink.prove(self.waiting, entry["seq"])
            self.waiting = None
            self.proofs += 1

    def _break(self) -> None:
        """The chain is not continued from here: captures waiting for a signature stay unproven."""
        if self.waiting is not None:
            self.problem(self.where, f"entries {self.waiting} to {self.last_seq}: no signed checkpoint follows them "
                                     "in an unbroken chain, so nothing signed covers them")
        self.waiting, self.running = None, None


def _record_ok(record: Any) -> bool:
    return isinstance(record, dict) and all(isinstance(record.get(k), str) for k in RECORD_FIELDS) \
        and isinstance(record.get("head_digest", ""), str)


def _verifies(public_key: Any, message: str, signature: Any) -> bool:
    return isinstance(public_key, str) and isinstance(signature, str) and \
        verify_signature(public_key, message, signature)


def listed_rows(records: list[dict[str, str]]) -> Iterator[tuple[str, str, str, str, str]]:
    """(id, type, block digest, payload digest, head digest or "") of each record an entry lists."""
    for r in records:
        yield r["id"], r["type"], r["block_digest"], r["payload_digest"], r.get("head_digest", "")
