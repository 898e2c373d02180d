"""Server-side printing: `meta.k8s.io/v1` Table responses for `kubectl get`.

What kubectl 1.32 sends (kubectl `pkg/cmd/get/get.go`, `transformRequests`), for human-readable
output (default, `-o wide`, `--show-labels`, `-L`, `-w`):

    Accept: application/json;as=Table;v=v1;g=meta.k8s.io,
            application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json

plus `?includeObject=Object` when `--sort-by` is given. `-o yaml|json|name|jsonpath` asks for
plain `application/json`. The same header is sent on the initial GET/list and on the `watch=true`
request of `kubectl get -w`.

The server answers with a Table (apimachinery `pkg/apis/meta/v1/types.go` `Table`):

    {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
     "metadata": {"resourceVersion": ..., "continue": ...},
     "columnDefinitions": [{"name", "type", "format", "description", "priority"}, ...],
     "rows": [{"cells": [...], "object": {PartialObjectMetadata}}]}

`object` is shaped by `includeObject` (apiserver `endpoints/handlers/response.go`, `asTable`):
`Metadata` (default) -> `{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
"metadata": <the object's metadata>}`; `Object` -> the full object; `None` -> null.
kubectl uses the row object for `-A`'s NAMESPACE column, `--show-labels`, `-L` and `--sort-by`.

On a watch (`watchEmbeddedEncoder`), each event's object is a Table with that one row; only the
first event carries `columnDefinitions`, later ones have `"columnDefinitions": null`
(the encoder switches the options to NoHeaders after the first object). `metav1.Status` objects
(ERROR events) are passed through untransformed.

Columns follow the real printers: kube `pkg/printers/internalversion/printers.go` for built-ins
(a subset of their columns and status logic), the CRD's `additionalPrinterColumns` for custom
resources (apiextensions-apiserver `registry/customresource/tableconvertor`), with the default
single `Age` column when a CRD declares none, and the generic `Name`/`Created At` convertor
(apiserver `registry/rest/table.go`) for types with no printer (CRDs, Roles, ClusterRoles).
Ages are formatted like apimachinery `util/duration.HumanDuration` (`5s`, `3m12s`, `2d3h`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

from kubesim.registry import ResourceType

TABLE_GROUP = "meta.k8s.io"
INCLUDE_OBJECT_VALUES = ("Metadata", "None", "Object")


class TableError(ValueError):
    """A Table request the server must refuse with 400 BadRequest (message is `str(e)`)."""


# ---------------------------------------------------------------------------------------------
# Accept negotiation


def table_version(accept_header: str | None) -> str | None:
    """The Table apiVersion the client prefers (`meta.k8s.io/v1` or `meta.k8s.io/v1beta1`), or
    None when the first acceptable media type is a plain one (JSON, YAML, */*)."""
    if not accept_header:
        return None
    for part in accept_header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        params = {}
        for p in pieces[1:]:
            if "=" in p:
                k, v = p.split("=", 1)
                params[k.strip().lower()] = v.strip()
        if media not in ("application/json", "application/yaml", "*/*", "application/*"):
            continue
        if "as" not in params:
            return None
        if params["as"] == "Table" and params.get("g") == TABLE_GROUP and \
                params.get("v") in ("v1", "v1beta1"):
            return f"{TABLE_GROUP}/{params['v']}"
        # another conversion (PartialObjectMetadata...) or an unknown Table version: skip it
    return None


def wants_table(accept_header: str | None) -> bool:
    """True when the response should be a Table (kubectl get's Accept header)."""
    return table_version(accept_header) is not None


def check_include_object(value: str | None) -> str:
    """Validate the `includeObject` query value; return the effective one (default Metadata)."""
    if value in (None, ""):
        return "Metadata"
    if value not in INCLUDE_OBJECT_VALUES:
        supported = ", ".join(f'"{v}"' for v in INCLUDE_OBJECT_VALUES)
        raise TableError("Unable to convert to Table as requested: includeObject: Unsupported "
                         f'value: "{value}": supported values: {supported}')
    return value


# ---------------------------------------------------------------------------------------------
# Time


def human_duration(seconds: float) -> str:
    """apimachinery duration.HumanDuration."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    s = value.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d:\d\d)", s)
    if not m:
        return None
    frac = (m.group(2) or "")[:7].ljust(7, "0") if m.group(2) else ""
    try:
        return dt.datetime.fromisoformat(m.group(1).replace("t", "T") + frac + m.group(3))
    except ValueError:
        return None


def _since(value: Any, now: dt.datetime) -> str:
    """translateTimestampSince: `<unknown>` for a missing time."""
    t = _parse_time(value)
    if t is None:
        return "<unknown>"
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return human_duration((now - t).total_seconds())


def _rfc3339(value: Any) -> str:
    t = _parse_time(value)
    if t is None:
        return "0001-01-01T00:00:00Z"
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# JSONPath (the subset CRD printer columns use: .a.b, ['a'], [0], [*], .*, [?(@.k=="v")])

_JP_TOKEN = re.compile(r"""
      \.\.(?P<rec>[^.\[\]]+)
    | \.(?P<field>(?:\\.|[^.\[\]\\])+)
    | \[\s*'(?P<sq>[^']*)'\s*\]
    | \[\s*"(?P<dq>[^"]*)"\s*\]
    | \[\s*(?P<idx>-?\d+)\s*\]
    | \[\s*\*\s*\]
    | \[\s*\?\(\s*@(?P<fpath>(?:\.[^.\s=!<>)]+)+)\s*(?P<fop>==|!=)\s*
          (?:'(?P<fsq>[^']*)'|"(?P<fdq>[^"]*)"|(?P<fnum>-?[\d.]+|true|false))\s*\)\s*\]
    | \[\s*\?\(\s*@(?P<epath>(?:\.[^.\s)]+)+)\s*\)\s*\]
""", re.VERBOSE)


def compile_jsonpath(expr: str) -> Callable[[Any], list[Any]]:
    """Compile a simple JSONPath (with or without the surrounding `{}`) into
    `find(obj) -> [values]`. Missing keys give no result. Raises ValueError on syntax errors."""
    s = expr.strip()
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1].strip()
    s = s.removeprefix("$")
    steps: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(s):
        m = _JP_TOKEN.match(s, pos)
        if not m:
            raise ValueError(f"unrecognized JSONPath {expr!r} at {s[pos:]!r}")
        pos = m.end()
        g = m.groupdict()
        if g["rec"] is not None:
            steps.append(("recursive", g["rec"]))
        elif g["field"] is not None:
            name = g["field"].replace("\\.", ".")
            steps.append(("all", None) if name == "*" else ("field", name))
        elif g["sq"] is not None or g["dq"] is not None:
            steps.append(("field", g["sq"] if g["sq"] is not None else g["dq"]))
        elif g["idx"] is not None:
            steps.append(("index", int(g["idx"])))
        elif g["fpath"] is not None:
            raw = g["fsq"] if g["fsq"] is not None else g["fdq"]
            want: Any = raw
            if raw is None:
                num = g["fnum"]
                want = {"true": True, "false": False}.get(num)
                if want is None:
                    want = float(num) if "." in num else int(num)
            steps.append(("filter", (g["fpath"][1:].split("."), g["fop"], want)))
        elif g["epath"] is not None:
            steps.append(("exists", g["epath"][1:].split(".")))
        else:
            steps.append(("all", None))

    def find(obj: Any) -> list[Any]:
        current = [obj]
        for kind, arg in steps:
            nxt: list[Any] = []
            for v in current:
                nxt.extend(_jp_step(v, kind, arg))
            current = nxt
        return current
    return find


def _dig(v: Any, path: list[str]) -> tuple[bool, Any]:
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return False, None
        v = v[p]
    return True, v


def _jp_step(v: Any, kind: str, arg: Any) -> list[Any]:
    if kind == "field":
        return [v[arg]] if isinstance(v, dict) and arg in v else []
    if kind == "index":
        if isinstance(v, list) and -len(v) <= arg < len(v):
            return [v[arg]]
        return []
    if kind == "all":
        if isinstance(v, dict):
            return list(v.values())
        return list(v) if isinstance(v, list) else []
    if kind == "recursive":
        out: list[Any] = []
        stack = [v]
        while stack:
            cur = stack.pop(0)
            if isinstance(cur, dict):
                if arg in cur:
                    out.append(cur[arg])
                stack.extend(cur.values())
            elif isinstance(cur, list):
                stack.extend(cur)
        return out
    items = v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else []
    if kind == "exists":
        return [i for i in items if _dig(i, arg)[0]]
    path, op, want = arg
    out = []
    for item in items:
        found, got = _dig(item, path)
        if not found:
            continue
        equal = isinstance(got, bool) == isinstance(want, bool) and got == want
        if (op == "==") == equal:
            out.append(item)
    return out


def _jsonpath_text(value: Any) -> str:
    """client-go jsonpath PrintResults for one value: JSON for maps/lists, text otherwise."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------------------------
# Column definitions

_NAME_DOC = ("Name must be unique within a namespace. Is required when creating resources, "
             "although some resources may allow a client to request the generation of an "
             "appropriate name automatically.")
_AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this object was "
            "created. Clients may not set this value.")


def _col(name: str, typ: str = "string", description: str = "", priority: int = 0,
         fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": typ, "format": fmt, "description": description,
            "priority": priority}


_NAME = _col("Name", fmt="name", description=_NAME_DOC)
_AGE = _col("Age", description=_AGE_DOC)

Row = Callable[[dict[str, Any], dt.datetime], list[Any]]


def _g(obj: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(obj, dict) or p not in obj or obj[p] is None:
            return default
        obj = obj[p]
    return obj


def _name(o: dict[str, Any]) -> str:
    return _g(o, "metadata", "name", default="")


def _age(o: dict[str, Any], now: dt.datetime) -> str:
    return _since(_g(o, "metadata", "creationTimestamp"), now)


def _format_labels(sel: dict[str, str] | None) -> str:
    if not sel:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))


def _format_label_selector(sel: dict[str, Any] | None) -> str:
    """metav1.FormatLabelSelector."""
    if sel is None:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key", ""), e.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    text = ",".join(parts)
    return "<none>" if not text else text


def _containers(o: dict[str, Any]) -> tuple[str, str]:
    cs = _g(o, "spec", "template", "spec", "containers", default=[]) or []
    names = ",".join(c.get("name", "") for c in cs if isinstance(c, dict))
    images = ",".join(c.get("image", "") for c in cs if isinstance(c, dict))
    return names, images


def _namespace_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    return [_name(o), _g(o, "status", "phase", default=""), _age(o, now)]


def _configmap_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    n = len(o.get("data") or {}) + len(o.get("binaryData") or {})
    return [_name(o), n, _age(o, now)]


def _secret_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    return [_name(o), o.get("type") or "Opaque", len(o.get("data") or {}), _age(o, now)]


def _service_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    spec = o.get("spec") or {}
    typ = spec.get("type") or "ClusterIP"
    cluster_ip = spec.get("clusterIP") or "<none>"
    external_ips = spec.get("externalIPs") or []
    if typ == "ExternalName":
        external = spec.get("externalName") or "<none>"
    elif typ == "LoadBalancer":
        ingress = _g(o, "status", "loadBalancer", "ingress", default=[]) or []
        ips = [i.get("ip") or i.get("hostname") for i in ingress if isinstance(i, dict)]
        ips = [i for i in ips if i] + list(external_ips)
        external = ",".join(ips) if ips else "<pending>"
    else:
        external = ",".join(external_ips) if external_ips else "<none>"
    ports = []
    for p in spec.get("ports") or []:
        if not isinstance(p, dict):
            continue
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            ports.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            ports.append(f"{p.get('port')}/{proto}")
    return [_name(o), typ, cluster_ip, external, ",".join(ports) or "<none>", _age(o, now),
            _format_labels(spec.get("selector"))]


def _serviceaccount_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    return [_name(o), len(o.get("secrets") or []), _age(o, now)]


def _pod_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    total = len(spec.get("containers") or [])
    ready = restarts = 0
    last_restart: dt.datetime | None = None
    reason = status.get("reason") or status.get("phase") or "Pending"
    has_running = False
    for cs in reversed(status.get("containerStatuses") or []):
        if not isinstance(cs, dict):
            continue
        restarts += int(cs.get("restartCount") or 0)
        finished = _parse_time(_g(cs, "lastState", "terminated", "finishedAt"))
        if finished and (last_restart is None or finished > last_restart):
            last_restart = finished
        state = cs.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if isinstance(waiting, dict) and waiting.get("reason"):
            reason = waiting["reason"]
        elif isinstance(terminated, dict) and terminated.get("reason"):
            reason = terminated["reason"]
        elif isinstance(terminated, dict):
            if terminated.get("signal"):
                reason = f"Signal:{terminated['signal']}"
            else:
                reason = f"ExitCode:{terminated.get('exitCode', 0)}"
        elif cs.get("ready") and "running" in state:
            has_running = True
            ready += 1
    if reason == "Completed" and has_running:
        conditions = status.get("conditions") or []
        pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in conditions if isinstance(c, dict))
        reason = "Running" if pod_ready else "NotReady"
    if _g(o, "metadata", "deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({_since(last_restart.isoformat(), now)} ago)"
    gates = spec.get("readinessGates") or []
    if gates:
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []
                 if isinstance(c, dict)}
        true_gates = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
        gates_text = f"{true_gates}/{len(gates)}"
    else:
        gates_text = "<none>"
    return [_name(o), f"{ready}/{total}", reason, restarts_text, _age(o, now),
            status.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", gates_text]


def _node_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    conds = {c.get("type"): c.get("status") for c in _g(o, "status", "conditions", default=[])
             if isinstance(c, dict)}
    ready = conds.get("Ready")
    # printers.go printNode: Ready=True -> "Ready", any other status (False or Unknown, as the
    # node lifecycle controller sets it) -> "NotReady"; no Ready condition at all -> "Unknown"
    status = ["Unknown" if ready is None else "Ready" if ready == "True" else "NotReady"]
    if _g(o, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    labels = _g(o, "metadata", "labels", default={}) or {}
    roles = {k.split("/", 1)[1] for k in labels
             if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1]}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    addresses = {a.get("type"): a.get("address") for a in _g(o, "status", "addresses", default=[])
                 if isinstance(a, dict)}
    info = _g(o, "status", "nodeInfo", default={}) or {}
    return [_name(o), ",".join(status), ",".join(sorted(roles)) or "<none>", _age(o, now),
            info.get("kubeletVersion", ""), addresses.get("InternalIP") or "<none>",
            addresses.get("ExternalIP") or "<none>", info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or
            "<unknown>"]


def _event_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    first = o.get("firstTimestamp") or o.get("eventTime")
    last = o.get("lastTimestamp") or _g(o, "series", "lastObservedTime") or o.get("eventTime")
    inv = o.get("involvedObject") or {}
    source = _g(o, "source", "component") or o.get("reportingComponent") or ""
    host = _g(o, "source", "host")
    if host:
        source = f"{source}, {host}"
    count = o.get("count") or _g(o, "series", "count") or 1
    return [_since(last, now), o.get("type", ""), o.get("reason", ""),
            f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
            inv.get("fieldPath", ""), source, o.get("message", ""),
            _since(first, now), int(count), _name(o)]


def _lease_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    return [_name(o), _g(o, "spec", "holderIdentity", default=""), _age(o, now)]


def _deployment_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    desired = _g(o, "spec", "replicas", default=1)
    st = o.get("status") or {}
    names, images = _containers(o)
    return [_name(o), f"{int(st.get('readyReplicas') or 0)}/{int(desired)}",
            int(st.get("updatedReplicas") or 0), int(st.get("availableReplicas") or 0),
            _age(o, now), names, images, _format_label_selector(_g(o, "spec", "selector"))]


def _replicaset_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    st = o.get("status") or {}
    names, images = _containers(o)
    return [_name(o), int(_g(o, "spec", "replicas", default=1)), int(st.get("replicas") or 0),
            int(st.get("readyReplicas") or 0), _age(o, now), names, images,
            _format_label_selector(_g(o, "spec", "selector"))]


def _binding_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    ref = o.get("roleRef") or {}
    users, groups, sas = [], [], []
    for s in o.get("subjects") or []:
        if not isinstance(s, dict):
            continue
        kind = s.get("kind")
        if kind == "User":
            users.append(s.get("name", ""))
        elif kind == "Group":
            groups.append(s.get("name", ""))
        elif kind == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
    return [_name(o), f"{ref.get('kind', '')}/{ref.get('name', '')}", _age(o, now),
            ", ".join(users), ", ".join(groups), ", ".join(sas)]


def _default_row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
    return [_name(o), _rfc3339(_g(o, "metadata", "creationTimestamp"))]


_DEFAULT_COLUMNS = [_NAME, _col("Created At", "date", _AGE_DOC)]

# (group, kind) -> (columns, row function)
_PRINTERS: dict[tuple[str, str], tuple[list[dict[str, Any]], Row]] = {
    ("", "Namespace"): ([_NAME, _col("Status", description="The status of the namespace"),
                         _AGE], _namespace_row),
    ("", "ConfigMap"): ([_NAME, _col("Data", description="Number of data in configmap"), _AGE],
                        _configmap_row),
    ("", "Secret"): ([_NAME, _col("Type", description="The type of the secret"),
                      _col("Data", description="Number of data in the secret"), _AGE],
                     _secret_row),
    ("", "Service"): ([_NAME, _col("Type", description="The type of the service"),
                       _col("Cluster-IP", description="The cluster IP of the service"),
                       _col("External-IP", description="The external IPs of the service"),
                       _col("Port(s)", description="The ports of the service"), _AGE,
                       _col("Selector", priority=1, description="Route service traffic to "
                            "pods with label keys and values matching this selector.")],
                      _service_row),
    ("", "ServiceAccount"): ([_NAME, _col("Secrets", description="Secrets is the list of "
                                          "secrets allowed to be used by pods running using "
                                          "this ServiceAccount."), _AGE], _serviceaccount_row),
    ("", "Pod"): ([_NAME, _col("Ready", description="The aggregate readiness state of this pod "
                               "for accepting traffic."),
                   _col("Status", description="The aggregate status of the containers in this "
                        "pod."),
                   _col("Restarts", description="The number of times the containers in this "
                        "pod have been restarted and when the last container in this pod has "
                        "restarted."), _AGE,
                   _col("IP", priority=1, description="IP address allocated to the pod."),
                   _col("Node", priority=1, description="NodeName is the node the pod is "
                        "scheduled onto."),
                   _col("Nominated Node", priority=1, description="nominatedNodeName is set "
                        "when this pod preempts other pods on the node."),
                   _col("Readiness Gates", priority=1, description="If specified, all "
                        "readiness gates will be evaluated for pod readiness.")], _pod_row),
    ("", "Node"): ([_NAME, _col("Status", description="The status of the node"),
                    _col("Roles", description="The roles of the node"), _AGE,
                    _col("Version", description="Kubelet Version reported by the node."),
                    _col("Internal-IP", priority=1, description="List of addresses reachable "
                         "to the node."),
                    _col("External-IP", priority=1, description="List of addresses reachable "
                         "to the node."),
                    _col("OS-Image", priority=1, description="OS Image reported by the node."),
                    _col("Kernel-Version", priority=1, description="Kernel Version reported by "
                         "the node."),
                    _col("Container-Runtime", priority=1, description="Container Runtime "
                         "Version reported by the node.")], _node_row),
    ("", "Event"): ([_col("Last Seen", description="The last time this event was observed."),
                     _col("Type", description="Type of this event (Normal, Warning)."),
                     _col("Reason", description="Short, machine understandable string that "
                          "gives the reason for the transition into the object's current "
                          "status."),
                     _col("Object", description="The object that this event is about."),
                     _col("Subobject", priority=1, description="The sub-object of the "
                          "involved object."),
                     _col("Source", priority=1, description="The component reporting this "
                          "event."),
                     _col("Message", description="A human-readable description of the status "
                          "of this operation."),
                     _col("First Seen", priority=1, description="The time at which the event "
                          "was first recorded."),
                     _col("Count", priority=1, description="The number of times this event "
                          "has occurred."),
                     _col("Name", priority=1, fmt="name", description=_NAME_DOC)], _event_row),
    ("coordination.k8s.io", "Lease"): ([_NAME, _col("Holder", description="holderIdentity "
                                                    "contains the identity of the holder of a "
                                                    "current lease."), _AGE], _lease_row),
    ("apps", "Deployment"): ([_NAME, _col("Ready", description="Number of the pod with ready "
                                          "state"),
                              _col("Up-to-date", description="Total number of non-terminated "
                                   "pods targeted by this deployment that have the desired "
                                   "template spec."),
                              _col("Available", description="Total number of available pods "
                                   "(ready for at least minReadySeconds) targeted by this "
                                   "deployment."), _AGE,
                              _col("Containers", priority=1, description="Names of each "
                                   "container in the template."),
                              _col("Images", priority=1, description="Images referenced by "
                                   "each container in the template."),
                              _col("Selector", priority=1, description="Label selector for "
                                   "pods.")], _deployment_row),
    ("apps", "ReplicaSet"): ([_NAME, _col("Desired", "integer", "Replicas is the number of "
                                          "desired replicas."),
                              _col("Current", "integer", "Replicas is the most recently "
                                   "observed number of replicas."),
                              _col("Ready", "integer", "The number of ready replicas for this "
                                   "replica set."), _AGE,
                              _col("Containers", priority=1, description="Names of each "
                                   "container in the template."),
                              _col("Images", priority=1, description="Images referenced by "
                                   "each container in the template."),
                              _col("Selector", priority=1, description="Selector is a label "
                                   "query over pods that should match the replica count.")],
                             _replicaset_row),
}
_BINDING_COLUMNS = [_NAME, _col("Role", description="RoleRef references the role being "
                                "granted."), _AGE,
                    _col("Users", priority=1, description="Users in the binding"),
                    _col("Groups", priority=1, description="Groups in the binding"),
                    _col("ServiceAccounts", priority=1, description="ServiceAccounts in the "
                         "binding")]
_PRINTERS[("rbac.authorization.k8s.io", "RoleBinding")] = (_BINDING_COLUMNS, _binding_row)
_PRINTERS[("rbac.authorization.k8s.io", "ClusterRoleBinding")] = (_BINDING_COLUMNS, _binding_row)


# ---------------------------------------------------------------------------------------------
# Custom resources


def _cr_columns(rt: ResourceType) -> list[dict[str, Any]]:
    cols = rt.printer_columns or [{"name": "Age", "type": "date", "description": _AGE_DOC,
                                   "jsonPath": ".metadata.creationTimestamp"}]
    return cols


def _cell_for_json_value(typ: str, value: Any, now: dt.datetime) -> Any:
    if value is None:
        return None
    if typ == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value)
        return None
    if typ == "number":
        if isinstance(value, bool):
            return None
        return float(value) if isinstance(value, (int, float)) else None
    if typ == "boolean":
        return value if isinstance(value, bool) else None
    if typ == "string":
        return value if isinstance(value, str) else None
    if typ == "date":
        if not isinstance(value, str):
            return None
        if _parse_time(value) is None:
            return "<invalid>"
        return _since(value, now)
    return None


def _cr_table_parts(rt: ResourceType) -> tuple[list[dict[str, Any]], Row]:
    cols = _cr_columns(rt)
    defs = [_NAME]
    finders: list[tuple[str, Callable[[Any], list[Any]] | None]] = []
    for c in cols:
        path = c.get("jsonPath", c.get("JSONPath", ""))
        desc = c.get("description") or \
            f"Custom resource definition column (in JSONPath format): {path}"
        defs.append(_col(c.get("name", ""), c.get("type", "string"), desc,
                         int(c.get("priority") or 0), c.get("format") or ""))
        try:
            finders.append((c.get("type", "string"), compile_jsonpath(path)))
        except ValueError:
            finders.append((c.get("type", "string"), None))

    def row(o: dict[str, Any], now: dt.datetime) -> list[Any]:
        cells: list[Any] = [_name(o)]
        for typ, find in finders:
            results = find(o) if find else []
            if not results:
                cells.append(None)
            elif typ == "string":
                cells.append(_jsonpath_text(results[0]))
            else:
                cells.append(_cell_for_json_value(typ, results[0], now))
        return cells
    return defs, row


# ---------------------------------------------------------------------------------------------
# Tables


def table_parts(rt: ResourceType) -> tuple[list[dict[str, Any]], Row]:
    """(column definitions, row function) for a resource type."""
    if rt.custom:
        return _cr_table_parts(rt)
    return _PRINTERS.get((rt.group, rt.kind), (_DEFAULT_COLUMNS, _default_row))


def _row_object(rt: ResourceType, obj: dict[str, Any], include_object: str,
                api_version: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        full = dict(obj)
        full.setdefault("apiVersion", rt.api_version)
        full.setdefault("kind", rt.kind)
        return full
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version,
            "metadata": obj.get("metadata") or {}}


def to_table(rt: ResourceType, objects: list[dict], list_metadata: dict | None,
             now: dt.datetime, *, include_object: str = "Metadata", headers: bool = True,
             api_version: str = "meta.k8s.io/v1") -> dict:
    """A Table for `objects` (a list's items, or `[obj]` for a GET of one object).

    `list_metadata` is the list's metadata (`resourceVersion`, `continue`,
    `remainingItemCount`); for a single object pass `{"resourceVersion": <its RV>}`.
    `now` is the server's current time (aware, UTC) for the Age columns. `include_object` is the
    validated `includeObject` value (see `check_include_object`). `headers=False` gives
    `"columnDefinitions": null` (later watch events). `api_version` comes from `table_version`.
    """
    columns, row = table_parts(rt)
    meta: dict[str, Any] = {}
    for key in ("resourceVersion", "continue", "remainingItemCount"):
        value = (list_metadata or {}).get(key)
        if value not in (None, ""):
            meta[key] = value
    rows = [{"cells": row(o, now), "object": _row_object(rt, o, include_object, api_version)}
            for o in objects]
    return {"kind": "Table", "apiVersion": api_version, "metadata": meta,
            "columnDefinitions": [dict(c) for c in columns] if headers else None,
            "rows": rows}


def table_event_object(rt: ResourceType, obj: dict, now: dt.datetime, *, headers: bool = True,
                       include_object: str = "Metadata",
                       api_version: str = "meta.k8s.io/v1") -> dict:
    """The `object` of one watch event when the watch asked for a Table.

    A one-row Table with `metadata.resourceVersion` = the object's RV. Pass `headers=True` for
    the first event of the stream only (later events carry `"columnDefinitions": null`).
    `metav1.Status` objects (ERROR events) are returned unchanged.
    """
    if obj.get("kind") == "Status" and obj.get("apiVersion") == "v1":
        return obj
    rv = (obj.get("metadata") or {}).get("resourceVersion", "")
    return to_table(rt, [obj], {"resourceVersion": rv}, now, include_object=include_object,
                    headers=headers, api_version=api_version)
