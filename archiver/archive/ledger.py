"""The tamper-evident ledger: an append-only, hash-chained JSON-lines file.

Every capture appends an entry (time, URL, WARC file, its records' ids, offsets and
digests) holding the hash of the entry before it. Checkpoints (entry count, head hash,
time) are signed with the archive's key and also kept in the catalog, outside this file,
so a rewritten chain or a truncated tail is detected. Appends take an exclusive flock:
several processes may write one archive.

An entry's hash links its predecessor's hash to the digest of its own body (every field
but "hash" and "prev"; entries marked "v": 2): an export can carry an entry it leaves out
as that digest alone, and the chain from the entries it keeps to a signed checkpoint can
still be checked (proof.py). Entries written before (no "v") hash their whole text, prev
included: an export has to carry them whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from archiver.archive.keys import SigningKey, verify_signature
from archiver.errors import ArchiverError


GENESIS = "0" * 64
TAIL_BYTES = 1 << 16  # enough to hold the last entry


CHAIN_VERSION = 2  # the "v" of entries whose hash links prev to their body's digest
LINK_LABEL = "archiver-ledger-2"


def canonical(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def body_digest(entry: dict[str, Any]) -> str:
    """SHA-256 of the entry without its hash and prev: what an export carries for an entry
    it leaves out."""
    return _sha256(canonical({k: v for k, v in entry.items() if k not in ("hash", "prev")}))


def link_hash(prev: str, body: str) -> str:
    """The hash of a version-2 entry: its predecessor's hash and its body's digest."""
    return _sha256(f"{LINK_LABEL}:{prev}:{body}")


def entry_hash(entry: dict[str, Any]) -> str:
    if entry.get("v") == CHAIN_VERSION:
        return link_hash(str(entry.get("prev")), body_digest(entry))
    return _sha256(canonical({k: v for k, v in entry.items() if k != "hash"}))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def chained(payload: dict[str, Any], seq: int, prev: str) -> tuple[dict[str, Any], str]:
    """The entry after prev, and its line (canonical JSON). A capture entry's other keys
    all sort after "prev", so its line is its body's text with hash and prev put first:
    one JSON encoding per entry, not two (7 us of 17)."""
    entry = {**payload, "seq": seq, "v": CHAIN_VERSION}
    body = canonical(entry)
    digest = link_hash(prev, _sha256(body))
    fast = min(entry) > "prev"
    entry["prev"], entry["hash"] = prev, digest
    if fast:
        return entry, f'{{"hash":"{digest}","prev":{json.dumps(prev, ensure_ascii=False)},{body[1:]}'
    return entry, canonical(entry)


def checkpoint_message(count: int, head: str, time: str) -> str:
    return f"archiver-ledger-checkpoint:{count}:{head}:{time}"


def key_message(count: int, head: str, time: str, public_key: str) -> str:
    """What a key entry signs: the chain as it stood when the key was made, and the key."""
    return f"archiver-ledger-key:{count}:{head}:{time}:{public_key}"


class Ledger:
    def __init__(self, path: Path):
        self.path = path
        self._file: IO[bytes] | None = None
        self._known: tuple[int, int, str] | None = None  # (file size, seq, hash) after our last append

    def append(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chain and append entries (each a dict with "type", "time" and its fields);
        fsynced before returning them with their seq and hash."""
        return self.append_made(lambda count, head: payloads) if payloads else []

    def append_made(self, make: Callable[[int, str], list[dict[str, Any]]],
                    then: Callable[[list[dict[str, Any]]], None] = lambda entries: None) -> list[dict[str, Any]]:
        """Append the entries make(count, head) gives, called under the lock with the
        chain's count and head: no other writer appends between what make read and them;
        then(entries) runs once they are on disk, still under the lock."""
        f = self._open()
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            seq, prev = self._locked_head(f)
            payloads = make(seq, prev)
            if not payloads:
                return []
            entries, lines = [], []
            for payload in payloads:
                seq += 1
                entry, line = chained(payload, seq, prev)
                prev = entry["hash"]
                entries.append(entry)
                lines.append(line + "\n")
            f.seek(0, os.SEEK_END)
            f.write("".join(lines).encode())
            f.flush()
            os.fsync(f.fileno())  # under the lock: no later writer's bytes reach the disk before ours
            self._known = (f.tell(), seq, prev)
            then(entries)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
        return entries

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a+b")
        return self._file

    def _locked_head(self, f: IO[bytes]) -> tuple[int, str]:
        """The head, read back from the file unless it has not grown since our own last
        append (another process may have appended meanwhile)."""
        size = os.fstat(f.fileno()).st_size
        if self._known is not None and self._known[0] == size:
            return self._known[1], self._known[2]
        return self._head(f)

    def checkpoint(self, key: SigningKey | None | Callable[[], SigningKey | None], time: str) -> dict[str, Any]:
        """Append a checkpoint over everything before it; signed when there is a key. Its
        count and head are read under the lock it is written under: read before, another
        writer's entries could come between them and it. key may be a function giving the
        key, called under that lock too: archiver keygen records a new key under it, so a
        checkpoint is either before the key's entry or signed."""
        def payload(count: int, head: str) -> list[dict[str, Any]]:
            if callable(key):
                return signed(key(), count, head)
            return signed(key, count, head)

        def signed(key: SigningKey | None, count: int, head: str) -> list[dict[str, Any]]:
            entry: dict[str, Any] = {"type": "checkpoint", "time": time, "count": count, "head": head}
            if key is not None:
                entry["public_key"] = key.public_b64
                entry["signature"] = key.sign(checkpoint_message(count, head, time))
            return [entry]

        [entry] = self.append_made(payload)
        return entry

    def record_key(self, make_key: Callable[[], SigningKey], time: str) -> dict[str, Any]:
        """Make the key (make_key, called under the ledger's lock) and append the entry that
        records its creation: signed by it, over the chain before it. Checkpoints before it
        may be unsigned; none after it."""
        def payload(count: int, head: str) -> list[dict[str, Any]]:
            key = make_key()
            return [{"type": "key", "time": time, "count": count, "head": head, "public_key": key.public_b64,
                     "signature": key.sign(key_message(count, head, time, key.public_b64))}]

        [entry] = self.append_made(payload)
        return entry

    def capture_records(self) -> Iterator[tuple[str, int, int]]:
        """(WARC file, record offset, seq of its capture entry) for every record the
        ledger's capture entries hold, in order (the whole file is read)."""
        for _, entry, _ in self.entries():
            if entry and entry.get("type") == "capture":
                for record in entry.get("records", []):
                    yield entry.get("warc", ""), record.get("offset", -1), entry["seq"]

    def seqs_holding(self, records: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """(WARC file, record offset) -> seq of the capture entry that holds it, for those
        of records the ledger holds (read through: only after a crash)."""
        return {(warc, offset): seq for warc, offset, seq in self.capture_records() if (warc, offset) in records}

    def head(self) -> tuple[int, str]:
        if not self.path.exists():
            return 0, GENESIS
        with open(self.path, "rb") as f:
            return self._head(f)

    def _head(self, f) -> tuple[int, str]:
        """(seq, hash) of the last entry: read from the end of the file."""
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0, GENESIS
        f.seek(max(0, size - TAIL_BYTES))
        lines = f.read().rstrip(b"\n").split(b"\n")
        try:
            last = json.loads(lines[-1])
            return int(last["seq"]), str(last["hash"])
        except (ValueError, KeyError, TypeError) as e:
            raise ArchiverError(f"{self.path}: last line is not a ledger entry ({e}); run archiver verify") from e

    def entries(self) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
        """(line number, entry or None if unparsable, raw line) for every line."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, 1):
                text = raw.decode("utf-8", "replace").rstrip("\n")
                try:
                    entry = json.loads(text)
                except ValueError:
                    entry = None
                yield number, entry if isinstance(entry, dict) else None, text


@dataclass(frozen=True)
class ChainProblem:
    line: int
    message: str


@dataclass
class Chain:
    """What a walk over the whole chain found (kept small: entries are not kept)."""
    problems: list[ChainProblem] = field(default_factory=list)
    checkpoints: int = 0
    last_checkpoint: dict | None = None
    count: int = 0
    head: str = GENESIS
    key: dict | None = None        # the entry recording the key's creation
    unsigned_before_key: int = 0   # unsigned checkpoints made before the key existed
    _unsigned: list[int] = field(default_factory=list)  # lines of unsigned checkpoints with no key entry before them


def check_chain(ledger: Ledger, trusted_key: str | None,
                on_entry: Callable[[dict[str, Any]], None] = lambda entry: None) -> Chain:
    """Walk the whole chain, an entry at a time; on_entry sees each one parsed (so one
    pass serves other checks too). trusted_key: the archive's public key as known outside
    the ledger (archive.key, or the catalog's copies of signed checkpoints)."""
    chain = Chain()
    for line, entry, _ in ledger.entries():
        if entry is None:
            chain.problems.append(ChainProblem(line, "not a JSON ledger entry"))
            continue
        on_entry(entry)
        _check_link(chain, line, entry)
        if entry.get("type") == "checkpoint":
            _check_checkpoint(chain, line, entry, trusted_key)
            chain.checkpoints += 1
            chain.last_checkpoint = entry
        elif entry.get("type") == "key":
            _check_key_entry(chain, line, entry, trusted_key)
        chain.count, chain.head = int(entry.get("seq") or chain.count + 1), str(entry.get("hash"))
    if trusted_key:  # a key, and no entry saying when it was made: every checkpoint must be signed
        chain.problems += [ChainProblem(line, "checkpoint is not signed although the archive has a key, and the "
                                              "ledger records no key creation after it") for line in chain._unsigned]
    return chain


def _check_link(chain: Chain, line: int, entry: dict) -> None:
    if entry.get("seq") != chain.count + 1:
        chain.problems.append(ChainProblem(line, f"entry seq {entry.get('seq')} where {chain.count + 1} was "
                                                 "expected (an entry was removed, duplicated or moved)"))
    if entry.get("prev") != chain.head:
        chain.problems.append(ChainProblem(line, "prev does not match the hash of the entry before it"))
    if entry.get("hash") != entry_hash(entry):
        chain.problems.append(ChainProblem(line, "entry was edited: its hash does not match its content"))
    if entry.get("type") in ("checkpoint", "key") and (
            entry.get("count") != chain.count or entry.get("head") != chain.head):
        chain.problems.append(ChainProblem(line, f"{entry['type']} count/head do not match the chain before it"))


def _check_checkpoint(chain: Chain, line: int, entry: dict, trusted_key: str | None) -> None:
    if "signature" not in entry:
        if chain.key is not None:
            chain.problems.append(ChainProblem(line, f"checkpoint is not signed although the archive's key was "
                                                     f"created before it (entry {chain.key.get('seq')})"))
        else:
            chain._unsigned.append(line)
        return
    expected = chain.key.get("public_key") if chain.key is not None else trusted_key
    if expected and entry.get("public_key") != expected:
        chain.problems.append(ChainProblem(line, "checkpoint signed with a key that is not the archive's"))
    message = checkpoint_message(entry.get("count", -1), entry.get("head", ""), entry.get("time", ""))
    if not _verifies(entry.get("public_key", ""), message, entry.get("signature", "")):
        chain.problems.append(ChainProblem(line, "checkpoint signature does not verify"))


def _check_key_entry(chain: Chain, line: int, entry: dict, trusted_key: str | None) -> None:
    public_key = entry.get("public_key", "")
    if chain.key is not None:
        chain.problems.append(ChainProblem(line, f"a second key entry: the archive's key was created at entry "
                                                 f"{chain.key.get('seq')} and an archive keeps its key"))
    elif trusted_key and public_key != trusted_key:
        chain.problems.append(ChainProblem(line, "the key recorded here is not the archive's key"))
    message = key_message(entry.get("count", -1), entry.get("head", ""), entry.get("time", ""), public_key)
    if not _verifies(public_key, message, entry.get("signature", "")):
        chain.problems.append(ChainProblem(line, "key entry signature does not verify"))
    if chain.key is None:
        chain.key, chain.unsigned_before_key = entry, len(chain._unsigned)
        chain._unsigned.clear()  # made before the key existed; the key entry signs the chain that holds them


def _verifies(public_key: str, message: str, signature: str) -> bool:
    return verify_signature(public_key, message, signature)
