# Copyright: Claude Code Cluster contributors
# MIT License
"""The options every cluster module takes to reach the coordinator (module_utils/cluster_api)."""

from __future__ import annotations


class ModuleDocFragment:
    """extends_documentation_fragment: [cluster_api]"""

    DOCUMENTATION = r"""
options:
  coordinator_url:
    description: Base URL of the coordinator, e.g. C(https://10.0.0.20:8443).
    type: str
    required: true
  ca_path:
    description: PEM file of the CA that signed the coordinator's certificate (the cluster CA).
    type: path
  validate_certs:
    description: Verify the coordinator's TLS certificate. Turn off only on throwaway labs.
    type: bool
    default: true
  admin_username:
    description: Admin account the module logs in with (C(POST /api/v1/auth/token)).
    type: str
    default: admin
  admin_password:
    description: Password of O(admin_username).
    type: str
    required: true
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: float
    default: 30
"""
