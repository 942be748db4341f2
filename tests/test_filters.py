"""SCIM filtering, sorting and paging through the HTTP API, on SQLite and on PostgreSQL.

Each test asserts the exact set (or sequence) of resources a request selects from a small,
fixed population, so a filter that matches too much is caught as surely as one that matches
too little.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any

import pytest
from flask import Flask

from scimbridge.app import create_app
from scimbridge.settings import ScimSettings
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .conftest import ENTERPRISE_SCHEMA
from .conftest import USER_SCHEMA
from .conftest import ScimClient
from .conftest import group_payload
from .conftest import make_settings
from .conftest import patch_payload
from .conftest import user_payload
from .store_support import store_users

EVERYONE = {"alice", "bob.smith", "carol", "dave", "50%off", "under_score"}
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Run every test of this module on both databases (overrides the SQLite-only one)."""
    return make_settings(database_url)


def enterprise_user(user_name: str, extension: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    return {
        **user_payload(user_name, **attributes),
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        ENTERPRISE_SCHEMA: extension,
    }


def create(scim: ScimClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = scim.post(path, body)
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


@pytest.fixture
def people(scim: ScimClient) -> dict[str, dict[str, Any]]:
    """Six users created one after the other (so meta.created increases), keyed by nickname.

    ========  =============  ========  ========================================================
    key       userName       active    notable attributes
    ========  =============  ========  ========================================================
    bob       Bob.Smith      true      externalId "abc", work email @corp, work phone, Lyon
    alice     alice          true      externalId "ABC", work email @x, mobile phone, Paris,
                                       manager bob, employeeNumber 1001, title "engineer"
    carol     carol          false     work email @corp (listed first), primary home email @x,
                                       mobile phone, no title
    dave      dave           true      nothing but a userName
    erin      50%off         true      title "R_D" (bob's title is "Manager")
    frank     under_score    true      nothing else
    ========  =============  ========  ========================================================
    """
    bob = create(
        scim,
        "/Users",
        enterprise_user(
            "Bob.Smith",
            {"employeeNumber": "1002", "department": "Sales"},
            externalId="abc",
            displayName="Bob Smith",
            name={"givenName": "Bob", "familyName": "Smith"},
            title="Manager",
            emails=[{"value": "bob@corp.example", "type": "work", "primary": True}],
            phoneNumbers=[{"value": "+1 555 0101", "type": "work"}],
            addresses=[{"type": "home", "locality": "Lyon", "country": "FR"}],
        ),
    )
    alice = create(
        scim,
        "/Users",
        enterprise_user(
            "alice",
            {
                "employeeNumber": "1001",
                "department": "R&D",
                "manager": {
                    "value": bob["id"],
                    "$ref": f"http://scim.test/scim/v2/Users/{bob['id']}",
                },
            },
            externalId="ABC",
            displayName="Alice Zephyr",
            name={"givenName": "Alice", "familyName": "Zephyr"},
            title="engineer",
            emails=[
                {"value": "alice@x.example", "type": "work", "primary": True},
                {"value": "alice@home.example", "type": "home"},
            ],
            phoneNumbers=[{"value": "+33 6 00 00 00 01", "type": "mobile"}],
            addresses=[{"type": "work", "locality": "Paris", "country": "FR", "primary": True}],
        ),
    )
    carol = create(
        scim,
        "/Users",
        user_payload(
            "carol",
            active=False,
            displayName="Carol Adams",
            name={"familyName": "Adams"},
            emails=[
                {"value": "aaron.carol@corp.example", "type": "work"},
                {"value": "carol@x.example", "type": "home", "primary": True},
            ],
            phoneNumbers=[{"value": "+44 7700 900000", "type": "mobile"}],
            addresses=[{"type": "work", "locality": "berlin", "country": "DE"}],
        ),
    )
    dave = create(scim, "/Users", user_payload("dave"))
    erin = create(scim, "/Users", user_payload("50%off", title="R_D"))
    frank = create(scim, "/Users", user_payload("under_score"))
    return {
        "bob": bob,
        "alice": alice,
        "carol": carol,
        "dave": dave,
        "erin": erin,
        "frank": frank,
    }


@pytest.fixture
def teams(scim: ScimClient, people: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Create Engineering (alice, carol), Sales (bob), All Staff (Engineering, dave), Empty."""
    engineering = create(
        scim,
        "/Groups",
        group_payload("Engineering", [people["alice"]["id"], people["carol"]["id"]]),
    )
    sales = create(scim, "/Groups", group_payload("Sales", [people["bob"]["id"]]))
    all_staff = create(
        scim, "/Groups", group_payload("All Staff", [engineering["id"], people["dave"]["id"]])
    )
    empty = create(scim, "/Groups", group_payload("Empty"))
    return {"engineering": engineering, "sales": sales, "all_staff": all_staff, "empty": empty}


def listed(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.get_json()
    resources: list[dict[str, Any]] = response.get_json().get("Resources", [])
    return resources


def users(scim: ScimClient, scim_filter: str) -> set[str]:
    """Return the userNames (lower-cased) a GET /Users filter selects."""
    found = listed(scim.get("/Users", query_string={"filter": scim_filter, "count": 1000}))
    names = {resource["userName"].lower() for resource in found}
    assert len(names) == len(found), "a user was listed twice"
    return names


def groups(scim: ScimClient, scim_filter: str) -> set[str]:
    """Return the displayNames a GET /Groups filter selects."""
    found = listed(scim.get("/Groups", query_string={"filter": scim_filter, "count": 1000}))
    names = {resource["displayName"] for resource in found}
    assert len(names) == len(found), "a group was listed twice"
    return names


def user_order(scim: ScimClient, **query: Any) -> list[str]:
    """Return the userNames of GET /Users in the order the server lists them."""
    found = listed(scim.get("/Users", query_string={"count": 1000, **query}))
    return [resource["userName"].lower() for resource in found]


def assert_invalid_filter(response: Any) -> None:
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["scimType"] == "invalidFilter", body
    assert body["status"] == "400"


# -- comparison operators ----------------------------------------------------------------------


@pytest.mark.usefixtures("people")
class TestOperators:
    def test_filter_eq_on_username_is_case_insensitive(self, scim: ScimClient) -> None:
        """UserName eq matches whatever the case of the value."""
        assert users(scim, 'userName eq "alice"') == {"alice"}
        assert users(scim, 'userName eq "ALICE"') == {"alice"}
        assert users(scim, 'userName eq "bob.smith"') == {"bob.smith"}

    def test_filter_eq_matches_whole_values_only(self, scim: ScimClient) -> None:
        """Eq is not a prefix or substring match."""
        assert users(scim, 'userName eq "ali"') == set()
        assert users(scim, 'userName eq "nobody"') == set()

    def test_filter_ne_matches_every_other_user(self, scim: ScimClient) -> None:
        """Ne selects everyone whose value differs."""
        assert users(scim, 'userName ne "ALICE"') == EVERYONE - {"alice"}

    def test_filter_ne_matches_users_without_the_attribute(self, scim: ScimClient) -> None:
        """An absent attribute is not equal to the value, so ne selects it."""
        assert users(scim, 'title ne "Engineer"') == EVERYONE - {"alice"}

    def test_filter_co_on_username_is_case_insensitive(self, scim: ScimClient) -> None:
        """Co finds a substring regardless of case."""
        assert users(scim, 'userName co "OB.SM"') == {"bob.smith"}
        assert users(scim, 'userName co "a"') == {"alice", "carol", "dave"}

    def test_filter_sw_matches_prefixes(self, scim: ScimClient) -> None:
        """Sw finds values starting with the operand, regardless of case."""
        assert users(scim, 'userName sw "C"') == {"carol"}
        assert users(scim, 'userName sw "arol"') == set()

    def test_filter_ew_matches_suffixes(self, scim: ScimClient) -> None:
        """Ew finds values ending with the operand, regardless of case."""
        assert users(scim, 'userName ew "SMITH"') == {"bob.smith"}
        assert users(scim, 'userName ew "smi"') == set()

    def test_filter_pr_matches_users_having_the_attribute(self, scim: ScimClient) -> None:
        """Pr selects users with a value, and every user for a required attribute."""
        assert users(scim, "title pr") == {"alice", "bob.smith", "50%off"}
        assert users(scim, "externalId pr") == {"alice", "bob.smith"}
        assert users(scim, "userName pr") == EVERYONE

    def test_filter_pr_on_a_multi_valued_attribute(self, scim: ScimClient) -> None:
        """Pr on emails selects users with at least one email."""
        assert users(scim, "emails pr") == {"alice", "bob.smith", "carol"}
        assert users(scim, "phoneNumbers pr") == {"alice", "bob.smith", "carol"}

    def test_filter_gt_ge_lt_le_order_usernames_case_insensitively(self, scim: ScimClient) -> None:
        """Ordering operators compare userNames by their case-insensitive form."""
        assert users(scim, 'userName gt "carol"') == {"dave", "under_score"}
        assert users(scim, 'userName ge "CAROL"') == {"carol", "dave", "under_score"}
        assert users(scim, 'userName lt "bob"') == {"50%off", "alice"}
        assert users(scim, 'userName le "BOB.SMITH"') == {"50%off", "alice", "bob.smith"}

    def test_filter_gt_on_a_document_attribute(self, scim: ScimClient) -> None:
        """Ordering operators work on attributes kept in the JSON document."""
        urn = ENTERPRISE_SCHEMA
        assert users(scim, f'{urn}:employeeNumber gt "1001"') == {"bob.smith"}
        assert users(scim, f'{urn}:employeeNumber ge "1001"') == {"alice", "bob.smith"}
        assert users(scim, f'{urn}:employeeNumber lt "1002"') == {"alice"}
        assert users(scim, f'{urn}:employeeNumber le "1000"') == set()

    def test_filter_active_eq_true_and_false(self, scim: ScimClient) -> None:
        """Active eq compares the boolean."""
        assert users(scim, "active eq false") == {"carol"}
        assert users(scim, "active eq true") == EVERYONE - {"carol"}
        assert users(scim, "active ne true") == {"carol"}

    def test_filter_on_id(self, scim: ScimClient, people: dict[str, dict[str, Any]]) -> None:
        """Id eq selects one resource."""
        assert users(scim, f'id eq "{people["carol"]["id"]}"') == {"carol"}


# -- logical operators -------------------------------------------------------------------------


@pytest.mark.usefixtures("people")
class TestLogic:
    def test_filter_and_requires_both_terms(self, scim: ScimClient) -> None:
        """And intersects."""
        assert users(scim, 'userName sw "a" and title pr') == {"alice"}

    def test_filter_or_accepts_either_term(self, scim: ScimClient) -> None:
        """Or unites."""
        assert users(scim, 'userName eq "alice" or userName eq "dave"') == {"alice", "dave"}

    def test_filter_and_binds_tighter_than_or(self, scim: ScimClient) -> None:
        """``a or b and c`` reads ``a or (b and c)``."""
        assert users(scim, 'userName eq "carol" or userName eq "alice" and title pr') == {
            "carol",
            "alice",
        }
        assert users(scim, 'title pr and userName eq "alice" or userName eq "carol"') == {
            "carol",
            "alice",
        }

    def test_filter_parentheses_override_precedence(self, scim: ScimClient) -> None:
        """Parentheses group an or before an and."""
        assert users(scim, '(userName eq "carol" or userName eq "alice") and title pr') == {"alice"}

    def test_filter_not_negates_a_group(self, scim: ScimClient) -> None:
        """Not (...) selects the complement."""
        assert users(scim, 'not (userName eq "alice" or userName eq "bob.smith")') == EVERYONE - {
            "alice",
            "bob.smith",
        }

    def test_filter_not_matches_users_where_the_attribute_is_absent(self, scim: ScimClient) -> None:
        """A user without the attribute does not match the inner filter, so not selects it."""
        assert users(scim, 'not (title eq "Engineer")') == EVERYONE - {"alice"}
        assert users(scim, 'not (name.familyName sw "Z")') == EVERYONE - {"alice"}
        assert users(scim, 'not (externalId eq "ABC")') == EVERYONE - {"alice"}
        assert users(scim, "not (title pr)") == {"carol", "dave", "under_score"}

    def test_filter_not_of_a_value_path(self, scim: ScimClient) -> None:
        """Not over a value path selects users with no such entry, including users with none."""
        assert users(scim, 'not (emails[type eq "work"])') == {"dave", "50%off", "under_score"}
        assert users(scim, 'not (phoneNumbers[type eq "mobile"])') == EVERYONE - {
            "alice",
            "carol",
        }

    def test_filter_nested_logic(self, scim: ScimClient) -> None:
        """Nested groups, not and mixed operators combine as written."""
        query = '(active eq true and not (emails pr)) or (userName sw "b" and title eq "manager")'
        assert users(scim, query) == {"dave", "50%off", "under_score", "bob.smith"}


# -- complex, multi-valued and extension attributes ----------------------------------------------


@pytest.mark.usefixtures("people")
class TestAttributes:
    def test_filter_value_path_requires_one_entry_to_match_every_term(
        self, scim: ScimClient
    ) -> None:
        """emails[type eq "work" and value co "@x"] needs one work email at @x."""
        assert users(scim, 'emails[type eq "work" and value co "@x"]') == {"alice"}
        # Without brackets the terms may be met by different emails.
        assert users(scim, 'emails.type eq "work" and emails.value co "@x"') == {"alice", "carol"}

    def test_filter_emails_without_sub_attribute_compares_the_value(self, scim: ScimClient) -> None:
        """``emails co`` compares email addresses."""
        assert users(scim, 'emails co "@CORP."') == {"bob.smith", "carol"}
        assert users(scim, 'emails.value eq "Carol@X.example"') == {"carol"}

    def test_filter_emails_primary(self, scim: ScimClient) -> None:
        """emails[primary eq true] matches the primary entry only."""
        assert users(scim, 'emails[primary eq true and value ew "@x.example"]') == {
            "alice",
            "carol",
        }
        assert users(scim, 'emails[primary eq true and value sw "aaron"]') == set()

    def test_filter_phone_numbers_value_path(self, scim: ScimClient) -> None:
        """The phoneNumbers entries (kept in the JSON document) filter through the array."""
        assert users(scim, 'phoneNumbers[type eq "mobile"]') == {"alice", "carol"}
        assert users(scim, 'phoneNumbers[type eq "MOBILE" and value sw "+44"]') == {"carol"}
        assert users(scim, 'phoneNumbers.type eq "work"') == {"bob.smith"}
        assert users(scim, 'phoneNumbers.value co "555"') == {"bob.smith"}

    def test_filter_addresses_value_path(self, scim: ScimClient) -> None:
        """Addresses filter on their sub-attributes."""
        assert users(scim, 'addresses[type eq "work" and country eq "fr"]') == {"alice"}
        assert users(scim, 'addresses.locality eq "lyon"') == {"bob.smith"}
        assert users(scim, 'addresses[country eq "FR"]') == {"alice", "bob.smith"}
        assert users(scim, "addresses[primary eq true]") == {"alice"}

    def test_filter_sub_attribute_of_a_complex_attribute(self, scim: ScimClient) -> None:
        """name.familyName is compared case-insensitively, like its parent."""
        assert users(scim, 'name.familyName eq "zephyr"') == {"alice"}
        assert users(scim, 'name.familyName sw "Sm"') == {"bob.smith"}
        assert users(scim, 'name.familyName co "A"') == {"carol"}
        assert users(scim, "name.givenName pr") == {"alice", "bob.smith"}

    def test_filter_pr_on_a_complex_attribute(self, scim: ScimClient) -> None:
        """Name pr selects users having a name."""
        assert users(scim, "name pr") == {"alice", "bob.smith", "carol"}

    def test_filter_custom_canonical_values_are_case_insensitive(self, scim: ScimClient) -> None:
        """A type outside the canonical values is kept as sent and still compared without case."""
        phone = {"value": "+881 631 000000", "type": "Satellite"}
        create(scim, "/Users", user_payload("grace", phoneNumbers=[phone]))
        assert users(scim, 'phoneNumbers[type eq "satellite"]') == {"grace"}
        assert users(scim, 'phoneNumbers.type eq "SATELLITE"') == {"grace"}
        assert users(scim, 'phoneNumbers.type sw "sat"') == {"grace"}

    def test_filter_meta_is_always_present(self, scim: ScimClient) -> None:
        """Every resource has meta, including the version and location derived on output."""
        assert users(scim, "meta pr") == EVERYONE
        assert users(scim, "meta.version pr") == EVERYONE
        assert users(scim, "meta.location pr") == EVERYONE
        assert users(scim, 'meta.resourceType eq "User"') == EVERYONE
        assert users(scim, 'meta.resourceType eq "Group"') == set()

    def test_filter_document_strings_are_case_insensitive(self, scim: ScimClient) -> None:
        """Attributes kept in the JSON document compare regardless of case, too."""
        assert users(scim, 'title eq "ENGINEER"') == {"alice"}
        assert users(scim, 'title co "nag"') == {"bob.smith"}
        assert users(scim, 'displayName eq "carol adams"') == {"carol"}

    def test_filter_enterprise_extension_with_urn_prefix(self, scim: ScimClient) -> None:
        """An extension attribute is named by its schema URN and a colon."""
        urn = ENTERPRISE_SCHEMA
        assert users(scim, f'{urn}:employeeNumber eq "1001"') == {"alice"}
        assert users(scim, f'{urn}:department co "&"') == {"alice"}
        assert users(scim, f'{urn}:department eq "sales"') == {"bob.smith"}
        assert users(scim, f"{urn}:employeeNumber pr") == {"alice", "bob.smith"}

    def test_filter_enterprise_manager_value(
        self, scim: ScimClient, people: dict[str, dict[str, Any]]
    ) -> None:
        """manager.value of the enterprise extension selects a manager's reports."""
        urn = ENTERPRISE_SCHEMA
        assert users(scim, f'{urn}:manager.value eq "{people["bob"]["id"]}"') == {"alice"}
        assert users(scim, f'{urn}:manager.value eq "{people["alice"]["id"]}"') == set()
        assert users(scim, f"not ({urn}:manager.value pr)") == EVERYONE - {"alice"}

    def test_filter_attribute_names_are_case_insensitive(self, scim: ScimClient) -> None:
        """Attribute names, sub-attributes and URNs match whatever their case."""
        assert users(scim, 'USERNAME eq "alice"') == {"alice"}
        assert users(scim, 'Name.FAMILYNAME eq "Zephyr"') == {"alice"}
        assert users(scim, 'EMAILS[TYPE eq "work" and VALUE co "@x"]') == {"alice"}
        assert users(scim, f'{ENTERPRISE_SCHEMA.upper()}:EMPLOYEENUMBER eq "1001"') == {"alice"}

    def test_filter_external_id_is_case_exact(self, scim: ScimClient) -> None:
        """The caseExact externalId: "ABC" does not match "abc"."""
        assert users(scim, 'externalId eq "ABC"') == {"alice"}
        assert users(scim, 'externalId eq "abc"') == {"bob.smith"}
        assert users(scim, 'externalId eq "Abc"') == set()
        assert users(scim, 'externalId co "B"') == {"alice"}
        assert users(scim, 'externalId sw "a"') == {"bob.smith"}
        assert users(scim, 'externalId ne "abc"') == EVERYONE - {"bob.smith"}

    def test_filter_username_is_not_case_exact(self, scim: ScimClient) -> None:
        """The userName is not caseExact: any case of the value matches."""
        assert users(scim, 'userName eq "Bob.Smith"') == {"bob.smith"}
        assert users(scim, 'userName eq "BOB.SMITH"') == {"bob.smith"}
        assert users(scim, 'userName eq "bob.smith"') == {"bob.smith"}

    def test_filter_username_compares_non_ascii_letters_case_insensitively(
        self, scim: ScimClient
    ) -> None:
        """Accented letters fold too, and a decomposed accent equals the composed one."""
        create(scim, "/Users", user_payload("Émile"))
        assert users(scim, 'userName eq "ÉMILE"') == {"émile"}
        assert users(scim, 'userName sw "é"') == {"émile"}
        assert users(scim, 'userName eq "e\u0301mile"') == {"émile"}


# -- LIKE metacharacters -------------------------------------------------------------------------


@pytest.mark.usefixtures("people")
class TestLiteralValues:
    def test_filter_co_percent_matches_literally(self, scim: ScimClient) -> None:
        """A "%" in a co value is a character, not a wildcard."""
        assert users(scim, 'userName co "%"') == {"50%off"}
        assert users(scim, 'userName sw "50%"') == {"50%off"}
        assert users(scim, 'userName ew "%"') == set()

    def test_filter_co_underscore_matches_literally(self, scim: ScimClient) -> None:
        """A "_" in a co value is a character, not a one-character wildcard."""
        assert users(scim, 'userName co "_"') == {"under_score"}
        assert users(scim, 'userName co "r_s"') == {"under_score"}
        assert users(scim, 'userName sw "_"') == set()

    def test_filter_like_metacharacters_in_document_attributes(self, scim: ScimClient) -> None:
        """Metacharacters are literal in JSON-stored attributes too."""
        assert users(scim, 'title co "_"') == {"50%off"}
        assert users(scim, 'title co "%"') == set()
        assert users(scim, 'emails co "%"') == set()

    def test_filter_escape_character_is_literal(self, scim: ScimClient) -> None:
        """The LIKE escape character itself matches only itself."""
        assert users(scim, 'userName co "/"') == set()
        assert users(scim, 'userName co "\\\\"') == set()

    def test_filter_quotes_in_values(self, scim: ScimClient) -> None:
        """An escaped double quote inside a value is part of the value."""
        assert users(scim, 'title eq "a\\"b"') == set()


# -- timestamps ----------------------------------------------------------------------------------


class TestTimestamps:
    def test_filter_meta_created_gt_and_lt(
        self, scim: ScimClient, people: dict[str, dict[str, Any]]
    ) -> None:
        """meta.created compares instants: strictly after, at or after, before, at or before."""
        created = people["carol"]["meta"]["created"]
        assert users(scim, f'meta.created gt "{created}"') == {"dave", "50%off", "under_score"}
        assert users(scim, f'meta.created ge "{created}"') == {
            "carol",
            "dave",
            "50%off",
            "under_score",
        }
        assert users(scim, f'meta.created lt "{created}"') == {"bob.smith", "alice"}
        assert users(scim, f'meta.created le "{created}"') == {"bob.smith", "alice", "carol"}
        assert users(scim, f'meta.created eq "{created}"') == {"carol"}

    def test_filter_meta_created_with_a_time_zone_offset(
        self, scim: ScimClient, people: dict[str, dict[str, Any]]
    ) -> None:
        """A timestamp with an offset means the same instant as its UTC form."""
        created = datetime.fromisoformat(people["carol"]["meta"]["created"])
        shifted = created.astimezone(timezone(timedelta(hours=2))).isoformat()
        assert users(scim, f'meta.created gt "{shifted}"') == {"dave", "50%off", "under_score"}

    def test_filter_meta_created_far_past_and_future(
        self, scim: ScimClient, people: dict[str, dict[str, Any]]
    ) -> None:
        """Every user was created after 2000 and before 2100."""
        assert users(scim, 'meta.created gt "2000-01-01T00:00:00Z"') == EVERYONE
        assert users(scim, 'meta.created lt "2000-01-01T00:00:00Z"') == set()
        assert users(scim, 'meta.created lt "2100-01-01T00:00:00Z"') == EVERYONE

    def test_filter_meta_last_modified_sees_updates(
        self, scim: ScimClient, people: dict[str, dict[str, Any]]
    ) -> None:
        """meta.lastModified moves on an update, meta.created does not."""
        last_created = people["frank"]["meta"]["created"]
        response = scim.patch(
            f"/Users/{people['carol']['id']}",
            patch_payload({"op": "replace", "path": "title", "value": "Director"}),
        )
        assert response.status_code == 200, response.get_json()
        assert users(scim, f'meta.lastModified gt "{last_created}"') == {"carol"}
        assert users(scim, f'meta.lastModified le "{last_created}"') == EVERYONE - {"carol"}
        assert users(scim, f'meta.created gt "{last_created}"') == set()
        assert users(scim, 'title eq "director"') == {"carol"}

    def test_filter_meta_created_rejects_a_value_that_is_not_a_date(
        self, scim: ScimClient, people: dict[str, dict[str, Any]]
    ) -> None:
        """Comparing a dateTime with something else is an invalid filter."""
        assert_invalid_filter(scim.get("/Users", query_string={"filter": 'meta.created gt "soon"'}))


# -- groups --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("teams")
class TestGroups:
    def test_filter_group_display_name(self, scim: ScimClient) -> None:
        """Group displayName filters are case-insensitive."""
        assert groups(scim, 'displayName eq "engineering"') == {"Engineering"}
        assert groups(scim, 'displayName sw "s"') == {"Sales"}
        assert groups(scim, 'displayName co "A"') == {"Sales", "All Staff"}
        assert groups(scim, 'displayName ne "Sales"') == {"Engineering", "All Staff", "Empty"}

    def test_filter_group_members_value(
        self, scim: ScimClient, people: dict[str, dict[str, Any]], teams: dict[str, dict[str, Any]]
    ) -> None:
        """members.value eq "<id>" selects the groups a resource is a direct member of."""
        assert groups(scim, f'members.value eq "{people["alice"]["id"]}"') == {"Engineering"}
        assert groups(scim, f'members.value eq "{people["bob"]["id"]}"') == {"Sales"}
        assert groups(scim, f'members.value eq "{teams["engineering"]["id"]}"') == {"All Staff"}
        assert groups(scim, f'members.value eq "{people["frank"]["id"]}"') == set()

    def test_filter_group_members_value_path(
        self, scim: ScimClient, people: dict[str, dict[str, Any]], teams: dict[str, dict[str, Any]]
    ) -> None:
        """members[value eq "<id>"] is the same selection in value-path form."""
        assert groups(scim, f'members[value eq "{people["carol"]["id"]}"]') == {"Engineering"}
        assert groups(scim, f'members[value eq "{people["dave"]["id"]}"]') == {"All Staff"}
        assert groups(scim, 'members[type eq "Group"]') == {"All Staff"}

    def test_filter_group_members_display_is_the_display_shown(
        self, scim: ScimClient, people: dict[str, dict[str, Any]]
    ) -> None:
        """members.display compares the display a group lists: the one sent, else the name."""
        body = group_payload("Managers")
        body["members"] = [{"value": people["bob"]["id"], "display": "The Boss"}]
        managers = create(scim, "/Groups", body)
        assert managers["members"][0]["display"] == "The Boss"
        assert groups(scim, 'members.display eq "the boss"') == {"Managers"}
        # Bob shows as "The Boss" in Managers only; Sales lists him under his displayName.
        assert groups(scim, 'members.display eq "bob smith"') == {"Sales"}
        assert groups(scim, 'members.display eq "Alice Zephyr"') == {"Engineering"}
        assert groups(scim, 'members[display eq "dave"]') == {"All Staff"}
        assert groups(scim, 'members.display eq "engineering"') == {"All Staff"}

    def test_filter_group_members_pr(self, scim: ScimClient) -> None:
        """Filter members pr selects non-empty groups; not (members pr) the empty one."""
        assert groups(scim, "members pr") == {"Engineering", "Sales", "All Staff"}
        assert groups(scim, "not (members pr)") == {"Empty"}

    def test_filter_user_groups_value(
        self, scim: ScimClient, teams: dict[str, dict[str, Any]]
    ) -> None:
        """groups.value eq "<group id>" selects the group's direct user members."""
        assert users(scim, f'groups.value eq "{teams["engineering"]["id"]}"') == {"alice", "carol"}
        assert users(scim, f'groups.value eq "{teams["sales"]["id"]}"') == {"bob.smith"}
        assert users(scim, f'groups[value eq "{teams["empty"]["id"]}"]') == set()
        assert users(scim, 'groups.display eq "sales"') == {"bob.smith"}

    def test_filter_user_groups_pr(self, scim: ScimClient) -> None:
        """Filter groups pr selects users in some group; every membership listed is direct."""
        assert users(scim, "groups pr") == {"alice", "carol", "bob.smith", "dave"}
        assert users(scim, 'groups[type eq "DIRECT"]') == {"alice", "carol", "bob.smith", "dave"}
        assert users(scim, "not (groups pr)") == {"50%off", "under_score"}

    def test_filter_groups_through_post_search(
        self, scim: ScimClient, people: dict[str, dict[str, Any]]
    ) -> None:
        """POST /Groups/.search takes the filter in its body."""
        body = {
            "schemas": [SEARCH_SCHEMA],
            "filter": f'members[value eq "{people["alice"]["id"]}"] or displayName eq "empty"',
        }
        found = listed(scim.post("/Groups/.search", body))
        assert {group["displayName"] for group in found} == {"Engineering", "Empty"}

    def test_filter_unknown_group_attribute_is_invalid(self, scim: ScimClient) -> None:
        """Groups have no userName."""
        assert_invalid_filter(scim.get("/Groups", query_string={"filter": 'userName eq "x"'}))


# -- POST .search and errors ---------------------------------------------------------------------


@pytest.mark.usefixtures("people")
class TestSearchRequests:
    def test_post_search_filters_like_get(self, scim: ScimClient) -> None:
        """POST /Users/.search selects what the same GET filter selects."""
        body = {
            "schemas": [SEARCH_SCHEMA],
            "filter": 'emails[type eq "work" and value co "@x"] or userName eq "dave"',
        }
        found = listed(scim.post("/Users/.search", body))
        assert {user["userName"] for user in found} == {"alice", "dave"}

    def test_post_search_sorts_and_pages(self, scim: ScimClient) -> None:
        """POST /Users/.search honours sortBy, sortOrder, startIndex and count."""
        body = {
            "schemas": [SEARCH_SCHEMA],
            "filter": "active eq true",
            "sortBy": "userName",
            "sortOrder": "descending",
            "startIndex": 2,
            "count": 2,
        }
        response = scim.post("/Users/.search", body)
        page = response.get_json()
        assert [user["userName"] for user in listed(response)] == ["dave", "Bob.Smith"]
        assert page["totalResults"] == 5
        assert page["startIndex"] == 2
        assert page["itemsPerPage"] == 2

    def test_filter_unknown_attribute_is_invalid_filter(self, scim: ScimClient) -> None:
        """An attribute the User schema does not declare is a 400 invalidFilter."""
        for bad in (
            'shoeSize eq "42"',
            'name.nickname eq "x"',
            "shoeSize pr",
            'emails[colour eq "red"]',
        ):
            assert_invalid_filter(scim.get("/Users", query_string={"filter": bad}))

    def test_filter_unknown_extension_attribute_is_invalid_filter(self, scim: ScimClient) -> None:
        """An attribute the enterprise extension does not declare is a 400 invalidFilter."""
        scim_filter = f'{ENTERPRISE_SCHEMA}:shoeSize eq "42"'
        assert_invalid_filter(scim.get("/Users", query_string={"filter": scim_filter}))

    def test_filter_malformed_is_invalid_filter(self, scim: ScimClient) -> None:
        """A filter that does not parse is a 400 invalidFilter."""
        for bad in (
            "userName eq",
            'userName zz "alice"',
            '(userName eq "alice"',
            'userName eq "alice" and',
            'emails[type eq "work"',
            "userName eq alice",
        ):
            assert_invalid_filter(scim.get("/Users", query_string={"filter": bad}))

    def test_post_search_malformed_filter_is_invalid_filter(self, scim: ScimClient) -> None:
        """The same 400 invalidFilter comes back from POST .search."""
        body = {"schemas": [SEARCH_SCHEMA], "filter": 'userName eq "alice" or'}
        assert_invalid_filter(scim.post("/Users/.search", body))

    def test_filter_ordering_on_a_boolean_is_invalid_filter(self, scim: ScimClient) -> None:
        """RFC 7644 forbids gt/lt on booleans."""
        assert_invalid_filter(scim.get("/Users", query_string={"filter": "active gt false"}))


# -- sorting -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("people")
class TestSorting:
    def test_sort_by_username_ascending_and_descending(self, scim: ScimClient) -> None:
        """sortBy=userName orders case-insensitively, either way."""
        ascending = ["50%off", "alice", "bob.smith", "carol", "dave", "under_score"]
        assert user_order(scim, sortBy="userName") == ascending
        assert user_order(scim, sortBy="userName", sortOrder="descending") == ascending[::-1]

    def test_sort_by_family_name_puts_absent_values_last(self, scim: ScimClient) -> None:
        """sortBy=name.familyName orders by the sub-attribute; users without one come last."""
        order = user_order(scim, sortBy="name.familyName")
        assert order[:3] == ["carol", "bob.smith", "alice"]
        assert set(order[3:]) == {"dave", "50%off", "under_score"}
        order = user_order(scim, sortBy="name.familyName", sortOrder="descending")
        assert order[:3] == ["alice", "bob.smith", "carol"]
        assert set(order[3:]) == {"dave", "50%off", "under_score"}

    def test_sort_by_emails_uses_the_primary_email(self, scim: ScimClient) -> None:
        """sortBy=emails orders by the primary email, not the first one listed."""
        order = user_order(scim, sortBy="emails")
        assert order[:3] == ["alice", "bob.smith", "carol"]
        assert set(order[3:]) == {"dave", "50%off", "under_score"}

    def test_sort_by_a_document_attribute_ignores_case(self, scim: ScimClient) -> None:
        """sortBy=title orders "engineer" before "Manager", as case-insensitive values do."""
        order = user_order(scim, sortBy="title")
        assert order[:3] == ["alice", "bob.smith", "50%off"]
        assert set(order[3:]) == {"carol", "dave", "under_score"}

    def test_sort_by_a_sub_attribute_of_a_multi_valued_attribute(self, scim: ScimClient) -> None:
        """sortBy=addresses.locality orders by the users' addresses, regardless of case."""
        order = user_order(scim, sortBy="addresses.locality")
        assert order[:3] == ["carol", "bob.smith", "alice"]
        assert set(order[3:]) == {"dave", "50%off", "under_score"}

    def test_sort_by_meta_created_descending(self, scim: ScimClient) -> None:
        """sortBy=meta.created descending lists the newest first."""
        assert user_order(scim, sortBy="meta.created", sortOrder="descending") == [
            "under_score",
            "50%off",
            "dave",
            "carol",
            "alice",
            "bob.smith",
        ]

    def test_sort_with_a_filter(self, scim: ScimClient) -> None:
        """Sorting applies to the filtered set."""
        assert user_order(scim, filter="emails pr", sortBy="userName", sortOrder="descending") == [
            "carol",
            "bob.smith",
            "alice",
        ]

    def test_sort_by_attribute_name_is_case_insensitive(self, scim: ScimClient) -> None:
        """sortBy=USERNAME is sortBy=userName."""
        assert user_order(scim, sortBy="USERNAME") == user_order(scim, sortBy="userName")

    def test_sort_groups_by_display_name(self, scim: ScimClient, teams: dict[str, Any]) -> None:
        """Groups sort by displayName."""
        found = listed(scim.get("/Groups", query_string={"sortBy": "displayName"}))
        assert [group["displayName"] for group in found] == [
            "All Staff",
            "Empty",
            "Engineering",
            "Sales",
        ]


# -- paging --------------------------------------------------------------------------------------

POPULATION = 250


def insert_users(database: Database, count: int) -> list[str]:
    """Store users user000, user001, ... in one transaction; return their ids in order.

    Paging needs hundreds of users: writing them through the store keeps the module fast,
    while every read still goes through the HTTP API.
    """
    names = [f"user{n:03d}" for n in range(count)]
    with database.write() as conn:
        return store_users(conn, names, datetime.now(UTC), apart=timedelta(milliseconds=1))


@pytest.fixture
def crowd(database: Database) -> list[str]:
    """250 users, user000 to user249; returns their ids in creation order."""
    return insert_users(database, POPULATION)


def page(scim: ScimClient, **query: Any) -> dict[str, Any]:
    response = scim.get("/Users", query_string=query)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


class TestPaging:
    def test_paging_walks_every_user_exactly_once(self, scim: ScimClient, crowd: list[str]) -> None:
        """count=100 from startIndex 1, 101, 201 lists 100, 100 and 50 users, each once."""
        seen: list[str] = []
        for start, expected in ((1, 100), (101, 100), (201, 50)):
            body = page(scim, startIndex=start, count=100)
            assert body["totalResults"] == POPULATION
            assert body["startIndex"] == start
            assert body["itemsPerPage"] == expected
            assert len(body["Resources"]) == expected
            seen.extend(user["id"] for user in body["Resources"])
        assert len(seen) == len(set(seen)) == POPULATION
        assert set(seen) == set(crowd)

    def test_paging_sorted_walk_is_in_order(self, scim: ScimClient, crowd: list[str]) -> None:
        """Pages of a sorted, filtered listing continue each other."""
        names: list[str] = []
        for start in (1, 101, 201):
            body = page(
                scim,
                filter='userName sw "user"',
                sortBy="userName",
                sortOrder="descending",
                startIndex=start,
                count=100,
            )
            assert body["totalResults"] == POPULATION
            names.extend(user["userName"] for user in body["Resources"])
        assert names == [f"user{n:03d}" for n in reversed(range(POPULATION))]

    def test_paging_total_counts_the_filtered_set(self, scim: ScimClient, crowd: list[str]) -> None:
        """The totalResults counts matches, not the page nor the population."""
        body = page(scim, filter='userName sw "user1"', count=10)
        assert body["totalResults"] == 100
        assert body["itemsPerPage"] == 10
        assert {user["userName"] for user in body["Resources"]} <= {
            f"user{n}" for n in range(100, 200)
        }

    def test_paging_count_zero_returns_only_the_total(
        self, scim: ScimClient, crowd: list[str]
    ) -> None:
        """count=0 answers totalResults with no Resources."""
        body = page(scim, count=0)
        assert body["totalResults"] == POPULATION
        assert body["itemsPerPage"] == 0
        assert not body.get("Resources")

    def test_paging_start_index_beyond_the_end_is_an_empty_page(
        self, scim: ScimClient, crowd: list[str]
    ) -> None:
        """A startIndex past the last match gives no Resources but the right total."""
        body = page(scim, startIndex=POPULATION + 1, count=100)
        assert body["totalResults"] == POPULATION
        assert body["itemsPerPage"] == 0
        assert not body.get("Resources")

    def test_paging_start_index_below_one_is_one(self, scim: ScimClient, crowd: list[str]) -> None:
        """A startIndex less than 1 is read as 1 (RFC 7644 §3.4.2.4)."""
        body = page(scim, startIndex=0, count=5)
        assert body["startIndex"] == 1
        assert [user["id"] for user in body["Resources"]] == crowd[:5]

    def test_paging_default_count_is_the_default_page_size(
        self, scim: ScimClient, crowd: list[str]
    ) -> None:
        """Without count, a page holds settings.scim.default_page_size users."""
        body = page(scim)
        assert body["itemsPerPage"] == ScimSettings().default_page_size == 100

    def test_paging_count_above_the_maximum_is_capped(self, database_url: str) -> None:
        """A count above settings.scim.max_page_size gets max_page_size users, as advertised."""
        settings = make_settings(database_url, scim=ScimSettings(max_page_size=100))
        database = Database(database_url)
        upgrade(database)
        try:
            app: Flask = create_app(settings, database)
            token = app.extensions["scimbridge"].tokens.create("paging")
            scim = ScimClient(app.test_client(), token)
            config = scim.get("/ServiceProviderConfig").get_json()
            assert config["filter"]["maxResults"] == 100
            insert_users(database, 120)
            body = page(scim, count=150)
            assert body["totalResults"] == 120
            assert body["itemsPerPage"] == 100
            assert len(body["Resources"]) == 100
            body = page(scim, startIndex=101, count=150)
            assert body["itemsPerPage"] == 20
        finally:
            database.dispose()
