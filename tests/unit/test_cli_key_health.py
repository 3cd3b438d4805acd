"""The CLI's --health choices are the cloud's key-health states, no more, no fewer."""

from fermion.cli.fleet_cmd import KEY_HEALTH
from fermion.cloud.store.models import KeyHealth


def test_health_choices_are_the_clouds_states() -> None:
    assert tuple(h.value for h in KeyHealth) == KEY_HEALTH
