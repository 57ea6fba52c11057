from datetime import UTC, datetime, timedelta

import pytest

from shared.auth import AuthError, Identity, issue_token, read_token
from shared.clock import FakeClock, ScaledClock
from shared.owners import Owners
from shared.policy import load_policy

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_a_scaled_clock_runs_that_many_times_faster_than_real_time():
    real = [1000.0]
    clock = ScaledClock(3600, _real=lambda: real[0])
    start = clock.now()
    real[0] += 2.0
    assert clock.now() - start == timedelta(hours=2)
    assert clock.to_real_seconds(3600) == 1.0


def test_a_clock_anchored_in_the_past_continues_from_the_anchor():
    real = [datetime(2026, 1, 1, tzinfo=UTC).timestamp() + 10]
    clock = ScaledClock(60, anchor=datetime(2026, 1, 1, tzinfo=UTC), _real=lambda: real[0])
    assert clock.now() == datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


def test_a_fake_clock_moves_only_when_told():
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.now() == clock.now()
    clock.advance(timedelta(minutes=5))
    assert clock.now() == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


def test_the_default_policy_gives_every_category_and_severity_four_positive_time_limits():
    policy = load_policy()
    assert {"street_light", "safety_hazard", "other"} <= set(policy.categories)
    for category in policy.categories.values():
        for rule in category.rules.values():
            assert set(rule.levels) == {1, 2, 3, 4}
            assert all(limit.amount > 0 for limit in rule.levels.values())
        assert category.zh and category.en and category.group in ("facilities", "events")


def test_urgent_safety_hazards_start_at_the_subcenter_with_short_limits():
    hazard = load_policy().category("safety_hazard")
    assert hazard.start_level == "subcenter" and hazard.severity == "urgent"
    assert hazard.rule().levels[3].unit == "hours" and hazard.rule().levels[3].amount == 2
    assert load_policy().category("street_light").rule().levels[3].unit == "working_days"


def test_a_policy_with_an_unknown_start_level_is_refused_naming_its_line(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[levels]\n1=1\n2=1\n3=1\n4=1\n[[categories]]\ncode="x"\nzh="x"\nen="x"\nstart_level="moon"\n')
    with pytest.raises(ValueError, match=r"p.toml:10: .*moon"):
        load_policy(path)


def test_a_token_carries_role_area_and_user():
    token = issue_token(SECRET, "grid_worker", area="G1", user="li")
    assert read_token(SECRET, token) == Identity(role="grid_worker", user="li", area="G1")


@pytest.mark.parametrize("tamper", ["wrong-secret", "expired", "none-alg"])
def test_bad_tokens_are_refused(tamper):
    import jwt

    if tamper == "wrong-secret":
        token = issue_token("another-secret-of-32-bytes-or-more!", "command")
    elif tamper == "expired":
        token = issue_token(SECRET, "command", now=datetime.now(UTC) - timedelta(days=60))
    else:
        token = jwt.encode({"sub": "x", "role": "admin", "exp": 9999999999}, None, algorithm="none")
    with pytest.raises(AuthError):
        read_token(SECRET, token)


def test_a_scoped_role_needs_an_area():
    with pytest.raises(ValueError, match="area"):
        issue_token("s", "station")


def test_scoped_identities_see_only_their_own_area():
    areas = Owners.from_ids({"grid": "G1", "station": "S1", "subcenter": "C1"})
    assert Identity("grid_worker", "a", "G1").sees(areas)
    assert not Identity("grid_worker", "b", "G2").sees(areas)
    assert Identity("station", "s", "S1").sees(areas)
    assert not Identity("subcenter", "c", "C2").sees(areas)
    assert Identity("supervisor", "boss").sees(areas)
