"""ClamAV (clamd) for 病毒检测: a small client of clamd's socket protocol, no clamdscan binary needed.

Two questions are kept apart: *is clamd configured and reachable* (`from_settings`, `ping`, `version`,
`probe`), and *scan this content* (`scan`). `scan` streams a binary file object to clamd with the
INSTREAM command (``zINSTREAM\\0``, then chunks each preceded by its length as a 4-byte big-endian
integer, then a zero-length chunk) and reads one NUL-terminated reply:

- ``stream: OK``                      -> clean=True
- ``stream: <signature> FOUND``       -> clean=False, signature named
- ``... ERROR`` / anything else       -> clean=None (not checked), with a Chinese message

`scan` never raises for a scan problem (clamd down, timeout, refused, unreadable input, size limit):
the result says "not checked" and why, so a caller records 未检测 rather than 通过. Memory stays flat:
content goes through in chunks of `chunk_size` bytes. Note clamd's own ``StreamMaxLength`` (25 MB by
default): a longer stream is refused by clamd and reported as not checked, with what to change.

The address comes from ``DANGAN_CLAMD_ADDRESS``: ``unix:/run/clamav/clamd.ctl`` or ``tcp:127.0.0.1:3310``.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

from dangan.config import Settings
from dangan.errors import ConfigError, DanganError

CHUNK = 256 * 1024
CONNECT_TIMEOUT = 5.0
TIMEOUT = 180.0  # clamd's own MaxScanTime defaults to 120 s
MAX_REPLY = 64 * 1024


class ClamdUnavailable(DanganError):
    code = "CLAMD_UNAVAILABLE"
    status = 503


@dataclass(frozen=True)
class ScanResult:
    """clean: True (no virus found), False (a signature matched), None (not checked: see message)."""

    clean: bool | None
    signature: str | None
    message: str
    bytes_scanned: int = 0
    reply: str = ""  # clamd's raw reply, when there was one

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Address:
    family: str  # unix | tcp
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.family == "unix" else f"tcp:{self.host}:{self.port}"


def parse_address(address: str) -> Address:
    """``unix:/path/to/clamd.sock`` or ``tcp:host:port`` (``tcp:[::1]:3310`` for IPv6)."""
    a = address.strip()
    bad = ConfigError(f"病毒检测服务地址“{address}”无效：应为 unix:/套接字路径 或 tcp:主机:端口（如 tcp:127.0.0.1:3310）",
                      code="BAD_CLAMD_ADDRESS")
    kind, _, rest = a.partition(":")
    kind = kind.lower()
    if kind == "unix":
        if not rest.startswith("/"):
            raise bad
        return Address("unix", path=rest)
    if kind == "tcp":
        rest = rest.removeprefix("//")
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise bad
        return Address("tcp", host=host, port=int(port))
    raise bad


class ClamdClient:
    def __init__(self, address: str, *, timeout: float = TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT,
                 chunk_size: int = CHUNK) -> None:
        self.address = parse_address(address)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"ClamdClient({str(self.address)!r})"

    # ----- reachable?

    def _connect(self) -> socket.socket:
        a = self.address
        if a.family == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.connect_timeout)
            try:
                s.connect(a.path)
            except BaseException:
                s.close()
                raise
        else:
            s = socket.create_connection((a.host, a.port), timeout=self.connect_timeout)
        s.settimeout(self.timeout)
        return s

    def _unreachable(self, e: BaseException) -> str:
        return (f"无法连接病毒检测服务 clamd（{self.address}）：{_reason(e)}。"
                "请检查 clamd 是否在运行，以及 DANGAN_CLAMD_ADDRESS 是否正确")

    def _command(self, command: bytes) -> str:
        try:
            sock = self._connect()
        except OSError as e:
            raise ClamdUnavailable(self._unreachable(e), message_en=f"clamd unreachable at {self.address}: {e}") from e
        try:
            with sock:
                sock.sendall(b"z" + command + b"\0")
                return _read_reply(sock)
        except OSError as e:
            raise ClamdUnavailable(f"病毒检测服务 clamd（{self.address}）没有正常应答：{_reason(e)}",
                                   message_en=f"clamd at {self.address}: {e}") from e

    def ping(self) -> bool:
        """True when clamd answers PONG; never raises."""
        try:
            return self._command(b"PING") == "PONG"
        except ClamdUnavailable:
            return False

    def version(self) -> str:
        """clamd's version line, e.g. "ClamAV 1.4.6/27480/Tue Dec  1 08:00:00 2026". Raises ClamdUnavailable."""
        return self._command(b"VERSION")

    # ----- scan

    def scan(self, stream: BinaryIO) -> ScanResult:
        """Stream the content to clamd and report what it found. Never raises for a scan problem."""
        sent = 0
        try:
            sock = self._connect()
        except OSError as e:
            return ScanResult(None, None, self._unreachable(e) + "；本文件未做病毒检测")
        with sock:
            try:
                sock.sendall(b"zINSTREAM\0")
                while True:
                    try:
                        chunk = stream.read(self.chunk_size)
                    except (OSError, ValueError) as e:
                        return ScanResult(None, None, f"读取待检测内容时出错（已读 {sent} 字节）：{e}；本文件未做病毒检测",
                                          sent)
                    if not chunk:
                        break
                    sock.sendall(struct.pack(">I", len(chunk)) + chunk)
                    sent += len(chunk)
                sock.sendall(b"\0\0\0\0")
            except TimeoutError:
                return self._timed_out(sent)
            except OSError as e:
                # clamd closes the connection when the stream passes its StreamMaxLength: read why
                with contextlib.suppress(OSError):
                    reply = _read_reply(sock)
                    if reply:
                        return _interpret(reply, sent)
                return ScanResult(None, None, f"病毒检测服务 clamd（{self.address}）在接收内容时断开（已发送 {sent} 字节）："
                                              f"{_reason(e)}；本文件未做病毒检测", sent)
            try:
                reply = _read_reply(sock)
            except TimeoutError:
                return self._timed_out(sent)
            except OSError as e:
                return ScanResult(None, None, f"病毒检测服务 clamd（{self.address}）没有返回结果：{_reason(e)}；"
                                              "本文件未做病毒检测", sent)
        return _interpret(reply, sent)

    def _timed_out(self, sent: int) -> ScanResult:
        return ScanResult(None, None, f"病毒检测超时：clamd（{self.address}）{self.timeout:g} 秒内没有应答（已发送 {sent} 字节）；"
                                      "本文件未做病毒检测，请检查 clamd 的负载后重试", sent)


def _read_reply(sock: socket.socket) -> str:
    buf = b""
    while b"\0" not in buf and len(buf) < MAX_REPLY:
        b = sock.recv(4096)
        if not b:
            break
        buf += b
    return buf.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _interpret(reply: str, sent: int) -> ScanResult:
    body = reply.split(": ", 1)[1] if reply.startswith("stream:") and ": " in reply else reply
    if body == "OK":
        return ScanResult(True, None, "未发现病毒", sent, reply)
    if body.endswith(" FOUND"):
        name = body[: -len(" FOUND")].strip()
        return ScanResult(False, name, f"发现病毒：{name}", sent, reply)
    if "size limit exceeded" in body:
        return ScanResult(None, None, f"文件超过 clamd 允许的流长度上限（StreamMaxLength），clamd 拒绝检测（已发送 {sent} 字节）；"
                                      "本文件未做病毒检测，请调大 clamd.conf 中的 StreamMaxLength", sent, reply)
    if body.endswith("ERROR"):
        return ScanResult(None, None, f"病毒检测出错：clamd 返回“{reply}”；本文件未做病毒检测", sent, reply)
    if not reply:
        return ScanResult(None, None, "病毒检测服务 clamd 没有返回结果就关闭了连接；本文件未做病毒检测", sent, reply)
    return ScanResult(None, None, f"clamd 返回了无法识别的结果“{reply[:200]}”；本文件未做病毒检测", sent, reply)


def _reason(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "连接超时"
    if isinstance(e, FileNotFoundError):
        return "套接字文件不存在"
    if isinstance(e, ConnectionRefusedError):
        return "连接被拒绝"
    if isinstance(e, PermissionError):
        return "没有访问套接字的权限"
    if isinstance(e, socket.gaierror):
        return f"无法解析主机名（{e}）"
    return f"{type(e).__name__}：{e}"


def from_settings(settings: Settings) -> ClamdClient | None:
    """The configured client, or None when DANGAN_CLAMD_ADDRESS is empty. Raises ConfigError if malformed."""
    address = (settings.clamd_address or "").strip()
    return ClamdClient(address) if address else None


def probe(settings: Settings) -> dict[str, Any]:
    """For a status page: configured? reachable? which version? (never raises)."""
    address = (settings.clamd_address or "").strip()
    if not address:
        return {"configured": False, "address": "", "reachable": False, "version": None,
                "message": "未配置病毒检测服务（DANGAN_CLAMD_ADDRESS），病毒检测项记为未检测"}
    try:
        client = ClamdClient(address)
        v = client.version()
    except (ConfigError, ClamdUnavailable) as e:
        return {"configured": True, "address": address, "reachable": False, "version": None, "message": e.message}
    return {"configured": True, "address": address, "reachable": True, "version": v, "message": f"病毒检测服务可用：{v}"}
