"""A real git server for the tests: git's own smart-HTTP CGI (`git http-backend`) behind a small threaded HTTP server,
on an address of a bridge this machine's podman created. Repositories under /private/ want HTTP basic auth with the
server's token (any user name), as GitHub does for a token; the log keeps each request's path and whether it
carried credentials, so a test can show the token went only where it belongs."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024 * 1024


class GitServer:
    def __init__(self, root: str, host: str, token: str):
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
                server.requests.append({"path": path, "auth": bool(auth)})
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

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = "http://%s:%d" % (host, self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            _user, _sep, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return password == self.token

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
