"""The write operations of the SCIM endpoint, from a raw JSON body to a stored resource.

Shared by the single-resource views and by ``/Bulk``, so a bulk operation behaves exactly
as the same request sent alone: same client-profile tolerances, same validation, same errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from flask import current_app
from flask import g
from flask import request
from scim2_models import Context
from scim2_models import InvalidValueException
from scim2_models import PatchOp

from ..domain.lifecycle import Actor
from ..domain.lifecycle import RequestInfo
from ..domain.resources import Group
from ..domain.resources import GroupResource
from ..domain.resources import StoredResource
from ..domain.resources import UserResource
from ..service.clients.deviations import count_client_deviations
from ..service.directory.create_fast import plan_create
from ..service.directory.provisioning import Caller
from ..service.directory.provisioning import ProvisioningService
from .filter_cost import check_patch_path
from .quirks import ClientProfile
from .quirks import normalize_patch
from .quirks import normalize_resource

if TYPE_CHECKING:
    from ..store.database import Transaction

MODELS: dict[str, Any] = {"User": UserResource, "Group": GroupResource}
_PATCH_MODELS: dict[str, Any] = {"User": PatchOp[UserResource], "Group": PatchOp[Group]}


def _service() -> ProvisioningService:
    service: ProvisioningService = current_app.extensions["scimbridge"].provisioning
    return service


class _DeviationBookkeeping:
    """Counts the request's deviations in the transaction of its change.

    A PATCH from Entra ID meets two deviations on every deactivation; counting them in the
    change's own transaction spares one write transaction per request.
    """

    def __init__(self, profile: ClientProfile) -> None:
        self.profile = profile
        self._written = profile.counted

    def write(self, conn: Transaction) -> None:
        """Count the deviations met so far in the change's transaction."""
        tolerated, refused = self.profile.uncounted()
        count_client_deviations(conn, self.profile.token_name, tolerated, refused)
        self._written = (len(self.profile.seen), len(self.profile.refused))

    def committed(self) -> None:
        """Mark them counted: the request's end need not count them again."""
        self.profile.counted = self._written


def _caller() -> Caller:
    """Return the SCIM token behind the current request, as the audit trail names it."""
    # Every write asks: the proxies are resolved once, the header read from the environ.
    state = g._get_current_object()
    incoming = request._get_current_object()  # type: ignore[attr-defined]
    token = state.scim_token
    return Caller(
        Actor("scim", token.name, token.name),
        RequestInfo(
            request_id=state.get("request_id"),
            client_address=incoming.remote_addr,
            user_agent=incoming.environ.get("HTTP_USER_AGENT") or None,
        ),
        _DeviationBookkeeping(state.client_profile),
    )


def _check_patch_operations(body: dict[str, Any]) -> None:
    """Refuse a PATCH with a path over the filter cost bound, or an add/replace without value.

    Checked before any path is parsed. RFC 7644 §3.5.2.1 and §3.5.2.3: those operations MUST
    contain a value; without this check a ``replace`` with none would clear the attribute, as
    an explicit ``null`` does.
    """
    limits = current_app.extensions["scimbridge"].settings.scim
    for key, operations in body.items():
        if key.lower() != "operations" or not isinstance(operations, list):
            continue
        for operation in operations:
            if not isinstance(operation, dict):
                continue
            members = {name.lower(): value for name, value in operation.items()}
            path = members.get("path")
            if isinstance(path, str):
                check_patch_path(path, limits)
            op = members.get("op")
            if isinstance(op, str) and op.lower() in ("add", "replace") and "value" not in members:
                raise InvalidValueException(detail=f"a PATCH {op.lower()} must carry a value")


def _check_schemas(body: dict[str, Any]) -> None:
    """Refuse a resource without ``schemas`` (RFC 7643 §3: the attribute is REQUIRED)."""
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or not schemas:
        raise InvalidValueException(detail="schemas must list the resource's schema URIs")


def create_resource(
    resource_type: str, body: dict[str, Any], profile: ClientProfile
) -> StoredResource:
    """POST: validate a creation request and store the new resource."""
    if resource_type == "User":
        return create_user(_service(), body, profile, _caller())
    body = normalize_resource(body, GroupResource, profile)
    _check_schemas(body)
    group = GroupResource.model_validate(body, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    return _service().create_group(group, _caller())


def create_user(
    service: ProvisioningService, body: dict[str, Any], profile: ClientProfile, caller: Caller
) -> StoredResource:
    """POST /Users: store the user a creation body describes, under the client's profile.

    A body in the plain shape IdPs send is read by create_fast into its document; any other
    is normalised by the profile, validated by scim2-models (with its errors) and dumped.
    """
    planned = plan_create(body) if service.fast_create else None
    if planned is not None:
        profile.admit_email_values(planned.email_values)
        return service.create_user_document(planned, caller)
    body = normalize_resource(body, UserResource, profile)
    _check_schemas(body)
    user = UserResource.model_validate(body, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    emails = user.emails or []
    profile.admit_email_values(str(e.value) for e in emails if e.value is not None)
    return service.create_user(user, caller)


def replace_resource(
    resource_type: str,
    resource_id: str,
    body: dict[str, Any],
    if_match: str | None,
    profile: ClientProfile,
) -> StoredResource:
    """PUT: validate a replacement request and store it over the resource."""
    model = MODELS[resource_type]
    body = normalize_resource(body, model, profile)
    _check_schemas(body)
    resource = model.model_validate(body, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    if resource_type == "User":
        return _service().replace_user(resource_id, resource, if_match, _caller(), profile)
    return _service().replace_group(resource_id, resource, if_match, _caller())


def patch_resource(
    resource_type: str,
    resource_id: str,
    body: dict[str, Any],
    if_match: str | None,
    profile: ClientProfile,
    *,
    memberships: bool = True,
) -> StoredResource:
    """PATCH: validate the operations under the client's profile and apply them."""
    patched_model: Any = UserResource if resource_type == "User" else Group
    _check_patch_operations(body)
    body = normalize_patch(body, patched_model, profile)
    if resource_type == "User":
        # Validated by the service, which skips it for the shapes its fast path applies.
        return _service().patch_user_request(resource_id, body, if_match, profile, _caller())
    operations = _PATCH_MODELS[resource_type].model_validate(
        body, scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=profile.policy
    )
    return _service().patch_group(
        resource_id, operations, if_match, profile, _caller(), memberships=memberships
    )


def delete_resource(resource_type: str, resource_id: str, if_match: str | None) -> None:
    """DELETE: remove the resource and its memberships."""
    _service().delete(resource_type, resource_id, if_match, _caller())
