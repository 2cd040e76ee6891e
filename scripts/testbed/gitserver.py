"""A real git server on this machine: git's own smart-HTTP CGI (`git http-backend`) behind a small threaded HTTP
server, on addresses of bridges this machine's engines created (never on every address).

- The tests start one per test (class GitServer, a free port): repositories under /private/ want HTTP basic auth with
  the server's token (any user name), as GitHub does for a token; the log keeps each request's path and whether it
  carried credentials, so a test can show the token went only where it belongs.
- scripts/testbed/gitd runs it as the test bed's service (``gitserver.py --root DIR --port PORT ADDRESS...``): the
  repositories the main job's demo workspace and the Molecule scenarios clone, public, read-only (no push).
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024 * 1024
# Linux IP_FREEBIND (socket.IP_FREEBIND from Python 3.12): bind to a bridge gateway before the engine brings its
# bridge up (podman makes cni-podman0 with its first container), as systemd's FreeBind= does.
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


class FreeBindHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        super().server_bind()


class GitServer:
    def __init__(self, root: str, host: str, token: str = "", port: int = 0, read_only: bool = False):
        self.root, self.token, self.requests = root, token, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the test reads self.requests
                pass

            def do_GET(self):
                self._git()

            def do_POST(self):
                self._git()

            def _git(self):
                path, _sep, query = self.path.partition("?")
                auth = self.headers.get("Authorization", "")
                if len(server.requests) < 10000:  # the tests' log; the service must not grow
                    server.requests.append({"path": path, "auth": bool(auth)})
                if read_only and (path.endswith("/git-receive-pack") or "service=git-receive-pack" in query):
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.startswith("/private/") and not server.authorized(auth):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="perry-test"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                body = self.rfile.read(length) if length else b""
                env = dict(os.environ, GIT_PROJECT_ROOT=server.root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                           QUERY_STRING=query, REQUEST_METHOD=self.command, REMOTE_ADDR=self.client_address[0],
                           CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)))
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                if self.headers.get("Git-Protocol"):
                    env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60,
                                     check=False).stdout
                head, _sep, payload = out.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.decode("latin-1").split("\r\n"):
                    key, _sep, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    elif key:
                        headers.append((key, value.strip()))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = FreeBindHTTPServer((host, port), Handler)
        self.url = "http://%s:%d" % (host, self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            _user, _sep, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return bool(self.token) and password == self.token

    def add_repo(self, relpath: str, files: dict, branch: str = "main") -> str:
        """A bare repository at root/relpath with one commit of ``files``; returns its URL."""
        work = os.path.join(self.root, ".work-" + relpath.replace("/", "-"))
        bare = os.path.join(self.root, relpath)
        git = ["git", "-c", "user.name=perry-test", "-c", "user.email=test@perry.invalid"]
        subprocess.run(git + ["init", "-q", "-b", branch, work], check=True, timeout=30)
        for name, text in files.items():
            with open(os.path.join(work, name), "w") as fh:
                fh.write(text)
        subprocess.run(git + ["-C", work, "add", "-A"], check=True, timeout=30)
        subprocess.run(git + ["-C", work, "commit", "-q", "-m", "initial"], check=True, timeout=30)
        subprocess.run(["git", "clone", "-q", "--bare", work, bare], check=True, timeout=30)
        return "%s/%s" % (self.url, relpath)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    parser = argparse.ArgumentParser(description="Serve the bare repositories under --root, read-only, over git's "
                                                 "smart HTTP on each ADDRESS (bridge gateways of this machine).")
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("addresses", nargs="+")
    args = parser.parse_args()
    servers = [GitServer(args.root, address, port=args.port, read_only=True) for address in args.addresses]
    for server in servers[1:]:
        server.thread.start()
    servers[0].httpd.serve_forever()


if __name__ == "__main__":
    main()
