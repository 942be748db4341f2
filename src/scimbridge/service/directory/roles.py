"""Roles from ``config/roles.yaml``: which groups grant which role, and a user's effective role."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import yaml

from ...domain.lifecycle import UnknownRole

EXTERNAL_ID_PREFIX = "externalId:"


@dataclass(frozen=True)
class Role:
    """One role of the platform."""

    name: str
    description: str = ""
    permissions: frozenset[str] = frozenset()
    priority: int = 0
    groups: tuple[str, ...] = ()
    """Granting groups: displayNames, or ``externalId:<value>``."""

    def granted_by(self, display_name: str, external_id: str | None) -> bool:
        """Whether a group with this displayName / externalId grants the role."""
        for group in self.groups:
            if group.startswith(EXTERNAL_ID_PREFIX):
                if external_id is not None and group[len(EXTERNAL_ID_PREFIX) :] == external_id:
                    return True
            elif group.casefold() == display_name.casefold():
                return True
        return False


@dataclass(frozen=True)
class RolesConfig:
    """Every role, and the one a user holds when no group grants another."""

    roles: tuple[Role, ...]
    default_role: str
    by_name: dict[str, Role] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {role.name: role for role in self.roles})
        if self.default_role not in self.by_name:
            raise ValueError(f"default_role {self.default_role!r} is not a defined role")

    def get(self, name: str) -> Role:
        """Return a role by name, or raise UnknownRole."""
        try:
            return self.by_name[name]
        except KeyError:
            raise UnknownRole(f"no role named {name!r}") from None

    def effective_role(self, groups: Iterable[tuple[str, str | None]]) -> Role:
        """Return the highest-priority role any of the groups grants, else the default."""
        granted = [
            role
            for display_name, external_id in groups
            for role in self.roles
            if role.granted_by(display_name, external_id)
        ]
        if not granted:
            return self.by_name[self.default_role]
        return max(granted, key=lambda role: role.priority)

    def granting_group_names(self) -> set[str]:
        """Display names (case-folded) of every group granting a role."""
        return {
            group.casefold()
            for role in self.roles
            for group in role.groups
            if not group.startswith(EXTERNAL_ID_PREFIX)
        }


def load_roles(path: Path) -> RolesConfig:
    """Read the roles file; a missing file means one role, ``member``, for everyone."""
    if not path.is_file():
        return RolesConfig((Role("member"),), "member")
    data = yaml.safe_load(path.read_text()) or {}
    roles = tuple(
        Role(
            name=str(entry["name"]),
            description=str(entry.get("description", "")),
            permissions=frozenset(str(p) for p in entry.get("permissions") or ()),
            priority=int(entry.get("priority", 0)),
            groups=tuple(str(g) for g in entry.get("groups") or ()),
        )
        for entry in data.get("roles") or ()
    )
    return RolesConfig(roles, str(data.get("default_role", roles[0].name if roles else "member")))
