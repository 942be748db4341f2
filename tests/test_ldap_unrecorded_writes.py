"""Adds and renames the directory applied while scimbridge never recorded them leave no stray.

An answer lost with the connection, a directory that stops right after an operation, a batch
whose records roll back, a worker that is replaced: the entry may sit under a name scimbridge
sent but never recorded. Later jobs (a rename, a rename back, a delete) must still find it.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest

from scimbridge.adapters.ldap import LdapDirectory
from scimbridge.adapters.ldap import LdapUnavailable
from scimbridge.adapters.ldap import dn_key
from scimbridge.service.outbox.worker import OutboxWorker
from scimbridge.store import ldap_entries as ldap_store

from .conftest import created
from .conftest import group_payload
from .conftest import patch_payload
from .conftest import user_payload
from .ldap_support import LdapSyncEnv
from .ldap_support import env
from .ldap_support import worker_for

__all__ = ["env"]


def _directory(env: LdapSyncEnv) -> LdapDirectory:
    directory: LdapDirectory = env.worker.handlers["ldap"].directory  # type: ignore[attr-defined]
    return directory


def _lose_the_answer_of(monkeypatch: pytest.MonkeyPatch, env: LdapSyncEnv, operation: str) -> None:
    """The next ``operation`` (``add``, ``rename``) of an entry is applied, its answer lost."""
    directory = _directory(env)
    real = getattr(directory, operation)

    def applied_then_lost(*args: Any) -> None:
        real(*args)
        if not args[0].lower().startswith(("uid=", "cn=")):
            return  # a container
        monkeypatch.setattr(directory, operation, real)
        raise LdapUnavailable("connection lost before the answer")

    monkeypatch.setattr(directory, operation, applied_then_lost)


def _stop_the_directory_after_the_next_rename(
    monkeypatch: pytest.MonkeyPatch, env: LdapSyncEnv
) -> None:
    """The next rename is answered; the operation after it finds the directory gone."""
    directory = _directory(env)
    real_rename, real_search = directory.rename, directory.search

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(directory, "search", real_search)
        raise LdapUnavailable("the directory stopped")

    def rename_then_stop(old_dn: str, new_dn: str) -> None:
        real_rename(old_dn, new_dn)
        monkeypatch.setattr(directory, "rename", real_rename)
        monkeypatch.setattr(directory, "search", unavailable)

    monkeypatch.setattr(directory, "rename", rename_then_stop)


def _refuse_the_next(monkeypatch: pytest.MonkeyPatch, env: LdapSyncEnv, operation: str) -> None:
    """The next ``operation`` finds the directory unreachable, and is not applied."""
    directory = _directory(env)
    real = getattr(directory, operation)

    def unreachable(*args: Any) -> None:
        monkeypatch.setattr(directory, operation, real)
        raise LdapUnavailable("connection refused")

    monkeypatch.setattr(directory, operation, unreachable)


def _run_once_and_hand_back(env: LdapSyncEnv) -> None:
    """Run one claim whose job finds the directory unavailable, then end the pause."""
    assert env.worker.run_once() == 1
    assert env.worker._paused_until, "the job was expected to be handed back"
    env.worker._paused_until.clear()


def _replace_the_worker(env: LdapSyncEnv, *, after_the_lease: bool = False) -> None:
    """Start a new worker, as another process would (nothing kept in memory)."""
    for handler in env.worker.handlers.values():
        close = getattr(handler, "close", None)
        if close is not None:
            close()
    worker: OutboxWorker = worker_for(env.settings, env.database)
    if after_the_lease:
        worker.clock = lambda: datetime.now(UTC) + worker.lease + timedelta(seconds=1)
    env.worker = worker


def _rename_user(env: LdapSyncEnv, user_id: str, user_name: str) -> None:
    operation = {"op": "replace", "path": "userName", "value": user_name}
    assert env.scim.patch(f"/Users/{user_id}", patch_payload(operation)).status_code == 200


def _rename_group(env: LdapSyncEnv, group_id: str, name: str) -> None:
    operation = {"op": "replace", "path": "displayName", "value": name}
    assert env.scim.patch(f"/Groups/{group_id}", patch_payload(operation)).status_code in (200, 204)


def _user_keys(env: LdapSyncEnv, *user_names: str) -> set[str]:
    return {dn_key(env.view.user_dn(name)) for name in user_names}


def _group_keys(env: LdapSyncEnv, *names: str) -> set[str]:
    return {dn_key(env.view.group_dn(name)) for name in names}


def test_a_user_deleted_after_a_rename_the_directory_applied_unrecorded_leaves_no_entry(
    env: LdapSyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renamed, the directory stops before the rename is recorded, then deleted: no entry."""
    user = created(env.scim.post("/Users", user_payload("ada")))
    env.drain()
    _stop_the_directory_after_the_next_rename(monkeypatch, env)
    _rename_user(env, user, "ada-renamed")
    _run_once_and_hand_back(env)
    assert env.view.users().keys() == _user_keys(env, "ada-renamed")
    assert env.scim.delete(f"/Users/{user}").status_code == 204
    env.drain()
    assert env.view.users() == {}


def test_a_group_deleted_after_a_rename_whose_answer_was_lost_leaves_no_entry(
    env: LdapSyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renamed, the rename's answer is lost, then the group is deleted: no entry is left."""
    group = created(env.scim.post("/Groups", group_payload("before")))
    env.drain()
    _lose_the_answer_of(monkeypatch, env, "rename")
    _rename_group(env, group, "after")
    _run_once_and_hand_back(env)
    assert env.scim.delete(f"/Groups/{group}").status_code == 204
    env.drain()
    assert env.view.groups() == {}


def test_renames_tried_while_the_directory_is_down_do_not_hide_one_it_applied_unrecorded(
    env: LdapSyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A→B applied unrecorded, B→C tried while unreachable, then C→D: one entry, at D."""
    group = created(env.scim.post("/Groups", group_payload("a")))
    env.drain()
    _lose_the_answer_of(monkeypatch, env, "rename")
    _rename_group(env, group, "b")
    _run_once_and_hand_back(env)
    _refuse_the_next(monkeypatch, env, "rename")
    _rename_group(env, group, "c")
    _run_once_and_hand_back(env)
    _rename_group(env, group, "d")
    env.drain()
    assert env.view.groups().keys() == _group_keys(env, "d")


def test_a_rename_whose_answer_was_lost_is_found_by_a_worker_started_afterwards(
    env: LdapSyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What was sent is kept in the store, not in a worker's memory: a new worker finds it."""
    user = created(env.scim.post("/Users", user_payload("ada")))
    env.drain()
    _lose_the_answer_of(monkeypatch, env, "rename")
    _rename_user(env, user, "middle")
    _run_once_and_hand_back(env)
    _replace_the_worker(env)
    _rename_user(env, user, "after")
    env.drain()
    assert env.view.users().keys() == _user_keys(env, "after")


def test_a_rename_whose_records_rolled_back_is_found_once_its_lease_ends(
    env: LdapSyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose records are not committed leaves its renames findable by the next claim."""
    user = created(env.scim.post("/Users", user_payload("ada")))
    env.drain()
    real_write = ldap_store.write_entries

    def fail_once(*args: Any) -> None:
        monkeypatch.setattr(ldap_store, "write_entries", real_write)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ldap_store, "write_entries", fail_once)
    _rename_user(env, user, "middle")
    with pytest.raises(RuntimeError):
        env.worker.run_once()
    assert env.view.users().keys() == _user_keys(env, "middle")
    _rename_user(env, user, "after")
    _replace_the_worker(env, after_the_lease=True)
    env.drain()
    assert env.view.users().keys() == _user_keys(env, "after")


def test_renaming_back_after_a_rename_whose_answer_was_lost_leaves_one_entry(
    env: LdapSyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A→B is applied unrecorded, then the userName goes back to A: the entry returns to A."""
    user = created(env.scim.post("/Users", user_payload("ada")))
    env.drain()
    _lose_the_answer_of(monkeypatch, env, "rename")
    _rename_user(env, user, "bea")
    _run_once_and_hand_back(env)
    _rename_user(env, user, "ada")
    env.drain()
    assert env.view.users().keys() == _user_keys(env, "ada")


def test_a_create_whose_answer_was_lost_then_renamed_leaves_one_entry(
    env: LdapSyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The add is applied unrecorded, the userName changes before the retry: one entry."""
    _lose_the_answer_of(monkeypatch, env, "add")
    user = created(env.scim.post("/Users", user_payload("ada")))
    _run_once_and_hand_back(env)
    assert env.view.users().keys() == _user_keys(env, "ada")
    _rename_user(env, user, "bea")
    env.drain()
    assert env.view.users().keys() == _user_keys(env, "bea")


def test_a_create_whose_answer_was_lost_then_deleted_leaves_no_entry(
    env: LdapSyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The add is applied unrecorded, the user is deleted before the retry: no entry."""
    _lose_the_answer_of(monkeypatch, env, "add")
    user = created(env.scim.post("/Users", user_payload("ada")))
    _run_once_and_hand_back(env)
    assert env.scim.delete(f"/Users/{user}").status_code == 204
    env.drain()
    assert env.view.users() == {}
