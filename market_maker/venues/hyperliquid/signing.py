"""Hyperliquid L1 action signing, implemented independently of the official SDK.

The algorithm (``reference/hyperliquid-verified.md`` 1.2, checked against every official test
vector in ``tests/venues/test_hyperliquid_signing.py``):

1. ``action_hash = keccak256(msgpack(action) ‖ nonce (8 bytes, big endian) ‖ vault byte
   [‖ 0x00 ‖ expires_after (8 bytes)])``; the vault byte is ``0x00``, or ``0x01`` followed by
   the vault address. msgpack keeps the dict's key order: the order of fields matters, and an
   absent key hashes differently from a null one.
2. The phantom agent ``{source: "a" (mainnet) | "b" (testnet), connectionId: action_hash}`` is
   signed as EIP-712 typed data ``Agent(string source,bytes32 connectionId)`` in the domain
   ``{name: "Exchange", version: "1", chainId: 1337, verifyingContract: 0x0}``.
3. secp256k1 over the EIP-712 digest; the signature is ``{"r": hex, "s": hex, "v": 27|28}``
   with ``r`` and ``s`` as minimal hex (no zero padding), as the SDK sends them.

Needs the optional extra ``pip install market-maker[hyperliquid]`` (``coincurve`` for
secp256k1, ``pycryptodome`` for keccak). The private key lives only inside ``Signer``: it is
never part of a repr, a log line, ``status()`` or an exception message.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec

from market_maker.errors import ConfigError

__all__ = [
    "NonceSource",
    "Signer",
    "action_hash",
    "eip712_digest",
    "keccak",
    "recover_signer",
]


def _require() -> tuple[Any, Any]:
    try:
        import coincurve
        from Crypto.Hash import keccak as _keccak
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError(
            "live trading on Hyperliquid needs the signing extra: "
            "pip install 'market-maker[hyperliquid]'"
        ) from None
    return coincurve, _keccak


def keccak(data: bytes) -> bytes:
    _, k = _require()
    h = k.new(digest_bits=256)
    h.update(data)
    digest: bytes = h.digest()
    return digest


_msgpack = msgspec.msgpack.Encoder()


def action_hash(
    action: dict[str, Any], vault_address: str | None, nonce: int, expires_after: int | None
) -> bytes:
    data = _msgpack.encode(action) + nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(vault_address.removeprefix("0x").lower())
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return keccak(data)


def _domain_separator() -> bytes:
    type_hash = keccak(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    return keccak(
        type_hash
        + keccak(b"Exchange")
        + keccak(b"1")
        + (1337).to_bytes(32, "big")
        + bytes(32)  # verifyingContract 0x000...0, left-padded to 32 bytes
    )


def eip712_digest(connection_id: bytes, *, mainnet: bool) -> bytes:
    """The digest signed for the phantom agent of ``connection_id``."""
    agent_type = keccak(b"Agent(string source,bytes32 connectionId)")
    source = b"a" if mainnet else b"b"
    struct_hash = keccak(agent_type + keccak(source) + connection_id)
    return keccak(b"\x19\x01" + _domain_separator() + struct_hash)


def _address_of(public_key_uncompressed: bytes) -> str:
    return "0x" + keccak(public_key_uncompressed[1:])[-20:].hex()


def recover_signer(
    action: dict[str, Any],
    signature: dict[str, Any],
    *,
    nonce: int,
    mainnet: bool,
    vault_address: str | None = None,
    expires_after: int | None = None,
) -> str:
    """The address (lower case) that signed ``action``; ValueError for a malformed signature."""
    coincurve, _ = _require()
    digest = eip712_digest(
        action_hash(action, vault_address, nonce, expires_after), mainnet=mainnet
    )
    r = int(str(signature["r"]), 16)
    s = int(str(signature["s"]), 16)
    v = int(signature["v"])
    if v not in (27, 28) or not (0 < r < 2**256 and 0 < s < 2**256):
        raise ValueError("malformed signature")
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v - 27])
    try:
        key = coincurve.PublicKey.from_signature_and_message(raw, digest, hasher=None)
    except Exception as exc:  # coincurve raises plain Exceptions
        raise ValueError(f"unrecoverable signature: {exc}") from None
    return _address_of(key.format(compressed=False))


class Signer:
    """Signs L1 actions with one key (an API/agent wallet). The key never leaves it."""

    __slots__ = ("_key", "address", "mainnet")

    def __init__(self, private_key_hex: str, *, mainnet: bool) -> None:
        coincurve, _ = _require()
        text = private_key_hex.strip().removeprefix("0x")
        if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ConfigError("the Hyperliquid private key must be 32 bytes of hex (64 digits)")
        try:
            self._key = coincurve.PrivateKey(bytes.fromhex(text))
        except Exception:
            raise ConfigError("the Hyperliquid private key is not a valid secp256k1 key") from None
        self.mainnet = mainnet
        self.address = _address_of(self._key.public_key.format(compressed=False))
        """The signer's (agent wallet's) address, lower case."""

    def __repr__(self) -> str:
        return f"Signer(address={self.address}, mainnet={self.mainnet})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Signer holds a private key and cannot be pickled")

    def sign(
        self,
        action: dict[str, Any],
        nonce: int,
        *,
        vault_address: str | None = None,
        expires_after: int | None = None,
    ) -> dict[str, Any]:
        """``{"r", "s", "v"}`` for ``action`` at ``nonce``."""
        digest = eip712_digest(
            action_hash(action, vault_address, nonce, expires_after), mainnet=self.mainnet
        )
        sig = self._key.sign_recoverable(digest, hasher=None)
        r = int.from_bytes(sig[:32], "big")
        s = int.from_bytes(sig[32:64], "big")
        return {"r": hex(r), "s": hex(s), "v": 27 + sig[64]}


class NonceSource:
    """Strictly increasing millisecond nonces for one signer: ``max(now_ms, last + 1)``, even
    when called many times in one millisecond or from several threads."""

    def __init__(self, clock_ms: Any = None) -> None:
        self._clock = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            now = int(self._clock())
            nonce = now if now > self._last else self._last + 1
            self._last = nonce
            return nonce
