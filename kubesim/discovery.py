"""Discovery documents: /version, /api, /api/v1, /apis, /apis/{g}, /apis/{g}/{v}."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .registry import Registry, ResourceType

KUBE_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-kubesim",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.23.4", "compiler": "gc", "platform": "linux/amd64"}


def version_priority(v: str) -> tuple[int, int, int]:
    """Kubernetes version order: GA > beta > alpha, then by numbers (v2 > v1)."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (-1, 0, 0)
    major = int(m.group(1))
    stage = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, major, minor)


def _gv(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(group)
    if not versions:
        return None
    ordered = sorted(versions, key=version_priority, reverse=True)
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group,
            "versions": [_gv(group, v) for v in ordered],
            "preferredVersion": _gv(group, ordered[0])}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = []
    for group in registry.group_versions():
        g = api_group(registry, group)
        if g is not None:
            groups.append({k: g[k] for k in ("name", "versions", "preferredVersion")})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entries(t: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
        "kind": t.kind, "verbs": list(t.verbs),
        "storageVersionHash": hashlib.sha256(f"{t.group_version}/{t.kind}".encode())
        .hexdigest()[:11],
    }
    if t.short_names:
        main["shortNames"] = list(t.short_names)
    if t.categories:
        main["categories"] = list(t.categories)
    out = [main]
    if t.has_status:
        out.append({"name": f"{t.plural}/status", "singularName": "",
                    "namespaced": t.namespaced, "kind": t.kind,
                    "verbs": ["get", "patch", "update"]})
    if t.has_scale:
        out.append({"name": f"{t.plural}/scale", "singularName": "",
                    "namespaced": t.namespaced, "group": "autoscaling", "version": "v1",
                    "kind": "Scale", "verbs": ["get", "patch", "update"]})
    return out


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources = [e for t in types for e in _resource_entries(t)]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}
