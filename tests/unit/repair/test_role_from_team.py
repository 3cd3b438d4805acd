"""The repair planner's role comes from the team listing's ``role`` object, not a guess."""

from __future__ import annotations

import pytest

from fermion.cli.repair_cmd import role_from_team
from fermion.cloud.api.team import member_json
from fermion.cloud.domain.permissions import Role
from fermion.cloud.store.models import User


@pytest.mark.parametrize("role", list(Role))
def test_every_role_the_cloud_lists_is_read_back(role: Role) -> None:
    team = [member_json(User(id=1, email="boss@example.com"), Role.OWNER.value)]
    team.append(member_json(User(id=2, email="Me@Example.com"), role.value))
    assert role_from_team(team, "me@example.com") == (role, True)


def test_particles_listing_shape() -> None:
    team = [{"_id": "x", "username": "me@example.com", "role": {"id": "5f1", "name": "Developer"}}]
    assert role_from_team(team, "me@example.com") == (Role.DEVELOPER, True)


def test_not_listed_is_not_on_the_team() -> None:
    team = [{"username": "other@example.com", "role": {"id": "a", "name": "Administrator"}}]
    assert role_from_team(team, "me@example.com") == (None, True)


@pytest.mark.parametrize("raw", [None, {"id": "5f1"}, {"name": "Wizard"}, 7])
def test_listed_without_a_readable_role_is_unknown_not_refused(raw: object) -> None:
    team = [{"username": "me@example.com", "role": raw}]
    assert role_from_team(team, "me@example.com") == (None, False)
