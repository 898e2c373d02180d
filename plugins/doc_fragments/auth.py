# Copyright: election.kubernetes contributors
# Apache License 2.0
"""Documentation of the connection options shared by every module of this collection."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig content as a dictionary.
      - Defaults to the E(K8S_AUTH_KUBECONFIG) environment variable, then E(KUBECONFIG),
        then C(~/.kube/config). Inside a Pod with a service account and no kubeconfig or
        host given, the in-cluster configuration is used.
    type: raw
  context:
    description:
      - The kubeconfig context to use. Defaults to E(K8S_AUTH_CONTEXT), then the current
        context of the kubeconfig.
    type: str
  host:
    description:
      - URL of the Kubernetes API server. Defaults to E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token for the API server. Defaults to E(K8S_AUTH_API_KEY).
    type: str
  username:
    description:
      - User name for basic authentication. Defaults to E(K8S_AUTH_USERNAME).
    type: str
  password:
    description:
      - Password for basic authentication. Defaults to E(K8S_AUTH_PASSWORD).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Defaults to
        E(K8S_AUTH_VERIFY_SSL).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA certificate to verify the API server with. Defaults to
        E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate. Defaults to E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the client certificate's key. Defaults to E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  proxy:
    description:
      - HTTP proxy URL for the API connection. Defaults to E(K8S_AUTH_PROXY).
    type: str
  no_proxy:
    description:
      - Comma-separated hosts that bypass the proxy. Defaults to E(K8S_AUTH_NO_PROXY).
    type: str
  impersonate_user:
    description:
      - User to impersonate. Defaults to E(K8S_AUTH_IMPERSONATE_USER).
    type: str
  impersonate_groups:
    description:
      - Groups to impersonate. Defaults to E(K8S_AUTH_IMPERSONATE_GROUPS) (comma-separated).
    type: list
    elements: str
notes:
  - The connection options have the names, aliases and environment variables of
    kubernetes.core's modules, so a play can set them once for both collections.
"""
