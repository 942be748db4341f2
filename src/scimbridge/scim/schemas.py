"""The ``/Schemas`` documents: scim2-models' description of each model, as RFC 7643 §8.7 prints it.

The attributes, their types and characteristics come from the very models requests are
validated with (so what is published is what is enforced). Two things the models cannot say
are set here: the schema descriptions of §8.7.1 ("User Account", "Group", "Enterprise User"),
and ``externalId``, a common attribute (§3.1) that §8.7.1 leaves out of the resource schemas
but that Entra ID's schema discovery requires among the User and Group attributes (it maps its
matching attribute to it).
"""

from __future__ import annotations

from typing import Any

from scim2_models import Attribute
from scim2_models import CaseExact
from scim2_models import Context
from scim2_models import Mutability
from scim2_models import Required
from scim2_models import Returned
from scim2_models import Uniqueness

from ..domain.enterprise import EnterpriseUser
from ..domain.lifecycle_schema import LifecycleExtension
from ..domain.resources import Group
from ..domain.resources import User

_DESCRIPTIONS = {
    str(User.__schema__): "User Account",
    str(Group.__schema__): "Group",
    str(EnterpriseUser.__schema__): "Enterprise User",
    str(LifecycleExtension.__schema__): "User lifecycle state, maintained by scimbridge",
}
"""Schema descriptions, as RFC 7643 §8.7.1 gives them for its own schemas."""

RESOURCE_TYPE_DESCRIPTIONS = {"User": "User Account", "Group": "Group"}
"""Resource type descriptions, as RFC 7643 §8.6 gives them."""

_WITH_EXTERNAL_ID = frozenset({str(User.__schema__), str(Group.__schema__)})

EXTERNAL_ID = Attribute(
    name="externalId",
    type=Attribute.Type.string,
    multi_valued=False,
    description=(
        "A String that is an identifier for the resource as defined by the provisioning "
        "client. The service provider MUST always interpret the externalId as scoped to the "
        "provisioning domain."
    ),
    required=Required.false,
    case_exact=CaseExact.true,
    mutability=Mutability.read_write,
    returned=Returned.default,
    uniqueness=Uniqueness.none,
)
"""RFC 7643 §3.1 ``externalId``: caseExact, readWrite, issued by the client."""

PUBLISHED_MODELS: tuple[Any, ...] = (User, EnterpriseUser, LifecycleExtension, Group)


def schema_documents() -> list[dict[str, Any]]:
    """Return the schema representations ``/Schemas`` lists, without their ``meta``."""
    return [_document(model) for model in PUBLISHED_MODELS]


def _document(model: Any) -> dict[str, Any]:
    schema = model.to_schema()
    urn = str(schema.id)
    if urn in _DESCRIPTIONS:
        schema.description = _DESCRIPTIONS[urn]
    if urn in _WITH_EXTERNAL_ID:
        schema.attributes = [EXTERNAL_ID, *(schema.attributes or [])]
    body: dict[str, Any] = schema.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return body
