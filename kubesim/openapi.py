"""OpenAPI documents for kubectl: `/openapi/v3`, `/openapi/v3/<gv>`, `/openapi/v2`.

Nothing here validates anything: the documents exist so that kubectl 1.32 hands validation to the
server and computes its patches the way it would against a real cluster. What kubectl reads, and
how these documents answer it:

1. **Server-side or client-side validation** (`kubectl create/apply/replace`, `--validate=strict`
   by default). `Factory.Validator()` (kubectl `pkg/cmd/util/factory_client_access.go`) wraps the
   schema validator in `validation.paramVerifyingSchema` (kubectl `pkg/validation/schema.go`),
   which asks a `fallbackQueryParamVerifier` (cli-runtime `pkg/resource/
   fallback_query_param_verifier.go`) whether the object's GVK supports the `fieldValidation`
   query parameter:
   - primary, `queryParamVerifierV3` (cli-runtime `query_param_verifier_v3.go`): GET `/openapi/v3`
     (client-go `openapi/client.go`, JSON `{"paths": {"api/v1": {"serverRelativeURL": ...}}}`),
     then the group-version document at its `serverRelativeURL` (client-go
     `openapi/groupversion.go`, `Accept: application/json`, the `hash` query kept). It walks
     `paths`, takes the first **PATCH operation** whose operation-level
     `x-kubernetes-group-version-kind` (a single object) equals the GVK, and looks for a parameter
     *named* `fieldValidation` among that operation's own inline `parameters` (a `$ref` parameter
     or a path-level one is not seen). Found -> supported. GVK absent from a served document ->
     "unsupported" (final). Group-version missing from `/openapi/v3` -> for a CRD-backed kind it
     checks the Namespace PATCH operation of `api/v1` instead.
   - secondary, only when the primary fails with anything *but* "unsupported" (e.g. no
     `/openapi/v3`): `QueryParamVerifier` (cli-runtime `query_param_verifier.go`) does the same on
     the v2 document (`paths.*.patch` with the GVK extension, parameters inline or via
     `#/parameters/...`).
   Supported -> kubectl skips client-side schema validation and sends `?fieldValidation=Strict`
   (the server then rejects unknown/duplicate fields with 400). Unsupported -> kubectl validates
   client-side against the v2 models. Every PATCH operation emitted here, for every kind (built-in
   and CR, main resource and subresources), declares `dryRun`, `fieldManager`, `fieldValidation`
   (and `force`) inline, so kubectl always chooses server-side validation.

2. **Client-side `kubectl apply`** (kubectl `pkg/cmd/apply/patcher.go`, `Patcher.patchSimple`):
   - v3 first: the PATCH operation for the GVK must list
     `application/strategic-merge-patch+json` in `requestBody.content`; then it looks in
     `components.schemas` for a schema whose `x-kubernetes-group-version-kind` (a *list*) contains
     the GVK and builds the strategic merge patch from that schema's
     `x-kubernetes-patch-merge-key`/`-strategy` (`PatchMetaFromOpenAPIV3`).
   - else v2: `GetConsumes(gvk, "PATCH")` on the v2 paths; if SMP is consumed it looks up the
     model by the definitions' GVK extension (`PatchMetaFromOpenAPI`).
   - else the compiled-in Go types (`NewPatchMetaFromStruct`) for kinds kubectl knows, a JSON
     merge patch for the rest (CRs).
   We do not carry the real built-in schemas (with their merge keys), and a schema without them
   would make kubectl compute wrong patches or print "warning: error calculating patch from
   openapi v3 spec". So built-in schemas here deliberately carry **no** GVK extension: both
   OpenAPI lookups come back empty and kubectl uses its compiled-in Go types, which hold exactly
   the real patch metadata (observed: `$setElementOrder/containers` in the patch). Built-in
   PATCH operations do advertise SMP (as the real server does); CR PATCH operations advertise
   only json-patch, merge-patch and apply-patch, so kubectl sends a JSON merge patch for CRs
   (the server answers SMP on a CR with 415 anyway).
   CR schemas carry the GVK extension and the CRD's `openAPIV3Schema` (or a
   preserve-unknown-fields object), so `kubectl explain` works for CRs.

3. `kubectl apply --server-side`, `kubectl get`, `kubectl delete`, `kubectl patch`: no OpenAPI.
   `--server-side` sends `PATCH application/apply-patch+yaml?fieldManager=kubectl&force=...`
   with `fieldValidation=Strict` chosen by (1).

4. `/openapi/v2`: client-go `DiscoveryClient.OpenAPISchema()` asks for
   `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf` only and feeds the body
   to `proto.Unmarshal` without looking at the Content-Type, so JSON cannot satisfy it. kubectl
   1.32 reaches v2 in two places only: the verifier fallback of (1) when `/openapi/v3` is
   unusable (then `create` fails: "failed to download openapi: proto: cannot parse invalid
   wire-format data" for a JSON body), and the apply patch fallback of (2), where any error is
   ignored silently. With v3 served, v2 is never needed; `serve_openapi_v2` gives JSON to JSON
   clients and 406 (empty body, as kube-openapi) to protobuf-only ones.

Observed with kubectl v1.32.4 against a stub server using these documents (`-v=8` and a request
log), after the usual discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`):
- `create -f`: GET `/openapi/v3`, GET `/openapi/v3/api/v1?hash=...` (Accept
  `application/json`), POST `...?fieldManager=kubectl-create&fieldValidation=Strict`.
- `apply -f` (object exists): the two v3 GETs, GET the object, GET `/openapi/v2` (protobuf
  Accept; 404/406/JSON all tolerated), PATCH `application/strategic-merge-patch+json` with
  `$setElementOrder/containers` for a Deployment (compiled-in patch metadata) or
  `application/merge-patch+json` for a CR, `?fieldManager=kubectl-client-side-apply&
  fieldValidation=Strict`. A missing object is created by POST instead.
- `apply --server-side`: the two v3 GETs, PATCH `application/apply-patch+yaml`
  `?fieldManager=kubectl&fieldValidation=Strict&force=false`.
- `get`, `get -w`, `delete`: no OpenAPI (see `kubesim.table` for get's Accept header).
- `explain <cr>` works from the CR schema; `explain <built-in>` reports the GVK missing from the
  OpenAPI schema (built-in schemas are elided, see 2).

Document hashes: `/openapi/v3` gives each group-version a `serverRelativeURL` of
`/openapi/v3/<path>?hash=<SHA-512 of that document>` (uppercase hex, as kube-openapi does); the
hash changes when a CRD changes the document, which is what invalidates kubectl's HTTP cache
under `~/.kube/cache/http`. `serve_openapi_v3`/`serve_openapi_v2` return (status, headers, body)
for the server to write: `Etag`, `Cache-Control: public, immutable` on a matching `hash`, and a
301 to the current URL on a stale one (kube-openapi `handler3`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from kubesim.registry import Registry, ResourceType

K8S_VERSION = "v1.32.0"

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = _META + "ObjectMeta"
LIST_META = _META + "ListMeta"
PATCH = _META + "Patch"
DELETE_OPTIONS = _META + "DeleteOptions"
STATUS = _META + "Status"
WATCH_EVENT = _META + "WatchEvent"
SCALE = "io.k8s.api.autoscaling.v1.Scale"

# Built-in groups as they appear in definition names (io.k8s.api.<pkg>.<version>.<Kind>).
_BUILTIN_PACKAGES = {
    "": "io.k8s.api.core", "apps": "io.k8s.api.apps", "coordination.k8s.io":
    "io.k8s.api.coordination", "rbac.authorization.k8s.io": "io.k8s.api.rbac",
    "autoscaling": "io.k8s.api.autoscaling", "batch": "io.k8s.api.batch",
    "apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
}

_PATCH_TYPES_CR = ["application/apply-patch+yaml", "application/json-patch+json",
                   "application/merge-patch+json"]
_PATCH_TYPES_BUILTIN = _PATCH_TYPES_CR + ["application/strategic-merge-patch+json"]
_PRODUCES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]


# ---------------------------------------------------------------------------------------------
# Names


def schema_name(rt: ResourceType, kind: str | None = None) -> str:
    """The definition name of a kind: `io.k8s.api.core.v1.ConfigMap`, `com.example.v1.Widget`."""
    kind = kind or rt.kind
    if rt.custom or rt.group not in _BUILTIN_PACKAGES:
        reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "core"
        return f"{reversed_group}.{rt.version}.{kind}"
    return f"{_BUILTIN_PACKAGES[rt.group]}.{rt.version}.{kind}"


def _op_prefix(rt: ResourceType) -> str:
    """`CoreV1`, `AppsV1`, `CoordinationV1`, `RbacAuthorizationV1`, `StableExampleComV1`."""
    if not rt.group:
        group = "core"
    elif rt.group.endswith(".k8s.io") and not rt.custom:
        group = rt.group[: -len(".k8s.io")]
    else:
        group = rt.group
    words = [w for part in group.split(".") for w in part.split("-") if w]
    return "".join(w[:1].upper() + w[1:] for w in words) + rt.version[:1].upper() + rt.version[1:]


def _tag(rt: ResourceType) -> str:
    if not rt.group:
        return f"core_{rt.version}"
    group = rt.group.removesuffix(".k8s.io")
    return group.replace(".", "_").replace("-", "_") + "_" + rt.version


def _gv_path(group: str, version: str) -> str:
    """`api/v1` or `apis/apps/v1`: the key of a group-version in `/openapi/v3`."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


# ---------------------------------------------------------------------------------------------
# Parameters (inline, as kube-openapi writes them in v3)


def _param(name: str, where: str, description: str, typ: str = "string",
           required: bool = False, unique: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": typ}
    if unique:
        schema["uniqueItems"] = True
    p: dict[str, Any] = {"name": name, "in": where, "description": description, "schema": schema}
    if required:
        p["required"] = True
    return p


_P_PRETTY = _param("pretty", "query", "If 'true', then the output is pretty printed.")
_P_NAMESPACE = _param("namespace", "path", "object name and auth scope, such as for teams and "
                      "projects", required=True)
_P_DRY_RUN = _param("dryRun", "query", "When present, indicates that modifications should not be "
                    "persisted. Valid values are: - All: all dry run stages will be processed")
_P_FIELD_MANAGER = _param("fieldManager", "query", "fieldManager is a name associated with the "
                          "actor or entity that is making these changes.")
_P_FIELD_VALIDATION = _param(
    "fieldValidation", "query",
    "fieldValidation instructs the server on how to handle objects in the request containing "
    "unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict")
_P_FORCE = _param("force", "query", "Force is going to \"force\" Apply requests. It means user "
                  "will re-acquire conflicting fields owned by other people.", typ="boolean")
_LIST_PARAMS = [
    _param("allowWatchBookmarks", "query", "allowWatchBookmarks requests watch events with type "
           "\"BOOKMARK\".", typ="boolean"),
    _param("continue", "query", "The continue option should be set when retrieving more results "
           "from the server."),
    _param("fieldSelector", "query", "A selector to restrict the list of returned objects by "
           "their fields. Defaults to everything."),
    _param("labelSelector", "query", "A selector to restrict the list of returned objects by "
           "their labels. Defaults to everything."),
    _param("limit", "query", "limit is a maximum number of responses to return for a list call.",
           typ="integer"),
    _param("resourceVersion", "query", "resourceVersion sets a constraint on what resource "
           "versions a request may be served from."),
    _param("resourceVersionMatch", "query", "resourceVersionMatch determines how resourceVersion "
           "is applied to list calls."),
    _param("sendInitialEvents", "query", "`sendInitialEvents=true` may be set together with "
           "`watch=true`.", typ="boolean"),
    _param("timeoutSeconds", "query", "Timeout for the list/watch call.", typ="integer"),
    _param("watch", "query", "Watch for changes to the described resources and return them as a "
           "stream of add, update, and remove notifications.", typ="boolean"),
]
_DELETE_PARAMS = [
    _P_DRY_RUN,
    _param("gracePeriodSeconds", "query", "The duration in seconds before the object should be "
           "deleted.", typ="integer"),
    _param("orphanDependents", "query", "Deprecated: please use the PropagationPolicy.",
           typ="boolean"),
    _param("propagationPolicy", "query", "Whether and how garbage collection will be performed. "
           "Acceptable values are: 'Orphan', 'Background', 'Foreground'."),
]


def _name_param(kind: str) -> dict[str, Any]:
    return _param("name", "path", f"name of the {kind}", required=True)


# ---------------------------------------------------------------------------------------------
# Operations


def _ref3(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(name: str, types: list[str] | None = None) -> dict[str, Any]:
    return {t: {"schema": _ref3(name)} for t in (types or ["application/json", "application/yaml",
                                                             "application/vnd.kubernetes.protobuf"])}


def _responses(name: str, *codes: str) -> dict[str, Any]:
    text = {"200": "OK", "201": "Created", "202": "Accepted"}
    out: dict[str, Any] = {c: {"description": text[c], "content": _content(name)} for c in codes}
    out["401"] = {"description": "Unauthorized"}
    return out


def _operation(op_id: str, action: str, tag: str, gvk: dict[str, str], description: str,
               params: list[dict[str, Any]], responses: dict[str, Any],
               body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"tags": [tag], "description": description, "operationId": op_id}
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = body
    op["responses"] = responses
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = dict(gvk)
    return op


def _path_items(rt: ResourceType) -> dict[str, dict[str, Any]]:
    """Path items for one resource type, keyed by URL template."""
    prefix = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group}/{rt.version}"
    ns_part = "/namespaces/{namespace}" if rt.namespaced else ""
    scope = "Namespaced" if rt.namespaced else ""
    pre, tag, kind = _op_prefix(rt), _tag(rt), rt.kind
    gvk = _gvk(rt.group, rt.version, kind)
    obj, lst = schema_name(rt), schema_name(rt, rt.list_kind)
    verbs = set(rt.verbs)
    patch_types = _PATCH_TYPES_BUILTIN if rt.strategic_merge else _PATCH_TYPES_CR
    writes = [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION]
    base_params = [_P_NAMESPACE, _P_PRETTY] if rt.namespaced else [_P_PRETTY]
    item_params = [_name_param(kind), *base_params]
    paths: dict[str, dict[str, Any]] = {}

    coll: dict[str, Any] = {}
    if "list" in verbs:
        coll["get"] = _operation(f"list{pre}{scope}{kind}", "list", tag, gvk,
                                 f"list or watch objects of kind {kind}", _LIST_PARAMS,
                                 _responses(lst, "200"))
    if "create" in verbs:
        coll["post"] = _operation(f"create{pre}{scope}{kind}", "post", tag, gvk,
                                  f"create a {kind}", writes, _responses(obj, "200", "201", "202"),
                                  {"content": _content(obj, ["*/*"]), "required": True})
    if "deletecollection" in verbs:
        coll["delete"] = _operation(f"delete{pre}Collection{scope}{kind}", "deletecollection",
                                    tag, gvk, f"delete collection of {kind}",
                                    _LIST_PARAMS + _DELETE_PARAMS, _responses(STATUS, "200"),
                                    {"content": _content(DELETE_OPTIONS, ["*/*"])})
    if coll:
        paths[f"{prefix}{ns_part}/{rt.plural}"] = {**coll, "parameters": base_params}

    item: dict[str, Any] = {}
    if "get" in verbs:
        item["get"] = _operation(f"read{pre}{scope}{kind}", "get", tag, gvk,
                                 f"read the specified {kind}", [], _responses(obj, "200"))
    if "update" in verbs:
        item["put"] = _operation(f"replace{pre}{scope}{kind}", "put", tag, gvk,
                                 f"replace the specified {kind}", writes,
                                 _responses(obj, "200", "201"),
                                 {"content": _content(obj, ["*/*"]), "required": True})
    if "patch" in verbs:
        item["patch"] = _operation(f"patch{pre}{scope}{kind}", "patch", tag, gvk,
                                   f"partially update the specified {kind}", [*writes, _P_FORCE],
                                   _responses(obj, "200", "201"),
                                   {"content": _content(PATCH, patch_types), "required": True})
    if "delete" in verbs:
        deleted = obj if rt.return_deleted_object else STATUS
        item["delete"] = _operation(f"delete{pre}{scope}{kind}", "delete", tag, gvk,
                                    f"delete a {kind}", _DELETE_PARAMS,
                                    _responses(deleted, "200", "202"),
                                    {"content": _content(DELETE_OPTIONS, ["*/*"])})
    if item:
        paths[f"{prefix}{ns_part}/{rt.plural}/{{name}}"] = {**item, "parameters": item_params}

    if rt.namespaced and "list" in verbs:
        paths[f"{prefix}/{rt.plural}"] = {
            "get": _operation(f"list{pre}{kind}ForAllNamespaces", "list", tag, gvk,
                              f"list or watch objects of kind {kind}", _LIST_PARAMS,
                              _responses(lst, "200")),
            "parameters": [_P_PRETTY]}

    subresources = []
    if rt.has_status:
        subresources.append(("status", "Status", gvk, obj))
    if rt.has_scale:
        subresources.append(("scale", "Scale", _gvk("autoscaling", "v1", "Scale"), SCALE))
    for sub, title, sub_gvk, ref in subresources:
        what = f"{title.lower()} of the specified {kind}"
        paths[f"{prefix}{ns_part}/{rt.plural}/{{name}}/{sub}"] = {
            "get": _operation(f"read{pre}{scope}{kind}{title}", "get", tag, sub_gvk,
                              f"read {what}", [], _responses(ref, "200")),
            "put": _operation(f"replace{pre}{scope}{kind}{title}", "put", tag, sub_gvk,
                              f"replace {what}", writes, _responses(ref, "200", "201"),
                              {"content": _content(ref, ["*/*"]), "required": True}),
            "patch": _operation(f"patch{pre}{scope}{kind}{title}", "patch", tag, sub_gvk,
                                f"partially update {what}", [*writes, _P_FORCE],
                                _responses(ref, "200", "201"),
                                {"content": _content(PATCH, patch_types), "required": True}),
            "parameters": item_params,
        }
    return paths


# ---------------------------------------------------------------------------------------------
# Schemas (v3 form; `#/components/schemas/...` references)


def _str(description: str) -> dict[str, Any]:
    return {"description": description, "type": "string"}


_API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object.")
_KIND_DOC = "Kind is a string value representing the REST resource this object represents."


def _meta_schemas() -> dict[str, dict[str, Any]]:
    """The apimachinery types every document references (loose but well-formed)."""
    str_map = {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
    return {
        OBJECT_META: {
            "description": "ObjectMeta is metadata that all persisted resources must have.",
            "type": "object",
            "properties": {
                "name": _str("Name must be unique within a namespace."),
                "generateName": _str("GenerateName is an optional prefix used by the server "
                                     "to generate a unique name."),
                "namespace": _str("Namespace defines the space within which each name must be "
                                  "unique."),
                "uid": _str("UID is the unique in time and space value for this object."),
                "resourceVersion": _str("An opaque value that represents the internal version "
                                        "of this object."),
                "generation": {"description": "A sequence number representing a specific "
                               "generation of the desired state.", "type": "integer",
                               "format": "int64"},
                "creationTimestamp": {"description": "CreationTimestamp is a timestamp "
                                      "representing the server time when this object was "
                                      "created.", "type": "string", "format": "date-time"},
                "deletionTimestamp": {"description": "DeletionTimestamp is RFC 3339 date and "
                                      "time at which this resource will be deleted.",
                                      "type": "string", "format": "date-time"},
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
                "labels": {**str_map, "description": "Map of string keys and values that can "
                           "be used to organize and categorize objects."},
                "annotations": {**str_map, "description": "Annotations is an unstructured "
                                "key value map stored with a resource."},
                "finalizers": {"description": "Must be empty before the object is deleted "
                               "from the registry.", "type": "array",
                               "items": {"type": "string", "default": ""},
                               "x-kubernetes-list-type": "set",
                               "x-kubernetes-patch-strategy": "merge"},
                "ownerReferences": {"description": "List of objects depended by this object.",
                                    "type": "array",
                                    "items": {"type": "object",
                                              "x-kubernetes-preserve-unknown-fields": True},
                                    "x-kubernetes-list-map-keys": ["uid"],
                                    "x-kubernetes-list-type": "map",
                                    "x-kubernetes-patch-merge-key": "uid",
                                    "x-kubernetes-patch-strategy": "merge"},
                "managedFields": {"description": "ManagedFields maps workflow-id and version to "
                                  "the set of fields that are managed by that workflow.",
                                  "type": "array",
                                  "items": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True}},
                "selfLink": _str("Deprecated: selfLink is a legacy read-only field."),
            },
        },
        LIST_META: {
            "description": "ListMeta describes metadata that synthetic resources must have.",
            "type": "object",
            "properties": {
                "resourceVersion": _str("String that identifies the server's internal version "
                                        "of this object."),
                "continue": _str("continue may be set if the user set a limit on the number of "
                                 "items returned."),
                "remainingItemCount": {"type": "integer", "format": "int64"},
                "selfLink": _str("Deprecated: selfLink is a legacy read-only field."),
            },
        },
        PATCH: {"description": "Patch is provided to give a concrete name and type to the "
                "Kubernetes PATCH request body.", "type": "object"},
        DELETE_OPTIONS: {
            "description": "DeleteOptions may be provided when deleting an API object.",
            "type": "object",
            "properties": {
                "apiVersion": _str(_API_VERSION_DOC), "kind": _str(_KIND_DOC),
                "dryRun": {"type": "array", "items": {"type": "string", "default": ""}},
                "gracePeriodSeconds": {"type": "integer", "format": "int64"},
                "orphanDependents": {"type": "boolean"},
                "preconditions": {"type": "object", "properties": {
                    "resourceVersion": {"type": "string"}, "uid": {"type": "string"}}},
                "propagationPolicy": {"type": "string"},
            },
            "x-kubernetes-group-version-kind": [
                _gvk("", "v1", "DeleteOptions"), _gvk("apps", "v1", "DeleteOptions"),
                _gvk("coordination.k8s.io", "v1", "DeleteOptions"),
                _gvk("rbac.authorization.k8s.io", "v1", "DeleteOptions"),
                _gvk("apiextensions.k8s.io", "v1", "DeleteOptions"),
                _gvk("autoscaling", "v1", "DeleteOptions")],
        },
        STATUS: {
            "description": "Status is a return value for calls that don't return other objects.",
            "type": "object",
            "properties": {
                "apiVersion": _str(_API_VERSION_DOC), "kind": _str(_KIND_DOC),
                "code": {"type": "integer", "format": "int32"},
                "details": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "message": {"type": "string"},
                "metadata": {"allOf": [_ref3(LIST_META)], "default": {}},
                "reason": {"type": "string"},
                "status": {"type": "string"},
            },
            "x-kubernetes-group-version-kind": [_gvk("", "v1", "Status")],
        },
    }


def _object_properties(meta_ref: str) -> dict[str, Any]:
    return {"apiVersion": _str(_API_VERSION_DOC), "kind": _str(_KIND_DOC),
            "metadata": {"allOf": [{"$ref": meta_ref}], "default": {},
                         "description": "Standard object's metadata."}}


def _builtin_schema(rt: ResourceType, ref_prefix: str) -> dict[str, Any]:
    # No x-kubernetes-group-version-kind on purpose: see the module docstring, point 2.
    return {"description": f"{rt.kind} (schema elided by kubesim; the server validates).",
            "type": "object", "properties": _object_properties(ref_prefix + OBJECT_META),
            "x-kubernetes-preserve-unknown-fields": True}


def _custom_schema(rt: ResourceType, ref_prefix: str) -> dict[str, Any]:
    schema = copy.deepcopy(rt.schema) if rt.schema else {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema.setdefault("type", "object")
    props = schema.setdefault("properties", {})
    for key, value in _object_properties(ref_prefix + OBJECT_META).items():
        if key == "metadata" or key not in props:
            props[key] = value
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt.group, rt.version, rt.kind)]
    return schema


def _list_schema(rt: ResourceType, ref_prefix: str) -> dict[str, Any]:
    return {
        "description": f"{rt.list_kind} is a list of {rt.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": _str(_API_VERSION_DOC), "kind": _str(_KIND_DOC),
            "items": {"type": "array", "items": {"$ref": ref_prefix + schema_name(rt)}},
            "metadata": {"allOf": [{"$ref": ref_prefix + LIST_META}], "default": {}},
        },
        "x-kubernetes-group-version-kind": [_gvk(rt.group, rt.version, rt.list_kind)],
    }


def _scale_schema(ref_prefix: str) -> dict[str, Any]:
    return {
        "description": "Scale represents a scaling request for a resource.",
        "type": "object",
        "properties": {
            **_object_properties(ref_prefix + OBJECT_META),
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "format": "int32"}}},
            "status": {"type": "object", "properties": {
                "replicas": {"type": "integer", "format": "int32", "default": 0},
                "selector": {"type": "string"}}},
        },
        "x-kubernetes-group-version-kind": [_gvk("autoscaling", "v1", "Scale")],
    }


def _schemas(types: list[ResourceType], ref_prefix: str) -> dict[str, Any]:
    schemas = _meta_schemas()
    for rt in types:
        schemas[schema_name(rt)] = (_custom_schema(rt, ref_prefix) if rt.custom
                                    else _builtin_schema(rt, ref_prefix))
        schemas[schema_name(rt, rt.list_kind)] = _list_schema(rt, ref_prefix)
        if rt.has_scale:
            schemas[SCALE] = _scale_schema(ref_prefix)
    if ref_prefix != "#/components/schemas/":
        schemas = {k: _rewrite_refs(v, "#/components/schemas/", ref_prefix)
                   for k, v in schemas.items()}
    return dict(sorted(schemas.items()))


def _rewrite_refs(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {k: (new + v[len(old):] if k == "$ref" and isinstance(v, str) and v.startswith(old)
                    else _rewrite_refs(v, old, new)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v, old, new) for v in node]
    return node


# ---------------------------------------------------------------------------------------------
# v3


def openapi_v3_group_version(registry: Registry, group: str, version: str) -> dict | None:
    """The OpenAPI 3.0 document for one group-version (`GET /openapi/v3/api/v1`,
    `/openapi/v3/apis/{group}/{version}`); None when nothing is served there (-> 404)."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Any] = {}
    for rt in types:
        paths.update(_path_items(rt))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": K8S_VERSION},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": _schemas(types, "#/components/schemas/")},
    }


def _group_versions(registry: Registry) -> list[tuple[str, str]]:
    gvs: list[tuple[str, str]] = []
    core_versions = sorted({rt.version for rt in registry.all() if not rt.group})
    gvs += [("", v) for v in core_versions]
    for group, versions in registry.group_versions().items():
        gvs += [(group, v) for v in versions]
    return gvs


def document_hash(doc: dict) -> str:
    """kube-openapi's etag/hash of a document: uppercase hex SHA-512 of its JSON bytes."""
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha512(data).hexdigest().upper()


def openapi_v3_discovery(registry: Registry) -> dict:
    """`GET /openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=H"},
    "apis/apps/v1": {...}, ...}}` for every served group-version (CR ones included)."""
    paths: dict[str, Any] = {}
    for group, version in _group_versions(registry):
        doc = openapi_v3_group_version(registry, group, version)
        if doc is None:
            continue
        key = _gv_path(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={document_hash(doc)}"}
    return {"paths": paths}


def openapi_v3_etag(doc: dict) -> str:
    """The quoted ETag to send with a v3 group-version document."""
    return f'"{document_hash(doc)}"'


def serve_openapi_v3(registry: Registry, path: str,
                     requested_hash: str | None) -> tuple[int, dict[str, str], dict | None]:
    """Everything a server needs for `GET /openapi/v3[/...]`: (status, headers, JSON body).

    `path` is the URL path without the query; `requested_hash` the `hash` query value, if any.
    - `/openapi/v3` -> 200 with the discovery document.
    - a served group-version -> 200 with its document and `Etag`; when `hash` is given and
      matches, also `Cache-Control: public, immutable`; when it is stale (a CRD changed the
      document since the client read the discovery), 301 to the current `?hash=` URL, as
      kube-openapi's handler3 does.
    - anything else -> 404 (the body is None: send a NotFound Status).
    """
    if path.rstrip("/") == "/openapi/v3":
        return 200, {}, openapi_v3_discovery(registry)
    gv = parse_v3_path(path)
    doc = openapi_v3_group_version(registry, *gv) if gv else None
    if doc is None:
        return 404, {}, None
    digest = document_hash(doc)
    if requested_hash:
        if requested_hash != digest:
            return 301, {"Location": f"{path}?hash={digest}"}, None
        return 200, {"Etag": f'"{digest}"', "Vary": "Accept",
                     "Cache-Control": "public, immutable"}, doc
    return 200, {"Etag": f'"{digest}"'}, doc


def parse_v3_path(path: str) -> tuple[str, str] | None:
    """`/openapi/v3/api/v1` -> ("", "v1"); `/openapi/v3/apis/apps/v1` -> ("apps", "v1");
    anything else -> None. (Query string must already be stripped.)"""
    parts = path.strip("/").split("/")
    if parts[:2] != ["openapi", "v3"]:
        return None
    rest = parts[2:]
    if len(rest) == 2 and rest[0] == "api":
        return "", rest[1]
    if len(rest) == 3 and rest[0] == "apis":
        return rest[1], rest[2]
    return None


# ---------------------------------------------------------------------------------------------
# v2

# Keys of an OpenAPI v3 schema that Swagger 2.0 has no place for; the real server drops them when
# it publishes CRD schemas in v2 (apiextensions-apiserver `controller/openapi/v2` conversion).
_V2_DROP = {"nullable", "oneOf", "anyOf", "not", "x-kubernetes-int-or-string"}


def _to_v2_schema(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in _V2_DROP:
                continue
            if k == "properties" and isinstance(v, dict):
                out[k] = {name: _to_v2_schema(s) for name, s in v.items()}
            else:
                out[k] = _to_v2_schema(v)
        if node.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
        return out
    if isinstance(node, list):
        return [_to_v2_schema(v) for v in node]
    return node


def _v2_operation(op3: dict[str, Any], method: str, rt: ResourceType) -> dict[str, Any]:
    op: dict[str, Any] = {"description": op3["description"], "operationId": op3["operationId"],
                          "tags": op3["tags"]}
    if method == "patch":
        op["consumes"] = list(op3["requestBody"]["content"])
    elif "requestBody" in op3:
        op["consumes"] = ["*/*"]
    op["produces"] = list(_PRODUCES)
    op["schemes"] = ["https"]
    params = [_v2_param(p) for p in op3.get("parameters", [])]
    if "requestBody" in op3:
        ref = next(iter(op3["requestBody"]["content"].values()))["schema"]["$ref"]
        body = {"name": "body", "in": "body", "schema": _rewrite_refs(
            {"$ref": ref}, "#/components/schemas/", "#/definitions/")}
        if op3["requestBody"].get("required"):
            body["required"] = True
        params.insert(0, body)
    if params:
        op["parameters"] = params
    responses = {}
    for code, resp in op3["responses"].items():
        r: dict[str, Any] = {"description": resp["description"]}
        if "content" in resp:
            ref = next(iter(resp["content"].values()))["schema"]["$ref"]
            r["schema"] = {"$ref": ref.replace("#/components/schemas/", "#/definitions/")}
        responses[code] = r
    op["responses"] = responses
    op["x-kubernetes-action"] = op3["x-kubernetes-action"]
    op["x-kubernetes-group-version-kind"] = op3["x-kubernetes-group-version-kind"]
    return op


def _v2_param(p3: dict[str, Any]) -> dict[str, Any]:
    p = {"name": p3["name"], "in": p3["in"], "description": p3.get("description", ""),
         "type": p3["schema"]["type"]}
    if p3["schema"].get("uniqueItems"):
        p["uniqueItems"] = True
    if p3.get("required"):
        p["required"] = True
    return p


def openapi_v2(registry: Registry) -> dict:
    """`GET /openapi/v2` as a Swagger 2.0 JSON document covering every served type.

    Serve it for `Accept: application/json` (or no Accept). kubectl asks for protobuf only
    (see the module docstring, point 4); answer that with 406.
    """
    paths: dict[str, Any] = {}
    types = sorted(registry.all(), key=lambda t: (t.group, t.version, t.plural))
    for rt in types:
        for url, item3 in _path_items(rt).items():
            item: dict[str, Any] = {}
            for method, op3 in item3.items():
                if method == "parameters":
                    item["parameters"] = [_v2_param(p) for p in op3]
                else:
                    item[method] = _v2_operation(op3, method, rt)
            paths[url] = item
    definitions = {name: _to_v2_schema(s)
                   for name, s in _schemas(types, "#/definitions/").items()}
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": K8S_VERSION},
        "paths": dict(sorted(paths.items())),
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication",
                                                "type": "apiKey", "name": "authorization",
                                                "in": "header"}},
        "security": [{"BearerToken": []}],
    }


V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def serve_openapi_v2(registry: Registry,
                     accept_header: str | None) -> tuple[int, dict[str, str], dict | None]:
    """`GET /openapi/v2`: (200, headers, JSON document) when the client takes JSON, else
    (406, {}, None) with an empty body, as kube-openapi does for an unacceptable media type.
    kubectl's protobuf-only request thus fails cleanly; it only asks when v3 could not answer."""
    if not v2_accepts_json(accept_header):
        return 406, {}, None
    doc = openapi_v2(registry)
    return 200, {"Etag": f'"{document_hash(doc)}"'}, doc


def v2_accepts_json(accept_header: str | None) -> bool:
    """Whether a `/openapi/v2` request can take the JSON document: true for no Accept, `*/*`,
    `application/*` or `application/json` anywhere in the list; false for protobuf-only."""
    if not accept_header:
        return True
    for part in accept_header.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ("*/*", "application/*", "application/json"):
            return True
    return False
