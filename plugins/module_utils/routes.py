# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a container's IP may be contacted from this host, decided without sending a packet.

Only an IPv4 address reached through a link route (no gateway) on a local bridge that is up counts, and only when
the engine is a rootful one in this host's network namespace: a remote or nested engine's container IPs are not
ours even when the same subnet exists here, and a rootless engine's bridges live in the user's namespace.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass

from ansible_collections.perry.fleet.plugins.module_utils import engine as eng


@dataclass(frozen=True)
class Route:
    network: ipaddress.IPv4Network
    dev: str
    gateway: str | None
    flags: int = 1


def parse_proc_route(text: str) -> list:
    """Routes from /proc/net/route (main table, IPv4; addresses are little-endian hex)."""
    routes = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest = _le_ip(cols[1])
            gateway = _le_ip(cols[2])
            flags = int(cols[3], 16)
            mask = _le_ip(cols[7])
            network = ipaddress.IPv4Network("%s/%s" % (dest, mask), strict=False)
        except ValueError:
            continue
        routes.append(Route(network, cols[0], None if gateway == "0.0.0.0" else gateway, flags))
    return routes


def _le_ip(hexval: str) -> str:
    return str(ipaddress.IPv4Address(int(hexval, 16).to_bytes(4, "little")))


RTF_UP, RTF_GATEWAY, RTF_REJECT = 0x1, 0x2, 0x200


def lookup_proc_route(ip: str, routes: list):
    """Longest-prefix match like the kernel's main table; None when nothing matches."""
    addr = ipaddress.IPv4Address(ip)
    best = None
    for route in routes:
        if not route.flags & RTF_UP or addr not in route.network:
            continue
        if best is None or route.network.prefixlen > best.network.prefixlen:
            best = route
    return best


def parse_ip_route_get(text: str) -> dict | None:
    """The first entry of ``ip -j route get IP`` (the route the kernel would really use)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None


class RouteTable:
    """Answers "is this IP on a bridge this host is directly attached to?" without sending anything.

    Uses ``ip -j route get`` (policy routing included) when ``ip`` exists, else /proc/net/route.
    ``sysfs`` is where interface kinds are read (tests point it elsewhere).
    """

    def __init__(self, ip_cmd: str | None = "auto", proc_route: str = "/proc/net/route",
                 sysfs: str = "/sys/class/net", runner=None):
        self.ip_cmd = shutil.which("ip") if ip_cmd == "auto" else ip_cmd
        self.proc_route = proc_route
        self.sysfs = sysfs
        self.runner = runner or _run_quiet
        self._proc_routes = None
        self._cache = {}

    def check(self, ip: str) -> tuple:
        """(ok, reason). ok only for an IPv4 address reached through a link route (no gateway) on a
        local bridge interface that is up."""
        if ip in self._cache:
            return self._cache[ip]
        self._cache[ip] = result = self._check(ip)
        return result

    def _check(self, ip: str) -> tuple:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False, "%r is not an IP address" % ip
        if addr.version != 4:
            return False, "%s is not IPv4 (only IPv4 bridge routes are checked)" % ip
        if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
            return False, "%s is not a container address" % ip
        route = None
        if self.ip_cmd:
            out = self.runner([self.ip_cmd, "-j", "route", "get", ip])
            entry = parse_ip_route_get(out) if out is not None else None
            if entry is not None:
                if entry.get("type") not in (None, "unicast"):
                    return False, "%s is a %s route here, not a container on a bridge" % (ip, entry.get("type"))
                route = (entry.get("dev"), entry.get("gateway"))
        if route is None:
            if self._proc_routes is None:
                try:
                    with open(self.proc_route) as fh:
                        self._proc_routes = parse_proc_route(fh.read())
                except OSError:
                    self._proc_routes = []
            match = lookup_proc_route(ip, self._proc_routes)
            if match is None:
                return False, "no route to %s on this host" % ip
            if match.flags & RTF_REJECT:
                return False, "%s matches a reject route" % ip
            route = (match.dev, match.gateway)
        dev, gateway = route
        if gateway:
            return False, "%s is routed through gateway %s (dev %s), not directly connected" % (ip, gateway, dev)
        if not dev:
            return False, "no interface for %s" % ip
        if not os.path.isdir(os.path.join(self.sysfs, dev, "bridge")):
            return False, "%s is on %s, which is not a local bridge (only container bridges are used)" % (ip, dev)
        operstate = _read(os.path.join(self.sysfs, dev, "operstate"))
        if operstate == "down":
            return False, "bridge %s for %s is down" % (dev, ip)
        return True, "%s is directly connected on bridge %s" % (ip, dev)


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _run_quiet(argv) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=3, check=False,
                              env=dict(os.environ, LC_ALL="C"))
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def engine_shares_host_network(engine, environ=None, geteuid=os.geteuid, stat=os.stat) -> tuple:
    """(ok, reason): do this engine's container IPs live in this host's network namespace?

    A tcp:// or ssh:// engine is another machine or a nested engine (the podman-in-podman sidecar):
    its container IPs are not ours, even when the same subnet exists here. A socket (or CLI default)
    of a non-root user is a rootless engine whose bridges live in a private namespace.
    """
    url = eng.effective_url(engine, environ)
    kind = getattr(engine, "kind", "docker")
    if url:
        if not url.startswith("unix://"):
            return False, "engine %s is remote or nested: its container IPs are not on this host" % url
        path = url[len("unix://"):]
        try:
            owner = stat(path).st_uid
        except OSError as exc:
            return False, "cannot stat engine socket %s (%s)" % (path, exc.strerror)
        if owner != 0:
            return False, "engine socket %s belongs to uid %d (rootless engine: private network namespace)" % (
                path, owner)
        return True, "rootful engine socket %s" % path
    if kind == "podman" and geteuid() != 0:
        return False, "rootless podman: container IPs live in the user's network namespace"
    return True, "rootful %s on this host" % kind


def container_ips(container: dict) -> list:
    nets = ((container.get("NetworkSettings") or {}).get("Networks") or {})
    ips = [n.get("IPAddress") for _name, n in sorted(nets.items()) if isinstance(n, dict) and n.get("IPAddress")]
    top = (container.get("NetworkSettings") or {}).get("IPAddress")
    if top and top not in ips:
        ips.append(top)
    return ips
