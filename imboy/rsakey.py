"""The RSA key pair of the login transport (PROTOCOL section 5).

``/init`` publishes the public key; clients send the password RSA PKCS#1 v1.5
encrypted and base64-encoded. The private key is either configured or
generated once and kept on disk, so every worker and every restart agrees on
it and clients holding the published key keep working.
"""
from __future__ import annotations

import base64
import binascii
import os
import tempfile

import gevent
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from imboy.errors import BadRequest

__all__ = ["RsaKey", "KEY_BITS"]

KEY_BITS = 2048
_INVALID = "Invalid password encryption"
# Four times a 4096-bit ciphertext in base64: anything longer is not ours.
_MAX_B64_LENGTH = 2800
# "+" becomes " " when a client forgets to escape a form field; url-safe
# base64 is mapped onto the standard alphabet.
_NORMALISE = str.maketrans({" ": "+", "-": "+", "_": "/"})


class RsaKey:
    """An RSA private key that decrypts passwords sent by clients."""

    def __init__(self, private_key: rsa.RSAPrivateKey):
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise TypeError("an RSA private key is required")
        self._key = private_key
        self._size = (private_key.key_size + 7) // 8
        self._public_pem = (
            private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
            .decode("ascii")
        )

    @classmethod
    def from_pem(cls, data: bytes | str) -> "RsaKey":
        """Load an unencrypted PEM private key (PKCS#1 or PKCS#8)."""
        if isinstance(data, str):
            data = data.encode("ascii")
        return cls(serialization.load_pem_private_key(data, password=None))

    @classmethod
    def generate(cls) -> "RsaKey":
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS))

    @classmethod
    def load_or_create(cls, path: str) -> "RsaKey":
        """The key stored at path, generated and stored (mode 0600) if missing.

        Several workers may start at once: the key is written to a temporary
        file and hard-linked into place, which fails if another worker won,
        so all of them end up loading one complete key.
        """
        try:
            with open(path, "rb") as fh:
                return cls.from_pem(fh.read())
        except FileNotFoundError:
            pass
        key = cls.generate()
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rsa-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key.private_pem())
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                with open(path, "rb") as fh:
                    return cls.from_pem(fh.read())
        finally:
            os.unlink(tmp)
        return key

    def private_pem(self) -> bytes:
        """PKCS#8 PEM of the private key, for storing it."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_pem(self) -> str:
        """SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----"), as /init sends it."""
        return self._public_pem

    def decrypt(self, b64_ciphertext: str) -> str:
        """The UTF-8 text a client encrypted; any defect is BadRequest.

        Decryption is a few milliseconds of CPU, so it runs in gevent's
        threadpool rather than on the hub.
        """
        ciphertext = self._ciphertext(b64_ciphertext)
        text = gevent.get_hub().threadpool.apply(self._decrypt_text, (ciphertext,))
        if text is None:
            raise BadRequest(_INVALID)
        return text

    def _ciphertext(self, b64_ciphertext: object) -> bytes:
        if isinstance(b64_ciphertext, (bytes, bytearray)):
            try:
                b64_ciphertext = bytes(b64_ciphertext).decode("ascii")
            except UnicodeDecodeError:
                raise BadRequest(_INVALID) from None
        if not isinstance(b64_ciphertext, str) or len(b64_ciphertext) > _MAX_B64_LENGTH:
            raise BadRequest(_INVALID)
        text = b64_ciphertext.strip().replace("\n", "").replace("\r", "")
        text = text.translate(_NORMALISE).rstrip("=")
        if not text or not text.isascii():
            raise BadRequest(_INVALID)
        try:
            data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(_INVALID) from None
        if len(data) != self._size:
            raise BadRequest(_INVALID)
        return data

    def _decrypt_text(self, ciphertext: bytes) -> str | None:
        """Runs in a pool thread; None for bad padding or non-UTF-8 plaintext."""
        try:
            return self._key.decrypt(ciphertext, padding.PKCS1v15()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
