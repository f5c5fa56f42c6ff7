"""SM2 signatures with SM3 (GB/T 32918, GB/T 32905) for the packages dangan exports, interoperable with OpenSSL.

Signing. `e = SM3(Z ‖ M)` with `Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA)` and the default user id
`1234567812345678` (GM/T 0009), exactly what `openssl pkeyutl -sign -rawin -digest sm3 -pkeyopt
distid:1234567812345678` computes; signatures are DER `SEQUENCE { r INTEGER, s INTEGER }`. SM3 comes from
hashlib (OpenSSL), so a message of any size is hashed as a stream (`Sm2Verifier.hasher()`); only the
elliptic-curve step is done by gmssl (pure Python, ~6 ms to sign, ~11 ms to verify).

gmssl is used with care:
- `CryptSM2(public_key=...)` runs `public_key.lstrip("04")`, which strips every leading "0"/"4" of X, not
  just the uncompressed-point prefix; we set the attribute after construction instead.
- `func.random_hex` (its default nonce and the only key material helper) uses `random.choice`, which is
  not a cryptographic generator; nonces and private keys here come from `secrets`.
- `verify` does not check that r and s lie in [1, n-1] and crashes on the point at infinity; both are
  checked here and count as an invalid signature.

Key files. `Sm2Signer.save` writes the private key as OpenSSL does for `openssl genpkey -algorithm SM2`:
PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, algorithm id-ecPublicKey with the named curve SM2
1.2.156.10197.1.301, an ECPrivateKey with the public key). `Sm2Signer.load` also reads SEC1 PEM
(`BEGIN EC PRIVATE KEY`), PKCS#8 whose algorithm is the SM2 OID itself (GmSSL, OpenSSL 1.1.1), and a file
holding the private key as 64 hex digits (the `signing_key` setting accepts either). Encrypted PEM is not
supported. Public keys are exchanged as SubjectPublicKeyInfo (DER or `BEGIN PUBLIC KEY` PEM), or raw
`04‖X‖Y` / `X‖Y` / compressed points.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

from asn1crypto import algos, core, pem
from gmssl.sm2 import CryptSM2, default_ecc_table

from dangan.errors import ConfigError

__all__ = [
    "DEFAULT_USER_ID", "SM2_CURVE_OID", "SM2_SM3_OID", "Sm2Signer", "Sm2Verifier", "load_or_create_signer",
]

log = logging.getLogger(__name__)

SM2_CURVE_OID = "1.2.156.10197.1.301"   # sm2p256v1 (GM/T 0006)
SM2_SM3_OID = "1.2.156.10197.1.501"     # SM2 signature with SM3
EC_PUBLIC_KEY_OID = "1.2.840.10045.2.1"  # id-ecPublicKey
DEFAULT_USER_ID = b"1234567812345678"

_P = int(default_ecc_table["p"], 16)
_A = int(default_ecc_table["a"], 16)
_B = int(default_ecc_table["b"], 16)
_N = int(default_ecc_table["n"], 16)
_G = default_ecc_table["g"]
_CURVE_BYTES = bytes.fromhex(default_ecc_table["a"] + default_ecc_table["b"] + _G)


class _AlgorithmIdentifier(core.Sequence):
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class _EcPrivateKey(core.Sequence):  # RFC 5915
    _fields = [
        ("version", core.Integer),
        ("private_key", core.OctetString),
        ("parameters", core.ObjectIdentifier, {"explicit": 0, "optional": True}),
        ("public_key", core.OctetBitString, {"explicit": 1, "optional": True}),
    ]


class _PrivateKeyInfo(core.Sequence):  # PKCS#8 / RFC 5208
    _fields = [
        ("version", core.Integer),
        ("algorithm", _AlgorithmIdentifier),
        ("private_key", core.OctetString),
        ("attributes", core.Any, {"implicit": 0, "optional": True}),
    ]


class _SubjectPublicKeyInfo(core.Sequence):  # RFC 5480
    _fields = [("algorithm", _AlgorithmIdentifier), ("public_key", core.OctetBitString)]


def _key_error(message: str) -> ConfigError:
    return ConfigError(message, code="SM2_KEY_INVALID", message_en="invalid SM2 key")


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < _P and 0 <= y < _P and (y * y - (x * x * x + _A * x + _B)) % _P == 0


def _point_from_bytes(data: bytes) -> bytes:
    """X‖Y (64 bytes) of a public key given as 04‖X‖Y, X‖Y or a compressed 02/03‖X point; checked on the curve."""
    if len(data) == 65 and data[0] == 4:
        xy = data[1:]
    elif len(data) == 64:
        xy = data
    elif len(data) == 33 and data[0] in (2, 3):
        x = int.from_bytes(data[1:], "big")
        if x >= _P:
            raise _key_error("SM2 公钥无效：坐标超出范围")
        y = pow((x * x * x + _A * x + _B) % _P, (_P + 1) // 4, _P)  # p ≡ 3 (mod 4)
        if y % 2 != data[0] - 2:
            y = _P - y
        xy = x.to_bytes(32, "big") + y.to_bytes(32, "big")
    else:
        raise _key_error(f"SM2 公钥长度不对（{len(data)} 字节），应为 65 字节的 04‖X‖Y")
    x, y = int.from_bytes(xy[:32], "big"), int.from_bytes(xy[32:], "big")
    if not _on_curve(x, y):
        raise _key_error("SM2 公钥无效：该点不在 SM2 曲线上")
    return xy


def _engine(private_hex: str, public_xy: bytes) -> CryptSM2:
    c = CryptSM2(private_key=private_hex, public_key="")
    c.public_key = public_xy.hex()  # not through __init__: its lstrip("04") corrupts keys whose X starts with 0/4
    return c


class Sm2Verifier:
    """An SM2 public key that verifies signatures (DER r,s) over SM3 with the Z value of a user id."""

    def __init__(self, public_key: bytes) -> None:
        self.public_key = _point_from_bytes(bytes(public_key))  # X‖Y, 64 bytes

    # -- import / export ----------------------------------------------------------------------------------

    @classmethod
    def from_spki(cls, der: bytes) -> Sm2Verifier:
        """From a DER SubjectPublicKeyInfo (what `openssl pkey -pubout -outform DER` writes)."""
        try:
            spki = _SubjectPublicKeyInfo.load(bytes(der), strict=True)
            alg = spki["algorithm"]["algorithm"].dotted
            params = spki["algorithm"]["parameters"]
            curve = core.ObjectIdentifier.load(params.dump()).dotted if params.native is not None else ""
            point = spki["public_key"].native
        except (ValueError, TypeError) as e:
            raise _key_error(f"SM2 公钥格式无法识别（{e}）") from e
        if not (alg == SM2_CURVE_OID or (alg == EC_PUBLIC_KEY_OID and curve == SM2_CURVE_OID)):
            raise _key_error(f"公钥不是 SM2 公钥（算法 {alg} {curve}）")
        return cls(point)

    @classmethod
    def from_pem(cls, text: bytes | str) -> Sm2Verifier:
        data = text.encode("ascii") if isinstance(text, str) else text
        try:
            kind, _, der = pem.unarmor(data.strip())
        except ValueError as e:
            raise _key_error(f"不是 PEM 格式的公钥（{e}）") from e
        if kind != "PUBLIC KEY":
            raise _key_error(f"PEM 类型为“{kind}”，应为 PUBLIC KEY")
        return cls.from_spki(der)

    @classmethod
    def from_any(cls, data: bytes) -> Sm2Verifier:
        """A public key as PEM, SubjectPublicKeyInfo DER or a raw point."""
        if data.lstrip().startswith(b"-----BEGIN"):
            return cls.from_pem(data)
        if data[:1] == b"\x30" and len(data) > 66:
            return cls.from_spki(data)
        return cls(data)

    def spki_der(self) -> bytes:
        """DER SubjectPublicKeyInfo: id-ecPublicKey with the named curve SM2, point 04‖X‖Y (as OpenSSL writes)."""
        return _spki(self.public_key).dump()

    def public_key_pem(self) -> bytes:
        return pem.armor("PUBLIC KEY", self.spki_der())

    @property
    def public_key_hex(self) -> str:
        """04‖X‖Y in hex (130 digits)."""
        return "04" + self.public_key.hex()

    @property
    def fingerprint(self) -> str:
        """SM3 of the DER SubjectPublicKeyInfo, hex: how a person tells keys apart."""
        return hashlib.new("sm3", self.spki_der()).hexdigest()

    # -- hashing and verification -------------------------------------------------------------------------

    def z_value(self, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        if len(user_id) * 8 > 0xFFFF:
            raise ValueError("SM2 用户标识过长")
        entl = (len(user_id) * 8).to_bytes(2, "big")
        return hashlib.new("sm3", entl + user_id + _CURVE_BYTES + self.public_key).digest()

    def hasher(self, user_id: bytes = DEFAULT_USER_ID) -> Any:
        """An SM3 hash object already fed with Z: update it with the message, then pass `.digest()` (= e) to
        `verify_digest` / `Sm2Signer.sign_digest`."""
        h = hashlib.new("sm3")
        h.update(self.z_value(user_id))
        return h

    def digest(self, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        h = self.hasher(user_id)
        h.update(message)
        return bytes(h.digest())

    def verify(self, message: bytes, signature: bytes, user_id: bytes = DEFAULT_USER_ID) -> bool:
        return self.verify_digest(self.digest(message, user_id), signature)

    def verify_digest(self, e: bytes, signature: bytes) -> bool:
        """True when `signature` (DER) is valid for e = SM3(Z ‖ M). Malformed signatures are simply invalid."""
        rs = decode_signature(signature)
        if rs is None:
            return False
        r, s = rs
        if not (1 <= r < _N and 1 <= s < _N) or len(e) != 32:
            return False
        try:
            return bool(_engine("", self.public_key).verify(f"{r:064x}{s:064x}", e))
        except (TypeError, ValueError, IndexError):  # the point at infinity: gmssl returns None mid-way
            return False


def _spki(xy: bytes) -> _SubjectPublicKeyInfo:
    return _SubjectPublicKeyInfo({
        "algorithm": _AlgorithmIdentifier({
            "algorithm": EC_PUBLIC_KEY_OID, "parameters": core.ObjectIdentifier(SM2_CURVE_OID),
        }),
        "public_key": b"\x04" + xy,
    })


def encode_signature(r: int, s: int) -> bytes:
    return bytes(algos.DSASignature({"r": r, "s": s}).dump())


def decode_signature(der: bytes) -> tuple[int, int] | None:
    """(r, s) of a DER SM2 signature, or None unless it is exactly one canonical DER SEQUENCE of two INTEGERs."""
    try:
        sig = algos.DSASignature.load(bytes(der), strict=True)
        r, s = int(sig["r"].native), int(sig["s"].native)
        if sig.dump(force=True) != bytes(der):
            return None
        return r, s
    except (ValueError, TypeError, KeyError):
        return None


class Sm2Signer:
    """An SM2 private key. `verifier` holds the public half."""

    def __init__(self, private_key: int) -> None:
        if not 1 <= private_key <= _N - 2:
            raise _key_error("SM2 私钥无效：取值超出 [1, n-2]")
        self._d = private_key
        xy_hex = _engine(f"{private_key:064x}", b"\0" * 64)._kg(private_key, _G)  # d·G, affine X‖Y hex
        self.verifier = Sm2Verifier(bytes.fromhex(xy_hex))

    def __repr__(self) -> str:  # never show the private key
        return f"Sm2Signer(public={self.verifier.public_key_hex[:18]}…)"

    @property
    def public_key(self) -> bytes:
        return self.verifier.public_key

    @classmethod
    def generate(cls) -> Sm2Signer:
        return cls(secrets.randbelow(_N - 2) + 1)

    # -- key files ----------------------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes) -> Sm2Signer:
        """A key file's content: PKCS#8 or SEC1 PEM, PKCS#8/SEC1 DER, or 64 hex digits."""
        text = data.strip()
        if text.startswith(b"-----BEGIN"):
            try:
                kind, headers, der = pem.unarmor(text)
            except ValueError as e:
                raise _key_error(f"SM2 私钥文件不是有效的 PEM（{e}）") from e
            if kind == "ENCRYPTED PRIVATE KEY" or "Proc-Type" in headers:
                raise _key_error("不支持加密的 SM2 私钥文件，请先用 openssl pkey 解密后再配置")
            if kind == "PRIVATE KEY":
                return cls._from_pkcs8(der)
            if kind == "EC PRIVATE KEY":
                return cls._from_sec1(der)
            raise _key_error(f"PEM 类型为“{kind}”，应为 PRIVATE KEY 或 EC PRIVATE KEY")
        hex_text = re.sub(rb"\s+", b"", text)
        if hex_text[:2].lower() == b"0x":
            hex_text = hex_text[2:]
        if re.fullmatch(rb"[0-9A-Fa-f]{64}", hex_text):
            return cls(int(hex_text, 16))
        if text[:1] == b"\x30":
            try:
                return cls._from_pkcs8(bytes(data))
            except ConfigError:
                return cls._from_sec1(bytes(data))
        raise _key_error("无法识别 SM2 私钥文件：应为 PEM（openssl genpkey -algorithm SM2 生成）或 64 位十六进制数")

    @classmethod
    def _from_pkcs8(cls, der: bytes) -> Sm2Signer:
        try:
            info = _PrivateKeyInfo.load(der, strict=True)
            alg = info["algorithm"]["algorithm"].dotted
            params = info["algorithm"]["parameters"]
            curve = core.ObjectIdentifier.load(params.dump()).dotted if params.native is not None else ""
            inner = info["private_key"].native
        except (ValueError, TypeError) as e:
            raise _key_error(f"SM2 私钥（PKCS#8）格式无法识别（{e}）") from e
        if not (alg == SM2_CURVE_OID or (alg == EC_PUBLIC_KEY_OID and curve in (SM2_CURVE_OID, ""))):
            raise _key_error(f"私钥不是 SM2 私钥（算法 {alg} {curve}）")
        return cls._from_sec1(inner, need_curve=alg == EC_PUBLIC_KEY_OID and not curve)

    @classmethod
    def _from_sec1(cls, der: bytes, need_curve: bool = False) -> Sm2Signer:
        try:
            key = _EcPrivateKey.load(der, strict=True)
            d = int.from_bytes(key["private_key"].native, "big")
            curve = key["parameters"].dotted if key["parameters"].native is not None else ""
            pub = key["public_key"].native
        except (ValueError, TypeError) as e:
            raise _key_error(f"SM2 私钥（EC PRIVATE KEY）格式无法识别（{e}）") from e
        if curve and curve != SM2_CURVE_OID or need_curve and not curve:
            raise _key_error(f"私钥的曲线不是 SM2（{curve or '未指明'}）")
        signer = cls(d)
        if pub is not None and _point_from_bytes(pub) != signer.public_key:
            raise _key_error("SM2 私钥文件中的公钥与私钥不匹配，文件可能已损坏")
        return signer

    @classmethod
    def load(cls, path: Path) -> Sm2Signer:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ConfigError(f"无法读取 SM2 私钥文件 {path}（{e.strerror}），请检查配置 signing_key",
                              code="SM2_KEY_UNAVAILABLE", message_en=str(e)) from e
        return cls.from_bytes(data)

    def private_key_pem(self) -> bytes:
        """PKCS#8 PEM as `openssl genpkey -algorithm SM2` writes it."""
        ec = _EcPrivateKey({
            "version": 1, "private_key": self._d.to_bytes(32, "big"), "public_key": b"\x04" + self.public_key,
        })
        info = _PrivateKeyInfo({
            "version": 0,
            "algorithm": _AlgorithmIdentifier({
                "algorithm": EC_PUBLIC_KEY_OID, "parameters": core.ObjectIdentifier(SM2_CURVE_OID),
            }),
            "private_key": ec.dump(),
        })
        return bytes(pem.armor("PRIVATE KEY", info.dump()))

    def private_key_hex(self) -> str:
        return f"{self._d:064x}"

    def save(self, path: Path) -> None:
        """Write the PEM to a new file readable by the owner only (0600); refuses to overwrite."""
        _write_new_private(Path(path), self.private_key_pem())

    # -- signing ------------------------------------------------------------------------------------------

    def hasher(self, user_id: bytes = DEFAULT_USER_ID) -> Any:
        return self.verifier.hasher(user_id)

    def sign(self, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        return self.sign_digest(self.verifier.digest(message, user_id))

    def sign_digest(self, e: bytes) -> bytes:
        """DER signature of e = SM3(Z ‖ M) (from `hasher()`), with a fresh nonce from `secrets`."""
        if len(e) != 32:
            raise ValueError("SM2 签名的摘要应为 32 字节（SM3）")
        engine = _engine(self.private_key_hex(), self.public_key)
        while True:
            k = secrets.randbelow(_N - 1) + 1
            out = engine.sign(e, f"{k:064x}")
            if out:  # None: r = 0 or r + k = n or s = 0; try another nonce
                return encode_signature(int(out[:64], 16), int(out[64:], 16))


def _write_new_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)  # atomic, and fails if the key appeared meanwhile
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create_signer(path: Path) -> Sm2Signer:
    """The signer whose key is in `path`; when the file does not exist a new key is made and saved there
    (PKCS#8 PEM, mode 0600). Two processes starting at once end up with the same key."""
    path = Path(path)
    if not path.exists():
        signer = Sm2Signer.generate()
        try:
            signer.save(path)
            log.info("created SM2 signing key %s (fingerprint %s)", path, signer.verifier.fingerprint)
            return signer
        except FileExistsError:
            pass  # another process made it first: use theirs
        except OSError as e:
            raise ConfigError(f"无法创建 SM2 私钥文件 {path}（{e.strerror}），请检查目录权限",
                              code="SM2_KEY_UNAVAILABLE", message_en=str(e)) from e
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("SM2 private key %s is readable by group/others (mode %o); use chmod 600", path,
                        stat.S_IMODE(mode))
    except OSError:
        pass
    return Sm2Signer.load(path)

