"""SM2/SM3 signing: round trips, key files, gmssl's lstrip("04") bug, and interop with the openssl CLI."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from gmssl.sm2 import CryptSM2

from dangan.errors import ConfigError
from dangan.packages.sm2 import (
    SM2_CURVE_OID,
    Sm2Signer,
    Sm2Verifier,
    decode_signature,
    encode_signature,
    load_or_create_signer,
)

N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)
MSG = "关于印发《档案工作规定》的通知".encode()

# private keys (tiny, for tests only) whose public X coordinate starts with "04", "0" and "4" in hex
D_X_04, D_X_0, D_X_4 = 11, 6, 65


from conftest import IN_CI  # noqa: E402


def _openssl_sm2() -> bool:
    if not shutil.which("openssl"):
        return False
    r = subprocess.run(["openssl", "genpkey", "-algorithm", "SM2"], capture_output=True)
    return r.returncode == 0 and b"PRIVATE KEY" in r.stdout


needs_openssl = pytest.mark.skipif(not _openssl_sm2() and not IN_CI, reason="openssl CLI without SM2 (under CI=true: must run)")


def test_sign_verify_round_trip_and_tampering() -> None:
    s = Sm2Signer.generate()
    sig = s.sign(MSG)
    assert s.verifier.verify(MSG, sig)
    assert not s.verifier.verify(MSG + b" ", sig)
    assert not s.verifier.verify(MSG.replace("通知".encode(), "通告".encode()), sig)
    assert not Sm2Signer.generate().verifier.verify(MSG, sig)  # another key
    assert not s.verifier.verify(MSG, sig, user_id=b"ALICE123@YAHOO.COM")  # another Z value
    assert s.sign(MSG) != sig  # fresh nonce each time


def test_streamed_digest_equals_whole_message() -> None:
    s = Sm2Signer.generate()
    h = s.hasher()
    for i in range(0, len(MSG), 5):
        h.update(MSG[i : i + 5])
    sig = s.sign_digest(h.digest())
    assert s.verifier.verify(MSG, sig)


@pytest.mark.parametrize("d", [D_X_04, D_X_0, D_X_4])
def test_keys_whose_x_starts_with_0_or_4(d: int) -> None:
    s = Sm2Signer(d)
    assert s.public_key.hex()[0] in "04"
    sig = s.sign(MSG)
    assert s.verifier.verify(MSG, sig)
    # PEM round trip keeps the whole key
    again = Sm2Signer.from_bytes(s.private_key_pem())
    assert again.public_key == s.public_key and again.verifier.verify(MSG, sig)


def test_gmssl_constructor_really_corrupts_such_keys() -> None:
    """The reason for the workaround: handing 04‖X‖Y to CryptSM2 strips X's own leading "04"."""
    s = Sm2Signer(D_X_04)
    c = CryptSM2(private_key=s.private_key_hex(), public_key=s.verifier.public_key_hex)
    assert c.public_key != s.public_key.hex()
    assert len(c.public_key) < 128


def test_generated_keys_until_x_starts_with_0_or_4() -> None:
    for _ in range(500):
        s = Sm2Signer.generate()
        if s.public_key.hex()[0] in "04":
            break
    else:  # pragma: no cover - probability 0.875**500
        pytest.fail("no key with X starting with 0 or 4")
    assert s.verifier.verify(MSG, s.sign(MSG))


def test_malformed_signatures_are_invalid_not_errors() -> None:
    s = Sm2Signer.generate()
    sig = s.sign(MSG)
    r, t = decode_signature(sig)  # type: ignore[misc]
    v = s.verifier
    assert not v.verify(MSG, b"")
    assert not v.verify(MSG, b"\x30\x00")
    assert not v.verify(MSG, sig + b"\x00")                  # trailing garbage
    assert not v.verify(MSG, r.to_bytes(32, "big") + t.to_bytes(32, "big"))  # raw r‖s is not DER
    assert not v.verify(MSG, encode_signature(0, t))
    assert not v.verify(MSG, encode_signature(r, N))
    assert not v.verify(MSG, encode_signature(r + N, t))
    assert not v.verify(MSG, encode_signature(N - 1, N - 1))


def test_private_key_file_0600_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "sm2.pem"
    s = load_or_create_signer(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_bytes()
    assert text.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_or_create_signer(path)
    assert again.public_key == s.public_key
    with pytest.raises(FileExistsError):
        s.save(path)
    assert not list(path.parent.glob(".*.tmp"))
    assert "PRIVATE" not in repr(s) and s.private_key_hex() not in repr(s)


def test_hex_key_file_and_bad_files(tmp_path: Path) -> None:
    s = Sm2Signer.generate()
    p = tmp_path / "k.hex"
    p.write_text(s.private_key_hex().upper() + "\n")
    assert Sm2Signer.load(p).public_key == s.public_key
    bad = tmp_path / "bad.pem"
    bad.write_text("hello")
    with pytest.raises(ConfigError) as e:
        Sm2Signer.load(bad)
    assert e.value.code == "SM2_KEY_INVALID"
    with pytest.raises(ConfigError) as e:
        Sm2Signer.load(tmp_path / "missing.pem")
    assert e.value.code == "SM2_KEY_UNAVAILABLE"
    p.write_text("0" * 64)
    with pytest.raises(ConfigError):
        Sm2Signer.load(p)


def test_public_key_forms() -> None:
    s = Sm2Signer.generate()
    v = s.verifier
    for form in (v.spki_der(), v.public_key_pem(), bytes.fromhex(v.public_key_hex), v.public_key):
        assert Sm2Verifier.from_any(form).public_key == v.public_key
    x, y = v.public_key[:32], v.public_key[32:]
    compressed = bytes([2 + (y[-1] & 1)]) + x
    assert Sm2Verifier(compressed).public_key == v.public_key
    with pytest.raises(ConfigError):
        Sm2Verifier(bytes([4]) + x + bytes(32))  # not on the curve
    assert SM2_CURVE_OID in v.public_key_pem().decode() or v.spki_der().find(bytes.fromhex("2a811ccf5501822d")) > 0


@needs_openssl
def test_openssl_verifies_ours_and_we_verify_openssl(tmp_path: Path) -> None:
    msg = tmp_path / "msg.bin"
    msg.write_bytes(MSG)
    distid = ["-pkeyopt", "distid:1234567812345678"]

    # ours → openssl, with a key whose X starts with "04"
    for s in (Sm2Signer(D_X_04), Sm2Signer.generate()):
        (tmp_path / "pub.pem").write_bytes(s.verifier.public_key_pem())
        (tmp_path / "sig.der").write_bytes(s.sign(MSG))
        r = subprocess.run(["openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey",
                            str(tmp_path / "pub.pem"), "-in", str(msg), "-sigfile", str(tmp_path / "sig.der"),
                            *distid], capture_output=True, text=True)
        assert r.returncode == 0 and "Verified Successfully" in r.stdout, r.stdout + r.stderr
        # and the same check fails for a changed message (the test can fail)
        (tmp_path / "msg2.bin").write_bytes(MSG + b"!")
        r = subprocess.run(["openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey",
                            str(tmp_path / "pub.pem"), "-in", str(tmp_path / "msg2.bin"), "-sigfile",
                            str(tmp_path / "sig.der"), *distid], capture_output=True, text=True)
        assert r.returncode != 0

    # openssl → ours: a key from `openssl genpkey` (PEM read by us), and our PEM read by openssl
    key = tmp_path / "ossl.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", str(key)], check=True, capture_output=True)
    subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(key), "-in", str(msg),
                    "-out", str(tmp_path / "ossl.sig"), *distid], check=True, capture_output=True)
    ours = Sm2Signer.load(key)
    sig = (tmp_path / "ossl.sig").read_bytes()
    assert ours.verifier.verify(MSG, sig)
    assert not ours.verifier.verify(MSG + b"!", sig)
    pub = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    assert Sm2Verifier.from_spki(pub).public_key == ours.public_key

    mine = tmp_path / "mine.pem"
    Sm2Signer(D_X_04).save(mine)
    r = subprocess.run(["openssl", "pkey", "-in", str(mine), "-pubout", "-outform", "DER"], capture_output=True)
    assert r.returncode == 0 and Sm2Verifier.from_spki(r.stdout).public_key == Sm2Signer(D_X_04).public_key
    subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(mine), "-in", str(msg),
                    "-out", str(tmp_path / "mine.sig"), *distid], check=True, capture_output=True)
    assert Sm2Signer(D_X_04).verifier.verify(MSG, (tmp_path / "mine.sig").read_bytes())
