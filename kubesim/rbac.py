"""Authentication by bearer token, RBAC authorization and the OwnerReferences admission check.

What kube-apiserver does with a request before it reaches a handler, as far as identity goes:

- **Authentication.** A bearer token registered here (`KubeSim.add_token`,
  `KubeSim.serviceaccount_token`, the TokenRequest subresource, or the `/kubesim/v1/tokens`
  hook) names a user and its groups; every authenticated user also gets
  `system:authenticated`, as the apiserver's AuthenticatedGroupAdder adds it. A request with
  no token, or with a token nobody registered, is the cluster admin (`kubernetes-admin` in
  `system:masters`), so that clients which never heard of RBAC keep working. A registered
  token that expired, was revoked, or whose ServiceAccount was deleted gets 401.
- **Impersonation** (`Impersonate-User`, `-Group`, `-Uid`, `-Extra-*` headers, i.e.
  `kubectl --as`), checked with the `impersonate` verb like the WithImpersonation filter.
- **Authorization.** Request attributes are computed as `RequestInfoFactory.NewRequestInfo`
  computes them (verb, API group, resource, subresource, name — also from a `metadata.name`
  field selector on list and watch — namespace, or a non-resource path), then `system:masters`
  is allowed and everything else is decided by the RBAC authorizer over the Role, ClusterRole,
  RoleBinding and ClusterRoleBinding objects in the store (plugin/pkg/auth/authorizer/rbac).
  The default bootstrap ClusterRoles and ClusterRoleBindings that give every authenticated
  user discovery and the self-reviews are created at start, as real objects.
- A denial is the 403 `Status` of responsewriters.Forbidden, worded as `forbiddenMessage`.
- **Admission**: OwnerReferencesPermissionEnforcement (plugin/pkg/admission/gc), which real
  clusters run: changing ownerReferences needs `delete` on the object, and setting
  `blockOwnerDeletion: true` needs `update` on the owner's `<resource>/finalizers`.
- The review APIs: SelfSubjectAccessReview, SelfSubjectRulesReview (`kubectl auth can-i
  [--list]`), SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectReview (`kubectl auth
  whoami`), TokenReview, and the `serviceaccounts/<name>/token` subresource (`kubectl create
  token`).

Roles, ClusterRoles and bindings get their v1 defaults and validation (`default_and_validate`,
e.g. "cannot change roleRef").

Not done: privilege-escalation checks on writes of roles and bindings (`escalate`/`bind`),
ClusterRole aggregation, and the Node authorizer.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import ApiError
from .meta import format_time, now_utc
from .registry import ResourceType

if TYPE_CHECKING:
    from .api import Api

RBAC_GROUP = "rbac.authorization.k8s.io"
AUTHZ_GROUP = "authorization.k8s.io"
AUTHN_GROUP = "authentication.k8s.io"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"
API_AUDIENCES = ["https://kubernetes.default.svc.cluster.local"]

# RequestInfoFactory (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go)
_API_PREFIXES = {"api", "apis"}
_GROUPLESS_PREFIXES = {"api"}
_SPECIAL_VERBS = {"proxy", "watch"}
_SPECIAL_VERBS_NO_SUBRESOURCES = {"proxy"}
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                 "PATCH": "patch", "DELETE": "delete"}


# ---------------------------------------------------------------------------------- users

@dataclass(frozen=True)
class User:
    """user.Info: who a request is from."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def info(self) -> dict[str, Any]:
        """authentication/v1 UserInfo."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra}
        return out


ADMIN = User("kubernetes-admin", (MASTERS, AUTHENTICATED))


def serviceaccount_username(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def serviceaccount_groups(namespace: str) -> tuple[str, ...]:
    return (SA_GROUP, f"{SA_GROUP}:{namespace}")


def split_serviceaccount_username(username: str) -> tuple[str, str] | None:
    """serviceaccount.SplitUsername: (namespace, name), or None if it is not an SA name."""
    if not username.startswith(SA_PREFIX):
        return None
    parts = username[len(SA_PREFIX):].split(":")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


@dataclass
class _Token:
    user: User
    expires: float | None = None  # time.monotonic() deadline; None: never
    serviceaccount: tuple[str, str, str] | None = None  # (namespace, name, uid) bound to
    revoked: bool = False


# ---------------------------------------------------------------------------------- attributes

@dataclass
class Attributes:
    """authorizer.AttributesRecord."""

    user: User
    verb: str
    resource_request: bool
    path: str = ""
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def _split_path(path: str) -> list[str]:
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []


def _is_valid_path_segment_name(name: str) -> bool:
    return name not in (".", "..") and "/" not in name and "%" not in name


def _split_terms(selector: str) -> list[str]:
    terms, start, in_slash = [], 0, False
    for i, c in enumerate(selector):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _unescape_value(s: str) -> str:
    out, in_slash = [], False
    for c in s:
        if in_slash:
            if c not in "\\,=":
                raise ValueError(f"invalid escape sequence \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            raise ValueError(f"unescaped {c}")
        else:
            out.append(c)
    if in_slash:
        raise ValueError("invalid escape sequence \\")
    return "".join(out)


def field_selector_name(selector: str) -> str | None:
    """The value of `metadata.name=` (or `==`) in a field selector, as RequiresExactMatch
    finds it; None if there is none. Raises ValueError if the selector does not parse."""
    if not selector:
        return None
    found: str | None = None
    for part in sorted(_split_terms(selector)):
        if not part:
            continue
        for i in range(len(part)):
            op = next((o for o in ("!=", "==", "=") if part.startswith(o, i)), None)
            if op is not None:
                lhs, rhs = part[:i], part[i + len(op):]
                break
        else:
            raise ValueError(f"invalid selector: '{selector}'; can't understand '{part}'")
        value = _unescape_value(rhs)
        if found is None and op != "!=" and lhs == "metadata.name":
            found = value
    return found


def _list_options_ok(query: dict[str, str]) -> bool:
    for name in ("limit", "timeoutSeconds"):
        raw = query.get(name)
        if raw not in (None, ""):
            try:
                int(raw)
            except ValueError:
                return False
    return True


def request_attributes(user: User, method: str, path: str,
                       query: dict[str, str]) -> Attributes:
    """RequestInfoFactory.NewRequestInfo, as attributes for the authorizer."""
    attrs = Attributes(user=user, verb=method.lower(), resource_request=False, path=path)
    parts = _split_path(path)
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return attrs
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix not in _GROUPLESS_PREFIXES:
        if len(parts) < 3:
            return attrs
        group, parts = parts[0], parts[1:]
    attrs.resource_request = True
    attrs.api_group = group
    attrs.api_version, parts = parts[0], parts[1:]
    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            attrs.verb = parts[0]
            return attrs  # the apiserver answers such a URL with an error of its own
        attrs.verb, parts = parts[0], parts[1:]
    else:
        attrs.verb = _METHOD_VERBS.get(method, "")
    if parts[0] == "namespaces":
        if len(parts) > 1:
            attrs.namespace = parts[1]
            if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
                parts = parts[2:]
    if len(parts) >= 3 and attrs.verb not in _SPECIAL_VERBS_NO_SUBRESOURCES:
        attrs.subresource = parts[2]
    if len(parts) >= 2:
        attrs.name = parts[1]
    attrs.resource = parts[0]
    if not attrs.name and attrs.verb == "get":
        watch, name = False, None
        try:
            if not _list_options_ok(query):
                raise ValueError("bad list options")
            name = field_selector_name(query.get("fieldSelector", ""))
        except ValueError:
            name = None  # a ListOptions decoding error: list/watch, and no name
        if "watch" in query:
            watch = query["watch"] != "0" and query["watch"].lower() != "false"
        attrs.verb = "watch" if watch else "list"
        if name is not None and _is_valid_path_segment_name(name):
            attrs.name = name
    if not attrs.name and attrs.verb == "delete":
        attrs.verb = "deletecollection"
    return attrs


# ---------------------------------------------------------------------------------- wording

def go_quote(s: str) -> str:
    """Go's %q for a string."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def aggregate(messages: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message, or [a, b] without duplicates."""
    if len(messages) == 1:
        return messages[0]
    seen: list[str] = []
    for m in messages:
        if m not in seen:
            seen.append(m)
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


def forbidden_message(attrs: Attributes) -> str:
    """responsewriters.forbiddenMessage."""
    user = go_quote(attrs.user.name)
    if not attrs.resource_request:
        return f"User {user} cannot {attrs.verb} path {go_quote(attrs.path)}"
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    where = (f"in the namespace {go_quote(attrs.namespace)}" if attrs.namespace
             else "at the cluster scope")
    return (f"User {user} cannot {attrs.verb} resource {go_quote(resource)} in API group "
            f"{go_quote(attrs.api_group)} {where}")


def _sanitize(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def new_forbidden(group: str, resource: str, name: str, err: str) -> ApiError:
    """apierrors.NewForbidden(GroupResource{group, resource}, name, err)."""
    if not group and not resource:
        message = f"forbidden: {err}"
    else:
        qualified = f"{resource}.{group}" if group else resource
        message = f"{qualified} is forbidden: {err}" if not name else \
            f"{qualified} {go_quote(name)} is forbidden: {err}"
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if resource:
        details["kind"] = resource
    return ApiError(403, "Forbidden", message, details)


def forbidden(attrs: Attributes, reason: str) -> ApiError:
    """responsewriters.Forbidden: the 403 a denied request gets."""
    msg = _sanitize(forbidden_message(attrs))
    err = f"{msg}: {reason}" if reason else msg
    return new_forbidden(attrs.api_group, attrs.resource, attrs.name, err)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


# ---------------------------------------------------------------------------------- rules

def _strs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def rule_allows(attrs: Attributes, rule: dict[str, Any]) -> bool:
    """rbac.RuleAllows with the rbacv1helpers matchers."""
    verbs = _strs(rule.get("verbs"))
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        for url in _strs(rule.get("nonResourceURLs")):
            if url == "*" or url == attrs.path:
                return True
            if url.endswith("*") and attrs.path.startswith(url.rstrip("*")):
                return True
        return False
    groups = _strs(rule.get("apiGroups"))
    if "*" not in groups and attrs.api_group not in groups:
        return False
    combined = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    sub = attrs.subresource
    if not any(r == "*" or r == combined or
               (sub and len(r) == len(sub) + 2 and r.startswith("*/") and r.endswith(sub))
               for r in _strs(rule.get("resources"))):
        return False
    names = _strs(rule.get("resourceNames"))
    return not names or attrs.name in names


def _applies_to(user: User, subject: dict[str, Any], namespace: str) -> bool:
    """appliesToUser."""
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_ns = subject.get("namespace") or namespace
        return bool(sa_ns) and user.name == serviceaccount_username(sa_ns, name)
    return False


def _describe_subject(subject: dict[str, Any], binding_ns: str) -> str:
    kind, name = subject.get("kind") or "", subject.get("name") or ""
    if kind == "ServiceAccount":
        return f"{kind} {go_quote(name + '/' + (subject.get('namespace') or binding_ns))}"
    return f"{kind} {go_quote(name)}"


Visit = tuple[Callable[[], str] | None, dict[str, Any] | None, str | None]


class Authorizer:
    """The union authorizer of a kind cluster, minus the Node authorizer: system:masters,
    then RBAC over the objects in the store."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def _role_ref_rules(self, ref: dict[str, Any],
                        binding_ns: str) -> tuple[list[dict[str, Any]], str | None]:
        kind, name = ref.get("kind"), ref.get("name") or ""
        store = self.api.store
        if kind == "Role":
            role = store.get((RBAC_GROUP, "roles"), binding_ns, name)
            if role is None:
                return [], f"role.{RBAC_GROUP} {go_quote(name)} not found"
        elif kind == "ClusterRole":
            role = store.get((RBAC_GROUP, "clusterroles"), "", name)
            if role is None:
                return [], f"clusterrole.{RBAC_GROUP} {go_quote(name)} not found"
        else:
            return [], f"unsupported role reference kind: {go_quote(str(kind or ''))}"
        return [r for r in role.get("rules") or [] if isinstance(r, dict)], None

    def visit_rules(self, user: User, namespace: str) -> Iterator[Visit]:
        """DefaultRuleResolver.VisitRulesFor: (describe source, rule, error) triples."""
        store = self.api.store
        with store.lock:
            cluster_bindings = store.items((RBAC_GROUP, "clusterrolebindings"))
            bindings = store.items((RBAC_GROUP, "rolebindings"), namespace) if namespace \
                else []
        for crb in cluster_bindings:
            subject = next((s for s in crb.get("subjects") or []
                            if isinstance(s, dict) and _applies_to(user, s, "")), None)
            if subject is None:
                continue
            ref = crb.get("roleRef") or {}
            rules, err = self._role_ref_rules(ref, "")
            if err:
                yield None, None, err
                continue

            def describe(b: dict[str, Any] = crb, s: dict[str, Any] = subject) -> str:
                r = b.get("roleRef") or {}
                return (f"ClusterRoleBinding {go_quote(b['metadata']['name'])} of "
                        f"{r.get('kind', '')} {go_quote(r.get('name', ''))} to "
                        f"{_describe_subject(s, '')}")
            for rule in rules:
                yield describe, rule, None
        for rb in bindings:
            subject = next((s for s in rb.get("subjects") or []
                            if isinstance(s, dict) and _applies_to(user, s, namespace)), None)
            if subject is None:
                continue
            rules, err = self._role_ref_rules(rb.get("roleRef") or {}, namespace)
            if err:
                yield None, None, err
                continue

            def describe_rb(b: dict[str, Any] = rb, s: dict[str, Any] = subject) -> str:
                r, md = b.get("roleRef") or {}, b["metadata"]
                return (f"RoleBinding {go_quote(md['name'] + '/' + md['namespace'])} of "
                        f"{r.get('kind', '')} {go_quote(r.get('name', ''))} to "
                        f"{_describe_subject(s, md['namespace'])}")
            for rule in rules:
                yield describe_rb, rule, None

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason). The reason of a denial names resolution errors only, as the
        RBAC authorizer's does ("RBAC: role.rbac.authorization.k8s.io "x" not found")."""
        if MASTERS in attrs.user.groups:
            return True, ""
        errs: list[str] = []
        for describe, rule, err in self.visit_rules(attrs.user, attrs.namespace):
            if rule is not None and describe is not None and rule_allows(attrs, rule):
                return True, f"RBAC: allowed by {describe()}"
            if err:
                errs.append(err)
        return False, (f"RBAC: {aggregate(errs)}" if errs else "")

    def rules_for(self, user: User, namespace: str) -> tuple[list[dict[str, Any]], list[str]]:
        rules, errs = [], []
        for _, rule, err in self.visit_rules(user, namespace):
            if rule is not None:
                rules.append(rule)
            if err:
                errs.append(err)
        return rules, errs


# ---------------------------------------------------------------------------------- objects

def _go_slice(values: list[str]) -> str:
    """%#v of a []string."""
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


def _supported(values: list[str]) -> str:
    return "supported values: " + ", ".join(go_quote(v) for v in values)


def _validate_rule(rule: Any, namespaced: bool, path: str) -> list[tuple[str, Any, str]]:
    """validation.ValidatePolicyRule."""
    if not isinstance(rule, dict):
        return []
    causes: list[tuple[str, Any, str]] = []
    if not _strs(rule.get("verbs")):
        causes.append((f"{path}.verbs", None,
                       "Required value: verbs must contain at least one value"))
    urls = _strs(rule.get("nonResourceURLs"))
    if urls:
        if namespaced:
            causes.append((f"{path}.nonResourceURLs", _go_slice(urls),
                           "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            causes.append((f"{path}.nonResourceURLs", _go_slice(urls),
                           "rules cannot apply to both regular resources and non-resource "
                           "URLs"))
        return causes
    if not _strs(rule.get("apiGroups")):
        causes.append((f"{path}.apiGroups", None,
                       "Required value: resource rules must supply at least one api group"))
    if not _strs(rule.get("resources")):
        causes.append((f"{path}.resources", None,
                       "Required value: resource rules must supply at least one resource"))
    return causes


def _validate_subject(subject: Any, namespaced: bool, path: str) -> list[tuple[str, Any, str]]:
    """validation.ValidateRoleBindingSubject (after v1 defaulting)."""
    if not isinstance(subject, dict):
        return []
    causes: list[tuple[str, Any, str]] = []
    kind, name = subject.get("kind") or "", subject.get("name") or ""
    group = subject.get("apiGroup") or ""
    if not name:
        causes.append((f"{path}.name", None, "Required value"))
    if kind == "ServiceAccount":
        if group:
            causes.append((f"{path}.apiGroup", None,
                           f"Unsupported value: {go_quote(group)}: {_supported([''])}"))
        if not namespaced and not subject.get("namespace"):
            causes.append((f"{path}.namespace", None, "Required value"))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            causes.append((f"{path}.apiGroup", None,
                           f"Unsupported value: {go_quote(group)}: {_supported([RBAC_GROUP])}"))
    else:
        causes.append((f"{path}.kind", None, f"Unsupported value: {go_quote(kind)}: "
                       f"{_supported(['ServiceAccount', 'User', 'Group'])}"))
    return causes


def default_and_validate(rt: ResourceType, obj: dict[str, Any],
                         old: dict[str, Any] | None) -> None:
    """The v1 defaults (roleRef.apiGroup, subjects[].apiGroup) and the validation of Roles,
    ClusterRoles and their bindings (pkg/apis/rbac/validation), as 422s."""
    if rt.group != RBAC_GROUP:
        return
    causes: list[tuple[str, Any, str]] = []
    if rt.kind in ("Role", "ClusterRole"):
        for i, rule in enumerate(obj.get("rules") or []):
            causes += _validate_rule(rule, rt.kind == "Role", f"rules[{i}]")
        agg = obj.get("aggregationRule")
        if rt.kind == "ClusterRole" and isinstance(agg, dict) and \
                not agg.get("clusterRoleSelectors"):
            causes.append(("aggregationRule.clusterRoleSelectors", None,
                           "Required value: at least one clusterRoleSelector required if "
                           "aggregationRule is non-nil"))
    elif rt.kind in ("RoleBinding", "ClusterRoleBinding"):
        ref = obj.get("roleRef")
        if isinstance(ref, dict) and not ref.get("apiGroup"):
            ref["apiGroup"] = RBAC_GROUP
        for subject in obj.get("subjects") or []:
            if isinstance(subject, dict) and not subject.get("apiGroup") and \
                    subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = RBAC_GROUP
        ref = ref if isinstance(ref, dict) else {}
        if ref.get("apiGroup") != RBAC_GROUP:
            causes.append(("roleRef.apiGroup", None,
                           f"Unsupported value: {go_quote(str(ref.get('apiGroup') or ''))}: "
                           f"{_supported([RBAC_GROUP])}"))
        kinds = ["Role", "ClusterRole"] if rt.kind == "RoleBinding" else ["ClusterRole"]
        if ref.get("kind") not in kinds:
            causes.append(("roleRef.kind", None,
                           f"Unsupported value: {go_quote(str(ref.get('kind') or ''))}: "
                           f"{_supported(kinds)}"))
        if not ref.get("name"):
            causes.append(("roleRef.name", None, "Required value"))
        for i, subject in enumerate(obj.get("subjects") or []):
            causes += _validate_subject(subject, rt.kind == "RoleBinding", f"subjects[{i}]")
        old_ref = (old or {}).get("roleRef") or {}
        if old is not None and {k: ref.get(k) for k in ("apiGroup", "kind", "name")} != \
                {k: old_ref.get(k) for k in ("apiGroup", "kind", "name")}:
            value = _go_struct("rbac.RoleRef", [("APIGroup", ref.get("apiGroup") or ""),
                                                ("Kind", ref.get("kind") or ""),
                                                ("Name", ref.get("name") or "")])
            causes.append(("roleRef", value, "cannot change roleRef"))
    if causes:
        raise errors.invalid(f"{rt.kind}.{rt.group}", obj["metadata"].get("name", ""),
                             causes, rt.group)


# ---------------------------------------------------------------------------------- bootstrap

def _policy_meta(name: str) -> dict[str, Any]:
    return {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}


def _url_rule(*urls: str) -> dict[str, Any]:
    return {"verbs": ["get"], "nonResourceURLs": list(urls)}


# The bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go) that
# decides what an authenticated user with no bindings of its own may do.
BOOTSTRAP_CLUSTER_ROLES: list[dict[str, Any]] = [
    {"metadata": _policy_meta("cluster-admin"), "rules": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]}]},
    {"metadata": _policy_meta("system:discovery"), "rules": [_url_rule(
        "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
        "/readyz", "/version", "/version/")]},
    {"metadata": _policy_meta("system:basic-user"), "rules": [
        {"apiGroups": [AUTHZ_GROUP], "resources": [
            "selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
        {"apiGroups": [AUTHN_GROUP], "resources": ["selfsubjectreviews"],
         "verbs": ["create"]}]},
    {"metadata": _policy_meta("system:public-info-viewer"), "rules": [_url_rule(
        "/healthz", "/livez", "/readyz", "/version", "/version/")]},
    {"metadata": _policy_meta("system:service-account-issuer-discovery"), "rules": [_url_rule(
        "/.well-known/openid-configuration", "/.well-known/openid-configuration/",
        "/openid/v1/jwks", "/openid/v1/jwks/")]},
]


def _cluster_binding(name: str, *groups: str) -> dict[str, Any]:
    return {"metadata": _policy_meta(name),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups]}


BOOTSTRAP_CLUSTER_ROLE_BINDINGS: list[dict[str, Any]] = [
    _cluster_binding("cluster-admin", MASTERS),
    _cluster_binding("system:discovery", AUTHENTICATED),
    _cluster_binding("system:basic-user", AUTHENTICATED),
    _cluster_binding("system:public-info-viewer", AUTHENTICATED, UNAUTHENTICATED),
    _cluster_binding("system:service-account-issuer-discovery", SA_GROUP),
]

# The review APIs, served by `Auth.serve` (they store nothing).
REVIEW_TYPES = [
    ResourceType(AUTHZ_GROUP, "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
                 False, verbs=["create"]),
    ResourceType(AUTHZ_GROUP, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
                 False, verbs=["create"]),
    ResourceType(AUTHZ_GROUP, "v1", "SubjectAccessReview", "subjectaccessreviews", False,
                 verbs=["create"]),
    ResourceType(AUTHZ_GROUP, "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews",
                 True, verbs=["create"]),
    ResourceType(AUTHN_GROUP, "v1", "SelfSubjectReview", "selfsubjectreviews", False,
                 verbs=["create"]),
    ResourceType(AUTHN_GROUP, "v1", "TokenReview", "tokenreviews", False, verbs=["create"]),
]


# ---------------------------------------------------------------------------------- protobuf

PROTOBUF = "application/vnd.kubernetes.protobuf"
_PB_MAGIC = b"k8s\x00"
_S, _I, _LS = "string", "int", "[string"  # scalar, int64, repeated string
_META = ("metadata", "ObjectMeta")
# Field numbers of the request messages (k8s.io/api/{authorization,authentication}/v1/
# generated.proto), enough to decode what kubectl's typed clients send.
_PB_MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes"),
                3: ("contentEncoding", _S), 4: ("contentType", _S)},
    "TypeMeta": {1: ("apiVersion", _S), 2: ("kind", _S)},
    "ObjectMeta": {1: ("name", _S), 2: ("generateName", _S), 3: ("namespace", _S)},
    "SelfSubjectAccessReview": {1: _META, 2: ("spec", "SelfSubjectAccessReviewSpec")},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes"),
                                    2: ("nonResourceAttributes", "NonResourceAttributes")},
    "SubjectAccessReview": {1: _META, 2: ("spec", "SubjectAccessReviewSpec")},
    "LocalSubjectAccessReview": {1: _META, 2: ("spec", "SubjectAccessReviewSpec")},
    "SubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes"),
                                2: ("nonResourceAttributes", "NonResourceAttributes"),
                                3: ("user", _S), 4: ("groups", _LS), 5: ("extra", "{Extra"),
                                6: ("uid", _S)},
    "Extra": {1: ("key", _S), 2: ("value", "ExtraValue")},
    "ExtraValue": {1: ("items", _LS)},
    "ResourceAttributes": {1: ("namespace", _S), 2: ("verb", _S), 3: ("group", _S),
                           4: ("version", _S), 5: ("resource", _S), 6: ("subresource", _S),
                           7: ("name", _S), 8: ("fieldSelector", "SelectorAttributes"),
                           9: ("labelSelector", "SelectorAttributes")},
    "SelectorAttributes": {1: ("rawSelector", _S)},
    "NonResourceAttributes": {1: ("path", _S), 2: ("verb", _S)},
    "SelfSubjectRulesReview": {1: _META, 2: ("spec", "SelfSubjectRulesReviewSpec")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", _S)},
    "SelfSubjectReview": {1: _META},
    "TokenReview": {1: _META, 2: ("spec", "TokenReviewSpec")},
    "TokenReviewSpec": {1: ("token", _S), 2: ("audiences", _LS)},
    "TokenRequest": {1: _META, 2: ("spec", "TokenRequestSpec")},
    "TokenRequestSpec": {1: ("audiences", _LS), 4: ("expirationSeconds", _I),
                         3: ("boundObjectRef", "BoundObjectReference")},
    "BoundObjectReference": {1: ("kind", _S), 2: ("apiVersion", _S), 3: ("name", _S),
                             4: ("uid", _S)},
}


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _pb_message(data: bytes, message: str) -> dict[str, Any]:
    fields = _PB_MESSAGES[message]
    out: dict[str, Any] = {}
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value: Any
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            if i + length > len(data):
                raise ValueError("truncated field")
            value, i = data[i:i + length], i + length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            continue
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if number not in fields:
            continue
        name, typ = fields[number]
        if typ == _S:
            if value:
                out[name] = bytes(value).decode("utf-8")
        elif typ == _LS:
            out.setdefault(name, []).append(bytes(value).decode("utf-8"))
        elif typ == _I:
            out[name] = value - (1 << 64) if value >= 1 << 63 else value
        elif typ == "bytes":
            out[name] = bytes(value)
        elif typ.startswith("{"):
            entry = _pb_message(bytes(value), typ[1:])
            out.setdefault(name, {})[entry.get("key", "")] = \
                (entry.get("value") or {}).get("items", [])
        else:
            out[name] = _pb_message(bytes(value), typ)
    return out


def decode_protobuf(body: bytes, kind: str) -> dict[str, Any]:
    """A review or TokenRequest sent as application/vnd.kubernetes.protobuf, as JSON."""
    if not body.startswith(_PB_MAGIC):
        raise errors.bad_request(f"the object provided is unrecognized (must be of type "
                                 f"{kind}): provided data does not appear to be a protobuf "
                                 f"message, expected prefix [107 56 115 0]")
    try:
        unknown = _pb_message(body[len(_PB_MAGIC):], "Unknown")
        type_meta = unknown.get("typeMeta") or {}
        sent_kind = type_meta.get("kind") or kind
        if sent_kind not in _PB_MESSAGES:
            raise ValueError(f"kind {sent_kind!r} is not {kind}")
        obj = _pb_message(unknown.get("raw", b""), sent_kind)
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.bad_request(f"the object provided is unrecognized (must be of type "
                                 f"{kind}): {e}") from None
    obj["kind"] = sent_kind
    obj["apiVersion"] = type_meta.get("apiVersion", "")
    return obj


# ---------------------------------------------------------------------------------- the front

def _invalid(kind: str, group: str, name: str, causes: list[tuple[str, Any, str]]) -> ApiError:
    return errors.invalid(f"{kind}.{group}", name, causes, group)


def _go_struct(type_name: str, fields: list[tuple[str, Any]]) -> str:
    """%#v of a small Go struct of strings."""
    body = ", ".join(f"{k}:{go_quote(str(v))}" for k, v in fields)
    return f"{type_name}{{{body}}}"


class Auth:
    """Tokens, the authorizer, impersonation, admission and the review APIs of one KubeSim."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.authorizer = Authorizer(api)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        for rt in REVIEW_TYPES:
            api.registry.add(rt)
        from .api import Ctx

        ctx = Ctx(user_agent="kube-apiserver")
        roles = api.registry.lookup(RBAC_GROUP, "v1", "clusterroles")
        bindings = api.registry.lookup(RBAC_GROUP, "v1", "clusterrolebindings")
        assert roles is not None and bindings is not None
        for obj in BOOTSTRAP_CLUSTER_ROLES:
            api.create(ctx, roles, None, copy.deepcopy(obj))
        for obj in BOOTSTRAP_CLUSTER_ROLE_BINDINGS:
            api.create(ctx, bindings, None, copy.deepcopy(obj))

    # ------------------------------------------------------------ tokens
    def add_token(self, token: str, user: str, groups: list[str] | tuple[str, ...] = (),
                  expires_in: float | None = None) -> User:
        """Register a bearer token for `user` in `groups` (plus system:authenticated)."""
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError(f"token must be a non-empty string without whitespace, got "
                             f"{token!r}")
        if not isinstance(user, str) or not user:
            raise ValueError(f"user must be a non-empty string, got {user!r}")
        if isinstance(groups, str) or not isinstance(groups, (list, tuple)) or \
                not all(isinstance(g, str) and g for g in groups):
            raise ValueError(f"groups must be a list of non-empty strings, got {groups!r}")
        if expires_in is not None and (isinstance(expires_in, bool) or
                                       not isinstance(expires_in, (int, float)) or
                                       expires_in <= 0):
            raise ValueError(f"expires_in must be a positive number of seconds, got "
                             f"{expires_in!r}")
        return self._register(token, User(user, self._with_authenticated(groups)),
                              expires_in=expires_in)

    @staticmethod
    def _with_authenticated(groups: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        out = list(dict.fromkeys(groups))
        if AUTHENTICATED not in out:
            out.append(AUTHENTICATED)
        return tuple(out)

    def _register(self, token: str, user: User, expires_in: float | None = None,
                  serviceaccount: tuple[str, str, str] | None = None) -> User:
        expires = time.monotonic() + expires_in if expires_in else None
        with self._lock:
            self._tokens[token] = _Token(user, expires, serviceaccount)
        return user

    def serviceaccount_token(self, namespace: str, name: str, token: str | None = None) -> str:
        """A token for the ServiceAccount `namespace/name` (which need not exist): `token`
        if given (so that several processes can act as one ServiceAccount and still be told
        apart in the audit log), else a fresh one."""
        for label, value in (("namespace", namespace), ("name", name)):
            if not isinstance(value, str) or not value or ":" in value or "/" in value:
                raise ValueError(f"{label} must be a ServiceAccount {label} (a non-empty "
                                 f"string without ':' or '/'), got {value!r}")
        if token is None:
            token = f"sa.{namespace}.{name}.{secrets.token_hex(12)}"
        elif not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError(f"token must be a non-empty string without whitespace, got "
                             f"{token!r}")
        self._register(token, self._sa_user(namespace, name))
        return token

    @staticmethod
    def _sa_user(namespace: str, name: str, uid: str = "") -> User:
        return User(serviceaccount_username(namespace, name),
                    (*serviceaccount_groups(namespace), AUTHENTICATED), uid)

    def revoke(self, token: str) -> bool:
        """Make a registered token answer 401 from now on; False if it was not registered."""
        with self._lock:
            t = self._tokens.get(token)
            if t is None:
                return False
            t.revoked = True
            return True

    def tokens(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"token": tok, "user": t.user.name, "groups": list(t.user.groups),
                     "revoked": t.revoked} for tok, t in self._tokens.items()]

    def authenticate(self, authorization: str) -> User:
        """The user of an `Authorization` header: ADMIN unless the token is registered."""
        if not authorization.lower().startswith("bearer "):
            return ADMIN
        token = authorization[7:].strip()
        with self._lock:
            t = self._tokens.get(token)
        if t is None:
            return ADMIN
        if t.revoked or (t.expires is not None and time.monotonic() >= t.expires):
            raise unauthorized()
        if t.serviceaccount is not None:
            ns, name, uid = t.serviceaccount
            sa = self.api.store.get(("", "serviceaccounts"), ns, name)
            if sa is None or sa["metadata"].get("uid") != uid:
                raise unauthorized()
        return t.user

    # ------------------------------------------------------------ the request filter
    def check(self, user: User, method: str, path: str, query: dict[str, str],
              headers: Any) -> tuple[User, Attributes | None]:
        """Impersonation, then authorization. Returns the user the request acts as and, if it
        was denied, raises the 403 (its attributes are on the error as `.attributes`)."""
        user = self._impersonate(user, path, headers)
        if user is ADMIN:
            return user, None
        attrs = request_attributes(user, method, path, query)
        allowed, reason = self.authorizer.authorize(attrs)
        if not allowed:
            err = forbidden(attrs, reason)
            err.attributes = attrs  # type: ignore[attr-defined]
            raise err
        return user, attrs

    def _impersonate(self, user: User, path: str, headers: Any) -> User:
        """filters.WithImpersonation."""
        get_all = getattr(headers, "get_all", None)
        requested = (headers.get("Impersonate-User") or "") if headers is not None else ""
        groups_req = list(get_all("Impersonate-Group") or []) if get_all else []
        uid_req = (headers.get("Impersonate-Uid") or "") if headers is not None else ""
        extras: list[tuple[str, str]] = []
        if headers is not None:
            for key, value in headers.items():
                if key.lower().startswith("impersonate-extra-"):
                    from urllib.parse import unquote

                    extras.append((unquote(key[len("impersonate-extra-"):].lower()), value))
        if not (requested or groups_req or uid_req or extras):
            return user
        if not requested:
            raise errors.internal(
                f"requested impersonation of groups, extras or uid without impersonating a "
                f"user ({path})")
        checks: list[Attributes] = []
        username, groups = requested, []
        sa = split_serviceaccount_username(requested)
        if sa is not None:
            checks.append(Attributes(user, "impersonate", True, namespace=sa[0],
                                     resource="serviceaccounts", name=sa[1]))
            if not groups_req:
                groups = list(serviceaccount_groups(sa[0]))
        else:
            checks.append(Attributes(user, "impersonate", True, resource="users",
                                     name=requested))
        for g in groups_req:
            checks.append(Attributes(user, "impersonate", True, resource="groups", name=g))
            groups.append(g)
        extra: dict[str, list[str]] = {}
        for key, value in extras:
            checks.append(Attributes(user, "impersonate", True, api_group=AUTHN_GROUP,
                                     api_version="v1", resource="userextras",
                                     subresource=key, name=value))
            extra.setdefault(key, []).append(value)
        if uid_req:
            checks.append(Attributes(user, "impersonate", True, api_group=AUTHN_GROUP,
                                     api_version="v1", resource="uids", name=uid_req))
        for attrs in checks:
            allowed, reason = self.authorizer.authorize(attrs)
            if not allowed:
                raise forbidden(attrs, reason)
        if username != ANONYMOUS:
            if AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
                groups.append(AUTHENTICATED)
        elif UNAUTHENTICATED not in groups:
            groups.append(UNAUTHENTICATED)
        return User(username, tuple(groups), uid_req,
                    tuple((k, tuple(v)) for k, v in extra.items()))

    # ------------------------------------------------------------ admission
    def admission(self, user: User, verb: str, sub: str) -> Callable[..., None] | None:
        """What runs once the object of a write is known, for Ctx.admit: the `create`
        authorization of a PUT or PATCH that creates (handlers' withAuthorization), then
        OwnerReferencesPermissionEnforcement."""
        if MASTERS in user.groups:
            return None

        def admit(operation: str, rt: ResourceType, ns: str | None, obj: dict[str, Any],
                  old: dict[str, Any] | None) -> None:
            if operation == "create" and verb in ("update", "patch"):
                name = (obj.get("metadata") or {}).get("name") or ""
                attrs = Attributes(user, "create", True, namespace=ns or "",
                                   api_group=rt.group, api_version=rt.version,
                                   resource=rt.plural, subresource=sub, name=name)
                allowed, reason = self.authorizer.authorize(attrs)
                if not allowed:
                    raise new_forbidden(rt.group, rt.plural, name, reason)
            self._owner_references(user, operation, rt, ns or "", sub, obj, old)
        return admit

    def _owner_references(self, user: User, operation: str, rt: ResourceType, ns: str,
                          sub: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if rt.group == "" and rt.plural == "pods" and sub == "status":
            return  # the plugin's whitelist
        new_refs = [r for r in (obj.get("metadata") or {}).get("ownerReferences") or []
                    if isinstance(r, dict)]
        old_refs = [r for r in ((old or {}).get("metadata") or {}).get("ownerReferences") or []
                    if isinstance(r, dict)] if old is not None else []
        changing = bool(new_refs) if old is None else new_refs != old_refs
        if not changing:
            return
        name = (obj.get("metadata") or {}).get("name") or "Unknown"
        if operation != "create":
            attrs = Attributes(user, "delete", True, namespace=ns, api_group=rt.group,
                               api_version=rt.version, resource=rt.plural, subresource=sub,
                               name=name)
            allowed, reason = self.authorizer.authorize(attrs)
            if not allowed:
                raise new_forbidden(rt.group, rt.plural, name,
                                    f"cannot set an ownerRef on a resource you can't delete: "
                                    f"{reason}, <nil>")
        old_by_uid = {r.get("uid"): r for r in old_refs}
        blocking = []
        for ref in new_refs:
            if ref.get("blockOwnerDeletion") is not True:
                continue
            before = old_by_uid.get(ref.get("uid")) if old is not None else None
            if before is None or before.get("blockOwnerDeletion") is not True:
                blocking.append(ref)
        if not blocking:
            return
        anything = Attributes(user, "update", True, api_group="*", api_version="*",
                              resource="*", subresource="finalizers", name="*")
        if self.authorizer.authorize(anything)[0]:
            return
        for ref in blocking:
            api_version, kind = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
            group, _, version = api_version.rpartition("/")
            types = [t for t in self.api.registry.by_kind(group, kind) if t.version == version]
            if not types:
                raise new_forbidden(
                    rt.group, rt.plural, name,
                    f"cannot set blockOwnerDeletion in this case because cannot find "
                    f"RESTMapping for APIVersion {api_version} Kind {kind}: no matches for "
                    f"kind {go_quote(kind)} in version {go_quote(api_version)}")
            for t in types:
                attrs = Attributes(user, "update", True, namespace=ns if t.namespaced else "",
                                   api_group=t.group, api_version=t.version,
                                   resource=t.plural, subresource="finalizers",
                                   name=str(ref.get("name") or ""))
                allowed, reason = self.authorizer.authorize(attrs)
                if not allowed:
                    raise new_forbidden(
                        rt.group, rt.plural, name,
                        f"cannot set blockOwnerDeletion if an ownerReference refers to a "
                        f"resource you can't set finalizers on: {reason}, <nil>")

    # ------------------------------------------------------------ review APIs and tokens
    def handles(self, rt: ResourceType, sub: str) -> bool:
        return rt.group in (AUTHZ_GROUP, AUTHN_GROUP) or \
            (rt.group == "" and rt.plural == "serviceaccounts" and sub == "token")

    def serve(self, user: User, rt: ResourceType, ns: str | None, name: str, sub: str,
              body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST of a review, or of a TokenRequest: (code, answer)."""
        if sub == "token":
            return self._token_request(ns or "", name, body)
        spec = body.get("spec")
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise errors.bad_request(f"{rt.kind}.spec must be an object, got "
                                     f"{type(spec).__name__}")
        out: dict[str, Any] = {"kind": rt.kind, "apiVersion": rt.api_version,
                               "metadata": self._review_meta(body, ns)}
        if rt.plural == "selfsubjectreviews":
            out["status"] = {"userInfo": user.info()}
            return 201, out
        if rt.plural == "tokenreviews":
            return 201, self._token_review(out, spec)
        if rt.plural == "selfsubjectrulesreviews":
            return 201, self._rules_review(out, user, spec)
        subject = user
        if rt.plural in ("subjectaccessreviews", "localsubjectaccessreviews"):
            subject = self._sar_subject(rt, spec)
        attrs = self._review_attributes(rt, subject, spec, ns)
        allowed, reason = self.authorizer.authorize(attrs)
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        out["spec"] = spec
        out["status"] = status
        return 201, out

    @staticmethod
    def _review_meta(body: dict[str, Any], ns: str | None) -> dict[str, Any]:
        md = body.get("metadata")
        md = dict(md) if isinstance(md, dict) else {}
        md.setdefault("creationTimestamp", None)
        if ns:
            md["namespace"] = ns
        return md

    def _review_attributes(self, rt: ResourceType, user: User, spec: dict[str, Any],
                           ns: str | None) -> Attributes:
        res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        causes: list[tuple[str, Any, str]] = []
        if res is not None and nonres is not None:
            if rt.plural == "localsubjectaccessreviews":
                causes.append(("spec.nonResourceAttributes", self._nonres_go(nonres),
                               "disallowed on this kind of request"))
            else:
                causes.append(("spec.nonResourceAttributes", self._nonres_go(nonres),
                               "cannot be specified in combination with resourceAttributes"))
        elif res is None and nonres is None:
            causes.append(("spec.resourceAttributes", '"null"',
                           "exactly one of nonResourceAttributes or resourceAttributes must "
                           "be specified"))
        if rt.plural == "localsubjectaccessreviews" and isinstance(res, dict) and \
                (res.get("namespace") or "") != ns:
            causes.append(("spec.resourceAttributes.namespace",
                           go_quote(str(res.get("namespace") or "")),
                           "must match metadata.namespace"))
        for key, value in (("resourceAttributes", res), ("nonResourceAttributes", nonres)):
            if value is not None and not isinstance(value, dict):
                raise errors.bad_request(f"spec.{key} must be an object")
            for k, v in (value or {}).items():
                if k in ("namespace", "verb", "group", "version", "resource", "subresource",
                         "name", "path") and not isinstance(v, str):
                    raise errors.bad_request(f"spec.{key}.{k} must be a string, got "
                                             f"{type(v).__name__}")
        if causes:
            raise _invalid(rt.kind, rt.group, "", causes)
        if res is not None:
            return Attributes(user, res.get("verb", ""), True,
                              namespace=res.get("namespace", ""),
                              api_group=res.get("group", ""),
                              api_version=res.get("version", "") or "*",
                              resource=res.get("resource", ""),
                              subresource=res.get("subresource", ""),
                              name=res.get("name", ""))
        return Attributes(user, nonres.get("verb", ""), False, path=nonres.get("path", ""))

    @staticmethod
    def _nonres_go(nonres: Any) -> str:
        nonres = nonres if isinstance(nonres, dict) else {}
        return _go_struct("authorization.NonResourceAttributes",
                          [("Path", nonres.get("path", "")), ("Verb", nonres.get("verb", ""))])

    def _sar_subject(self, rt: ResourceType, spec: dict[str, Any]) -> User:
        name, groups = spec.get("user") or "", spec.get("groups") or []
        if not isinstance(name, str) or not isinstance(groups, list) or \
                not all(isinstance(g, str) for g in groups):
            raise errors.bad_request("spec.user must be a string and spec.groups a list of "
                                     "strings")
        if not name and not groups:
            raise _invalid(rt.kind, rt.group, "", [(
                "spec.user", '""', "at least one of user or group must be specified")])
        extra = spec.get("extra") or {}
        return User(name, tuple(groups), str(spec.get("uid") or ""),
                    tuple((str(k), tuple(v)) for k, v in extra.items()
                          if isinstance(v, list)) if isinstance(extra, dict) else ())

    def _rules_review(self, out: dict[str, Any], user: User,
                      spec: dict[str, Any]) -> dict[str, Any]:
        namespace = spec.get("namespace") or ""
        if not isinstance(namespace, str):
            raise errors.bad_request("spec.namespace must be a string")
        if not namespace:
            raise errors.bad_request("no namespace on request")
        rules, errs = self.authorizer.rules_for(user, namespace)
        resource_rules, nonresource_rules = [], []
        for r in rules:
            if _strs(r.get("resources")):
                rr: dict[str, Any] = {"verbs": _strs(r.get("verbs"))}
                for key in ("apiGroups", "resources", "resourceNames"):
                    if _strs(r.get(key)):
                        rr[key] = _strs(r.get(key))
                resource_rules.append(rr)
            if _strs(r.get("nonResourceURLs")):
                nonresource_rules.append({"verbs": _strs(r.get("verbs")),
                                          "nonResourceURLs": _strs(r.get("nonResourceURLs"))})
        status: dict[str, Any] = {"resourceRules": resource_rules,
                                  "nonResourceRules": nonresource_rules, "incomplete": False}
        if errs:
            status["evaluationError"] = aggregate(errs)
        out["spec"] = {}
        out["status"] = status
        return out

    def _token_review(self, out: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise _invalid("TokenReview", AUTHN_GROUP, "", [("spec.token", None,
                                                              "Required value")])
        with self._lock:
            known = token in self._tokens
        try:
            user = self.authenticate("Bearer " + token) if known else None
        except ApiError:
            user = None
        out["spec"] = {"token": token}
        out["status"] = {"authenticated": True, "user": user.info(),
                         "audiences": list(API_AUDIENCES)} if user is not None else \
            {"user": {}, "error": "[invalid bearer token, token lookup failed]"}
        return out

    def _token_request(self, ns: str, name: str, body: dict[str, Any]) -> tuple[int, dict]:
        """The serviceaccounts/<name>/token subresource (TokenRequest)."""
        sa = self.api.store.get(("", "serviceaccounts"), ns, name)
        if sa is None:
            raise errors.not_found("serviceaccounts", name)
        md = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        causes: list[tuple[str, Any, str]] = []
        if md.get("name") and md["name"] != name:
            causes.append(("metadata.name", go_quote(str(md["name"])),
                           "must match the service account name if specified"))
        if md.get("namespace") and md["namespace"] != ns:
            causes.append(("metadata.namespace", go_quote(str(md["namespace"])),
                           "must match the service account namespace if specified"))
        seconds = spec.get("expirationSeconds")
        if seconds is None:
            seconds = 3600
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise errors.bad_request(
                f'TokenRequest in version "v1" cannot be handled as a TokenRequest: json: '
                f"cannot unmarshal {type(seconds).__name__} into Go struct field "
                f"TokenRequestSpec.spec.expirationSeconds of type int64")
        if seconds < 600:
            causes.append(("spec.expirationSeconds", seconds,
                           "may not specify a duration less than 10 minutes"))
        elif seconds > 1 << 32:
            causes.append(("spec.expirationSeconds", seconds,
                           "may not specify a duration larger than 2^32 seconds"))
        if causes:
            raise _invalid("TokenRequest", AUTHN_GROUP, name, causes)
        uid = sa["metadata"].get("uid", "")
        token = f"sa.{ns}.{name}.{secrets.token_hex(16)}"
        self._register(token, self._sa_user(ns, name, uid), expires_in=seconds,
                       serviceaccount=(ns, name, uid))
        expiry = now_utc() + dt.timedelta(seconds=seconds)
        out_md = dict(md)
        out_md.setdefault("creationTimestamp", None)
        return 201, {
            "kind": "TokenRequest", "apiVersion": f"{AUTHN_GROUP}/v1", "metadata": out_md,
            "spec": {"audiences": spec.get("audiences") or list(API_AUDIENCES),
                     "expirationSeconds": seconds,
                     "boundObjectRef": spec.get("boundObjectRef")},
            "status": {"token": token, "expirationTimestamp": format_time(expiry)},
        }

