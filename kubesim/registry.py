"""Resource types the emulator serves: built-ins, and the ones CRDs register.

Each type carries the traits the real API server attaches to its storage strategy
(status isolation, generation, create-on-update, unconditional update, what DELETE
returns) so that the request handlers stay generic.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    has_status: bool = False  # a /status subresource isolates .status
    has_scale: bool = False
    scale_spec_path: str = ".spec.replicas"
    scale_status_path: str = ".status.replicas"
    scale_label_selector_path: str = ""
    has_generation: bool = False  # metadata.generation is kept
    allow_create_on_update: bool = False  # PUT on an absent object creates it
    allow_unconditional_update: bool = True  # PUT without resourceVersion is allowed
    return_deleted_object: bool = False  # DELETE answers with the object, not a Status
    custom: bool = False  # served from a CRD
    crd_name: str = ""
    field_selectors: tuple[str, ...] = ()  # beyond metadata.name / metadata.namespace
    schema: dict[str, Any] | None = None  # openAPIV3Schema for CRs
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    # Strategic-merge patch is accepted for built-in types only.
    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def qualified(self) -> str:
        """`configmaps`, `leases.coordination.k8s.io`: the name used in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def strategic_merge(self) -> bool:
        return not self.custom

    def supported_field_selectors(self) -> set[str]:
        # Namespace and Node have their own field label conversions without
        # metadata.namespace (pkg/apis/core/v1/conversion.go), and so do cluster-scoped CRs
        # (apiextensions-apiserver crConverter); other types use the metav1 default.
        if (self.custom and not self.namespaced) or \
                (self.group == "" and self.kind in ("Namespace", "Node")):
            return {"metadata.name", *self.field_selectors}
        return {"metadata.name", "metadata.namespace", *self.field_selectors}


def _builtins() -> list[ResourceType]:
    rt = ResourceType
    return [
        rt("", "v1", "Namespace", "namespaces", False, short_names=["ns"], has_status=True,
           verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
           field_selectors=("status.phase",)),
        rt("", "v1", "ConfigMap", "configmaps", True, short_names=["cm"]),
        rt("", "v1", "Secret", "secrets", True, field_selectors=("type",)),
        rt("", "v1", "Service", "services", True, short_names=["svc"], has_status=True,
           categories=["all"]),
        rt("", "v1", "ServiceAccount", "serviceaccounts", True, short_names=["sa"]),
        rt("", "v1", "Pod", "pods", True, short_names=["po"], has_status=True,
           return_deleted_object=True, categories=["all"],
           field_selectors=("status.phase", "spec.nodeName", "spec.serviceAccountName",
                            "status.podIP", "spec.restartPolicy", "spec.schedulerName")),
        rt("", "v1", "Node", "nodes", False, short_names=["no"], has_status=True,
           field_selectors=("spec.unschedulable",)),
        rt("", "v1", "Event", "events", True, short_names=["ev"],
           field_selectors=("involvedObject.kind", "involvedObject.namespace",
                            "involvedObject.name", "involvedObject.uid",
                            "involvedObject.apiVersion", "involvedObject.resourceVersion",
                            "involvedObject.fieldPath", "reason", "reportingComponent",
                            "source", "type")),
        rt("coordination.k8s.io", "v1", "Lease", "leases", True,
           allow_create_on_update=True, allow_unconditional_update=False),
        rt("apps", "v1", "Deployment", "deployments", True, short_names=["deploy"],
           has_status=True, has_scale=True, has_generation=True, categories=["all"],
           scale_label_selector_path=".status.selector"),
        rt("apps", "v1", "ReplicaSet", "replicasets", True, short_names=["rs"],
           has_status=True, has_scale=True, has_generation=True, categories=["all"]),
        rt("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
           "customresourcedefinitions", False, short_names=["crd", "crds"],
           has_status=True, has_generation=True),
        rt("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
        rt("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
        rt("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
        rt("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ]


# Group order as a real server reports it in /apis (legacy core group is separate).
GROUP_ORDER = ["apps", "coordination.k8s.io", "apiextensions.k8s.io", "rbac.authorization.k8s.io"]


class Registry:
    """The set of served types. CRDs add and remove entries at run time."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for t in _builtins():
            self.add(t)

    def add(self, t: ResourceType) -> None:
        with self._lock:
            self._types[(t.group, t.version, t.plural)] = t

    def remove_crd(self, crd_name: str) -> None:
        with self._lock:
            for key in [k for k, t in self._types.items() if t.crd_name == crd_name]:
                del self._types[key]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._types.get((group, version, plural))

    def by_key(self, group: str, plural: str) -> ResourceType | None:
        """Any served version of the resource stored under (group, plural)."""
        with self._lock:
            for t in self._types.values():
                if t.group == group and t.plural == plural:
                    return t
            return None

    def by_kind(self, group: str, kind: str) -> list[ResourceType]:
        with self._lock:
            return [t for t in self._types.values() if t.group == group and t.kind == kind]

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> served versions, in a stable order (core group excluded)."""
        with self._lock:
            out: dict[str, list[str]] = {}
            for t in self._types.values():
                if t.group:
                    versions = out.setdefault(t.group, [])
                    if t.version not in versions:
                        versions.append(t.version)
        order = {g: i for i, g in enumerate(GROUP_ORDER)}
        return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        with self._lock:
            return sorted((t for t in self._types.values()
                           if t.group == group and t.version == version), key=lambda t: t.plural)
