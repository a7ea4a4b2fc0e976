"""Accounts on both backends: users, tokens, projects and roles, and what a unique key refuses."""

from __future__ import annotations

import pytest

from serve_app.accounts import AccountError, AccountNotFound, Accounts


@pytest.fixture
def accounts(database: str) -> Accounts:
    """On SQLite and on PostgreSQL (``database`` is parametrised)."""
    return Accounts(database)


def test_a_user_name_and_a_project_id_are_taken_once(accounts: Accounts) -> None:
    accounts.create_user("ann")
    with pytest.raises(AccountError, match="user 'ann' already exists"):
        accounts.create_user("ann")
    accounts.create_project("p1", "first")
    with pytest.raises(AccountError, match="project 'p1' already exists"):
        accounts.create_project("p1")
    accounts.ensure_project("p1")  # an existing one is left as it is
    accounts.ensure_project("p2")
    assert [(p["project_id"], p["name"]) for p in accounts.projects()] == [("p1", "first"), ("p2", "")]


def test_a_token_authenticates_until_revoked(accounts: Accounts) -> None:
    accounts.create_user("ann")
    token_id, token = accounts.issue_token("ann", "laptop")
    principal = accounts.authenticate(token)
    assert principal is not None and principal.name == "ann" and principal.token_id == token_id
    assert accounts.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    accounts.revoke_token(token_id)
    assert accounts.authenticate(token) is None
    with pytest.raises(AccountNotFound):
        accounts.revoke_token(token_id)


def test_a_role_is_set_again_in_place_and_removed(accounts: Accounts) -> None:
    ann = accounts.create_user("ann")
    accounts.create_project("p1")
    accounts.set_role("p1", "ann", "viewer")
    accounts.set_role("p1", "ann", "member")
    assert accounts.role_in(ann, "p1") == "member"
    assert [p["role"] for p in accounts.projects(ann)] == ["member"]
    accounts.remove_member("p1", "ann")
    assert accounts.role_in(ann, "p1") is None
    with pytest.raises(AccountNotFound):
        accounts.remove_member("p1", "ann")
