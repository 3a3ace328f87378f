"""A `zooinfer serve` subprocess on a free port of 127.0.0.1, for tests that talk to a live server."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx

_LAUNCH = "import sys; from zooinfer.cli import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, *options: str, wait: bool = True, start_timeout: float = 240.0):
        """Launches the server; with wait=False, call wait_healthy() before using it."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a pipe nobody reads can fill and block it
        self.proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, "serve", "--port", str(self.port),
                                      "--log-level", "warning", *options], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, text=True)
        if wait:
            self.wait_healthy(start_timeout)

    def wait_healthy(self, timeout: float = 240.0) -> None:
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"zooinfer serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"zooinfer serve was not healthy within {timeout} s")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def metric(self, name: str) -> float:
        """One unlabelled sample of /metrics."""
        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def wait_for_metric(self, name: str, value: float, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.metric(name) != value:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} stayed at {self.metric(name)}, not {value}, for {timeout} s")
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within timeout; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
