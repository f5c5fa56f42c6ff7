"""SHA-256 and SM3 computed together in one pass over a stream (SM3: GB/T 32905, via OpenSSL)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1024 * 1024
HEAD = 8192


class DualDigest:
    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._sm3 = hashlib.new("sm3")
        self.size = 0
        self.head = b""  # the first bytes, for format sniffing without a second read

    def update(self, chunk: bytes) -> None:
        if len(self.head) < HEAD:
            self.head += chunk[: HEAD - len(self.head)]
        self._sha256.update(chunk)
        self._sm3.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def sm3(self) -> str:
        return self._sm3.hexdigest()


def iter_chunks(stream: BinaryIO, chunk: int = CHUNK) -> Iterator[bytes]:
    while True:
        b = stream.read(chunk)
        if not b:
            return
        yield b


def digest_stream(stream: BinaryIO) -> DualDigest:
    d = DualDigest()
    for b in iter_chunks(stream):
        d.update(b)
    return d


def sm3_hex(data: bytes) -> str:
    return hashlib.new("sm3", data).hexdigest()


def digests(stream: BinaryIO, algorithms: set[str] | frozenset[str]) -> dict[str, str]:
    """Hex digests of a stream for several algorithms (hashlib names: sha256, sm3, sha512, md5 …) in one read."""
    hs = {a: hashlib.new(a) for a in algorithms if a in hashlib.algorithms_available}
    for b in iter_chunks(stream):
        for h in hs.values():
            h.update(b)
    return {a: h.hexdigest() for a, h in hs.items()}
