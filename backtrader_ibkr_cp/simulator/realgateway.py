"""Run IBKR's real Client Portal Gateway (Java) on loopback, in front of a backend of ours.

Topology: client --HTTPS--> real gateway (this module) --plain HTTP--> backend (normally the
``GatewaySimulator`` started with ``tls=False``). The gateway cannot reach IBKR from a test
machine, but with ``proxyRemoteHost: "http://127.0.0.1:<port>"`` and ``proxyRemoteSsl: false``
it forwards every ``/v1/api/...`` call to that port, so tests see what a real gateway does to
requests and answers.

The gateway (IBKR's ``clientportal.gw``, build of 2023-04-24) comes from npm through
:func:`~backtrader_ibkr_cp.simulator.gatewaydist.ensure_gateway_dist` (re-exported here).
``ibkr-cp simulate --behind-real-gateway`` runs it in front of the simulator. Like the rest of
the simulator, this module imports nothing of the package: its errors are plain exceptions
(``RuntimeError`` subclasses).

What the gateway does on the wire (measured with this module, see tests/gateway/):

- forwards method, path, query (byte for byte) and body (with ``Content-Length``); replaces
  the client's ``Cookie`` with ``REGION=; USERID=`` (``JSESSIONID=; REGION=; USERID=`` on
  ``/sso/*`` and ``/iserver/auth/ssodh/init``), rewrites ``Host`` to the backend, drops
  ``Accept-Encoding``; ``/v1/portal/...`` reaches the backend as ``/v1/api/...``;
- answers ``/v1/api/iserver/reauthenticate`` ITSELF (``200 {"error":"not logged in"}``, never
  forwarded) and redirects paths outside ``/v1/api`` (``/tickle``, ``/v1/tickle``) with a 302
  to the backend's own URL; ``/`` answers 302 to ``/sso/Login``;
- passes status codes, ``Content-Type``, ``Retry-After``, ``Set-Cookie``, ``Date`` and
  ``Server`` through, and re-frames every body as ``Transfer-Encoding: chunked``;
- keeps at most 5 requests in flight to the backend (its HTTP client's connection pool):
  more concurrent requests wait inside the gateway, in order;
- a backend that is down, resets the connection or truncates its body never produces an
  error answer: the client waits until its own read timeout;
- serves TLS 1.2 with a self-signed certificate that EXPIRED in 2019 (CN "Client Portal Web
  API"): pin its fingerprint (:attr:`RealGateway.cert_fingerprint`) rather than verify it;
- costs about 0.5-3 ms per request on a kept-alive connection (a new TLS connection: ~35 ms);
  starts in about 1 s.

Usage::

    dist = ensure_gateway_dist()
    with GatewaySimulator(tls=False) as sim, RealGateway(sim.port, dist=dist) as gw:
        requests.get(gw.url + "/v1/api/tickle", verify=False, timeout=5)

Command line: ``python -m backtrader_ibkr_cp.simulator.realgateway fetch`` prints the dist path;
``... run BACKEND_PORT [--port N]`` serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType

from .gatewaydist import (
    CACHE_ENV,
    GATEWAY_JAR,
    GatewayDistUnavailable,
    RealGatewayError,
    bundled_java,
    ensure_gateway_dist,
    locate_gateway,
)

__all__ = [
    "GatewayDistUnavailable",
    "GatewayStartError",
    "RealGateway",
    "RealGatewayError",
    "ensure_gateway_dist",
    "gateway_conf",
    "server_fingerprint",
]

_MAIN_CLASS = "ibgroup.web.core.clientportal.gw.GatewayStart"
_JVM_FLAGS = (  # as the shipped bin/run.sh, plus a heap cap and headless mode
    "-server",
    "-Xmx256m",
    "-Djava.awt.headless=true",
    "-Dvertx.disableDnsResolver=true",
    "-Djava.net.preferIPv4Stack=true",
    "-Dvertx.logger-delegate-factory-class-name=io.vertx.core.logging.SLF4JLogDelegateFactory",
)
_PORT_IN_USE = "Address already in use"


class GatewayStartError(RealGatewayError):
    """The gateway process did not come up (no Java, port taken, crash, start-up timeout).
    ``port_in_use`` is True when its port was taken (start() then tries another free port)."""

    def __init__(self, message: str, *, port_in_use: bool = False) -> None:
        super().__init__(message)
        self.port_in_use = port_in_use


def gateway_conf(shipped: str, *, listen_port: int, backend_url: str) -> str:
    """The shipped ``conf.yaml`` text with the proxy, listener and allow-list replaced.

    Top-level keys ``listenPort``, ``listenSsl``, ``proxyRemoteHost``, ``proxyRemoteSsl`` and
    the ``ips`` block are rewritten (appended when missing); every other line stays as shipped.
    ``backend_url`` is ``http://127.0.0.1:<port>`` (``https://`` sets proxyRemoteSsl true).
    """
    values = {  # the text after "key:", as YAML
        "listenPort": f" {listen_port}",
        "listenSsl": " true",
        "proxyRemoteHost": f' "{backend_url}"',
        "proxyRemoteSsl": " true" if backend_url.startswith("https://") else " false",
        "ips": "\n  allow:\n    - 127.0.0.1\n    - ::1\n  deny: []",
    }
    out: list[str] = []
    skipping = False  # inside a replaced block (its indented continuation lines)
    for line in shipped.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            key = line.split(":", 1)[0].strip()
            skipping = key in values
            if skipping:
                out.append(f"{key}:{values.pop(key)}")
                continue
        if not skipping:
            out.append(line)
    out.extend(f"{key}:{value}" for key, value in values.items())
    return "\n".join(out) + "\n"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def server_fingerprint(host: str, port: int, *, timeout: float = 5.0) -> str:
    """``"sha256:AA:BB:..."`` (uppercase hex) of the leaf certificate served on host:port."""
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        _unverified_context().wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise RealGatewayError(f"{host}:{port} sent no TLS certificate; is it the gateway?")
    hexed = hashlib.sha256(der).hexdigest().upper()
    return "sha256:" + ":".join(hexed[i : i + 2] for i in range(0, len(hexed), 2))


def _find_java(dist: Path, java: str | None) -> str:
    """``java`` if given, else the system ``java``, else the runtime bundled in ``dist``."""
    if java:
        return java
    found = shutil.which("java") or bundled_java(dist)
    if found:
        return str(found)
    raise GatewayStartError(
        f"no Java found: `java` is not on PATH and {dist} bundles none for this platform; "
        "install a Java runtime >= 8 or pass java='/path/to/java'"
    )


def _shutdown(proc: subprocess.Popen[bytes], workdir: Path | None) -> None:
    """Stop the gateway's process group and remove its work directory (None: keep it). The
    finalizer of every :class:`RealGateway`: it also runs at interpreter exit."""
    try:
        _terminate(proc)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _terminate(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop the process group led by ``proc`` (TERM, then KILL after ``grace`` s) and reap."""
    if sys.platform == "win32":  # pragma: no cover - the gateway runs on POSIX CI
        proc.kill()
        proc.wait()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class RealGateway:
    """IBKR's gateway process forwarding to ``http://<backend_host>:<backend_port>``.

    ``dist`` is :func:`ensure_gateway_dist`'s result (or a ``clientportal.gw`` folder, e.g.
    IBKR's own zip extracted). ``listen_port`` 0 picks a free port (retried if another process
    takes it first; after the first start ``listen_port`` is the bound port and a restart
    reuses it). ``java`` defaults to the system ``java``, else the bundled runtime.
    ``startup_timeout`` (seconds) bounds :meth:`start`. Each instance runs in a private
    temporary directory (its own ``root/`` with the generated ``conf.yaml``, the gateway's
    ``logs/`` and ``gateway.out``); the cached dist is only read. :meth:`stop` (or leaving the
    ``with`` block) kills the whole process group and deletes that directory unless
    ``keep_workdir``. Not thread-safe: start and stop from one thread.
    """

    def __init__(
        self,
        backend_port: int,
        *,
        dist: Path,
        listen_port: int = 0,
        java: str | None = None,
        backend_host: str = "127.0.0.1",
        startup_timeout: float = 60.0,
        keep_workdir: bool = False,
    ) -> None:
        gateway = locate_gateway(dist)
        if not 0 < backend_port < 65536 or not 0 <= listen_port < 65536:
            raise GatewayStartError(
                f"ports must be 1-65535 (listen_port 0 = any free port); got "
                f"backend_port={backend_port}, listen_port={listen_port}"
            )
        self.backend_port = backend_port
        self.backend_host = backend_host
        self.listen_port = listen_port
        self.startup_timeout = startup_timeout
        self.keep_workdir = keep_workdir
        self.startup_seconds: float | None = None
        self._gateway = gateway
        self._java = _find_java(dist, java)
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._fingerprint: str | None = None
        self._finalizer: (
            weakref.finalize[[subprocess.Popen[bytes], Path | None], RealGateway] | None
        ) = None

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<listen_port>``; the API is under ``/v1/api``."""
        return f"https://127.0.0.1:{self.listen_port}"

    @property
    def pid(self) -> int | None:
        """The Java process id (also its process group id), or None when not running."""
        return self._proc.pid if self._proc else None

    @property
    def workdir(self) -> Path | None:
        """The private directory of the running instance (None before start / after stop)."""
        return self._workdir

    @property
    def cert_fingerprint(self) -> str:
        """``"sha256:AA:BB:..."`` of the certificate the gateway serves (read once, on start)."""
        if self._fingerprint is None:
            raise GatewayStartError("the gateway is not running; call start() first")
        return self._fingerprint

    def __enter__(self) -> RealGateway:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Launch the gateway and block until ``/`` answers; GatewayStartError otherwise."""
        if self._proc is not None:
            return
        begin = time.monotonic()
        attempts = 3 if self.listen_port == 0 else 1
        for attempt in range(attempts):
            port = self.listen_port or _free_port()
            try:
                self._launch(port)
                self._wait_ready(port, begin + self.startup_timeout)
                self._fingerprint = server_fingerprint("127.0.0.1", port)
            except GatewayStartError as exc:
                self.stop()
                if exc.port_in_use and attempt + 1 < attempts:
                    continue
                raise
            except BaseException:  # disk full, Ctrl-C ...: leave no process or files behind
                self.stop()
                raise
            self.listen_port = port
            self.startup_seconds = time.monotonic() - begin
            return

    def _launch(self, port: int) -> None:
        work = Path(tempfile.mkdtemp(prefix="ibkr-gw-"))
        self._workdir = work
        shutil.copytree(self._gateway / "root", work / "root")
        shipped = (self._gateway / "root" / "conf.yaml").read_text()
        backend = f"http://{self.backend_host}:{self.backend_port}"
        conf = gateway_conf(shipped, listen_port=port, backend_url=backend)
        (work / "root" / "conf.yaml").write_text(conf)
        run = work / "run"  # cwd: logs/ and .vertx/ land here; "../root" is our root
        run.mkdir()
        classpath = os.pathsep.join(
            [
                str(work / "root"),
                str(self._gateway / GATEWAY_JAR),
                str(self._gateway / "build/lib/runtime/*"),
            ]
        )
        command = [self._java, *_JVM_FLAGS, "-cp", classpath, _MAIN_CLASS]
        command += ["--conf", "../root/conf.yaml"]
        with (work / "gateway.out").open("wb") as out:
            try:
                self._proc = subprocess.Popen(
                    command,
                    cwd=run,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise GatewayStartError(
                    f"could not run Java at {self._java!r}: {exc}; install a Java runtime >= 8 "
                    "or pass java='/path/to/java'"
                ) from exc
        kept = None if self.keep_workdir else work
        self._finalizer = weakref.finalize(self, _shutdown, self._proc, kept)

    def _wait_ready(self, port: int, deadline: float) -> None:
        assert self._proc is not None
        context = _unverified_context()
        while True:
            if _PORT_IN_USE in self._read(self._out_path()):
                raise GatewayStartError(
                    f"port {port} is already in use; pass another listen_port (0 = any free)",
                    port_in_use=True,
                )
            code = self._proc.poll()
            if code is not None:
                raise GatewayStartError(
                    f"IBKR's gateway exited with code {code} while starting ({self._java}); "
                    f"its log ends with:\n{self.log_tail()}"
                )
            connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
            try:
                connection.request("GET", "/")
                if connection.getresponse().status in (200, 302):
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            if time.monotonic() > deadline:
                raise GatewayStartError(
                    f"IBKR's gateway did not answer on https://127.0.0.1:{port}/ within "
                    f"{self.startup_timeout:.0f} s; check `{self._java} -version` (Java >= 8) "
                    f"and CPU load. Its log ends with:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the gateway's process group, reap it and remove the work directory. Idempotent."""
        if self._finalizer is not None:
            self._finalizer()  # runs _shutdown once; a no-op if already run
            self._finalizer = None
        self._proc = None
        self._fingerprint = None
        if self._workdir is not None and not self.keep_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    def _out_path(self) -> Path | None:
        return self._workdir / "gateway.out" if self._workdir else None

    @staticmethod
    def _read(path: Path | None) -> str:
        try:
            return path.read_text(errors="replace") if path else ""
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` of the gateway's console output and its main log (not the
        per-request message log). Empty when the instance has no work directory."""
        if self._workdir is None:
            return ""
        parts = [self._read(self._out_path())]
        parts += [self._read(p) for p in sorted((self._workdir / "run" / "logs").glob("gw.2*.log"))]
        text = "\n".join(part for part in parts if part.strip())
        return "\n".join(text.splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    """``fetch [--cache DIR]`` or ``run BACKEND_PORT [--port N] [--cache DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m backtrader_ibkr_cp.simulator.realgateway")
    parser.add_argument("command", choices=["fetch", "run"])
    parser.add_argument("backend_port", type=int, nargs="?")
    parser.add_argument("--port", type=int, default=0, help="gateway listen port (0 = free)")
    parser.add_argument("--cache", type=Path, default=None, help=f"default: ${CACHE_ENV}")
    args = parser.parse_args(argv)
    if args.command == "run" and args.backend_port is None:
        parser.error("run needs BACKEND_PORT")
    try:
        dist = ensure_gateway_dist(args.cache)
        if args.command == "fetch":
            print(dist)
            return 0
        with RealGateway(args.backend_port, dist=dist, listen_port=args.port) as gw:
            print(f"{gw.url} {gw.cert_fingerprint} (started in {gw.startup_seconds:.1f} s)")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    except RealGatewayError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
