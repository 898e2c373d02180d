"""HTTP front end: routing, content types, watch streams, fault injection and audit."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import discovery, errors, openapi, rbac, table
from .api import Ctx, key_of
from .errors import ApiError
from .faults import ERROR_REASONS, Fault
from .meta import json_type, now_utc
from .registry import ResourceType
from .store import TooOld

if TYPE_CHECKING:
    from . import KubeSim

log = logging.getLogger("kubesim.server")

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
HOOK_PREFIX = "/kubesim/v1/"

# The struct the apiserver's JSON serializer sniffs apiVersion/kind into, as Go prints its type.
_FIND_KIND = ('struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
              'Kind string "json:\\"kind,omitempty\\"" }')
_UNSUPPORTED = object()


def _summarize(body: bytes, limit: int = 30) -> str:
    """handlers/rest.go summarizeData: the body's start, as text if it is an object, else hex."""
    if not body:
        return "<empty>"
    more = " ..." if len(body) > limit else ""
    if body[:1] == b"{":
        return body[:limit].decode("utf-8", "replace") + more
    return body[:limit].hex() + more


def _unrecognized(rt: ResourceType, body: bytes, detail: str) -> ApiError:
    return errors.bad_request(f"the object provided is unrecognized (must be of type "
                              f"{rt.kind}): {detail} ({_summarize(body)})")


def _go_quote_char(c: str) -> str:
    """encoding/json quoteChar: 'x', with `'` and non-printables escaped."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    return "'" + json.dumps(c)[1:-1] + "'"


def _go_json_error(e: ValueError) -> str:
    """encoding/json's SyntaxError text for what Python's decoder reported."""
    if not isinstance(e, json.JSONDecodeError):
        return str(e)
    doc, pos = e.doc, e.pos
    if pos >= len(doc.rstrip()):
        return "unexpected end of JSON input"
    where = {
        "Expecting value": "looking for beginning of value",
        "Expecting property name enclosed in double quotes":
            "looking for beginning of object key string",
        "Expecting ':' delimiter": "after object key",
        "Extra data": "after top-level value",
    }.get(e.msg)
    if where is None and e.msg == "Expecting ',' delimiter":
        depth: list[str] = []
        in_str = esc = False
        for ch in doc[:pos]:
            if in_str:
                in_str, esc = (in_str, False) if esc else (ch != '"', ch == "\\")
            elif ch == '"':
                in_str = True
            elif ch in "[{":
                depth.append(ch)
            elif ch in "]}" and depth:
                depth.pop()
        where = "after object key:value pair" if depth[-1:] == ["{"] else "after array element"
    if where is None:
        return e.msg
    return f"invalid character {_go_quote_char(doc[pos])} {where}"



def _audit_name(route: Any, query: dict[str, str]) -> str:
    """The object name of a request as the audit log's objectRef has it (RequestInfo's): a
    list or watch of one name by `metadata.name=` field selector names that object."""
    if route.name or route.verb not in ("list", "watch"):
        return route.name or ""
    return rbac.field_selector_name(query.get("fieldSelector", "")) or ""

class Route:
    """A resource request, resolved: the type, the verb and the object it names."""

    def __init__(self, rt: ResourceType, verb: str, ns: str | None, name: str, sub: str) -> None:
        self.rt, self.verb, self.ns, self.name, self.sub = rt, verb, ns, name, sub


class _Refuse(Exception):
    """Drop the connection without an answer (fault injection)."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubesim"
    # One send per response (headers and body together) and no Nagle delay: otherwise
    # the client's delayed ACK stalls every keep-alive request by ~40 ms.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024
    sim: KubeSim  # set by the server factory

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s - %s", self.address_string(), format % args)

    # one entry point for every method
    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    # ------------------------------------------------------------ plumbing
    def _identity(self) -> str:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return "token:" + auth[7:].strip()
        return self.headers.get("User-Agent", "")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, body: Any, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body, separators=(",", ":")).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body or b""
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", self._audit_id)
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(self, e: ApiError) -> None:
        self._send(e.code, e.status(), e.headers)

    # ------------------------------------------------------------ dispatch
    def _handle(self, method: str) -> None:
        self._audit_id = f"{threading.get_ident():x}-{time.monotonic_ns():x}"
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        identity = self._identity()
        code = 0
        route: Route | None = None
        rv = ""
        refused = False
        denied: rbac.Attributes | None = None
        try:
            body = self._read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            if path.startswith(HOOK_PREFIX):
                self._hook(method, path[len(HOOK_PREFIX):], query, body)
                return
            route_error: ApiError | None = None
            try:
                route = self._route(method, path, query)
            except ApiError as e:
                route_error = e  # answered after authorization, as the apiserver's mux is
            if route_error is None:
                verb = route.verb if route else "get"
                self._inject_faults(identity, verb, route.rt.plural if route else "")
            try:
                user, _ = self.sim.auth.check(
                    self.sim.auth.authenticate(self.headers.get("Authorization", "")),
                    method, path, query, self.headers)
            except ApiError as e:
                denied = getattr(e, "attributes", None)
                raise
            if route_error is not None:
                raise route_error
            if route is None:
                code = self._non_resource(method, path)
                return
            code, rv = self._resource(route, query, body, user)
        except _Refuse:
            self.close_connection = True
            refused = True  # dropped below, once the request is in the audit log
            code = -1
        except ApiError as e:
            code = e.code
            self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            code = -1
        except Exception as e:  # a bug of ours: say so, never hide it as a client error
            log.error("internal error on %s %s\n%s", method, self.path, traceback.format_exc())
            code = 500
            try:
                self._send_error(errors.internal(f"{type(e).__name__}: {e}"))
            except OSError:
                pass
        finally:
            if route is not None:
                self.sim.audit.record(
                    identity=identity, user_agent=self.headers.get("User-Agent", ""),
                    verb=route.verb, group=route.rt.group, resource=route.rt.plural,
                    namespace=route.ns or "", name=_audit_name(route, query),
                    subresource=route.sub, code=code, resource_version=rv,
                    dry_run=query.get("dryRun") == "All", path=path)
            elif denied is not None and denied.resource_request:
                self.sim.audit.record(  # a denied request for a resource that is not served
                    identity=identity, user_agent=self.headers.get("User-Agent", ""),
                    verb=denied.verb, group=denied.api_group, resource=denied.resource,
                    namespace=denied.namespace, name=denied.name,
                    subresource=denied.subresource, code=code, resource_version="",
                    dry_run=query.get("dryRun") == "All", path=path)
            if refused:  # the client learns of the refusal only after it was recorded
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _inject_faults(self, identity: str, verb: str, resource: str) -> None:
        for f in self.sim.faults.pick(identity, verb, resource):
            if f.action == "latency":
                time.sleep(f.seconds)
            elif f.action == "refuse":
                raise _Refuse()
            elif f.action == "blackhole":
                released = self.sim.faults.released
                deadline = time.monotonic() + (f.seconds or 3600)
                while self.sim.faults.active(f.id) and time.monotonic() < deadline:
                    released.wait(0.05)
                    released = self.sim.faults.released
                raise _Refuse()
            elif f.action == "error":
                self._fault_error(f)

    def _fault_error(self, f: Fault) -> None:
        code = int(f.code)
        if code == 429:
            raise errors.too_many_requests(f.retry_after)
        reason = ERROR_REASONS.get(code, "InternalError")
        headers = {"Retry-After": str(f.retry_after)} if code in (503,) else None
        raise ApiError(code, reason, f"injected fault: {reason}", {}, headers)

    def _route(self, method: str, path: str, query: dict[str, str]) -> Route | None:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return None
        if parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        registry = self.sim.registry
        ns: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and \
                not (group == "" and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        rt = registry.lookup(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise errors.not_found_path()
        if ns is not None and not rt.namespaced:
            raise errors.not_found_path()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        token_request = sub == "token" and group == "" and rt.plural == "serviceaccounts"
        if sub and not ((sub == "status" and rt.has_status) or (sub == "scale" and rt.has_scale)
                        or token_request):
            raise errors.not_found_path()
        if token_request and method != "POST":
            raise errors.method_not_allowed()
        if method in ("GET", "HEAD"):
            verb = "get" if name else ("watch" if query.get("watch") in ("true", "1")
                                       else "list")
        elif method == "POST":
            verb = "create"
            if (name and not token_request) or (rt.namespaced and ns is None):
                raise errors.method_not_allowed()
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
            if not name and rt.namespaced and ns is None:
                raise errors.method_not_allowed()
        else:
            raise errors.method_not_allowed()
        if verb in ("update", "patch") and not name:
            raise errors.method_not_allowed()
        if verb not in rt.verbs and not sub:
            raise errors.method_not_allowed()
        return Route(rt, verb, ns, name, sub)

    # ------------------------------------------------------------ non-resource paths
    def _non_resource(self, method: str, path: str) -> int:
        if method not in ("GET", "HEAD"):
            raise errors.method_not_allowed()
        registry = self.sim.registry
        parts = [p for p in path.split("/") if p]
        doc: Any = None
        if path in ("/healthz", "/livez", "/readyz"):
            self._send(200, "ok", content_type="text/plain; charset=utf-8")
            return 200
        if path == "/version":
            doc = discovery.KUBE_VERSION
        elif parts == ["api"]:
            doc = discovery.api_versions(f"{self.sim.host}:{self.sim.port}")
        elif parts == ["api", "v1"]:
            doc = discovery.api_resource_list(registry, "", "v1")
        elif parts == ["apis"]:
            doc = discovery.api_group_list(registry)
        elif len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(registry, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = discovery.api_resource_list(registry, parts[1], parts[2])
        elif parts == ["openapi", "v2"]:
            code, headers, body = openapi.serve_openapi_v2(registry, self.headers.get("Accept"))
            self._send(code, body if body is not None else b"", headers)
            return code
        elif parts[:2] == ["openapi", "v3"]:
            query = parse_qs(urlsplit(self.path).query)
            code, headers, body = openapi.serve_openapi_v3(
                registry, path, (query.get("hash") or [None])[0])
            if body is None:
                self._send(code, "404 page not found\n" if code == 404 else b"", headers,
                           content_type="text/plain; charset=utf-8")
            else:
                self._send(code, body, headers)
            return code
        if doc is None:
            self._send(404, "404 page not found\n", content_type="text/plain; charset=utf-8")
            return 404
        self._send(200, doc)
        return 200

    # ------------------------------------------------------------ resources
    def _decode(self, body: bytes, rt: ResourceType) -> Any:
        """Decode a POST/PUT body the way the apiserver's serializer does.

        Its first step sniffs apiVersion/kind by unmarshalling into a small struct; when that
        fails the handler (rest.go transformDecodeError) answers 400 "the object provided is
        unrecognized (must be of type K): couldn't get version/kind; json parse error: <Go
        error> (<summarizeData of the body>)". A JSON `null` sniffs fine and decodes to an
        empty object.
        """
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype in ("application/json", "*/*", ""):
            try:
                value = json.loads(body.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise _unrecognized(rt, body, "couldn't get version/kind; json parse error: "
                                    f"invalid character {_go_quote_char(chr(body[e.start]))} "
                                    "looking for beginning of value") from None
            except ValueError as e:
                raise _unrecognized(rt, body, "couldn't get version/kind; json parse error: "
                                    + _go_json_error(e)) from None
        elif ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            try:
                value = yaml.safe_load(body.decode("utf-8"))
            except (ValueError, yaml.YAMLError) as e:
                raise _unrecognized(rt, body, f"error converting YAML to JSON: {e}") from None
        else:
            value = _UNSUPPORTED
        if value is None:
            return {}
        if not isinstance(value, dict) and value is not _UNSUPPORTED:
            raise _unrecognized(rt, body, "couldn't get version/kind; json parse error: json: "
                                f"cannot unmarshal {json_type(value)} into Go value of type "
                                f"{_FIND_KIND}")
        if value is not _UNSUPPORTED:
            return value
        raise ApiError(415, "UnsupportedMediaType",
                       'the body of the request was in an unknown format - accepted media '
                       'types include: application/json, application/yaml', {})

    def _resource(self, route: Route, query: dict[str, str], body: bytes,
                  user: rbac.User) -> tuple[int, str]:
        api = self.sim.api
        ctx = Ctx(query=query, user_agent=self.headers.get("User-Agent", ""),
                  admit=self.sim.auth.admission(user, route.verb, route.sub))
        rt, ns, name, sub = route.rt, route.ns, route.name, route.sub
        verb = route.verb
        if verb == "create" and self.sim.auth.handles(rt, sub):
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            kind = "TokenRequest" if sub == "token" else rt.kind
            obj = rbac.decode_protobuf(body, kind) if ctype == rbac.PROTOBUF \
                else self._decode(body, rt)
            code, out = self.sim.auth.serve(user, rt, ns, name, sub, obj)
            self._send(code, out)
            return code, ""
        if verb == "watch":
            return self._watch(route, ctx), ""
        if verb == "get":
            code, out = 200, api.get(ctx, rt, ns, name, sub)
        elif verb == "list":
            code, out = 200, api.list(ctx, rt, ns)
        elif verb == "create":
            code, out = api.create(ctx, rt, ns, self._decode(body, rt))
        elif verb == "update":
            code, out = api.update(ctx, rt, ns, name, sub, self._decode(body, rt))
        elif verb == "patch":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            code, out = api.patch(ctx, rt, ns, name, sub, body, ctype)
        else:
            options = self._delete_options(body, query)
            if verb == "delete":
                code, out = api.delete(ctx, rt, ns, name, options)
            else:
                code, out = api.delete_collection(ctx, rt, ns, options)
        headers = {}
        if ctx.warnings:
            headers["Warning"] = ", ".join(f'299 - "{w}"'.replace("\n", " ")
                                           for w in ctx.warnings)
        accept = self.headers.get("Accept", "")
        if verb in ("get", "list") and not sub and table.wants_table(accept):
            try:
                include = table.check_include_object(query.get("includeObject"))
            except table.TableError as e:
                raise errors.bad_request(str(e)) from None
            objects = out.get("items", []) if verb == "list" else [out]
            list_meta = out.get("metadata", {}) if verb == "list" else \
                {"resourceVersion": out["metadata"].get("resourceVersion", "")}
            out = table.to_table(rt, [api._out(rt, o) for o in objects], list_meta, now_utc(),
                                 include_object=include,
                                 api_version=table.table_version(accept) or "meta.k8s.io/v1")
        self._send(code, out, headers)
        rv = (out.get("metadata") or {}).get("resourceVersion", "") if isinstance(out, dict) \
            else ""
        if verb == "create" and isinstance(out, dict):
            # like audit.LogRequestObject: a POST's objectRef names the object it created
            # (also when generateName picked the name)
            route.name = (out.get("metadata") or {}).get("name", "")
        return code, rv

    def _delete_options(self, body: bytes, query: dict[str, str]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if body.strip():
            try:
                options = json.loads(body.decode("utf-8"))
            except ValueError as e:
                raise errors.bad_request(f"couldn't decode DeleteOptions: {e}") from None
            if not isinstance(options, dict):
                raise errors.bad_request("DeleteOptions must be a JSON object")
        if "propagationPolicy" in query:
            options["propagationPolicy"] = query["propagationPolicy"]
        if "orphanDependents" in query:
            options["orphanDependents"] = query["orphanDependents"] in ("true", "1")
        if "gracePeriodSeconds" in query:
            options["gracePeriodSeconds"] = query["gracePeriodSeconds"]
        return options

    # ------------------------------------------------------------ watch
    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, route: Route, ctx: Ctx) -> int:
        api, store = self.sim.api, self.sim.store
        rt = route.rt
        match = api.matcher(rt, ctx.query)
        rv_param = ctx.query.get("resourceVersion", "")
        timeout = float(ctx.query.get("timeoutSeconds") or self.sim.watch_timeout)
        bookmarks = ctx.query.get("allowWatchBookmarks") in ("true", "1")
        initial_end = ctx.query.get("sendInitialEvents") in ("true", "1")
        as_table = table.wants_table(self.headers.get("Accept", ""))
        if route.name:  # a watch on one object, as kubectl get -w NAME does
            name = route.name
            inner = match
            match = lambda o: o["metadata"]["name"] == name and inner(o)  # noqa: E731
        since = None if rv_param in ("", "0") else api._rv_value(rv_param)
        if initial_end and since is not None:
            raise errors.invalid("ListOptions", "", [(
                "sendInitialEvents", None,
                "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList "
                "feature gate is enabled or resourceVersionMatch is NotOlderThan")])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Audit-Id", self._audit_id)
        self.end_headers()
        self.wfile.flush()  # as kube-apiserver: the answer starts before the first event
        self.close_connection = True

        first_table = [True]

        def encode(etype: str, obj: dict[str, Any]) -> bytes:
            o = api._out(rt, obj) if etype != "BOOKMARK" else obj
            if as_table and etype != "BOOKMARK":
                o = table.table_event_object(rt, o, now_utc(), headers=first_table[0])
                first_table[0] = False
            return json.dumps({"type": etype, "object": o}, separators=(",", ":")).encode() \
                + b"\n"

        try:
            watcher, initial = store.watch(key_of(rt), route.ns, match, since)
        except TooOld as e:
            err = errors.expired(str(e)).status()
            self._chunk(json.dumps({"type": "ERROR", "object": err}).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            return 200
        deadline = time.monotonic() + timeout
        try:
            for etype, obj in initial:
                self._chunk(encode(etype, obj))
            if initial_end and bookmarks:
                self._chunk(encode("BOOKMARK", self._bookmark(rt, watcher, initial_end=True)))
            next_bookmark = time.monotonic() + self.sim.bookmark_interval
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = min(deadline, next_bookmark) - now if bookmarks else deadline - now
                try:
                    item = watcher.queue.get(timeout=max(wait, 0.001))
                except Exception:  # queue.Empty
                    item = ()
                if item is None:
                    break  # the resource went away (its CRD was deleted)
                if item:
                    self._chunk(encode(*item))
                elif bookmarks and time.monotonic() >= next_bookmark:
                    bm = self._bookmark(rt, watcher)
                    if bm is not None:
                        self._chunk(encode("BOOKMARK", bm))
                    next_bookmark = time.monotonic() + self.sim.bookmark_interval
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            store.unwatch(watcher)
        return 200

    def _bookmark(self, rt: ResourceType, watcher: Any,
                  initial_end: bool = False) -> dict[str, Any] | None:
        store = self.sim.store
        with store.lock:
            if not watcher.queue.empty():
                return None  # events are pending: a bookmark now would skip past them
            rv = str(store.rv)
        md: dict[str, Any] = {"resourceVersion": rv}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": md}

    # ------------------------------------------------------------ test hooks
    def _hook(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        sim = self.sim
        try:
            payload = json.loads(body.decode() or "null") if body else None
        except ValueError as e:
            raise errors.bad_request(f"hook body is not JSON: {e}") from None
        parts = [p for p in path.split("/") if p]
        if parts == ["faults"] and method == "GET":
            self._send(200, {"faults": sim.faults.list()})
        elif parts == ["faults"] and method == "POST":
            try:
                f = sim.faults.add(payload or {})
            except (TypeError, ValueError) as e:
                raise errors.bad_request(f"invalid fault: {e}") from None
            self._send(201, {"id": f.id})
        elif parts == ["faults"] and method == "DELETE":
            sim.faults.clear()
            self._send(200, {"cleared": True})
        elif len(parts) == 2 and parts[0] == "faults" and method == "DELETE":
            if not parts[1].isdigit():
                raise errors.bad_request(f"fault id must be an integer, got {parts[1]!r}")
            if not sim.faults.active(int(parts[1])):
                raise errors.not_found("faults", parts[1])
            sim.faults.remove(int(parts[1]))
            self._send(200, {"removed": int(parts[1])})
        elif parts == ["audit"] and method == "GET":
            if not (query.get("since") or "0").isdigit():
                raise errors.bad_request(f"since must be an audit sequence number, got "
                                         f"{query['since']!r}")
            since = int(query.get("since") or 0)
            writes = query.get("writes") in ("true", "1")
            self._send(200, {"entries": sim.audit.as_dicts(
                since=since, writes_only=writes, identity=query.get("identity"))})
        elif parts == ["tokens"] and method == "GET":
            self._send(200, {"tokens": sim.auth.tokens()})
        elif parts == ["tokens"] and method == "POST":
            if not isinstance(payload, dict):
                raise errors.bad_request('body must be {"token": T, "user": U, "groups": [G]}')
            unknown = sorted(set(payload) - {"token", "user", "groups", "expiresIn"})
            if unknown:
                raise errors.bad_request(f"unknown token field(s): {', '.join(unknown)}; "
                                         f"accepted: token, user, groups, expiresIn")
            try:
                u = sim.auth.add_token(payload.get("token"), payload.get("user"),
                                       payload.get("groups") or [], payload.get("expiresIn"))
            except ValueError as e:
                raise errors.bad_request(f"invalid token: {e}") from None
            self._send(201, {"token": payload["token"], "user": u.name, "groups": list(u.groups)})
        elif len(parts) == 2 and parts[0] == "tokens" and method == "DELETE":
            if not sim.auth.revoke(parts[1]):
                raise errors.not_found("tokens", parts[1])
            self._send(200, {"revoked": parts[1]})
        elif len(parts) == 4 and parts[0] == "serviceaccounts" and parts[3] == "token" \
                and method == "POST":
            if payload is not None and (not isinstance(payload, dict) or
                                        set(payload) - {"token"}):
                raise errors.bad_request('body must be empty or {"token": T}')
            try:
                token = sim.auth.serviceaccount_token(parts[1], parts[2],
                                                      (payload or {}).get("token"))
            except ValueError as e:
                raise errors.bad_request(str(e)) from None
            self._send(201, {"token": token,
                             "user": rbac.serviceaccount_username(parts[1], parts[2]),
                             "groups": [*rbac.serviceaccount_groups(parts[1]),
                                        rbac.AUTHENTICATED]})
        elif parts == ["compact"] and method == "POST":
            self._send(200, {"floor": sim.store.compact()})
        elif len(parts) == 3 and parts[0] == "nodes" and parts[2] == "ready" \
                and method == "POST":
            if not isinstance(payload, dict) or not isinstance(payload.get("ready"), bool):
                raise errors.bad_request('body must be {"ready": true|false}')
            try:
                sim.set_node_ready(parts[1], payload["ready"])
            except KeyError:
                raise errors.not_found("nodes", parts[1]) from None
            self._send(200, {"node": parts[1], "ready": payload["ready"]})
        else:
            raise errors.not_found_path()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    ssl_context: ssl.SSLContext | None = None  # set: serve HTTPS

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # The handshake runs in the request's thread (Handler.setup), not in the
            # accept loop, so a slow client cannot stall the others.
            sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (or a connection we dropped on purpose) is not an error."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                            TimeoutError, OSError)):
            log.debug("connection from %s ended: %s", client_address, exc)
            return
        super().handle_error(request, client_address)


def make_server(sim: KubeSim, host: str, port: int,
                tls: tuple[bytes, bytes] | None = None) -> Server:
    """The HTTP server; with `tls` (certificate and key, PEM) it serves HTTPS."""
    handler = type("BoundHandler", (Handler,), {"sim": sim})
    server = Server((host, port), handler)
    if tls is not None:
        import tempfile
        from pathlib import Path

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory(prefix="kubesim-tls-") as d:
            cert, key = Path(d, "tls.crt"), Path(d, "tls.key")
            cert.write_bytes(tls[0])
            key.write_bytes(tls[1])
            key.chmod(0o600)
            ctx.load_cert_chain(cert, key)
        server.ssl_context = ctx
    return server


def self_signed_certificate(host: str) -> tuple[bytes, bytes]:
    """A self-signed serving certificate (its own CA) for `host`, 127.0.0.1 and localhost, and
    its key, both PEM: what kubectl needs to send a bearer token (it sends credentials only
    over TLS)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubesim")])
    sans: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        ip = ipaddress.ip_address(host)
        if str(ip) != "127.0.0.1":
            sans.append(x509.IPAddress(ip))
    except ValueError:
        sans.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
