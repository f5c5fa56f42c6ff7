"""ClamAV adapter against a real clamd (Debian clamav-daemon) with a signature database written by the test.

freshclam's database cannot be downloaded here, so the session writes its own: an .hdb line (MD5 and size
of the EICAR test string) and an .ndb body signature for a marker placed across INSTREAM chunk boundaries.
clamd is installed with apt-get when missing (as root); without it the tests skip, under CI=true they fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dangan.config import load_settings
from dangan.errors import ConfigError
from dangan.formats import clamav
from dangan.formats.clamav import ClamdClient, ClamdUnavailable

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
MARKER = b"dangan-clamav-test-marker-7f3a9c21-body-signature"
STREAM_MAX = 4 * 1024 * 1024
START_TIMEOUT = 60.0


def _unavailable(msg: str) -> None:
    if IN_CI:
        pytest.fail(f"clamd is required under CI=true: {msg}")
    pytest.skip(f"clamd not available: {msg}")


def clamd_binary() -> str | None:
    for p in (shutil.which("clamd"), "/usr/sbin/clamd"):
        if p and Path(p).is_file():
            return p
    return None


def ensure_clamd() -> str:
    """The clamd binary, installing Debian's clamav-daemon first when it is missing and we are root."""
    found = clamd_binary()
    if found:
        return found
    if os.geteuid() != 0:
        _unavailable("clamd is not installed and the tests are not root (apt-get install clamav-daemon)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "clamav-daemon"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=600)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    found = clamd_binary()
    if not found:
        _unavailable(f"apt-get install clamav-daemon failed (exit {r.returncode}): {r.stderr[-1500:]}")
    return found  # type: ignore[return-value]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Clamd:
    unix: str
    tcp: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="session")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    binary = ensure_clamd()
    root = tmp_path_factory.mktemp("clamd")
    db = root / "db"
    db.mkdir()
    (db / "dangan-test.hdb").write_text(f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Dangan.Test.EICAR\n")
    (db / "dangan-test.ndb").write_text(f"Dangan.Test.Marker:0:*:{MARKER.hex()}\n")
    sock = root / "clamd.sock"
    port = _free_port()
    conf = root / "clamd.conf"
    conf.write_text("\n".join([
        f"LocalSocket {sock}", f"TCPSocket {port}", "TCPAddr 127.0.0.1", f"DatabaseDirectory {db}",
        "Foreground yes", f"LogFile {root / 'clamd.log'}", f"StreamMaxLength {STREAM_MAX // (1024 * 1024)}M",
        f"PidFile {root / 'clamd.pid'}", "SelfCheck 3600", "",
    ]))
    log = root / "clamd.out"
    with log.open("wb") as fh:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Clamd(f"unix:{sock}", f"tcp:127.0.0.1:{port}", proc, log)
    client = ClamdClient(server.unix, timeout=10)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if client.ping() and ClamdClient(server.tcp, timeout=10).ping():
            break
        time.sleep(0.2)
    else:
        _stop(proc)
        _unavailable(f"clamd did not answer within {START_TIMEOUT:.0f} s (exit {proc.poll()}): "
                     f"{log.read_text(errors='replace')[-1500:]}")
    try:
        yield server
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# ---------------------------------------------------------------- a real clamd


def test_ping_and_version(clamd: Clamd) -> None:
    for address in (clamd.unix, clamd.tcp):
        c = ClamdClient(address)
        assert c.ping() is True
        assert c.version().startswith("ClamAV 1.")


@pytest.mark.parametrize("via", ["unix", "tcp"])
def test_eicar_is_found_with_its_signature_name(clamd: Clamd, via: str) -> None:
    res = ClamdClient(getattr(clamd, via)).scan(io.BytesIO(EICAR))
    # signatures from an unsigned database are reported with the .UNOFFICIAL suffix
    assert res.clean is False and res.signature == "Dangan.Test.EICAR.UNOFFICIAL"
    assert res.message == "发现病毒：Dangan.Test.EICAR.UNOFFICIAL" and res.bytes_scanned == len(EICAR)
    assert res.reply == "stream: Dangan.Test.EICAR.UNOFFICIAL FOUND"


def test_clean_content_is_ok(clamd: Clamd) -> None:
    res = ClamdClient(clamd.unix).scan(io.BytesIO(EICAR.replace(b"EICAR", b"DANGN")))
    assert (res.clean, res.signature, res.message, res.reply) == (True, None, "未发现病毒", "stream: OK")


def test_signature_spanning_chunks_is_found_in_a_streamed_file(clamd: Clamd) -> None:
    # 3 MiB in 64 KiB chunks, the marker straddling the boundary between two chunks
    chunk = 64 * 1024
    at = 20 * chunk - len(MARKER) // 2
    data = bytearray(os.urandom(3 * 1024 * 1024))
    data[at:at + len(MARKER)] = MARKER
    res = ClamdClient(clamd.unix, chunk_size=chunk).scan(io.BytesIO(bytes(data)))
    assert res.clean is False and res.signature == "Dangan.Test.Marker.UNOFFICIAL"
    assert res.bytes_scanned == len(data)
    clean = ClamdClient(clamd.unix, chunk_size=chunk).scan(io.BytesIO(bytes(data[:at]) + bytes(data[at + 4:])))
    assert clean.clean is True  # the same stream without the whole marker


def test_stream_over_clamd_limit_is_not_checked(clamd: Clamd) -> None:
    res = ClamdClient(clamd.unix).scan(io.BytesIO(bytes(STREAM_MAX + 1024 * 1024)))
    assert res.clean is None and res.signature is None
    assert "StreamMaxLength" in res.message and "未做病毒检测" in res.message


def test_unreadable_input_is_not_checked(clamd: Clamd) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise OSError("磁盘读取错误")

    res = ClamdClient(clamd.unix).scan(Broken())  # type: ignore[arg-type]
    assert res.clean is None and res.message == "读取待检测内容时出错（已读 0 字节）：磁盘读取错误；本文件未做病毒检测"
    assert ClamdClient(clamd.unix).ping()  # clamd itself is unharmed


# ---------------------------------------------------------------- clamd absent, silent, misconfigured


def test_clamd_not_running(tmp_path: Path) -> None:
    gone = ClamdClient(f"unix:{tmp_path / 'no-such.sock'}")
    res = gone.scan(io.BytesIO(EICAR))
    assert res.clean is None and res.signature is None
    assert res.message == (f"无法连接病毒检测服务 clamd（unix:{tmp_path / 'no-such.sock'}）：套接字文件不存在。"
                           "请检查 clamd 是否在运行，以及 DANGAN_CLAMD_ADDRESS 是否正确；本文件未做病毒检测")
    assert gone.ping() is False
    with pytest.raises(ClamdUnavailable) as e:
        gone.version()
    assert e.value.code == "CLAMD_UNAVAILABLE"
    port = _free_port()  # nothing listens there
    refused = ClamdClient(f"tcp:127.0.0.1:{port}").scan(io.BytesIO(b"x"))
    assert refused.clean is None and f"tcp:127.0.0.1:{port}）：连接被拒绝" in refused.message


def test_clamd_that_never_answers_times_out() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    held: list[socket.socket] = []
    t = threading.Thread(target=lambda: held.append(srv.accept()[0]), daemon=True)
    t.start()
    try:
        res = ClamdClient(f"tcp:127.0.0.1:{srv.getsockname()[1]}", timeout=0.3).scan(io.BytesIO(b"content"))
        assert res.clean is None and res.message.startswith("病毒检测超时：clamd（tcp:127.0.0.1:")
        assert "0.3 秒内没有应答（已发送 7 字节）" in res.message
    finally:
        t.join(2)
        for s in held:
            s.close()
        srv.close()


@pytest.mark.parametrize("reply, clean, signature, message", [
    (b"stream: OK\0", True, None, "未发现病毒"),
    (b"stream: Win.Test.EICAR_HDB-1 FOUND\0", False, "Win.Test.EICAR_HDB-1", "发现病毒：Win.Test.EICAR_HDB-1"),
    (b"stream: Can't allocate memory ERROR\0", None, None,
     "病毒检测出错：clamd 返回“stream: Can't allocate memory ERROR”；本文件未做病毒检测"),
    (b"", None, None, "病毒检测服务 clamd 没有返回结果就关闭了连接；本文件未做病毒检测"),
])
def test_replies_are_interpreted(reply: bytes, clean: bool | None, signature: str | None, message: str) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = bytearray()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            while not got.endswith(b"\0\0\0\0"):
                b = conn.recv(65536)
                if not b:
                    break
                got.extend(b)
            conn.sendall(reply)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    res = ClamdClient(f"tcp:127.0.0.1:{srv.getsockname()[1]}", timeout=5, chunk_size=4).scan(io.BytesIO(b"abcdefghij"))
    t.join(5)
    srv.close()
    assert (res.clean, res.signature, res.message) == (clean, signature, message)
    # the INSTREAM framing: command, 4-byte big-endian lengths, zero-length terminator
    assert bytes(got) == (b"zINSTREAM\0" + b"\0\0\0\4abcd" + b"\0\0\0\4efgh" + b"\0\0\0\2ij" + b"\0\0\0\0")


def test_addresses_and_settings(tmp_path: Path) -> None:
    assert str(ClamdClient("unix:/run/clamav/clamd.ctl").address) == "unix:/run/clamav/clamd.ctl"
    a = ClamdClient("tcp:[::1]:3310").address
    assert (a.family, a.host, a.port) == ("tcp", "::1", 3310)
    for bad in ("clamd.sock", "unix:relative.sock", "tcp:127.0.0.1", "tcp:host:99999", "http://x:1"):
        with pytest.raises(ConfigError) as e:
            ClamdClient(bad)
        assert e.value.code == "BAD_CLAMD_ADDRESS"
    assert clamav.from_settings(load_settings(tmp_path)) is None
    c = clamav.from_settings(load_settings(tmp_path, clamd_address="tcp:10.0.0.5:3310"))
    assert c is not None and (c.address.host, c.address.port) == ("10.0.0.5", 3310)
    p = clamav.probe(load_settings(tmp_path))
    assert p["configured"] is False and p["reachable"] is False
    p = clamav.probe(load_settings(tmp_path, clamd_address=f"unix:{tmp_path / 'none.sock'}"))
    assert p["configured"] is True and p["reachable"] is False and "套接字文件不存在" in p["message"]


def test_probe_reports_a_running_clamd(clamd: Clamd, tmp_path: Path) -> None:
    p = clamav.probe(load_settings(tmp_path, clamd_address=clamd.unix))
    assert p["reachable"] is True and p["version"].startswith("ClamAV 1.") and p["message"].startswith("病毒检测服务可用")
