# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Kubernetes connection for the election engine, shared by the modules and the runtime.

No Ansible imports here: the runtime (election-operator) uses this module in-process.

- `AUTH_ARG_SPEC`: the authentication options of kubernetes.core, with the same names and
  aliases; the module wrappers add it to their argument spec. The `K8S_AUTH_*` environment
  fallbacks are applied by `resolve_auth`, so modules and runtime read the environment the
  same way kubernetes.core does.
- `make_api_client`: a `kubernetes.client.ApiClient` built from those options, with a private
  `Configuration` (the client library's global default is never touched), in-cluster
  configuration when running in a Pod, and no hidden retries (the election decides when to
  try again).
- `in_cluster_namespace`, `default_identity`: what a Pod knows about itself.
- `describe_error`: one message a user can act on, from an API or connection error.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ansible_collections.election.kubernetes.plugins.module_utils import options

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Same option names, aliases and secrecy as kubernetes.core's AUTH_ARG_SPEC; the string and
# path options refuse a list or a mapping (options.string / options.path).
AUTH_ARG_SPEC: dict[str, dict[str, Any]] = {
    "kubeconfig": {"type": "raw", "no_log": True},
    "context": {"type": options.string},
    "host": {"type": options.string},
    "api_key": {"type": options.string, "no_log": True},
    "username": {"type": options.string},
    "password": {"type": options.string, "no_log": True},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"]},
    "ca_cert": {"type": options.path, "aliases": ["ssl_ca_cert"]},
    "client_cert": {"type": options.path, "aliases": ["cert_file"]},
    "client_key": {"type": options.path, "aliases": ["key_file"]},
    "proxy": {"type": options.string},
    "no_proxy": {"type": options.string},
    "impersonate_user": {"type": options.string},
    "impersonate_groups": {"type": "list", "elements": options.string},
}

_BOOL_FALSE = ("0", "false", "no", "off")


class KubeConfigError(Exception):
    """The connection options do not lead to a usable cluster configuration."""


class LostRace(Exception):
    """Another writer changed the object first (409): not an error, just not the winner."""


class ApiFailure(Exception):
    """The API could not be reached or refused the request; the message says why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def permanent(self) -> bool:
        """Retrying cannot help: bad credentials, missing permission, invalid request."""
        return self.status in (400, 401, 403, 405, 415, 422)


def resolve_auth(params: dict[str, Any], environ: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    """The auth options with `K8S_AUTH_<OPTION>` environment fallbacks filled in."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, spec in AUTH_ARG_SPEC.items():
        value = params.get(name)
        if value is None:
            raw = env.get(f"K8S_AUTH_{name.upper()}")
            if raw is None:
                for alias in spec.get("aliases", []):
                    raw = env.get(f"K8S_AUTH_{alias.upper()}")
                    if raw is not None:
                        break
            if raw is not None:
                if spec.get("type") == "bool":
                    value = raw.lower() not in _BOOL_FALSE
                elif spec.get("type") == "list":
                    value = [x.strip() for x in raw.split(",") if x.strip()]
                else:
                    value = raw
        out[name] = value
    return out


def _kubeconfig_source(auth: dict[str, Any], environ: dict[str, str], from_option: bool
                       ) -> tuple[Any, str] | None:
    """The kubeconfig to load and where it came from (for messages), or None."""
    if auth.get("kubeconfig"):
        return auth["kubeconfig"], "option kubeconfig" if from_option else "K8S_AUTH_KUBECONFIG"
    env = environ.get("KUBECONFIG")
    if env:
        return env, "KUBECONFIG"
    default = os.path.expanduser("~/.kube/config")
    return (default, "the default ~/.kube/config") if os.path.exists(default) else None


def _check_kubeconfig(source: Any, origin: str, context: str | None) -> str:
    """Check the kubeconfig before loading it (a file of the path list exists; the context,
    when given, is one of its contexts) and return how messages name it."""
    from kubernetes import config

    if isinstance(source, dict):
        where = f"the kubeconfig mapping ({origin})"
        contexts = source.get("contexts")
        names = [c.get("name") for c in contexts if isinstance(c, dict)] \
            if isinstance(contexts, list) else []
    elif isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        paths = [os.path.expanduser(p) for p in text.split(os.pathsep) if p]
        if not any(os.path.isfile(p) for p in paths):
            also = (" (or the kubeconfig content as a mapping)" if origin == "option kubeconfig"
                    else "")
            raise KubeConfigError(f"kubeconfig {text} ({origin}) does not exist or is not a "
                                  f"file; expected the path of a kubeconfig file{also}")
        where = f"kubeconfig {text} ({origin})"
        try:
            names = [c.get("name") for c in config.list_kube_config_contexts(text)[0] or []]
        except Exception as e:  # noqa: BLE001 - ConfigException, YAML errors, odd content
            raise KubeConfigError(f"cannot load {where}: {_one_line(e)}") from None
    else:
        raise KubeConfigError(f"kubeconfig ({origin}) must be the path of a kubeconfig file or "
                              f"the kubeconfig content as a mapping, got "
                              f"{options.describe(source)}")
    if context and context not in names:
        raise KubeConfigError(f"context {context!r} is not in {where}; its contexts are: "
                              f"{', '.join(str(n) for n in names) or 'none'}")
    return where


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _check_url(name: str, value: str, schemes: tuple[str, ...], example: str) -> None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        ok = parts.scheme in schemes and bool(parts.hostname) and not any(
            c.isspace() for c in value)
    except ValueError:
        ok = False
    if not ok:
        raise KubeConfigError(f"{name} {value!r} is not a URL; expected "
                              f"{' or '.join(s + '://' for s in schemes)}HOST[:PORT], such as "
                              f"{example}")


def check_auth(auth: dict[str, Any]) -> None:
    """Refuse connection options that cannot work, before any request: a host or proxy that is
    not a URL, a certificate or key file that does not exist."""
    if auth.get("host"):
        _check_url("host", auth["host"], ("http", "https"), "https://10.0.0.1:6443")
    if auth.get("proxy"):
        _check_url("proxy", auth["proxy"], ("http", "https", "socks4", "socks4a", "socks5",
                                             "socks5h"), "http://proxy.example.com:3128")
    for opt in ("ca_cert", "client_cert", "client_key"):
        value = auth.get(opt)
        if value and not os.path.isfile(os.path.expanduser(str(value))):
            raise KubeConfigError(f"{opt} {value} does not exist or is not a file; expected "
                                  f"the path of a PEM file")


def in_cluster(environ: dict[str, str] | None = None, sa_dir: str = SA_DIR) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(
        os.path.join(sa_dir, "token"))


def make_configuration(params: dict[str, Any], environ: dict[str, str] | None = None
                       ) -> Any:
    """A private `kubernetes.client.Configuration` for these options.

    Order, as kubernetes.core: explicit host (with or without credentials), then a
    kubeconfig/context, then in-cluster, then $KUBECONFIG or ~/.kube/config.
    """
    from kubernetes import client, config

    env = dict(os.environ if environ is None else environ)
    auth = resolve_auth(params, env)
    check_auth(auth)
    cfg = client.Configuration()
    if auth.get("kubeconfig") or auth.get("context") or not auth.get("host"):
        if not (auth.get("kubeconfig") or auth.get("context")) and in_cluster(env):
            try:
                config.load_incluster_config(client_configuration=cfg)
            except config.ConfigException as e:
                raise KubeConfigError(f"cannot load the in-cluster configuration: "
                                      f"{_one_line(e)}") from None
        else:
            found = _kubeconfig_source(auth, env, params.get("kubeconfig") is not None)
            if found is None:
                raise KubeConfigError(
                    "no cluster configuration found: set the kubeconfig or host option "
                    "(or K8S_AUTH_KUBECONFIG / K8S_AUTH_HOST / KUBECONFIG), or run inside "
                    "a Pod with a service account")
            source, origin = found
            where = _check_kubeconfig(source, origin, auth.get("context"))
            try:
                if isinstance(source, dict):
                    config.load_kube_config_from_dict(source, context=auth.get("context"),
                                                      client_configuration=cfg,
                                                      persist_config=False)
                else:
                    config.load_kube_config(config_file=os.fspath(source),
                                            context=auth.get("context"),
                                            client_configuration=cfg, persist_config=False)
            except Exception as e:  # noqa: BLE001 - ConfigException, YAML errors, odd content
                filename = getattr(e, "filename", None)
                detail = f"{filename} not found" if isinstance(e, FileNotFoundError) \
                    else _one_line(e)
                raise KubeConfigError(f"cannot load {where}: {detail}") from None
    if auth.get("host"):
        cfg.host = auth["host"].rstrip("/")
    if auth.get("api_key"):
        cfg.api_key = {"authorization": f"Bearer {auth['api_key']}"}
    if auth.get("username"):
        cfg.username = auth["username"]
    if auth.get("password"):
        cfg.password = auth["password"]
    if auth.get("validate_certs") is not None:
        cfg.verify_ssl = bool(auth["validate_certs"])
    for opt, attr in (("ca_cert", "ssl_ca_cert"), ("client_cert", "cert_file"),
                      ("client_key", "key_file"), ("proxy", "proxy"), ("no_proxy", "no_proxy")):
        if auth.get(opt):
            setattr(cfg, attr, auth[opt])
    if cfg.username and cfg.password and not cfg.api_key:
        cfg.api_key = {"authorization": cfg.get_basic_auth_token()}
    cfg.retries = 0  # the caller decides when to try again
    return cfg, auth


def make_api_client(params: dict[str, Any], environ: dict[str, str] | None = None,
                    user_agent: str = "election.kubernetes") -> Any:
    """An ApiClient for the auth options (`params` may hold other keys too)."""
    from kubernetes import client

    cfg, auth = make_configuration(params, environ)
    api = client.ApiClient(cfg)
    api.user_agent = user_agent
    if auth.get("impersonate_user"):
        api.set_default_header("Impersonate-User", auth["impersonate_user"])
    for group in auth.get("impersonate_groups") or []:
        # the client keeps one value per header; several groups go comma-joined
        existing = api.default_headers.get("Impersonate-Group")
        api.set_default_header("Impersonate-Group",
                               f"{existing},{group}" if existing else group)
    return api


def in_cluster_namespace(sa_dir: str = SA_DIR) -> str | None:
    try:
        with open(os.path.join(sa_dir, "namespace"), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def default_identity(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("POD_NAME") or socket.gethostname()


# ---------------------------------------------------------------- errors

@dataclass
class Target:
    """What a request was about, for error messages: verb, resource, object, namespace."""

    verb: str
    resource: str  # plural, e.g. "leases"
    group: str = ""
    name: str = ""
    namespace: str = ""

    def describe(self) -> str:
        what = f"{self.resource}.{self.group}" if self.group else self.resource
        obj = f'{what} "{self.name}"' if self.name else what
        return f"{obj} in namespace {self.namespace}" if self.namespace else obj


def _status_message(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        return str(body).strip()
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return str(body).strip()


def describe_error(exc: BaseException, target: Target, host: str = "") -> str:
    """One sentence: what failed, on which object, and what the server (or network) said."""
    status = getattr(exc, "status", None)
    if status:  # kubernetes.client.ApiException
        said = _status_message(getattr(exc, "body", "") or getattr(exc, "reason", ""))
        action = f"cannot {target.verb} {target.describe()}"
        if status == 403:
            group = target.group or '""'
            where = f" in namespace {target.namespace}" if target.namespace else ""
            return (f"{action}: forbidden. The credentials lack the RBAC permission to "
                    f"{target.verb} {target.resource} (apiGroup {group}){where}; grant verb "
                    f"'{target.verb}' on resource '{target.resource}'. Server said: {said}")
        if status == 401:
            return f"{action}: the server rejected the credentials (401 Unauthorized): {said}"
        return f"{action}: {status} {getattr(exc, 'reason', '')}: {said}".replace("  ", " ")
    reason = _network_reason(exc)
    where = f" at {host}" if host else ""
    return f"cannot {target.verb} {target.describe()}: the Kubernetes API{where} is " \
           f"unreachable ({reason})"


def _network_reason(exc: BaseException) -> str:
    inner: BaseException | None = getattr(exc, "reason", None)
    if isinstance(inner, BaseException):
        exc = inner
    text = str(exc)
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return "request timed out"
    if "refused" in text.lower():
        return "connection refused"
    return f"{type(exc).__name__}: {text}"


def raw_call(api_client: Any, fn: Any, target: Target, timeout: float, *args: Any,
             missing_ok: bool = False, **kwargs: Any) -> dict[str, Any] | None:
    """Call a typed client method and return the raw JSON answer as a dict.

    Raw bodies keep server formats exact (MicroTime, unknown fields). 409 raises LostRace;
    404 returns None when `missing_ok`; any other failure raises ApiFailure with one
    message naming the verb, the object and what the server or network said.
    """
    from kubernetes.client.rest import ApiException

    try:
        resp = fn(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
    except ApiException as e:
        if e.status == 409:
            raise LostRace(_status_message(e.body or e.reason)) from None
        if e.status == 404 and missing_ok:
            return None
        raise ApiFailure(describe_error(e, target), e.status) from None
    except Exception as e:  # urllib3 connection errors, timeouts
        raise ApiFailure(describe_error(e, target, api_client.configuration.host)) from None
    return json.loads(resp.data)
