"""The Enterprise User extension as RFC 7643 publishes it (§4.3, §8.7.1).

scim2-models' ``EnterpriseUser`` marks ``manager.value`` and ``manager.$ref`` required (the
RFC's descriptions end in "REQUIRED."), but the schema representation of §8.7.1 gives both
``"required": false`` and §4.3 only RECOMMENDS them: Entra ID sends a manager as its ``value``
alone, and scimbridge computes ``$ref`` from it on output. These subclasses keep scim2-models'
model (same URN, same attributes) and relax only those flags, so that what ``/Schemas``
publishes and what validation enforces are one definition.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from scim2_models import CaseExact
from scim2_models import EnterpriseUser as _EnterpriseUser
from scim2_models import Manager as _Manager
from scim2_models import Reference
from scim2_models import Required
from scim2_models import User

ENTERPRISE_SCHEMA = str(_EnterpriseUser.__schema__)


class Manager(_Manager):
    """The User's manager: a reference to another User, both sub-attributes optional."""

    value: Annotated[str | None, Required.false, CaseExact.false] = None
    """The id of the SCIM resource representing the User's manager."""

    ref: Annotated[Reference[User] | None, Required.false, CaseExact.false] = Field(  # type: ignore[type-arg]
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    """The URI of the SCIM resource representing the User's manager."""


class EnterpriseUser(_EnterpriseUser):
    """Enterprise User."""

    manager: Manager | None = Field(
        None,
        description=(
            "The User's manager. A complex type that optionally allows service providers to "
            "represent organizational hierarchy by referencing the 'id' attribute of another "
            "User."
        ),
    )
    """The User's manager (its description is RFC 7643's, on one line)."""
