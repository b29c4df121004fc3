"""The archive's signing key: ECDSA P-256, as the WACZ signing spec's anonymous form uses.

Signatures are over the UTF-8 bytes of a message with SHA-256, encoded raw (r || s,
64 bytes, what WebCrypto produces and checks) and base64'd; public keys travel as
base64 SubjectPublicKeyInfo DER, and are named by their fingerprint: "sha256:" and the hex
SHA-256 of that DER. The private key file is created with mode 0600 and is never written
into a WARC file or an export.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from archiver.errors import ArchiverError, UsageError, os_error_text

COORDINATE_BYTES = 32
FINGERPRINT = re.compile(r"(?:sha256:)?((?:[0-9a-f]{2}:?){31}[0-9a-f]{2})", re.IGNORECASE)
KEY_FILE_LIMIT = 1 << 16  # bytes read from a key file named with --key


class SigningKey:
    def __init__(self, private: ec.EllipticCurvePrivateKey):
        self.private = private

    @property
    def public_b64(self) -> str:
        return public_key_b64(self.private.public_key())

    def sign(self, message: str) -> str:
        der = self.private.sign(message.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return base64.b64encode(r.to_bytes(COORDINATE_BYTES, "big") + s.to_bytes(COORDINATE_BYTES, "big")).decode()


def public_key_b64(key: ec.EllipticCurvePublicKey) -> str:
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(spki).decode()


def fingerprint(public_b64: str) -> str:
    """"sha256:<hex>" of the key's DER (of the text itself where it is not base64)."""
    try:
        der = base64.b64decode(public_b64, validate=True)
    except (binascii.Error, ValueError):
        der = public_b64.encode("utf-8", "replace")
    return "sha256:" + hashlib.sha256(der).hexdigest()


def trusted_fingerprint(spec: str) -> str:
    """The fingerprint of the key a user names with --key: a public key file (archive.key.pub,
    or PEM), the private key file, or a fingerprint ("sha256:" and 64 hex digits)."""
    path = Path(spec)
    if path.is_file():
        try:
            return fingerprint(read_public_key(path))
        except ArchiverError as e:
            raise UsageError(f"--key {e}") from None
    match = FINGERPRINT.fullmatch(spec.strip())
    if match is None:
        raise UsageError(f"--key {spec}: neither a key file nor a fingerprint (sha256: and 64 hex digits)")
    return "sha256:" + match.group(1).replace(":", "").lower()


def read_public_key(path: Path) -> str:
    """The public key in a file: base64 DER (archive.key.pub), PEM, or a private key's."""
    try:
        with open(path, "rb") as f:
            data = f.read(KEY_FILE_LIMIT)
    except OSError as e:
        raise ArchiverError(f"{path}: {os_error_text(e, with_path=False)}") from e
    try:
        if b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        elif b"PUBLIC KEY" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(base64.b64decode(data.strip(), validate=True))
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm) as e:
        raise ArchiverError(f"{path}: not a readable key ({e})") from e
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ArchiverError(f"{path}: not an ECDSA key")
    return public_key_b64(key)


def verify_signature(public_b64: str, message: str, signature_b64: str) -> bool:
    """True if signature_b64 is the key's signature of message; False for anything else."""
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_b64))
        raw = base64.b64decode(signature_b64)
        if not isinstance(key, ec.EllipticCurvePublicKey) or len(raw) != 2 * COORDINATE_BYTES:
            return False
        der = encode_dss_signature(int.from_bytes(raw[:COORDINATE_BYTES], "big"),
                                   int.from_bytes(raw[COORDINATE_BYTES:], "big"))
        key.verify(der, message.encode(), ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):  # a key on an unknown curve too
        return False


def generate_key(path: Path) -> SigningKey:
    """Create the private key file (0600, refusing to overwrite) and PATH.pub beside it.
    The file appears whole (written aside, then linked): a capture process that looks
    for the key never reads half of it."""
    if path.exists():
        raise UsageError(f"{path} already exists: an archive keeps its key")
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.link(aside, path)  # FileExistsError if another keygen got there first
    except FileExistsError:
        raise UsageError(f"{path} already exists: an archive keeps its key") from None
    finally:
        aside.unlink(missing_ok=True)
    key = SigningKey(private)
    path.with_name(path.name + ".pub").write_text(key.public_b64 + "\n", encoding="ascii")
    return key


def public_key(path: Path) -> str | None:
    """The archive's public key, for checking only: from the private key PATH when this
    process may read it, else from PATH.pub (a copy of the archive handed to someone else,
    or made unreadable to them, needs no private key)."""
    pub = path.with_name(path.name + ".pub")
    if path.exists() and (os.access(path, os.R_OK) or not pub.exists()):
        key = load_key(path)
        return key.public_b64 if key is not None else None
    return read_public_key(pub) if pub.exists() else None


def load_key(path: Path) -> SigningKey | None:
    """The archive's key, or None when it has none (exports and checkpoints go unsigned)."""
    if not path.exists():
        return None
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as e:
        raise ArchiverError(f"{path}: cannot read the private key: {os_error_text(e, with_path=False)}") from e
    except (ValueError, TypeError) as e:
        raise ArchiverError(f"{path}: not a readable private key: {e}") from e
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise ArchiverError(f"{path}: not an ECDSA key")
    return SigningKey(private)
