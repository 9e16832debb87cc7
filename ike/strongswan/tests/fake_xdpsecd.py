#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A fake xdpsec daemon: the API of docs/ike-api.md on a unix socket, with state
in memory and no card, for the kernel-xdpsec plugin's tests.

It checks requests as strictly as the real daemon does (unknown fields,
types, algorithm names, canonical prefixes are errors), so a plugin request
that drifts from the contract fails here. Endpoints under /_fake/ let a test
inject events, set counters, make calls slow or fail, and overflow the event
backlog.

    fake_xdpsecd.py --socket PATH [--keepalive SEC] [--backlog N] [--encap-port N]
"""

import argparse
import collections
import ipaddress
import json
import os
import random
import secrets
import signal
import socketserver
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

API_VERSION = 2
OWNERS = ("config", "cli", "ike")
AEADS = {"rfc4106(gcm(aes))": (20, 28, 36), "rfc7539esp(chacha20,poly1305)": (36,),
         "rfc4543(gcm(aes))": (20, 28, 36)}
ENCS = {"cbc(aes)": (16, 24, 32), "ecb(cipher_null)": (0,)}
AUTHS = {"hmac(sha256)": (32,)}
LIFETIME_KEYS = ("soft_bytes", "hard_bytes", "soft_packets", "hard_packets", "soft_add_seconds",
                 "hard_add_seconds", "soft_use_seconds", "hard_use_seconds")


class APIError(Exception):
    STATUS = {"exists": 409, "not_found": 404, "invalid": 400, "immutable": 400, "full": 507,
              "epoch": 412, "internal": 500}

    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind
        self.status = self.STATUS[kind]


def invalid(msg):
    return APIError("invalid", msg)


def now_rfc3339(t=None):
    t = time.time() if t is None else t
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# ---- request checking -------------------------------------------------------------------------

def fields(obj, what, allowed, required=()):
    if not isinstance(obj, dict):
        raise invalid(f"{what}: want an object")
    for k in obj:
        if k not in allowed:
            raise invalid(f'decode request: json: unknown field "{k}" in {what}')
    for k in required:
        if k not in obj:
            raise invalid(f"{what}: {k} missing")
    return obj


def uint(obj, key, what, bits=32, default=None):
    v = obj.get(key, default)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >= 1 << bits:
        raise invalid(f"{what}.{key}: want an unsigned {bits}-bit integer, got {v!r}")
    return v


def addr(obj, key, what, required=True):
    v = obj.get(key)
    if v is None:
        if required:
            raise invalid(f"{what}.{key} missing")
        return None
    try:
        return ipaddress.ip_address(v)
    except (ValueError, TypeError):
        raise invalid(f"{what}.{key}: {v!r} is not an address")


def prefix(v, what):
    try:
        return ipaddress.ip_network(v, strict=True)
    except (ValueError, TypeError):
        raise invalid(f"{what}: {v!r} is not a canonical prefix")


def key_bytes(v, what):
    if not isinstance(v, str) or not v.startswith("0x") or len(v) % 2:
        raise invalid(f"{what}: want 0x-prefixed hex")
    try:
        return bytes.fromhex(v[2:])
    except ValueError:
        raise invalid(f"{what}: bad hex")


def check_alg(obj, what, table, need_bits=None):
    fields(obj, what, ("alg", "key", "bits"), ("alg",))
    if obj["alg"] not in table:
        raise invalid(f"{what}.alg: unknown algorithm {obj['alg']!r}")
    n = len(key_bytes(obj.get("key", "0x"), what + ".key"))
    if n not in table[obj["alg"]]:
        raise invalid(f"{what}.key: {n} bytes do not fit {obj['alg']}")
    bits = uint(obj, "bits", what, default=0)
    if need_bits is not None and bits not in need_bits:
        raise invalid(f"{what}.bits: {bits} not supported")


def check_sa(sa):
    fields(sa, "sa", ("name", "owner", "spi", "src", "dst", "proto", "mode", "reqid", "dir", "aead",
                      "enc", "auth", "esn", "replay_window", "encap", "seq", "lifetime", "offload",
                      "ttl", "df", "tfc_pad"), ("spi", "src", "dst", "proto"))
    if sa.get("owner", "cli") not in OWNERS:
        raise invalid(f"sa.owner: {sa['owner']!r}")
    spi = uint(sa, "spi", "sa")
    if spi < 256:
        raise invalid("spi: reserved")
    src, dst = addr(sa, "src", "sa"), addr(sa, "dst", "sa")
    if src.version != dst.version:
        raise invalid("dst: not of the same family as src")
    if sa["proto"] != 50:
        raise invalid("proto: only esp (50)")
    if sa.get("mode", "tunnel") not in ("tunnel", "transport"):
        raise invalid("mode")
    if sa.get("dir", "") not in ("", "in", "out"):
        raise invalid("dir: want in or out")
    uint(sa, "reqid", "sa")
    if "aead" in sa:
        if "enc" in sa or "auth" in sa:
            raise invalid("enc: not allowed together with aead")
        bits = {"rfc4106(gcm(aes))": (0, 96, 128)}.get(sa["aead"].get("alg"), (0, 128))
        check_alg(sa["aead"], "aead", AEADS, bits)
    else:
        if "enc" not in sa or "auth" not in sa:
            raise invalid("aead: need aead, or enc and auth")
        check_alg(sa["enc"], "enc", ENCS)
        check_alg(sa["auth"], "auth", AUTHS, (0, 128))
    if not isinstance(sa.get("esn", False), bool):
        raise invalid("esn: want a boolean")
    w = uint(sa, "replay_window", "sa", default=0)
    if w and not 32 <= w <= 65536:
        raise invalid("replay_window: outside 0 or 32..65536")
    if sa.get("encap") is not None:
        check_encap(sa["encap"])
    lft = fields(sa.get("lifetime", {}), "lifetime", LIFETIME_KEYS)
    for k in LIFETIME_KEYS:
        uint(lft, k, "lifetime", 64)
    if sa.get("df", "copy") not in ("copy", "set", "clear"):
        raise invalid("df")
    uint(sa, "tfc_pad", "sa", 16)


def check_encap(e):
    fields(e, "encap", ("type", "sport", "dport"), ("type", "sport", "dport"))
    if e["type"] != "espinudp" or not uint(e, "sport", "encap", 16) or not uint(e, "dport", "encap", 16):
        raise invalid("encap: want espinudp with non-zero ports")


def check_range(r, what):
    fields(r, what, ("lo", "hi"))
    lo, hi = uint(r, "lo", what, 16, 0), uint(r, "hi", what, 16, 0)
    if lo > hi:
        raise invalid(f"{what}: lo > hi")


def check_sel(sel):
    fields(sel, "sel", ("src", "dst", "proto", "sport", "dport"), ("src", "dst"))
    s, d = prefix(sel["src"], "sel.src"), prefix(sel["dst"], "sel.dst")
    if s.version != d.version:
        raise invalid("sel: mixed families")
    uint(sel, "proto", "sel", 8)
    for k in ("sport", "dport"):
        if k in sel:
            check_range(sel[k], "sel." + k)


def check_policy(p):
    fields(p, "policy", ("name", "owner", "dir", "sel", "priority", "action", "tmpl", "offload"),
           ("dir", "sel"))
    if p.get("owner", "cli") not in OWNERS:
        raise invalid(f"policy.owner: {p['owner']!r}")
    if p["dir"] not in ("in", "out", "fwd"):
        raise invalid("dir: want in, out or fwd")
    check_sel(p["sel"])
    uint(p, "priority", "policy")
    if p.get("action", "bypass") not in ("protect", "bypass", "discard"):
        raise invalid("action")
    t = p.get("tmpl")
    if t is not None:
        fields(t, "tmpl", ("sa", "reqid", "src", "dst", "proto", "mode", "spi"))
        uint(t, "reqid", "tmpl")
        addr(t, "src", "tmpl", False)
        addr(t, "dst", "tmpl", False)
        if t.get("mode", "tunnel") not in ("tunnel", "transport"):
            raise invalid("tmpl.mode")
    if p.get("action") == "protect" and not t:
        raise invalid("protect needs a template")


# ---- the daemon ---------------------------------------------------------------------------------

class Daemon:
    def __init__(self, args):
        self.epoch = args.epoch or secrets.token_hex(8)
        self.encap_port = args.encap_port
        self.keepalive = args.keepalive
        self.lock = threading.Condition()
        self.seq = 0
        self.backlog = collections.deque(maxlen=args.backlog)
        self.oldest = 1  # seq of the oldest event still in the backlog
        self.sas = {}  # (spi, dst) -> SAView
        self.larvals = {}  # (spi, dst) -> expiry
        self.policies = {}  # id -> PolicyView
        self.next_index = 1
        self.next_pid = 1
        self.requests = []
        self.faults = []
        self.paused = False
        self.stream_gen = 0  # bumped to end every open event stream

    # events
    def publish(self, ev):
        with self.lock:
            self.seq += 1
            ev = dict(ev, seq=self.seq, time=ev.get("time") or now_rfc3339())
            if len(self.backlog) == self.backlog.maxlen:
                self.oldest = self.backlog[0]["seq"] + 1
            self.backlog.append(ev)
            self.lock.notify_all()
            return self.seq

    def sa_event(self, typ, sa, **extra):
        self.publish(dict(type=typ, sa=sa.get("name", ""), spi=sa["spi"], dst=sa["dst"], src=sa["src"],
                          index=sa["index"], reqid=sa.get("reqid", 0), owner=sa["owner"], **extra))

    def purge_larvals(self):
        t = time.time()
        for k in [k for k, exp in self.larvals.items() if exp <= t]:
            del self.larvals[k]

    # SAs
    def alloc_spi(self, req):
        fields(req, "spi request", ("src", "dst", "proto", "min", "max", "lifetime_seconds"),
               ("dst", "proto", "min", "max"))
        addr(req, "src", "spi request", False)
        dst = str(addr(req, "dst", "spi request"))
        if req["proto"] != 50:
            raise invalid("proto: only esp (50)")
        lo, hi = uint(req, "min", "spi request"), uint(req, "max", "spi request")
        life = uint(req, "lifetime_seconds", "spi request", default=0) or 30
        if lo < 256 or lo > hi or life > 3600:
            raise invalid("spi request: want 256 <= min <= max, lifetime_seconds <= 3600")
        with self.lock:
            self.purge_larvals()
            for _ in range(1000):
                spi = random.randint(lo, hi)
                if (spi, dst) not in self.sas and (spi, dst) not in self.larvals:
                    self.larvals[(spi, dst)] = time.time() + life
                    return 201, {"spi": spi, "dst": dst, "proto": 50, "expires": now_rfc3339(time.time() + life)}
            raise APIError("full", "no free SPI in range")

    def add_sa(self, sa):
        check_sa(sa)
        sa = dict(sa)
        sa.setdefault("owner", "cli")
        sa["dst"] = str(ipaddress.ip_address(sa["dst"]))
        k = (sa["spi"], sa["dst"])
        with self.lock:
            self.purge_larvals()
            if k in self.sas:
                raise APIError("exists", f"add sa spi {sa['spi']:#010x} dst {sa['dst']}: exists")
            self.larvals.pop(k, None)
            view = dict(sa, index=self.next_index, state="mature", add_time=now_rfc3339(),
                        current={"bytes": 0, "packets": 0, "replay_errors": 0, "integrity_errors": 0,
                                 "other_errors": 0, "seq": 0},
                        gen=1, serial=self.next_index, offload_state=[])
            self.next_index += 1
            self.sas[k] = view
        self.sa_event("sa-added", view)
        return 201, hide(view)

    def find_sa(self, ref):
        fields(ref, "ref", ("name", "id", "index"))
        with self.lock:
            if "id" in ref:
                i = fields(ref["id"], "ref.id", ("spi", "dst", "proto"), ("spi", "dst", "proto"))
                k = (uint(i, "spi", "ref.id"), str(addr(i, "dst", "ref.id")))
                return k, self.sas.get(k)
            for k, v in self.sas.items():
                if ref.get("name") and v.get("name") == ref["name"] or ref.get("index") == v["index"]:
                    return k, v
        return None, None

    def get_sa(self, q):
        fields(q, "sa get", ("ref", "show_keys"), ("ref",))
        _, sa = self.find_sa(q["ref"])
        if not sa:
            raise APIError("not_found", "get sa: not found")
        return 200, hide(sa)

    def delete_sa(self, ref):
        k, sa = self.find_sa(ref)
        with self.lock:
            if not sa and k in self.larvals:
                del self.larvals[k]
                return 200, {"spi": k[0], "dst": k[1], "proto": 50, "state": "larval"}
            if not sa:
                raise APIError("not_found", "delete sa: not found")
            del self.sas[k]
        self.sa_event("sa-deleted", sa)
        return 200, hide(dict(sa, state="dead"))

    def flush_sas(self, owner):
        with self.lock:
            gone = [k for k, v in self.sas.items() if owner is None or v["owner"] == owner]
            views = [self.sas.pop(k) for k in gone]
        for v in views:
            self.sa_event("sa-deleted", v)
        return 200, [hide(v) for v in views]

    def migrate_sa(self, req):
        fields(req, "migrate", ("id", "src", "dst", "encap", "reqid"), ("id", "src", "dst", "encap"))
        k, sa = self.find_sa({"id": req["id"]})
        src, dst = str(addr(req, "src", "migrate")), str(addr(req, "dst", "migrate"))
        if req["encap"] is not None:
            check_encap(req["encap"])
        reqid = uint(req, "reqid", "migrate", default=0)
        with self.lock:
            if not sa:
                raise APIError("not_found", "migrate sa: not found")
            nk = (k[0], dst)
            if nk != k and nk in self.sas:
                raise APIError("exists", "migrate sa: the new destination has this SPI")
            del self.sas[k]
            sa.update(src=src, dst=dst)
            if req["encap"] is None:
                sa.pop("encap", None)
            else:
                sa["encap"] = req["encap"]
            if reqid:
                sa["reqid"] = reqid
            self.sas[nk] = sa
        self.sa_event("sa-updated", sa)
        return 200, hide(sa)

    # policies
    def add_policy(self, p):
        check_policy(p)
        p = dict(p)
        p.setdefault("owner", "cli")
        p.setdefault("priority", 0)
        p.setdefault("action", "bypass")
        with self.lock:
            for v in self.policies.values():
                if p["owner"] == "ike" and v["owner"] == "ike":
                    if strip_policy(v) == p:
                        return 200, v  # identical: the same entry
                elif v["dir"] == p["dir"] and v["sel"] == p["sel"] and p["owner"] != "ike" and v["owner"] != "ike":
                    raise APIError("exists", "add policy: exists")
            view = dict(p, id=self.next_pid, add_time=now_rfc3339(), gen=1, offload_state=[])
            self.next_pid += 1
            self.policies[view["id"]] = view
        self.publish(dict(type="sp-added", policy_id=view["id"], owner=view["owner"]))
        return 201, view

    def find_policy(self, ref, owner=None):
        fields(ref, "policy ref", ("name", "key", "id"))
        found = None
        with self.lock:
            if "id" in ref:
                found = self.policies.get(uint(ref, "id", "policy ref"))
            else:
                for v in self.policies.values():
                    if ref.get("name") and v.get("name") == ref["name"]:
                        found = v
        # ?owner= is a condition: another owner's policy is not found
        if found and owner and found["owner"] != owner:
            return None
        return found

    def get_policy(self, q, owner=None):
        fields(q, "sp get", ("ref",), ("ref",))
        v = self.find_policy(q["ref"], owner)
        if not v:
            raise APIError("not_found", "get policy: not found")
        return 200, v

    def delete_policy(self, ref, owner=None):
        v = self.find_policy(ref, owner)
        if not v:
            raise APIError("not_found", "delete policy: not found")
        with self.lock:
            self.policies.pop(v["id"], None)
        self.publish(dict(type="sp-deleted", policy_id=v["id"], owner=v["owner"]))
        return 200, v

    def flush_policies(self, owner):
        with self.lock:
            gone = [i for i, v in self.policies.items() if owner is None or v["owner"] == owner]
            views = [self.policies.pop(i) for i in gone]
        for v in views:
            self.publish(dict(type="sp-deleted", policy_id=v["id"], owner=v["owner"]))
        return 200, views


def strip_policy(view):
    return {k: v for k, v in view.items() if k not in ("id", "add_time", "gen", "offload_state", "last_use_time")}


def hide(sa):
    out = json.loads(json.dumps(sa))
    for k in ("aead", "enc", "auth"):
        if k in out:
            out[k].pop("key", None)
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    daemon = None

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else (json.dumps(body, indent=2) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Xdpsec-Epoch", self.daemon.epoch)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return raw

    def dispatch(self, method):
        d = self.daemon
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        raw = self.body()
        path = url.path
        if not path.startswith("/_fake/"):
            with d.lock:
                d.requests.append({"method": method, "path": self.path, "body": raw.decode(errors="replace")})
            fault = self.take_fault(path)
            if fault:
                if fault["mode"] == "delay":
                    time.sleep(fault["ms"] / 1000)
                elif fault["mode"] == "close":
                    self.close_connection = True
                    return
                elif fault["mode"] == "status":
                    return self.reply(fault["status"], fault.get("body", "").encode(),
                                      fault.get("content_type", "application/json"))
        try:
            if "epoch" in q and q["epoch"][0] != d.epoch and path != "/v1/events":
                raise APIError("epoch", f"epoch {q['epoch'][0]} is not the daemon's ({d.epoch})")
            req = json.loads(raw) if raw else None
            if path.startswith("/_fake/"):
                return self.control(method, path, req)
            route = ROUTES.get((method, path))
            if not route:
                if any(p == path for _, p in ROUTES):
                    return self.reply(405, b"Method Not Allowed\n", "text/plain; charset=utf-8")
                return self.reply(404, b"404 page not found\n", "text/plain; charset=utf-8")
            if route == "events":
                return self.events(q)
            owner = q.get("owner", [None])[0]
            if route in (Daemon.get_policy, Daemon.delete_policy):
                status, out = route(d, req, owner)
            else:
                status, out = route(d, req if req is not None else owner)
            return self.reply(status, out)
        except json.JSONDecodeError as e:
            self.reply(400, {"error": f"bad request: decode request: {e}", "kind": "invalid"})
        except APIError as e:
            self.reply(e.status, {"error": str(e), "kind": e.kind})

    def take_fault(self, path):
        d = self.daemon
        with d.lock:
            for f in d.faults:
                if f["path"] == path and f["count"] > 0:
                    f["count"] -= 1
                    return f
        return None

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def events(self, q):
        d = self.daemon
        owner = q.get("owner", [None])[0]
        types = set(q["type"][0].split(",")) if "type" in q else None
        since = int(q.get("since", ["0"])[0])
        if q.get("epoch", [d.epoch])[0] != d.epoch:
            since = 0  # another daemon's numbers mean nothing here
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Xdpsec-Epoch", d.epoch)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        with d.lock:
            start = {"type": "stream-start", "epoch": d.epoch, "seq": d.seq, "oldest": d.oldest}
        cursor = since
        gen = d.stream_gen
        try:
            self.chunk((json.dumps(start) + "\n").encode())
            last_sent = time.time()
            while True:
                lines = []
                with d.lock:
                    if d.stream_gen != gen:
                        return
                    if not d.paused:
                        if cursor < d.oldest - 1:
                            lines.append({"type": "resync", "reason": "backlog", "seq": d.seq})
                            cursor = d.oldest - 1
                        for ev in d.backlog:
                            if ev["seq"] <= cursor:
                                continue
                            cursor = ev["seq"]
                            if owner and ev.get("owner") != owner:
                                continue
                            if types and ev["type"] not in types:
                                continue
                            lines.append(ev)
                    if not lines:
                        d.lock.wait(timeout=0.05)
                if lines:
                    self.chunk("".join(json.dumps(x) + "\n" for x in lines).encode())
                    last_sent = time.time()
                elif time.time() - last_sent >= d.keepalive:
                    self.chunk((json.dumps({"type": "keepalive", "seq": d.seq}) + "\n").encode())
                    last_sent = time.time()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return

    def control(self, method, path, req):
        d = self.daemon
        if path == "/_fake/event":
            return self.reply(200, {"seq": d.publish(req)})
        if path == "/_fake/state":
            with d.lock:
                return self.reply(200, {"epoch": d.epoch, "seq": d.seq, "sas": list(d.sas.values()),
                                        "larvals": [{"spi": k[0], "dst": k[1]} for k in d.larvals],
                                        "policies": list(d.policies.values())})
        if path == "/_fake/requests":
            with d.lock:
                out = list(d.requests)
                if method == "POST":
                    d.requests.clear()
            return self.reply(200, out)
        if path == "/_fake/fault":
            with d.lock:
                d.faults.append(dict({"count": 1, "ms": 0}, **req))
            return self.reply(200, {})
        if path == "/_fake/sa/set":
            with d.lock:
                sa = d.sas.get((req["spi"], req["dst"]))
                if not sa:
                    return self.reply(404, {"error": "no such sa", "kind": "not_found"})
                for k in ("bytes", "packets"):
                    if k in req:
                        sa["current"][k] = req[k]
                for k in ("state", "last_use_time"):
                    if k in req:
                        sa[k] = req[k]
            return self.reply(200, sa)
        if path == "/_fake/sa/forget":
            with d.lock:
                d.sas.pop((req["spi"], req["dst"]), None)
            return self.reply(200, {})
        if path == "/_fake/sp/set":
            with d.lock:
                p = d.policies.get(req["id"])
                if not p:
                    return self.reply(404, {"error": "no such policy", "kind": "not_found"})
                p["last_use_time"] = req["last_use_time"]
            return self.reply(200, p)
        if path == "/_fake/streams":
            with d.lock:
                d.paused = req["paused"]
                d.lock.notify_all()
            return self.reply(200, {})
        if path == "/_fake/streams/close":
            with d.lock:
                d.stream_gen += 1
                d.lock.notify_all()
            return self.reply(200, {})
        if path == "/_fake/backlog/drop":
            with d.lock:
                d.backlog.clear()
                d.oldest = d.seq + 1
            return self.reply(200, {"oldest": d.oldest})
        return self.reply(404, b"404 page not found\n", "text/plain")


def info(d, _):
    with d.lock:
        return 200, {"api": API_VERSION, "epoch": d.epoch, "seq": d.seq, "instance": "fake",
                     "encap_port": d.encap_port,
                     "features": ["owner", "spi", "sa-migrate", "fresh-counters", "fwd",
                                  "policy-duplicates", "events", "epoch"]}


def list_sas(d, owner):
    with d.lock:
        return 200, [hide(v) for v in d.sas.values() if owner is None or v["owner"] == owner]


def list_policies(d, owner):
    with d.lock:
        return 200, [v for v in d.policies.values() if owner is None or v["owner"] == owner]


ROUTES = {
    ("GET", "/v1/info"): info,
    ("POST", "/v1/spi"): Daemon.alloc_spi,
    ("GET", "/v1/sa"): list_sas,
    ("POST", "/v1/sa"): Daemon.add_sa,
    ("POST", "/v1/sa/get"): Daemon.get_sa,
    ("POST", "/v1/sa/delete"): Daemon.delete_sa,
    ("POST", "/v1/sa/flush"): Daemon.flush_sas,
    ("POST", "/v1/sa/migrate"): Daemon.migrate_sa,
    ("GET", "/v1/sp"): list_policies,
    ("POST", "/v1/sp"): Daemon.add_policy,
    ("POST", "/v1/sp/get"): Daemon.get_policy,
    ("POST", "/v1/sp/delete"): Daemon.delete_policy,
    ("POST", "/v1/sp/flush"): Daemon.flush_policies,
    ("GET", "/v1/events"): "events",
}


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--keepalive", type=float, default=15.0)
    ap.add_argument("--backlog", type=int, default=4096)
    ap.add_argument("--encap-port", type=int, default=4500)
    ap.add_argument("--epoch", default="")
    ap.add_argument("--fault", action="append", default=[],
                    help="a fault as POST /_fake/fault takes it, active from the start (JSON)")
    args = ap.parse_args()
    Handler.daemon = Daemon(args)
    for f in args.fault:
        Handler.daemon.faults.append(dict({"count": 1, "ms": 0}, **json.loads(f)))
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    srv = Server(args.socket, Handler)
    os.chmod(args.socket, 0o600)
    def stop(*_):
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    srv.serve_forever()


if __name__ == "__main__":
    main()
