"""Fencing proxy: the reconcile's only way to the API server, closed once leadership ends.

A reconcile's playbook reaches the Kubernetes API only through a kubeconfig the runtime writes
(`FencingProxy.write_kubeconfig`), which points at this proxy on loopback. The proxy forwards
each request to the real API server with the operator's own credentials and TLS settings, and
asks `is_valid()` *at the moment of forwarding*: after the whole request (headers and body)
was read and the upstream connection is established, as the last step before the request's
bytes are written upstream. When `is_valid()` is false (or raises) the request is not sent;
the client gets 503 with a `metav1.Status` (reason `ServiceUnavailable`).

That closes the gap a lease leaves open: a replica frozen (SIGSTOP) past its lease and then
resumed has module processes with requests ready to go. They resume before the runtime
gets to kill them, but their requests arrive here, `is_valid()` judges the lease on this
host's monotonic clock, and nothing is forwarded.

Guarantees and limits:

- A request is forwarded only if `is_valid()` returned true after its last byte was read from
  the client. What remains is the CPU time between that call and the `send` system call (a
  few microseconds, no I/O in between): a freeze landing exactly there still lets that one
  request out. Only server-side fencing (a token the API server checks) would close that,
  and Kubernetes has none.
- A request forwarded while valid is answered normally even if leadership ends before the
  answer arrives: the write has happened, and hiding its result would only mislead.
- Watches (`?watch=true`, `/watch/` paths) are checked between events and by a watchdog every
  `stream_check_interval`; once leadership is invalid the stream is ended (cleanly, as the API
  server ends a timed-out watch), so an informer in a playbook re-lists and gets 503.
- Whatever can connect to the loopback port acts with the operator's credentials: the same
  trust boundary as the Pod, whose containers share loopback and can read its service
  account token. Clients' own credentials never reach the API server (Authorization is
  replaced by the operator's). `require_token=True` additionally refuses (401) requests
  without a token of a kubeconfig the proxy wrote, for hosts shared with other users; kubectl
  does not send credentials to a plain-HTTP server, so it cannot be used then.
- Connection upgrades (exec, attach, port-forward) are refused with 501: a tunnelled stream
  cannot be fenced per request.
- `is_valid` is called from several threads at once; it must be thread-safe and quick (a
  monotonic clock comparison).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import select
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

FENCED_MESSAGE = "this replica does not hold the leader lock; request refused (fenced)"

# Headers that belong to one hop, not to the request (RFC 9110 §7.6.1), plus those the proxy
# sets itself: the upstream Host and framing, and the operator's Authorization.
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade", "expect",
})
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "authorization", "content-length"}
_NOT_RETURNED = _HOP_BY_HOP | {"content-length"}
_BODYLESS_STATUS = (204, 304)
_CHUNK = 64 * 1024


class _Fenced(Exception):
    """Raised by the fence just before the upstream send: leadership is not valid."""


_current = threading.local()  # the exchange this thread is forwarding


class _FencedRequestMixin:
    """Connection side of the fence: connect, call the thread's fence, then send.

    Checking here, not before `urlopen`, makes the check the last step before the bytes go
    out even when a new (TLS) connection had to be set up first. A connection used outside
    a fenced request refuses to send at all: the pool is private to the proxy.
    """

    sock: Any

    def request(self, method: str, url: str, body: Any = None, headers: Any = None,
                **kw: Any) -> None:
        exchange: _Exchange | None = getattr(_current, "exchange", None)
        if exchange is None:
            raise _Fenced("no fence set for this request")
        if self.sock is None:
            self.connect()  # type: ignore[attr-defined]
        exchange.fence(self.sock)
        super().request(method, url, body, headers, **kw)  # type: ignore[misc]


class _FencedHTTPConnection(_FencedRequestMixin, urllib3.connection.HTTPConnection):
    pass


class _FencedHTTPSConnection(_FencedRequestMixin, urllib3.connection.HTTPSConnection):
    pass


class _FencedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _FencedHTTPConnection


class _FencedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _FencedHTTPSConnection


def _upstream_pool(cfg: Any, maxsize: int) -> urllib3.PoolManager:
    """A pool manager with the TLS, proxy and socket settings the kubernetes client would use
    for this Configuration, whose connections all pass through the fence."""
    import ssl

    args: dict[str, Any] = {
        "cert_reqs": ssl.CERT_REQUIRED if cfg.verify_ssl else ssl.CERT_NONE,
        "ca_certs": cfg.ssl_ca_cert,
        "cert_file": cfg.cert_file,
        "key_file": cfg.key_file,
        "maxsize": maxsize,
    }
    if getattr(cfg, "ca_cert_data", None):
        args["ca_cert_data"] = cfg.ca_cert_data
    if cfg.assert_hostname is not None:
        args["assert_hostname"] = cfg.assert_hostname
    if getattr(cfg, "tls_server_name", None):
        args["server_hostname"] = cfg.tls_server_name
    if cfg.socket_options is not None:
        args["socket_options"] = cfg.socket_options
    else:  # keep urllib3's TCP_NODELAY, and notice a dead API server on idle watches
        args["socket_options"] = [
            *urllib3.connection.HTTPConnection.default_socket_options,
            (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    proxy = cfg.proxy
    if proxy:
        from kubernetes.client.rest import is_socks_proxy_url, should_bypass_proxies

        if should_bypass_proxies(cfg.host, cfg.no_proxy or ""):
            proxy = None
        elif is_socks_proxy_url(proxy):
            raise ValueError("the fencing proxy cannot reach the API server through a SOCKS "
                             f"proxy ({proxy}); use an HTTP(S) proxy or none")
    manager: urllib3.PoolManager
    if proxy:
        manager = urllib3.ProxyManager(proxy, proxy_headers=cfg.proxy_headers, **args)
    else:
        manager = urllib3.PoolManager(**args)
    manager.pool_classes_by_scheme = {"http": _FencedHTTPPool, "https": _FencedHTTPSPool}
    return manager


def _status_body(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                       "status": "Failure", "message": message, "reason": reason,
                       "code": code}).encode()


def _is_watch(path: str) -> bool:
    parts = urlsplit(path)
    if "/watch/" in parts.path:
        return True
    return any(v.lower() in ("true", "1") for v in parse_qs(parts.query).get("watch", []))


class _Exchange:
    """One proxied request, from the fence to the end of its answer.

    The watchdog interrupts it (shuts its upstream socket, which unblocks the thread waiting
    on it) when its client went away, and, for a watch, when leadership ends.
    """

    def __init__(self, proxy: FencingProxy, what: str, client: socket.socket,
                 watch: bool) -> None:
        self.proxy, self.what, self.client, self.watch = proxy, what, client, watch
        self.upstream: socket.socket | None = None
        self.sent = False
        self.fenced = False  # a watch ended because leadership ended
        self.client_gone = False

    def fence(self, upstream: socket.socket) -> None:
        """The last step before the request is written to `upstream`."""
        reading = self.what.split(" ", 1)[0] in ("GET", "HEAD", "OPTIONS")
        if (self.proxy.fence_reads or not reading) and not self.proxy._valid():
            raise _Fenced(self.what)
        self.upstream = upstream
        if not self.sent:  # a retry on a dead keep-alive connection is the same request
            self.sent = True
            self.proxy._count("forwarded")
            if not reading and self.proxy.on_write is not None:
                method, _, path = self.what.partition(" ")
                try:
                    self.proxy.on_write(method, path)
                except Exception:  # noqa: BLE001 - an observer must not break forwarding
                    log.exception("fencing proxy: on_write failed")

    def interrupt(self) -> None:
        sock = self.upstream
        if sock is not None:
            try:  # the base class's shutdown: also right under TLS, and leaves it closable
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


def _clients_gone(exchanges: list[_Exchange]) -> list[_Exchange]:
    """The exchanges whose client closed its connection. A client waiting for an answer
    sends nothing, so a readable socket that peeks empty is one that was closed."""
    poller = select.poll()
    by_fd: dict[int, _Exchange] = {}
    for x in exchanges:
        if x.client_gone or x.upstream is None:
            continue
        try:
            fd = x.client.fileno()
        except OSError:
            continue
        if fd >= 0:
            by_fd[fd] = x
            poller.register(fd, select.POLLIN | select.POLLRDHUP | select.POLLHUP)
    gone = []
    for fd, _events in poller.poll(0):
        x = by_fd[fd]
        try:
            data = x.client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            gone.append(x)
    return gone


class _ClientError(Exception):
    """The client's request cannot be read; answer `code` and close the connection."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.proxy._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.proxy._track(self.connection, False)

    def _serve(self) -> None:
        self.server.proxy._serve(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    proxy: FencingProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        # an error ends that one connection; the proxy keeps serving
        if isinstance(sys.exc_info()[1], OSError):  # the client went away
            log.debug("fencing proxy: connection from %s broke", client_address, exc_info=True)
        else:
            log.exception("fencing proxy: unexpected error on a connection from %s",
                          client_address)


class FencingProxy:
    """A loopback HTTP proxy to the API server that forwards a request only while
    `is_valid()` says this replica's leadership is valid (see the module docstring)."""

    def __init__(self, upstream_configuration: Any, is_valid: Callable[[], bool],
                 host: str = "127.0.0.1", port: int = 0,
                 on_refused: Callable[[str], None] | None = None, *,
                 require_token: bool = False, stream_check_interval: float = 0.1,
                 connect_timeout: float = 10.0, read_timeout: float | None = None,
                 max_connections: int = 16, fence_reads: bool = True,
                 on_write: Callable[[str, str], None] | None = None) -> None:
        # fence_reads=False lets reads (and watches) through whatever the leadership: only
        # writes can break the single-writer guarantee, and a follower may keep caches warm.
        self.fence_reads = fence_reads
        self.on_write = on_write  # (method, path) of each write forwarded: dependents' types
        self._cfg = upstream_configuration
        self._is_valid = is_valid
        self._on_refused = on_refused
        self._upstream = str(upstream_configuration.host).rstrip("/")
        self._pool = _upstream_pool(upstream_configuration, max_connections)
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # one retry, only where nothing can have reached the server twice: a failed connect,
        # or a reused keep-alive connection the server had closed, for reads
        self._retries = Retry(total=1, connect=1, read=1, redirect=0, status=0, other=0,
                              allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
                              raise_on_redirect=False, raise_on_status=False)
        self._interval = stream_check_interval
        self._lock = threading.Lock()
        self._exchanges: set[_Exchange] = set()
        self._clients: set[socket.socket] = set()
        self._require_token = require_token
        self._tokens = {secrets.token_urlsafe(32)}
        self._default_token = next(iter(self._tokens))
        self._refused = 0
        self._forwarded = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._httpd = _Server((host, port), _Handler)
        self._httpd.proxy = self
        self.url = f"http://{host}:{self._httpd.server_address[1]}"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FencingProxy:
        if self._threads:
            return self
        for target, name in ((self._httpd.serve_forever, "fence-http"),
                             (self._watchdog, "fence-watchdog")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("fencing proxy on %s forwards to %s", self.url, self._upstream)
        return self

    def stop(self) -> None:
        """Stop serving, end open streams and client connections, close upstream ones."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._threads:
            self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            exchanges, clients = list(self._exchanges), list(self._clients)
        for x in exchanges:
            x.interrupt()
        for c in clients:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._pool.clear()

    def __enter__(self) -> FencingProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def refused(self) -> int:
        """Requests not forwarded because leadership was not valid."""
        return self._refused

    @property
    def forwarded(self) -> int:
        """Requests sent to the API server (counted as they are sent)."""
        return self._forwarded

    @property
    def in_flight(self) -> int:
        """Requests being forwarded or answered now (open watches included)."""
        with self._lock:
            return len(self._exchanges)

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str | None = None,
                         token: str | None = None) -> Path:
        """Write (mode 0600) a kubeconfig for this proxy, for a run's KUBECONFIG or
        K8S_AUTH_KUBECONFIG. `token` is the bearer token the run presents to the proxy
        (default: the proxy's own random one; with `require_token` the proxy accepts it from
        now on); the API server never sees it."""
        if token is not None:
            if not token:
                raise ValueError("token must not be empty")
            with self._lock:
                self._tokens.add(token)
        context: dict[str, Any] = {"cluster": "fenced", "user": "fenced"}
        if namespace:
            context["namespace"] = namespace
        doc = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "fenced", "cluster": {"server": self.url}}],
            "users": [{"name": "fenced", "user": {"token": token or self._default_token}}],
            "contexts": [{"name": "fenced", "context": context}],
            "current-context": "fenced",
        }
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
        os.replace(tmp, p)
        return p

    # ------------------------------------------------------------ fence

    def _valid(self) -> bool:
        try:
            return bool(self._is_valid())
        except Exception:  # noqa: BLE001 - fail closed: an unknown answer is not "valid"
            log.exception("fencing proxy: is_valid() failed; treating leadership as invalid")
            return False

    def _refuse(self, h: _Handler, what: str) -> None:
        with self._lock:
            self._refused += 1
        log.warning("fenced: refused %s (%s)", what, "leadership is not valid")
        if self._on_refused is not None:
            try:
                self._on_refused(what)
            except Exception:  # noqa: BLE001 - a callback's bug must not break the proxy
                log.exception("fencing proxy: on_refused callback failed")
        self._answer(h, 503, "ServiceUnavailable", FENCED_MESSAGE)

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, f"_{counter}", getattr(self, f"_{counter}") + 1)

    def _watchdog(self) -> None:
        """Every `stream_check_interval` while requests are open: end watches once leadership
        is invalid, and drop upstream requests whose client went away (a killed module
        process must not leave a watch open on the API server)."""
        while not self._stopping.wait(self._interval):
            with self._lock:
                exchanges = list(self._exchanges)
            if not exchanges:
                continue
            if self.fence_reads and any(x.watch and not x.fenced for x in exchanges) and \
                    not self._valid():
                for x in exchanges:
                    if x.watch:
                        x.fenced = True
                        x.interrupt()
            for x in _clients_gone(exchanges):
                x.client_gone = True
                x.interrupt()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._clients.add(conn)
            else:
                self._clients.discard(conn)

    # ------------------------------------------------------------ one request

    def _serve(self, h: _Handler) -> None:
        what = f"{h.command} {h.path}"
        try:
            body = self._read_body(h)
        except _ClientError as e:
            h.close_connection = True
            self._answer(h, e.code, "BadRequest", str(e))
            return
        if h.headers.get("Upgrade"):
            self._answer(h, 501, "NotImplemented",
                         "connection upgrades (exec, attach, port-forward) are not supported "
                         "through the fencing proxy")
            return
        if self._require_token and not self._authorized(h.headers.get("Authorization", "")):
            self._answer(h, 401, "Unauthorized",
                         "the fencing proxy accepts only the token of the kubeconfig it wrote")
            return
        headers = self._upstream_headers(h)
        exchange = _Exchange(self, what, h.connection, _is_watch(h.path))
        with self._lock:
            self._exchanges.add(exchange)
        try:
            _current.exchange = exchange
            try:
                resp = self._pool.urlopen(
                    h.command, self._upstream + h.path, body=body, headers=headers,
                    retries=self._retries, redirect=False, timeout=self._timeout,
                    preload_content=False, decode_content=False)
            except _Fenced:
                self._refuse(h, what)
                return
            except Exception as e:  # noqa: BLE001 - any upstream failure is the client's 502
                if exchange.client_gone:
                    h.close_connection = True
                elif exchange.fenced:  # a watch cut before its answer began
                    self._answer(h, 503, "ServiceUnavailable", FENCED_MESSAGE)
                else:
                    reason = getattr(e, "reason", None) or e
                    log.warning("fencing proxy: %s failed upstream: %s", what, reason)
                    self._answer(h, 502, "BadGateway", f"the Kubernetes API at "
                                 f"{self._upstream} is unreachable: {reason}")
                return
            finally:
                _current.exchange = None
            self._relay(h, resp, exchange)
        finally:
            with self._lock:
                self._exchanges.discard(exchange)

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        token = token.strip()
        with self._lock:
            tokens = list(self._tokens)
        return any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens)

    def _read_body(self, h: _Handler) -> bytes | None:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                line = h.rfile.readline(65537)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _ClientError(400, "malformed chunked request body") from None
                if size == 0:
                    while h.rfile.readline(65537).strip():  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self._read_exact(h, size))
                h.rfile.readline(3)
        length = h.headers.get("Content-Length")
        if length is None:
            return None
        try:
            n = int(length)
        except ValueError:
            raise _ClientError(400, f"invalid Content-Length {length!r}") from None
        if n < 0:
            raise _ClientError(400, f"invalid Content-Length {length!r}")
        return self._read_exact(h, n)

    @staticmethod
    def _read_exact(h: _Handler, n: int) -> bytes:
        data = h.rfile.read(n)
        if len(data) != n:
            raise _ClientError(400, "the request body ended early")
        return data

    def _upstream_headers(self, h: _Handler) -> urllib3.HTTPHeaderDict:
        named_hop = {v.strip().lower() for v in h.headers.get("Connection", "").split(",")}
        out = urllib3.HTTPHeaderDict()
        for key, value in h.headers.items():  # repeated headers stay separate lines
            low = key.lower()
            if low not in _NOT_FORWARDED and low not in named_hop:
                out.add(key, value)
        # the operator's credentials; the call refreshes an expiring (exec, in-cluster) token
        auth = self._cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        if auth:
            out["Authorization"] = auth
        return out

    # ------------------------------------------------------------ answers

    def _answer(self, h: _Handler, code: int, reason: str, message: str) -> None:
        """Answer with a Status (one write: headers and body in one segment)."""
        body = _status_body(code, reason, message)
        h.log_request(code)
        head = [f"{h.protocol_version} {code} {h.responses.get(code, ('',))[0]}".rstrip(),
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        if h.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        try:
            h.wfile.write(data if h.command == "HEAD" else data + body)
        except OSError:
            h.close_connection = True

    def _relay(self, h: _Handler, resp: Any, x: _Exchange) -> None:
        """Send the upstream answer to the client as it arrives; end a watch once
        leadership is invalid."""
        status = resp.status
        bodyless = h.command == "HEAD" or status in _BODYLESS_STATUS or status < 200
        length = resp.headers.get("Content-Length")
        sized = length is not None and not resp.chunked
        chunked_out = not bodyless and not sized and h.request_version == "HTTP/1.1"
        if not bodyless and not sized and not chunked_out:
            h.close_connection = True  # HTTP/1.0 client: the end of the body is the close
        head = [f"{h.protocol_version} {status} {resp.reason or ''}".rstrip()]
        head += [f"{k}: {v}" for k, v in resp.headers.items() if k.lower() not in _NOT_RETURNED]
        if sized:
            head.append(f"Content-Length: {length}")
        elif chunked_out:
            head.append("Transfer-Encoding: chunked")
        if h.close_connection:
            head.append("Connection: close")
        pending = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        complete = False
        try:
            if bodyless or not sized:  # a stream's headers go out at once, events may wait
                h.wfile.write(pending)
                pending = b""
            if bodyless:
                complete = True
                return
            chunks = self._body(resp)
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    complete = True
                    break
                except Exception:  # noqa: BLE001 - upstream broke, or the watchdog cut it
                    break
                if x.watch and (x.fenced or (self.fence_reads and not self._valid())):
                    x.fenced = True
                    break
                if chunk:  # a sized body's first part goes out with the headers
                    h.wfile.write(pending + (b"%x\r\n%b\r\n" % (len(chunk), chunk)
                                             if chunked_out else chunk))
                    pending = b""
            if pending:
                h.wfile.write(pending)
            if x.client_gone:
                h.close_connection = True
            elif x.fenced:
                log.info("fenced: ended watch %s", x.what)
                if chunked_out:
                    h.wfile.write(b"0\r\n\r\n")  # end the watch as a server timeout would
                else:
                    h.close_connection = True
            elif complete:
                if chunked_out:
                    h.wfile.write(b"0\r\n\r\n")
            else:  # upstream failed mid-body: only a close tells the client
                log.warning("fencing proxy: upstream answer to %s broke off", x.what)
                h.close_connection = True
        except OSError:  # the client went away
            h.close_connection = True
        finally:
            if complete and not x.fenced:
                resp.release_conn()  # keep-alive: the connection goes back to the pool
            else:
                resp.close()
                resp.release_conn()

    @staticmethod
    def _body(resp: Any) -> Iterator[bytes]:
        if resp.chunked:
            yield from resp.read_chunked(decode_content=False)
            return
        while True:
            data = resp.read1(_CHUNK, decode_content=False)
            if not data:
                return
            yield data
