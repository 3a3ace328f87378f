"""A server as a child process on a free port of 127.0.0.1, for tests and benchmarks that talk to it over HTTP:
`zooinfer serve` by default, or any other OpenAI-compatible server's command line."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

_ZOOINFER = [sys.executable, "-c", "import sys; from zooinfer.cli import main; sys.exit(main())", "serve",
             "--port", "{port}", "--log-level", "warning"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, *options: str, command: list[str] | None = None, health_path: str = "/health",
                 env: dict | None = None, wait: bool = True, start_timeout: float = 240.0):
        """Launches `zooinfer serve OPTIONS` (or `command`, where "{port}" is replaced by the port). With
        wait=False, call wait_healthy() before using it."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.health_path = health_path
        argv = [a.replace("{port}", str(self.port)) for a in (command or _ZOOINFER)] + list(options)
        self.log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a pipe nobody reads can fill and block it
        self.proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=self.log,
                                     stderr=subprocess.STDOUT, text=True)
        if wait:
            self.wait_healthy(start_timeout)

    def wait_healthy(self, timeout: float = 240.0) -> None:
        """Returns once the health path answers 200; stops the process and raises if it exits or times out."""
        deadline = time.monotonic() + timeout
        try:
            while not self._healthy():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.proc.args[0]} exited with {self.proc.returncode}:\n{self.output()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the server was not healthy within {timeout} s:\n{self.output()}")
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.health_path, timeout=1.0) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def metric(self, name: str) -> float:
        """One unlabelled sample of /metrics."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
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
        self.log.close()
        return self.proc.returncode
