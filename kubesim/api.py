"""What the API server does with a request, independent of HTTP.

One lock (the store's) covers each read-modify-write, so every write is linearisable and a
resourceVersion precondition is checked and committed atomically, as etcd's transactions do.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import errors, patch, rbac, schema
from .errors import ApiError
from .meta import (
    Decoder,
    format_time,
    generate_name,
    json_type,
    kind_qualified,
    name_errors,
    new_uid,
    now_utc,
    validate_type,
)
from .registry import Registry, ResourceType
from .select import (
    SelectorError,
    decode_continue,
    encode_continue,
    parse_field_selector,
    parse_label_selector,
)
from .store import Key, Store, TooOld

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
GC_FINALIZERS = ("foregroundDeletion", "orphan")
CRD_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


@dataclass
class Ctx:
    """Per-request options and what the request adds to the response (warnings)."""

    query: dict[str, str] = field(default_factory=dict)
    user_agent: str = ""
    warnings: list[str] = field(default_factory=list)
    # Validating admission of the request's user (rbac.Auth.admission), called with
    # (operation, type, namespace, new object, old object or None) once the object is final.
    admit: Callable[..., None] | None = None

    @property
    def dry_run(self) -> bool:
        value = self.query.get("dryRun", "")
        if value and value != "All":
            raise errors.bad_request(f'Invalid dry run value "{value}": must be "All"')
        return value == "All"

    @property
    def manager(self) -> str:
        fm = self.query.get("fieldManager")
        if fm:
            return fm
        ua = self.user_agent or "unknown"
        return ua.split("/", 1)[0]

    @property
    def field_validation(self) -> str:
        v = self.query.get("fieldValidation", "Warn") or "Warn"
        if v not in ("Ignore", "Warn", "Strict"):
            raise errors.bad_request(
                f'fieldValidation parameter unsupported: "{v}"; supported values are '
                f'"Ignore", "Warn", "Strict"')
        return v


def key_of(rt: ResourceType) -> Key:
    return (rt.group, rt.plural)


def _strip_meta(obj: dict[str, Any], *fields: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for f in fields:
        out.get("metadata", {}).pop(f, None)
    return out


def _content(obj: dict[str, Any], has_status: bool) -> dict[str, Any]:
    skip = {"metadata", "apiVersion", "kind"} | ({"status"} if has_status else set())
    return {k: v for k, v in obj.items() if k not in skip}


class Api:
    def __init__(self, store: Store, registry: Registry, strict_microtime: bool = True) -> None:
        self.store = store
        self.registry = registry
        self.strict_microtime = strict_microtime
        for ns in SYSTEM_NAMESPACES:
            rt = registry.lookup("", "v1", "namespaces")
            assert rt is not None
            self.create(Ctx(user_agent="kube-apiserver"), rt, None,
                        {"metadata": {"name": ns}})

    # ------------------------------------------------------------ helpers
    def _out(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version
        out["kind"] = rt.kind
        return out

    def _get_or_404(self, rt: ResourceType, ns: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(key_of(rt), ns or "", name)
        if obj is None:
            raise errors.not_found(rt.qualified, name, rt.group)
        return obj

    def _ns_rt(self) -> ResourceType:
        rt = self.registry.lookup("", "v1", "namespaces")
        assert rt is not None
        return rt

    def _check_namespace_writable(self, rt: ResourceType, ns: str | None, name: str) -> None:
        if not rt.namespaced:
            return
        nsobj = self.store.get(("", "namespaces"), "", ns or "")
        if nsobj is None:
            raise errors.not_found("namespaces", ns or "")
        if nsobj["metadata"].get("deletionTimestamp"):
            err = errors.forbidden(
                f"{rt.qualified} \"{name}\" is forbidden: unable to create new content in "
                f"namespace {ns} because it is being terminated", rt.qualified, name, rt.group)
            # NamespaceLifecycle admission adds this cause (v1.NamespaceTerminatingCause).
            assert err.details is not None
            err.details["causes"] = [{"reason": "NamespaceTerminating",
                                      "message": f"namespace {ns} is being terminated",
                                      "field": "metadata.namespace"}]
            raise err

    def _decode_body(self, ctx: Ctx, rt: ResourceType, body: Any,
                     ns: str | None) -> dict[str, Any]:
        """Check apiVersion/kind, types and unknown fields of a whole object."""
        if not isinstance(body, dict):
            raise errors.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"json: cannot unmarshal {json_type(body)} into Go value of type "
                f"{rt.kind}")
        kind = body.get("kind")
        if kind not in (None, "", rt.kind):
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {rt.kind}): "
                f"couldn't get version/kind; object kind {kind!r} is not {rt.kind}")
        av = body.get("apiVersion")
        if av not in (None, "", rt.api_version):
            other = [t for t in self.registry.by_kind(rt.group, rt.kind)
                     if t.api_version == av]
            if not other:
                raise errors.bad_request(
                    f"the API version in the data ({av}) does not match the expected API "
                    f"version ({rt.api_version})")
        md = body.get("metadata")
        if md is None:
            body = dict(body, metadata={})
        elif not isinstance(md, dict):
            raise errors.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"json: cannot unmarshal {json_type(md)} into Go struct field "
                f"{rt.kind}.metadata of type v1.ObjectMeta")
        if rt.custom:
            obj, unknown = schema.prepare(rt, copy.deepcopy(body))
        else:
            dec = Decoder(rt, self.strict_microtime)
            obj = dec.decode(copy.deepcopy(body))
            unknown = dec.unknown
        obj.setdefault("metadata", {})
        if obj["metadata"] is None:
            obj["metadata"] = {}
        self._unknown_fields(ctx, unknown)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        body_ns = obj["metadata"].get("namespace")
        if rt.namespaced:
            if body_ns and ns and body_ns != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request")
            obj["metadata"]["namespace"] = ns
        else:
            obj["metadata"].pop("namespace", None)
        return obj

    def _unknown_fields(self, ctx: Ctx, unknown: list[str]) -> None:
        if not unknown:
            return
        mode = ctx.field_validation
        if mode == "Strict":
            detail = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise errors.bad_request(f"strict decoding error: {detail}")
        if mode == "Warn":
            ctx.warnings.extend(f'unknown field "{u}"' for u in unknown)

    def _validate_name(self, rt: ResourceType, name: str) -> None:
        errs = name_errors(rt, name)
        if errs:
            raise errors.invalid(kind_qualified(rt), name,
                                 [("metadata.name", f'"{name}"', e) for e in errs], rt.group)

    # ------------------------------------------------------------ reads
    def get(self, ctx: Ctx, rt: ResourceType, ns: str | None, name: str,
            sub: str = "") -> dict[str, Any]:
        with self.store.lock:
            obj = self._get_or_404(rt, ns, name)
            if sub == "scale":
                return self._to_scale(rt, obj)
            return self._out(rt, obj)

    def list(self, ctx: Ctx, rt: ResourceType, ns: str | None) -> dict[str, Any]:
        match = self.matcher(rt, ctx.query)
        limit = self._int_param(ctx.query, "limit", 0)
        token = ctx.query.get("continue", "")
        rv_param = ctx.query.get("resourceVersion", "")
        with self.store.lock:
            current = self.store.rv
            if token:
                if rv_param not in ("", "0"):  # etcd3 store: "0" is tolerated
                    raise errors.bad_request(
                        "specifying resource version is not allowed when using continue")
                try:
                    list_rv, after = decode_continue(token)
                except SelectorError as e:
                    raise errors.bad_request(f"invalid continue token: {e}") from None
                if list_rv < 0:  # a token handed out with a 410: continue at the latest RV
                    list_rv = current
                try:
                    items = self.store.snapshot(key_of(rt), ns, list_rv)
                except TooOld:
                    # etcd3 handleCompactedErrorForPaging: 410 plus a token that resumes
                    # after the same key at the latest revision (rv -1).
                    err = errors.expired(
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue "
                        "parameter, or use the continue token in this response to retrieve "
                        "the remainder of the results. Continuing with the provided token "
                        "results in an inconsistent list - objects that were created, "
                        "modified, or deleted between the time the first chunk was returned "
                        "and now may show up in the list.")
                    err.list_meta = {"continue": encode_continue(-1, after)}
                    raise err from None
            else:
                if rv_param not in ("", "0"):
                    wanted = self._rv_value(rv_param)
                    if wanted > current:
                        raise ApiError(504, "Timeout",
                                       f"Too large resource version: {wanted}, current: "
                                       f"{current}",
                                       {"causes": [{"reason": "ResourceVersionTooLarge",
                                                    "message": "Too large resource version"}],
                                        "retryAfterSeconds": 1})
                list_rv, after = current, ""
                items = self.store.items(key_of(rt), ns)
            chosen = []
            remaining = 0
            next_token = ""
            for obj in items:
                md = obj["metadata"]
                k = f"{md.get('namespace', '')}/{md['name']}"
                if after and k <= after:
                    continue
                if not match(obj):
                    continue
                if limit and len(chosen) >= limit:
                    remaining += 1
                    continue
                chosen.append(obj)
            if remaining:
                last = chosen[-1]["metadata"]
                next_token = encode_continue(
                    list_rv, f"{last.get('namespace', '')}/{last['name']}")
            out_items = []
            for obj in chosen:
                o = self._out(rt, obj)
                if not rt.custom:
                    o.pop("apiVersion", None)
                    o.pop("kind", None)
                out_items.append(o)
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if next_token:
            meta["continue"] = next_token
            meta["remainingItemCount"] = remaining
        return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta,
                "items": out_items}

    def matcher(self, rt: ResourceType, query: dict[str, str]):
        try:
            lsel = parse_label_selector(query.get("labelSelector", ""))
            fsel = parse_field_selector(query.get("fieldSelector", ""),
                                        rt.supported_field_selectors())
        except SelectorError as e:
            raise errors.bad_request(str(e)) from None

        def match(obj: dict[str, Any]) -> bool:
            return lsel(obj["metadata"].get("labels") or {}) and fsel(obj)
        return match

    @staticmethod
    def _int_param(query: dict[str, str], name: str, default: int) -> int:
        raw = query.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise errors.bad_request(f'invalid value for {name}: "{raw}" is not an integer') \
                from None
        if value < 0:
            raise errors.bad_request(f"invalid value for {name}: must not be negative")
        return value

    @staticmethod
    def _rv_value(raw: str) -> int:
        try:
            return int(raw)
        except ValueError:
            raise errors.bad_request(f'invalid resource version "{raw}"') from None

    # ------------------------------------------------------------ create
    def create(self, ctx: Ctx, rt: ResourceType, ns: str | None, body: Any,
               managed: list[dict[str, Any]] | None = None) -> tuple[int, dict[str, Any]]:
        obj = self._decode_body(ctx, rt, body, ns)
        with self.store.lock:
            return 201, self._create_decoded(ctx, rt, ns, obj, managed)

    def _create_decoded(self, ctx: Ctx, rt: ResourceType, ns: str | None,
                        obj: dict[str, Any],
                        managed: list[dict[str, Any]] | None) -> dict[str, Any]:
        md = obj["metadata"]
        if rt.custom and self._crd_terminating(rt):
            raise ApiError(405, "MethodNotAllowed",
                           "create not allowed while custom resource definition is "
                           "terminating", {})
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = generate_name(md["generateName"])
            else:
                raise errors.invalid(kind_qualified(rt), "", [
                    ("metadata.name", None,
                     "Required value: name or generateName is required")], rt.group)
        name = md["name"]
        self._validate_name(rt, name)
        self._check_namespace_writable(rt, ns, name)
        for f in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation", "selfLink"):
            md.pop(f, None)
        if rt.has_status:
            obj.pop("status", None)
        self._defaults_on_create(rt, obj)
        rbac.default_and_validate(rt, obj, None)
        validate_type(rt, obj, None)
        if rt.kind == "CustomResourceDefinition":
            self._validate_crd(obj)
        if ctx.admit is not None:
            ctx.admit("create", rt, ns, obj, None)
        existing = self.store.get(key_of(rt), ns or "", name)
        if existing is not None:
            raise errors.already_exists(rt.qualified, name, rt.group,
                                        bool(existing["metadata"].get("deletionTimestamp")))
        md["uid"] = new_uid()
        md["creationTimestamp"] = format_time(now_utc())
        if rt.has_generation:
            md["generation"] = 1
        if managed is None:
            managed = patch.managed_fields_for_update(
                [], ctx.manager, None, _strip_meta(obj, "managedFields"), rt.api_version,
                format_time(now_utc()), status_isolated=rt.has_status)
        if managed:
            md["managedFields"] = managed
        else:
            md.pop("managedFields", None)
        if rt.kind == "CustomResourceDefinition":
            self._crd_status(obj)
        if ctx.dry_run:
            return self._out(rt, obj)
        stored = self.store.commit(key_of(rt), obj, "ADDED")
        if rt.kind == "CustomResourceDefinition":
            self._register_crd(stored)
        return self._out(rt, stored)

    def _defaults_on_create(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.kind == "Namespace":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif rt.kind == "Pod":
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("terminationGracePeriodSeconds", 30)
        elif rt.kind == "Deployment":
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": "25%", "maxUnavailable": "25%"}})
        elif rt.kind == "Secret":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None)
            if string_data:
                import base64
                data = obj.setdefault("data", {})
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
        elif rt.kind == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            for p in spec.get("ports") or []:
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))

    # ------------------------------------------------------------ update
    def update(self, ctx: Ctx, rt: ResourceType, ns: str | None, name: str, sub: str,
               body: Any) -> tuple[int, dict[str, Any]]:
        if sub == "scale":
            return self._update_scale(ctx, rt, ns, name, body)
        obj = self._decode_body(ctx, rt, body, ns)
        body_name = obj["metadata"].get("name")
        if body_name and body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL "
                f"({name})")
        obj["metadata"]["name"] = name
        with self.store.lock:
            old = self.store.get(key_of(rt), ns or "", name)
            rv = obj["metadata"].get("resourceVersion") or ""
            self._check_uid_precondition(rt, ns, name, obj, old, sub)
            if old is None:
                if rt.allow_create_on_update and not sub:
                    if rv:
                        raise errors.not_found(rt.qualified, name, rt.group)
                    return 201, self._create_decoded(ctx, rt, ns, obj, None)
                raise errors.not_found(rt.qualified, name, rt.group)
            if not rv:
                if not rt.allow_unconditional_update:
                    raise errors.invalid(kind_qualified(rt), name, [
                        ("metadata.resourceVersion", "0x0", "must be specified for an update")],
                        rt.group)
            elif rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.qualified, name, rt.group)
            return 200, self._update_decoded(ctx, rt, old, obj, sub, ctx.manager)

    def _check_uid_precondition(self, rt: ResourceType, ns: str | None, name: str,
                                obj: dict[str, Any], old: dict[str, Any] | None,
                                sub: str) -> None:
        """A PUT body's uid is a storage precondition (rest.defaultUpdatedObjectInfo).

        The store checks it before anything else in GuaranteedUpdate, so a PUT naming another
        uid is a 409 Conflict (StorageError: invalid object), not a 422; a PATCH carries no
        such precondition and reaches validation ("field is immutable") instead.
        """
        uid = obj["metadata"].get("uid")
        if not uid:
            return
        if old is None and not (rt.allow_create_on_update and not sub):
            return  # the store answers 404 first
        stored_uid = (old or {}).get("metadata", {}).get("uid", "")
        if uid == stored_uid:
            return
        prefix = f"{rt.group}/" if rt.custom else ""
        key = f"/registry/{prefix}{rt.plural}/" + (f"{ns}/" if rt.namespaced else "") + name
        raise errors.conflict(rt.qualified, name, rt.group,
                              f"StorageError: invalid object, Code: 4, Key: {key}, "
                              f"ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: "
                              f"UID in precondition: {uid}, UID in object meta: {stored_uid}")

    def _update_decoded(self, ctx: Ctx, rt: ResourceType, old: dict[str, Any],
                        new: dict[str, Any], sub: str, manager: str,
                        managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything BeforeUpdate and the strategies do, then commit (or not, if no-op)."""
        md, omd = new["metadata"], old["metadata"]
        name = omd["name"]
        if md.get("uid") and md["uid"] != omd["uid"]:
            raise errors.invalid(kind_qualified(rt), name, [
                ("metadata.uid", f'"{md["uid"]}"', "field is immutable")], rt.group)
        base_managed = md.get("managedFields")
        if base_managed is None:
            base_managed = omd.get("managedFields") or []
        if sub == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            new = result
            md = new["metadata"]
        else:
            if rt.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            for f in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "namespace", "name"):
                if f in omd:
                    md[f] = omd[f]
                else:
                    md.pop(f, None)
            md.pop("selfLink", None)
            if rt.kind == "Namespace":
                new["status"] = copy.deepcopy(old.get("status", {}))
        if omd.get("deletionTimestamp"):
            added = set(md.get("finalizers") or []) - set(omd.get("finalizers") or [])
            if added:
                raise errors.invalid(kind_qualified(rt), name, [(
                    "metadata.finalizers", None,
                    f"Forbidden: no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers {_go_string_slice(sorted(added))}")], rt.group)
        if rt.has_generation and _content(new, rt.has_status) != _content(old, rt.has_status):
            md["generation"] = int(omd.get("generation") or 1) + 1
        rbac.default_and_validate(rt, new, old)
        validate_type(rt, new, old)
        if rt.kind == "CustomResourceDefinition":
            self._validate_crd(new)
            if sub != "status":
                self._crd_status(new)
        if ctx.admit is not None:
            ctx.admit("update", rt, omd.get("namespace"), new, old)
        if managed is None:
            managed = patch.managed_fields_for_update(
                base_managed, manager, _strip_meta(old, "managedFields", "resourceVersion"),
                _strip_meta(new, "managedFields", "resourceVersion"), rt.api_version,
                format_time(now_utc()), sub, status_isolated=rt.has_status)
        if managed:
            md["managedFields"] = managed
        else:
            md.pop("managedFields", None)
        md["resourceVersion"] = omd["resourceVersion"]
        if not md.get("finalizers"):
            md.pop("finalizers", None)
        if new == old or _strip_meta(new, "managedFields") == _strip_meta(old, "managedFields"):
            return self._out(rt, old)  # no-op: same resourceVersion, no event
        if ctx.dry_run:
            return self._out(rt, new)
        if omd.get("deletionTimestamp") and not md.get("finalizers"):
            stored = self.store.commit(key_of(rt), new, "DELETED")
            self._after_removal(rt, stored)
            return self._out(rt, stored)
        stored = self.store.commit(key_of(rt), new, "MODIFIED")
        if rt.kind == "CustomResourceDefinition":
            self._register_crd(stored)
        return self._out(rt, stored)

    # ------------------------------------------------------------ patch
    def patch(self, ctx: Ctx, rt: ResourceType, ns: str | None, name: str, sub: str,
              raw: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
        ptype = PATCH_TYPES.get(content_type)
        if ptype is None and not rt.custom:
            # Built-ins are go-restful routes: a Content-Type outside the PATCH route's
            # Consumes list is refused before the handler runs, and the apiserver's
            # serviceErrorHandler answers NewGenericServerResponse(415, "415: Unsupported
            # Media Type"). Only the CRD handler names the accepted patch types.
            raise ApiError(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})
        if ptype is None or (ptype == "strategic" and not rt.strategic_merge):
            raise errors.unsupported_media_type(content_type)
        if sub == "scale" and ptype == "apply":
            raise errors.unsupported_media_type(content_type)
        # validation.ValidatePatchOptions runs before the body is decoded or the object read.
        if ptype == "apply" and not ctx.query.get("fieldManager"):
            raise errors.invalid("PatchOptions.meta.k8s.io", "", [
                ("fieldManager", None, "Required value: is required for apply patch")],
                "meta.k8s.io")
        if ptype != "apply" and "force" in ctx.query:
            raise errors.invalid("PatchOptions.meta.k8s.io", "", [
                ("force", None, "Forbidden: may not be specified for non-apply patch")],
                "meta.k8s.io")
        body = self._parse_patch_body(raw, ptype)
        if ptype == "apply":
            return self._apply(ctx, rt, ns, name, sub, body)
        with self.store.lock:
            old = self._get_or_404(rt, ns, name)
            if sub == "scale":
                return self._patch_scale(ctx, rt, old, body, ptype)
            current = self._out(rt, old)
            try:
                if ptype == "json":
                    patched = patch.apply_json_patch(current, body)
                elif ptype == "merge":
                    patched = patch.apply_merge_patch(current, body)
                else:
                    patched = patch.apply_strategic_merge_patch(current, body)
            except patch.BadPatch as e:
                raise errors.bad_request(str(e)) from None
            except patch.PatchError as e:
                if ptype == "json":
                    # handlers/patch.go applyJSPatch wraps json-patch Apply errors in
                    # NewGenericServerResponse(422, ..., isUnexpectedResponse=false): the
                    # library's text (e.g. "testing value /x failed") is not sent back.
                    raise ApiError(422, "Invalid", "the server rejected our request due to "
                                   "an error in our request", {}) from None
                details = {"name": name, "kind": rt.kind, "group": rt.group} if rt.group \
                    else {"name": name, "kind": rt.kind}
                raise ApiError(422, "Invalid", str(e), details) from None
            return 200, self._patched(ctx, rt, ns, name, sub, old, patched)

    def _parse_patch_body(self, raw: bytes, ptype: str) -> Any:
        try:
            if ptype == "apply":
                return yaml.safe_load(raw.decode("utf-8"))
            return json.loads(raw.decode("utf-8"))
        except (ValueError, yaml.YAMLError) as e:
            raise errors.bad_request(f"error decoding patch: {e}") from None

    def _patched(self, ctx: Ctx, rt: ResourceType, ns: str | None, name: str, sub: str,
                 old: dict[str, Any], patched: Any) -> dict[str, Any]:
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch produced an object that is not a JSON object")
        md = patched.get("metadata")
        if isinstance(md, dict):
            if md.get("name", name) != name:
                raise errors.bad_request(
                    f"the name of the object ({md.get('name')}) does not match the name on "
                    f"the URL ({name})")
            rv = md.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.qualified, name, rt.group)
        obj = self._decode_body(ctx, rt, patched, ns)
        obj["metadata"]["name"] = name
        return self._update_decoded(ctx, rt, old, obj, sub, ctx.manager)

    def _apply(self, ctx: Ctx, rt: ResourceType, ns: str | None, name: str, sub: str,
               body: Any) -> tuple[int, dict[str, Any]]:
        manager = ctx.query.get("fieldManager", "")  # required: checked in patch()
        if not isinstance(body, dict):
            raise errors.bad_request("error decoding YAML: the applied configuration must be "
                                     "an object")
        if not body.get("apiVersion") or not body.get("kind"):
            raise errors.bad_request(
                "invalid object type: the applied configuration needs apiVersion and kind")
        md = body.get("metadata") or {}
        if md.get("managedFields") is not None:
            raise errors.bad_request("metadata.managedFields must be nil")
        if md.get("name") and md["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({md['name']}) does not match the name on the URL "
                f"({name})")
        force = ctx.query.get("force", "") in ("true", "1", "True")
        config = self._decode_body(ctx, rt, body, ns)
        config["metadata"]["name"] = name
        now = format_time(now_utc())
        with self.store.lock:
            old = self.store.get(key_of(rt), ns or "", name)
            try:
                if old is None:
                    if sub:
                        raise errors.not_found(rt.qualified, name, rt.group)
                    result, managed = patch.server_side_apply(
                        None, _strip_meta(config, "resourceVersion"), manager, force, [],
                        rt.api_version, now, status_isolated=rt.has_status)
                    return 201, self._create_decoded(ctx, rt, ns, result, managed)
                live = self._out(rt, old)
                rv = config["metadata"].get("resourceVersion")
                if rv and rv != old["metadata"]["resourceVersion"]:
                    raise errors.conflict(rt.qualified, name, rt.group)
                result, managed = patch.server_side_apply(
                    _strip_meta(live, "managedFields"), _strip_meta(config, "resourceVersion"),
                    manager, force, old["metadata"].get("managedFields") or [],
                    rt.api_version, now, sub, status_isolated=rt.has_status)
            except patch.ApplyConflict as e:
                # errors.NewApplyConflict: the details carry the causes only.
                raise ApiError(409, "Conflict", str(e), {"causes": e.causes}) from None
            result.setdefault("metadata", {})["resourceVersion"] = \
                old["metadata"]["resourceVersion"]
            obj = self._decode_body(ctx, rt, result, ns)
            return 200, self._update_decoded(ctx, rt, old, obj, sub, manager, managed)

    # ------------------------------------------------------------ scale
    def _to_scale(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if not rt.has_scale:
            raise errors.not_found_path()
        md = obj["metadata"]
        spec_replicas = _get_path(obj, rt.scale_spec_path) or 0
        status: dict[str, Any] = {"replicas": _get_path(obj, rt.scale_status_path) or 0}
        selector = obj.get("spec", {}).get("selector")
        if rt.scale_label_selector_path:
            sel = _get_path(obj, rt.scale_label_selector_path)
            if sel:
                status["selector"] = sel
        elif isinstance(selector, dict) and selector.get("matchLabels"):
            status["selector"] = ",".join(f"{k}={v}" for k, v in
                                          sorted(selector["matchLabels"].items()))
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                 "creationTimestamp") if k in md},
                "spec": {"replicas": spec_replicas}, "status": status}

    def _scale_write(self, ctx: Ctx, rt: ResourceType, old: dict[str, Any],
                     scale: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(scale, dict):
            raise errors.bad_request("the body is not a Scale object")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise errors.bad_request("Scale in version \"v1\" cannot be handled as a Scale: "
                                     "spec.replicas must be an integer")
        if replicas < 0:
            raise errors.invalid("Scale.autoscaling", old["metadata"]["name"], [
                ("spec.replicas", replicas, "must be greater than or equal to 0")],
                "autoscaling")
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.qualified, old["metadata"]["name"], rt.group)
        new = copy.deepcopy(old)
        _set_path(new, rt.scale_spec_path, replicas)
        stored = self._update_decoded(ctx, rt, old, new, "", ctx.manager)
        return 200, self._to_scale(rt, stored)

    def _update_scale(self, ctx: Ctx, rt: ResourceType, ns: str | None, name: str,
                      body: Any) -> tuple[int, dict[str, Any]]:
        with self.store.lock:
            old = self._get_or_404(rt, ns, name)
            return self._scale_write(ctx, rt, old, body)

    def _patch_scale(self, ctx: Ctx, rt: ResourceType, old: dict[str, Any], body: Any,
                     ptype: str) -> tuple[int, dict[str, Any]]:
        current = self._to_scale(rt, old)
        try:
            if ptype == "json":
                scale = patch.apply_json_patch(current, body)
            else:
                scale = patch.apply_merge_patch(current, body)
        except (patch.BadPatch, patch.PatchError) as e:
            raise errors.bad_request(str(e)) from None
        return self._scale_write(ctx, rt, old, scale)

    # ------------------------------------------------------------ delete
    def delete(self, ctx: Ctx, rt: ResourceType, ns: str | None, name: str,
               options: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.store.lock:
            obj = self._get_or_404(rt, ns, name)
            return self._delete_obj(ctx, rt, obj, options)

    def _delete_obj(self, ctx: Ctx, rt: ResourceType, obj: dict[str, Any],
                    options: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        md = obj["metadata"]
        name = md["name"]
        pre = options.get("preconditions") or {}
        if rt.kind == "Namespace":  # the namespace REST storage words it itself
            if pre.get("uid") and pre["uid"] != md.get("uid"):
                raise errors.conflict(rt.qualified, name, rt.group,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {md.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != md["resourceVersion"]:
                raise errors.conflict(rt.qualified, name, rt.group,
                                      f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object "
                                      f"meta: {md['resourceVersion']}")
        # rest.BeforeDelete: the "resource" it names is the Kind (GroupResource{g, Kind}).
        if pre.get("uid") and pre["uid"] != md.get("uid"):
            raise errors.conflict(kind_qualified(rt), name, rt.group,
                                  f"the UID in the precondition ({pre['uid']}) does not match "
                                  f"the UID in record ({md.get('uid')}). The object might have "
                                  f"been deleted and then recreated")
        if pre.get("resourceVersion") and pre["resourceVersion"] != md["resourceVersion"]:
            raise errors.conflict(kind_qualified(rt), name, rt.group,
                                  f"the ResourceVersion in the precondition "
                                  f"({pre['resourceVersion']}) does not match the ResourceVersion "
                                  f"in record ({md['resourceVersion']}). The object might have "
                                  f"been modified")
        orphan_flag = options.get("orphanDependents")
        policy = options.get("propagationPolicy")
        if policy is not None and policy not in ("Foreground", "Background", "Orphan"):
            raise errors.invalid("DeleteOptions", "", [(
                "propagationPolicy", None,
                f'Unsupported value: "{policy}": supported values: "Foreground", '
                f'"Background", "Orphan"')])
        if policy is None:
            policy = "Orphan" if orphan_flag is True else "Background"
        accepted = 202 if orphan_flag is False else 200
        if md.get("deletionTimestamp"):
            return accepted, self._out(rt, obj)
        new = copy.deepcopy(obj)
        nmd = new["metadata"]
        finalizers = list(nmd.get("finalizers") or [])
        if rt.kind == "Namespace":
            new.setdefault("status", {})["phase"] = "Terminating"
            nmd["deletionTimestamp"] = format_time(now_utc())
            nmd["deletionGracePeriodSeconds"] = 0
            if ctx.dry_run:
                return 200, self._out(rt, new)
            return 200, self._out(rt, self.store.commit(key_of(rt), new, "MODIFIED"))
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if rt.kind == "CustomResourceDefinition" and CRD_FINALIZER not in finalizers:
            finalizers.append(CRD_FINALIZER)
            conds = new.setdefault("status", {}).setdefault("conditions", [])
            conds.append({"type": "Terminating", "status": "True",
                          "lastTransitionTime": format_time(now_utc()),
                          "reason": "InstanceDeletionPending",
                          "message": "CustomResourceDefinition marked for deletion; "
                                     "CustomResource deletion will begin soon"})
        if finalizers:
            nmd["finalizers"] = finalizers
            nmd["deletionTimestamp"] = format_time(now_utc())
            nmd["deletionGracePeriodSeconds"] = 0
            if rt.has_generation:
                nmd["generation"] = int(nmd.get("generation") or 1) + 1
            if ctx.dry_run:
                return accepted, self._out(rt, new)
            return accepted, self._out(rt, self.store.commit(key_of(rt), new, "MODIFIED"))
        if ctx.dry_run:
            stored = obj
        else:
            stored = self.store.commit(key_of(rt), obj, "DELETED")
            self._after_removal(rt, stored)
        if rt.return_deleted_object or rt.custom:
            return 200, self._out(rt, stored)
        details = {"name": name, "kind": rt.plural, "uid": md.get("uid", "")}
        if rt.group:
            details["group"] = rt.group
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                     "status": "Success", "details": details}

    def delete_collection(self, ctx: Ctx, rt: ResourceType, ns: str | None,
                          options: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        match = self.matcher(rt, ctx.query)
        deleted = []
        with self.store.lock:
            for obj in self.store.items(key_of(rt), ns):
                if match(obj):
                    _, out = self._delete_obj(ctx, rt, obj, options)
                    if out.get("kind") == "Status":
                        out = self._out(rt, obj)
                    deleted.append(out)
            rv = str(self.store.rv)
        return 200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                     "metadata": {"resourceVersion": rv}, "items": deleted}

    def _after_removal(self, rt: ResourceType, stored: dict[str, Any]) -> None:
        if rt.kind == "CustomResourceDefinition":
            self._unregister_crd(stored)

    # ------------------------------------------------------------ CRDs
    def _validate_crd(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        causes: list[tuple[str, Any, str]] = []
        group = spec.get("group") or ""
        plural = names.get("plural") or ""
        if not group:
            causes.append(("spec.group", None, "Required value"))
        elif "." not in group:
            causes.append(("spec.group", f'"{group}"', "should be a domain with at least one "
                                                      "dot"))
        if not plural:
            causes.append(("spec.names.plural", None, "Required value"))
        if not names.get("kind"):
            causes.append(("spec.names.kind", None, "Required value"))
        if name != f"{plural}.{group}":
            causes.append(("metadata.name", f'"{name}"', 'must be spec.names.plural+"."+'
                                                        'spec.group'))
        for f in ("plural", "singular"):
            v = names.get(f)
            if v and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", v):
                causes.append((f"spec.names.{f}", f'"{v}"', "a lowercase RFC 1123 label must "
                               "consist of lower case alphanumeric characters or '-', and "
                               "must start and end with an alphanumeric character"))
        for s in names.get("shortNames") or []:
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", s):
                causes.append(("spec.names.shortNames", f'"{s}"', "a lowercase RFC 1123 label "
                               "must consist of lower case alphanumeric characters or '-'"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(("spec.scope", f'"{spec.get("scope", "")}"',
                           'Unsupported value: "Namespaced", "Cluster"'))
        versions = spec.get("versions") or []
        if not versions:
            causes.append(("spec.versions", None, "Required value: must have exactly one "
                                                  "version marked as storage version"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(("spec.versions", None, "Invalid value: ...: must have exactly one "
                                                  "version marked as storage version"))
        for i, v in enumerate(versions):
            if not v.get("name"):
                causes.append((f"spec.versions[{i}].name", None, "Required value"))
            if (v.get("schema") or {}).get("openAPIV3Schema") is None:
                causes.append((f"spec.versions[{i}].schema.openAPIV3Schema", None,
                               "Required value: schemas are required"))
        if causes:
            raise errors.invalid("CustomResourceDefinition.apiextensions.k8s.io", name, causes,
                                 "apiextensions.k8s.io")

    def _crd_status(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        names = dict(spec["names"])
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        now = format_time(now_utc())
        storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
        old_status = crd.get("status") or {}
        stored_versions = list(old_status.get("storedVersions") or [])
        if storage not in stored_versions:
            stored_versions.append(storage)
        conds = [c for c in old_status.get("conditions") or []
                 if c.get("type") not in ("NamesAccepted", "Established")]
        conds = [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ] + conds
        for old in old_status.get("conditions") or []:
            for c in conds:
                if c["type"] == old.get("type") and c["status"] == old.get("status"):
                    c["lastTransitionTime"] = old.get("lastTransitionTime", now)
        crd["status"] = {"acceptedNames": names, "conditions": conds,
                         "storedVersions": stored_versions}

    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        names = crd["status"]["acceptedNames"]
        name = crd["metadata"]["name"]
        self.registry.remove_crd(name)
        for v in spec["versions"]:
            if not v.get("served", True):
                continue
            subs = v.get("subresources") or {}
            scale = subs.get("scale")
            self.registry.add(ResourceType(
                group=spec["group"], version=v["name"], kind=names["kind"],
                plural=names["plural"], namespaced=spec["scope"] == "Namespaced",
                singular=names.get("singular", ""), short_names=names.get("shortNames") or [],
                categories=names.get("categories") or [],
                has_status="status" in subs, has_scale=scale is not None,
                scale_spec_path=(scale or {}).get("specReplicasPath", ".spec.replicas"),
                scale_status_path=(scale or {}).get("statusReplicasPath", ".status.replicas"),
                scale_label_selector_path=(scale or {}).get("labelSelectorPath", ""),
                has_generation=True, return_deleted_object=True, custom=True, crd_name=name,
                schema=(v.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=v.get("additionalPrinterColumns") or []))

    def _unregister_crd(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        key = (spec["group"], spec["names"]["plural"])
        self.registry.remove_crd(crd["metadata"]["name"])
        self.store.close_watchers(key)
        self.store.drop_key(key)

    def _crd_terminating(self, rt: ResourceType) -> bool:
        crd = self.store.get(("apiextensions.k8s.io", "customresourcedefinitions"), "",
                             rt.crd_name)
        return bool(crd and crd["metadata"].get("deletionTimestamp"))


def _go_string_slice(values: list[str]) -> str:
    """A []string as Go's %#v prints it: []string{"a", "b"}."""
    return "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"


def _get_path(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
