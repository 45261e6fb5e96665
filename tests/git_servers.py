"""Real git servers on loopback for the tests of private repositories: OpenSSH's sshd serving a
bare repository to one set of keys, and git's own `git http-backend` behind a small HTTPS
server that asks for a token. Each is started by a fixture and stopped after it."""

from __future__ import annotations

import base64
import getpass
import hmac
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        list(args), cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def ssh_keypair(path: Path) -> str:
    """An ed25519 pair by ssh-keygen: `path` (private) and `path`.pub; returns the public line."""
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path))
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class ServerKeys:
    """What the test servers prove themselves with, made once per session so the worker,
    started once, can be told to trust them (KOYRA_GIT_KNOWN_HOSTS, KOYRA_GIT_CA_FILE)."""

    ssh_host_key: Path
    ssh_host_public: str  # "ssh-ed25519 AAAA... comment"
    ca_file: Path
    tls_cert: Path
    tls_key: Path

    @classmethod
    def make(cls, where: Path) -> ServerKeys:
        where.mkdir(parents=True, exist_ok=True)
        host_key = where / "ssh_host_ed25519_key"
        public = ssh_keypair(host_key)
        ca_key, ca = where / "ca.key", where / "ca.pem"
        key, csr, cert, ext = (where / n for n in ("tls.key", "tls.csr", "tls.pem", "tls.ext"))
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _run("openssl", "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca),
             "-days", "2", "-subj", "/CN=Koyra test CA")  # fmt: skip
        _run("openssl", "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
        ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        _run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
        return cls(host_key, public, ca, cert, key)

    def known_hosts_line(self) -> str:
        # Every port of the loopback address: the servers take a free port each time.
        return f"[127.0.0.1]:* {self.ssh_host_public}"

    def worker_env(self) -> dict[str, str]:
        return {
            "KOYRA_GIT_KNOWN_HOSTS": self.known_hosts_line(),
            "KOYRA_GIT_CA_FILE": str(self.ca_file),
        }


def bare_copy(source: Path, where: Path) -> Path:
    """A bare clone of the repository at `source`: what the servers serve."""
    bare = where / f"{source.name}.git"
    _run("git", "clone", "-q", "--bare", "--", str(source), str(bare))
    return bare


class SshGitServer:
    """`sshd -D` on a free loopback port, with its own host key; only the given public keys
    log in, as this user, and each may run nothing but git-upload-pack of the one repository."""

    def __init__(self, where: Path, *, host_key: Path, repo: Path, keys: list[str]) -> None:
        self.port = free_port()
        self.repo = repo
        self.user = getpass.getuser()
        where.mkdir(parents=True, exist_ok=True)
        authorized = where / "authorized_keys"
        forced = f"restrict,command=\"git-upload-pack '{repo}'\""
        authorized.write_text("".join(f"{forced} {k}\n" for k in keys))
        self.log = where / "sshd.log"
        config = where / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile none\n"
            f"AuthorizedKeysFile {authorized}\nAllowUsers {self.user}\nStrictModes no\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n"
            "AllowTcpForwarding no\nAllowAgentForwarding no\nX11Forwarding no\nPermitTTY no\n"
            "LogLevel VERBOSE\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self._wait_listening()

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}/{self.repo.name}"

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("sshd did not listen in 15s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Handler(BaseHTTPRequestHandler):
    """git's smart HTTP through `git http-backend` (CGI), behind HTTP Basic auth."""

    server: HttpGitServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        srv = self.server
        srv.requests.append((self.command, self.path, dict(self.headers)))
        time.sleep(srv.delay)  # slow enough for a test to see the clone's processes
        if not self._authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="koyra-test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self._body()
        path, _, query = self.path.partition("?")
        env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": str(srv.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = out.stdout.partition(b"\r\n\r\n")
        headers = [line.split(":", 1) for line in head.decode().split("\r\n") if ":" in line]
        status = next((v.strip() for k, v in headers if k.lower() == "status"), "200 OK")
        self.send_response(int(status.split()[0]))
        for k, v in headers:
            if k.lower() not in ("status", "content-length"):
                self.send_header(k, v.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _authorized(self) -> bool:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return False
        try:
            _user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return hmac.compare_digest(password.encode(), self.server.token.encode())

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if size == 0:
                    return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class HttpGitServer(ThreadingHTTPServer):
    """HTTPS on a free loopback port (a certificate of the session's test CA), serving the bare
    repositories under `root` to a request that carries `token` as its Basic password."""

    daemon_threads = True

    def __init__(self, root: Path, *, token: str, keys: ServerKeys, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.token, self.delay = root, token, delay
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(keys.tls_cert), str(keys.tls_key))
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def url(self, repo: Path) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}/{repo.relative_to(self.root)}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def tree_contains(root: Path, needle: str) -> list[str]:
    """Every file under `root` (a checkout, .git included) whose bytes contain `needle`."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found
