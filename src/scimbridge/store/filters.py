"""SCIM filters and sort keys compiled to SQL over the store's tables.

scim2-models parses and validates the filter; this module walks its syntax tree and emits a
SQLAlchemy clause. Indexed columns serve the attributes identity providers filter on
(``userName``, ``externalId``, ``emails``, ``displayName``, ``active``, ``meta`` dates,
``members``); every other attribute is read from the JSON document with the database's own JSON
functions, so no filter ever loads rows into Python to test them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from inspect import isclass
from typing import Any

from scim2_models import Extension
from scim2_models import InvalidFilterException
from scim2_models import ScimFilter
from scim2_models.path import AttributeBinding
from scim2_models.path import AttrPath
from scim2_models.path import CompareOperator
from scim2_models.path import Comparison
from scim2_models.path import FilterVisitor
from scim2_models.path import LogicalExpr
from scim2_models.path import LogicalOperator
from scim2_models.path import Not
from scim2_models.path import Present
from scim2_models.path import ValuePath
from scim2_models.path import coerce_value
from sqlalchemy import JSON
from sqlalchemy import ColumnElement
from sqlalchemy import and_
from sqlalchemy import column
from sqlalchemy import exists
from sqlalchemy import false
from sqlalchemy import func
from sqlalchemy import literal
from sqlalchemy import not_
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import KeyedColumnElement

from ..domain.lifecycle_schema import LifecycleExtension
from ..domain.resources import UserResource
from .tables import group_members
from .tables import groups
from .tables import user_emails
from .tables import users

Clause = ColumnElement[bool]
Expr = ColumnElement[Any]


@dataclass(frozen=True)
class _Scalar:
    """A compared value: its SQL expression and how values are prepared for it."""

    expr: Expr
    lowered: bool
    """The expression holds the comparison key (NFC, lower-case) of the value."""


def _utc_naive(value: datetime) -> datetime:
    """Return the UTC wall time of ``value``, the form the timestamp columns hold."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None)


def json_key(model: type[Any], field_name: str) -> str:
    """Return the SCIM attribute name under which a model field is stored in a document."""
    info = model.model_fields[field_name]
    return info.serialization_alias or info.alias or field_name


class _Target:
    """Where a resource's values live: columns, side tables and the JSON document."""

    def __init__(self, resource: str, dialect: str) -> None:
        self.resource = resource
        self.dialect = dialect
        self.table = users if resource == "User" else groups

    # -- single-valued attributes -------------------------------------------------------

    def scalar(self, binding: AttributeBinding) -> _Scalar | None:
        """Return the expression of a single-valued attribute, or None if it is never set."""
        name, sub = binding.field_name, binding.sub_field_name
        table = self.table
        if name == "id":
            return _Scalar(table.c.id, False)
        if name == "external_id":
            return _Scalar(table.c.external_id, False)
        if name == "meta":
            return self._meta(sub)
        if binding.model is LifecycleExtension:
            return _lifecycle_scalar(name)
        if self.resource == "User":
            if name == "user_name":
                return _Scalar(users.c.user_name_key, True)
            if name == "display_name":
                return _Scalar(users.c.display_name_key, True)
            if name == "active":
                return _Scalar(users.c.active, False)
        elif name == "display_name":
            return _Scalar(groups.c.display_name_key, True)
        return self._document_scalar(binding)

    def _meta(self, sub: str | None) -> _Scalar | None:
        table = self.table
        if sub == "created":
            return _Scalar(table.c.created, False)
        if sub == "last_modified":
            return _Scalar(table.c.last_modified, False)
        if sub == "resource_type":
            return _Scalar(literal(self.resource), False)
        # meta.version and meta.location are derived on output and never filtered on.
        return None

    def _document_path(self, binding: AttributeBinding) -> list[str]:
        path: list[str] = []
        if issubclass(binding.model, Extension):
            path.append(str(binding.model.__schema__))
        path.append(json_key(binding.model, binding.field_name))
        if binding.sub_field_name and binding.field_type is not None:
            path.append(json_key(binding.field_type, binding.sub_field_name))
        return path

    def _document_scalar(self, binding: AttributeBinding) -> _Scalar:
        path = self._document_path(binding)
        return _document_value(self.table.c.doc[tuple(path)], binding)

    # -- multi-valued attributes ----------------------------------------------------------

    def elements(self, binding: AttributeBinding) -> _Elements:
        """Return the rows of a multi-valued attribute, correlated to the resource."""
        name = binding.field_name
        if self.resource == "User" and name == "emails":
            return _EmailElements()
        if self.resource == "User" and name == "groups":
            return _GroupsOfUserElements()
        if self.resource == "Group" and name == "members":
            return _MemberElements()
        return _JsonElements(self, binding)


def _lifecycle_scalar(name: str) -> _Scalar | None:
    """Lifecycle attributes live in columns; the invitation dates are not filterable."""
    if name == "status":
        return _Scalar(users.c.status, True)
    if name == "password_change_required":
        return _Scalar(users.c.password_change_required, False)
    if name == "last_login":
        return _Scalar(users.c.last_login, False)
    return None


def _typed_json(element: Any, binding: AttributeBinding) -> Expr:
    """Read a JSON value as the SQL type of its attribute."""
    target = binding.target_type
    if target is bool:
        return element.as_boolean()  # type: ignore[no-any-return]
    if target is int:
        return element.as_integer()  # type: ignore[no-any-return]
    if target is float:
        return element.as_float()  # type: ignore[no-any-return]
    return element.as_string()  # type: ignore[no-any-return]


def _document_value(element: Any, binding: AttributeBinding) -> _Scalar:
    """Read a JSON value for comparison, lower-cased unless its attribute is caseExact.

    The document keeps values as the client sent them, so unlike the ``_key`` columns it does
    not hold the comparison form: the database lower-cases case-insensitive strings itself.
    Its ``lower()`` does not normalise to NFC, and on SQLite (and a PostgreSQL cluster with the
    C locale) it only folds ASCII letters; attributes filtered on non-ASCII text in practice
    (userName, displayName, emails) have indexed key columns instead.
    """
    expr = _typed_json(element, binding)
    if _is_string(binding) and not binding.case_exact:
        return _Scalar(func.lower(expr), True)
    return _Scalar(expr, False)


def _is_string(binding: AttributeBinding) -> bool:
    """Whether an attribute holds strings, canonical-value enums (``emails.type``) included."""
    target = binding.target_type
    return isclass(target) and issubclass(target, str)


class _Elements:
    """The entries of one multi-valued attribute of the resource being filtered."""

    def sub(self, binding: AttributeBinding) -> _Scalar | None:
        """Return the expression of a sub-attribute of one entry."""
        raise NotImplementedError

    def exists(self, predicate: Clause) -> Clause:
        """Return whether some entry satisfies ``predicate``."""
        raise NotImplementedError


class _EmailElements(_Elements):
    def sub(self, binding: AttributeBinding) -> _Scalar | None:
        columns = {
            "value": _Scalar(user_emails.c.value_key, True),
            "type": _Scalar(func.lower(user_emails.c.type), True),
            "primary": _Scalar(user_emails.c.primary, False),
            "display": _Scalar(func.lower(user_emails.c.display), True),
        }
        return columns.get(binding.sub_field_name or "value")

    def exists(self, predicate: Clause) -> Clause:
        return exists().where(user_emails.c.user_pk == users.c.pk, predicate)


class _GroupsOfUserElements(_Elements):
    def sub(self, binding: AttributeBinding) -> _Scalar | None:
        columns = {
            "value": _Scalar(groups.c.id, False),
            "display": _Scalar(groups.c.display_name_key, True),
            # "direct" is its own comparison key, so the filter value is lowered to match it.
            "type": _Scalar(literal("direct"), True),
        }
        return columns.get(binding.sub_field_name or "value")

    def exists(self, predicate: Clause) -> Clause:
        return exists().where(
            group_members.c.member_id == users.c.id,
            groups.c.pk == group_members.c.group_pk,
            predicate,
        )


class _MemberElements(_Elements):
    def sub(self, binding: AttributeBinding) -> _Scalar | None:
        if binding.sub_field_name == "display":
            member_user = users.alias("member_user")
            member_group = groups.alias("member_group")
            # The same precedence as the members a group lists (store.load_members): the
            # display the client sent with the member, else the member's own name.
            display = func.coalesce(
                func.lower(group_members.c.display),
                select(func.coalesce(member_user.c.display_name_key, member_user.c.user_name_key))
                .where(member_user.c.id == group_members.c.member_id)
                .scalar_subquery(),
                select(member_group.c.display_name_key)
                .where(member_group.c.id == group_members.c.member_id)
                .scalar_subquery(),
            )
            return _Scalar(display, True)
        columns = {
            # members.value is not caseExact (RFC 7643 §8.7.1); the ids scimbridge issues are
            # lower-case UUIDs, so the column holds the comparison form and keeps its index.
            "value": _Scalar(group_members.c.member_id, True),
            "type": _Scalar(func.lower(group_members.c.member_type), True),
        }
        return columns.get(binding.sub_field_name or "value")

    def exists(self, predicate: Clause) -> Clause:
        return exists().where(group_members.c.group_pk == groups.c.pk, predicate)


class _JsonElements(_Elements):
    """Entries of a JSON array in the document, expanded by the database."""

    def __init__(self, target: _Target, binding: AttributeBinding) -> None:
        path = target._document_path(
            AttributeBinding(
                model=binding.model,
                field_name=binding.field_name,
                field_type=binding.field_type,
                is_multivalued=True,
                urn=binding.urn,
            )
        )
        doc = target.table.c.doc
        if target.dialect == "postgresql":
            element_type: Any = JSONB()
            source = func.jsonb_array_elements(doc[tuple(path)])
        else:
            element_type = JSON()
            source = func.json_each(doc, "$" + "".join(f'."{key}"' for key in path))
        self.rows = source.table_valued(column("value", element_type)).alias("element")
        self.value: KeyedColumnElement[Any] = self.rows.c.value

    def sub(self, binding: AttributeBinding) -> _Scalar | None:
        if binding.sub_field_name is None or binding.field_type is None:
            return None
        key = json_key(binding.field_type, binding.sub_field_name)
        return _document_value(self.value[key], binding)

    def exists(self, predicate: Clause) -> Clause:
        return exists(select(literal(1)).select_from(self.rows).where(predicate))


# -- the compiler ----------------------------------------------------------------------------


def _compare(scalar: _Scalar, op: CompareOperator, value: Any) -> Clause:
    """Compare an expression with a filter value; absent values never match."""
    expr = scalar.expr
    if isinstance(value, datetime):
        value = _utc_naive(value)
    if value is None:
        return expr.is_(None) if op == CompareOperator.eq else expr.is_not(None)
    comparisons: dict[CompareOperator, Callable[[], Clause]] = {
        CompareOperator.eq: lambda: expr == value,
        CompareOperator.ne: lambda: expr != value,
        CompareOperator.co: lambda: expr.contains(value, autoescape=True),
        CompareOperator.sw: lambda: expr.startswith(value, autoescape=True),
        CompareOperator.ew: lambda: expr.endswith(value, autoescape=True),
        CompareOperator.gt: lambda: expr > value,
        CompareOperator.ge: lambda: expr >= value,
        CompareOperator.lt: lambda: expr < value,
        CompareOperator.le: lambda: expr <= value,
    }
    clause = comparisons[op]()
    if op == CompareOperator.ne:
        return or_(expr.is_(None), clause)
    # Wrapping in "is not null" keeps the result two-valued, so ``not (...)`` behaves.
    return and_(expr.is_not(None), clause)


_SUBSTRING_OPERATORS = frozenset({CompareOperator.co, CompareOperator.sw, CompareOperator.ew})


def _is_not_text(binding: AttributeBinding) -> bool:
    """Whether an attribute holds values the database does not store as text (LIKE fails)."""
    target = binding.target_type
    return isclass(target) and issubclass(target, (bool, int, float, datetime, bytes))


def _present(scalar: _Scalar, binding: AttributeBinding) -> Clause:
    if _is_string(binding):
        return and_(scalar.expr.is_not(None), scalar.expr != "")
    return scalar.expr.is_not(None)


class _Compiler(FilterVisitor[Clause]):
    def __init__(self, scim_filter: ScimFilter[Any], target: _Target, strict: bool) -> None:
        self.filter = scim_filter
        self.target = target
        self.strict = strict
        self.scope: tuple[AttrPath, _Elements] | None = None

    def _resolve(self, attr_path: AttrPath, comparison: bool) -> AttributeBinding | None:
        if self.scope is not None:
            parent = self.scope[0]
            attr_path = AttrPath(
                attr=parent.attr,
                sub_attr=attr_path.attr,
                uri=parent.uri,
            )
        resolve = self.filter.resolve_comparison if comparison else self.filter.resolve
        return resolve(attr_path, strict=self.strict)

    def _operand(self, binding: AttributeBinding) -> tuple[_Scalar | None, _Elements | None]:
        """Return the scalar to compare and, for a multi-valued attribute, its entries."""
        if self.scope is not None:
            return self.scope[1].sub(binding), None
        if binding.is_multivalued:
            elements = self.target.elements(binding)
            return elements.sub(binding), elements
        return self.target.scalar(binding), None

    def visit_comparison(self, node: Comparison) -> Clause:
        binding = self._resolve(node.attr_path, comparison=True)
        if binding is None:
            return false()
        scalar, elements = self._operand(binding)
        if scalar is None:
            return false() if node.op != CompareOperator.ne else true()
        value = coerce_value(binding, node.value, node.op)
        if isinstance(value, str) and "\x00" in value:
            # A filter's string escapes (\u0000) can make a NUL the raw text never held:
            # PostgreSQL cannot compare text holding one, so it is the client's error.
            raise InvalidFilterException(detail="a filter value must not hold the NUL character")
        if node.op in _SUBSTRING_OPERATORS and (
            not isinstance(value, str) or _is_not_text(binding)
        ):
            # LIKE needs text on both sides: anything else is a client error, not a 500.
            raise InvalidFilterException(
                detail=f"'{node.op.value}' compares strings; {node.value!r} on "
                f"'{binding.urn}' is not one"
            )
        if scalar.lowered and isinstance(value, str):
            value = binding.comparable(value)
        clause = _compare(scalar, node.op, value)
        return elements.exists(clause) if elements is not None else clause

    def visit_present(self, node: Present) -> Clause:
        binding = self._resolve(node.attr_path, comparison=False)
        if binding is None:
            return false()
        if self.scope is None and binding.is_multivalued and binding.sub_field_name is None:
            return self.target.elements(binding).exists(true())
        scalar, elements = self._operand(binding)
        if scalar is None:
            # Every resource has its whole meta, version and location included, though those
            # two are derived on output and have no column to test.
            return true() if binding.field_name == "meta" and self.scope is None else false()
        clause = _present(scalar, binding)
        return elements.exists(clause) if elements is not None else clause

    def visit_not(self, node: Not) -> Clause:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> Clause:
        clauses = [self.visit(term) for term in node.terms]
        return and_(*clauses) if node.op == LogicalOperator.and_ else or_(*clauses)

    def visit_value_path(self, node: ValuePath) -> Clause:
        if self.scope is not None:
            raise InvalidFilterException(detail="value filters cannot be nested")
        binding = self.filter.resolve(node.attr_path, strict=self.strict)
        if binding is None:
            return false()
        elements = self.target.elements(binding)
        self.scope = (node.attr_path, elements)
        try:
            predicate = self.visit(node.val_filter)
        finally:
            self.scope = None
        return elements.exists(predicate)


def compile_filter(
    scim_filter: ScimFilter[Any], resource: str, dialect: str, *, strict: bool = True
) -> Clause:
    """Compile a filter bound to a resource model into a WHERE clause on its table.

    :param resource: ``"User"`` or ``"Group"``.
    :param dialect: The database dialect name, which decides how JSON arrays are expanded.
    :param strict: Whether an unknown attribute is an error (an endpoint of one resource
        type) or simply matches nothing (the root endpoint searching every type).
    :raises InvalidFilterException: If the filter names an attribute the model does not
        declare (when ``strict``), or compares a value its attribute cannot take.
    """
    return _Compiler(scim_filter, _Target(resource, dialect), strict).visit(scim_filter.ast)


_USER_NAME_EQ: ScimFilter[Any] = ScimFilter[UserResource]('userName eq "parsed once"')


def user_name_eq_key(user_name: str) -> Any:
    """Return what ``userName eq "<user_name>"`` compares the userName key column with.

    The lookup identity providers make before every create. The attribute is resolved from a
    filter parsed once, and the value coerced and folded as :meth:`_Compiler.visit_comparison`
    does for any filter: only the parse is spared.
    """
    parsed = _USER_NAME_EQ.ast
    assert isinstance(parsed, Comparison)
    binding = _USER_NAME_EQ.resolve_comparison(parsed.attr_path, strict=True)
    assert binding is not None
    return binding.comparable(coerce_value(binding, user_name, CompareOperator.eq))


def user_name_eq_where(key: Any) -> Clause:
    """Return the WHERE clause of ``userName eq``, for a key or a bound parameter standing for it.

    The clause the filter compiler makes of it (``_Target.scalar`` then ``_compare``).
    """
    return _compare(_Scalar(users.c.user_name_key, True), CompareOperator.eq, key)


def compile_sort_key(binding: AttributeBinding, resource: str, dialect: str) -> Expr | None:
    """Return the SQL expression a ``sortBy`` attribute, already resolved, orders by.

    A multi-valued attribute sorts by its primary value (RFC 7644 §3.4.2.3): the primary
    email, or the first entry of other attributes.
    """
    target = _Target(resource, dialect)
    if binding.is_multivalued:
        if resource == "User" and binding.field_name == "emails":
            if binding.sub_field_name in (None, "value"):
                return users.c.primary_email_key
        if resource == "Group" and binding.field_name == "members":
            return None
        path: list[str | int] = list(target._document_path(binding))
        path.insert(len(path) - 1 if binding.sub_field_name else len(path), 0)
        return _document_value(target.table.c.doc[tuple(path)], binding).expr
    scalar = target.scalar(binding)
    if scalar is None:
        return None
    if scalar.lowered or not _is_string(binding):
        return scalar.expr
    return func.lower(scalar.expr)


def compile_value_filter(
    scim_filter: ScimFilter[Any], value_path: ValuePath, resource: str, dialect: str
) -> Clause:
    """Compile the selection of a PATCH path (``members[value eq "x"]``) to a row predicate.

    The predicate is over the rows of the multi-valued attribute itself (for ``members``, the
    ``group_members`` table), so the caller can select or delete exactly the matching rows.
    """
    compiler = _Compiler(scim_filter, _Target(resource, dialect), strict=True)
    binding = scim_filter.resolve(value_path.attr_path, strict=True)
    assert binding is not None
    compiler.scope = (value_path.attr_path, compiler.target.elements(binding))
    return compiler.visit(value_path.val_filter)
