"""Identity (tokens of both signers, every claim checked) and the one access policy, ``decide``."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.access import ACTIONS, Decision, Resource, decide
from shared.auth import AuthError, Identity, TokenVerifier, issue_token
from shared.config import from_env
from shared.owners import Owners

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
NOW = datetime.now(UTC)


def hs256(**claims) -> str:
    body = {"sub": "wang", "role": "grid_worker", "area": "G1", "iat": NOW, "exp": NOW + timedelta(hours=1)}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not ...}, SECRET, algorithm="HS256")


BAD_CLAIMS = [
    ("an area that is a list", {"area": ["G1", "G2"]}, "area"),
    ("an area that is a number", {"area": 7}, "area"),
    ("a grid worker without an area", {"area": ...}, "area"),
    ("a station without an area", {"role": "station", "area": ...}, "area"),
    ("a sub-center without an area", {"role": "subcenter", "area": ...}, "area"),
    ("a role that is a list", {"role": ["admin"]}, "role"),
    ("an unknown role", {"role": "root"}, "role"),
    ("no role", {"role": ...}, "role"),
    ("a subject that is a number", {"sub": 12}, "sub"),
    ("no subject", {"sub": ...}, "sub"),
    ("an expiry that is text", {"exp": "tomorrow"}, "exp"),
    ("no expiry", {"exp": ...}, "exp"),
    ("no issue time", {"iat": ...}, "iat"),
    ("a lifetime of 31 days", {"exp": NOW + timedelta(days=31)}, "30 days"),
    ("an issue time in the future", {"iat": NOW + timedelta(days=2), "exp": NOW + timedelta(days=3)}, "iat"),
    ("an expired token", {"iat": NOW - timedelta(days=2), "exp": NOW - timedelta(days=1)}, "expired"),
]


@pytest.mark.parametrize("what, claims, named", BAD_CLAIMS, ids=[c[0] for c in BAD_CLAIMS])
def test_a_token_with_a_missing_or_mistyped_claim_is_refused_naming_it(what, claims, named):
    with pytest.raises(AuthError, match=named):
        TokenVerifier(SECRET).read(hs256(**claims))


def test_a_well_formed_grid_worker_token_gives_its_person_role_and_grid():
    assert TokenVerifier(SECRET).read(hs256()) == Identity("grid_worker", "wang", "G1")


def test_a_secret_shorter_than_32_bytes_is_refused_for_issuing_reading_and_configuration():
    with pytest.raises(ValueError, match="32 bytes"):
        issue_token("short", "admin")
    with pytest.raises(ValueError, match="32 bytes"):
        TokenVerifier("x" * 31)
    with pytest.raises(ValueError, match="GRIDCASE_SECRET"):
        from_env(env={"GRIDCASE_SECRET": "s"})


def test_a_grid_workers_token_needs_a_person_and_staff_tokens_get_a_subject_per_area():
    with pytest.raises(ValueError, match="--user"):
        issue_token(SECRET, "grid_worker", area="G1")
    verifier = TokenVerifier(SECRET)
    assert verifier.read(issue_token(SECRET, "station", area="S1")).user == "station@S1"
    assert verifier.read(issue_token(SECRET, "station", area="S2")).user == "station@S2"


@pytest.mark.parametrize("subject", ["command", "Command", "station@S1", "subcenter@C1", "admin", "supervisor",
                                     "department@water", "grid_worker", "open311:city-app"])
def test_a_person_cannot_take_a_roles_or_a_desks_name_as_their_subject(subject):
    """``gridcase token --role grid_worker --user command`` made a worker who read the command desk's reports."""
    with pytest.raises(ValueError, match="--user"):
        issue_token(SECRET, "grid_worker", area="G1", user=subject)
    with pytest.raises(AuthError, match="sub claim"):
        TokenVerifier(SECRET).read(hs256(sub=subject))


def test_a_desk_keeps_its_own_subject_and_people_keep_theirs():
    verifier = TokenVerifier(SECRET)
    assert verifier.read(issue_token(SECRET, "command")).user == "command"
    assert verifier.read(hs256(sub="station@S1", role="station", area="S1")).user == "station@S1"
    assert verifier.read(issue_token(SECRET, "station", area="S1", user="li.station")).user == "li.station"
    assert verifier.read(hs256(sub="commander-wang")).user == "commander-wang"
    with pytest.raises(AuthError, match="sub claim"):
        verifier.read(hs256(sub="station@S2", role="station", area="S1"))


def test_a_token_cannot_be_issued_for_longer_than_30_days():
    with pytest.raises(ValueError, match="30 days"):
        issue_token(SECRET, "admin", ttl=timedelta(days=31))
    issue_token(SECRET, "admin", ttl=timedelta(days=30))


AUDIENCE, ISSUER = "gridcase", "https://id.city.example/realms/grid"


def _jwks_file(tmp_path, key, kid: str, alg: str):
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": kid, "alg": alg, "use": "sig"}]}))
    return path


@pytest.mark.parametrize("alg, key", [("RS256", rsa.generate_private_key(65537, 2048)),
                                      ("ES256", ec.generate_private_key(ec.SECP256R1()))])
def test_an_identity_providers_token_is_checked_against_its_jwks(tmp_path, alg, key):
    verifier = TokenVerifier(SECRET, str(_jwks_file(tmp_path, key, "idp-1", alg)), audience=AUDIENCE, issuer=ISSUER)
    claims = {"sub": "li", "role": "station", "area": "S1", "iat": NOW, "exp": NOW + timedelta(hours=1),
              "aud": AUDIENCE, "iss": ISSUER}
    good = jwt.encode(claims, key, algorithm=alg, headers={"kid": "idp-1"})
    assert verifier.read(good) == Identity("station", "li", "S1")
    other = rsa.generate_private_key(65537, 2048) if alg == "RS256" else ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, other, algorithm=alg, headers={"kid": "idp-1"})
    with pytest.raises(AuthError):
        verifier.read(forged)
    with pytest.raises(AuthError, match="kid"):
        verifier.read(jwt.encode(claims, key, algorithm=alg, headers={"kid": "unknown"}))


def test_a_token_signed_with_an_algorithm_not_configured_is_refused(tmp_path):
    key = rsa.generate_private_key(65537, 2048)
    claims = {"sub": "li", "role": "admin", "iat": NOW, "exp": NOW + timedelta(hours=1)}
    with pytest.raises(AuthError, match="identity provider"):
        TokenVerifier(SECRET).read(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k"}))
    with pytest.raises(AuthError, match="not accepted"):
        TokenVerifier(SECRET).read(jwt.encode(claims, SECRET, algorithm="HS512"))
    with pytest.raises(AuthError, match="not accepted"):
        TokenVerifier(SECRET).read(jwt.encode(claims, None, algorithm="none"))


def _provider(tmp_path):
    key = rsa.generate_private_key(65537, 2048)
    verifier = TokenVerifier(SECRET, str(_jwks_file(tmp_path, key, "idp-1", "RS256")), audience=AUDIENCE,
                             issuer=ISSUER)
    claims = {"sub": "li", "role": "command", "iat": NOW, "exp": NOW + timedelta(hours=1), "aud": AUDIENCE,
              "iss": ISSUER}

    def sign(**changes):
        body = {k: v for k, v in {**claims, **changes}.items() if v is not ...}
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": "idp-1"})
    return verifier, sign


@pytest.mark.parametrize("aud", [AUDIENCE, ["account", AUDIENCE]])
def test_an_identity_providers_token_whose_aud_names_this_service_is_accepted(tmp_path, aud):
    verifier, sign = _provider(tmp_path)
    assert verifier.read(sign(aud=aud)) == Identity("command", "li")


PROVIDER_REFUSALS = [
    ("an aud for another application", {"aud": "payroll"}, "aud claim does not name"),
    ("an aud list without this service", {"aud": ["account", "payroll"]}, "aud claim does not name"),
    ("no aud", {"aud": ...}, "aud claim is required"),
    ("another issuer", {"iss": "https://id.other.example"}, "iss claim"),
    ("no issuer", {"iss": ...}, "iss claim is required"),
]


@pytest.mark.parametrize("what, changes, words", PROVIDER_REFUSALS, ids=[r[0] for r in PROVIDER_REFUSALS])
def test_an_identity_providers_token_for_another_audience_or_issuer_is_refused(tmp_path, what, changes, words):
    verifier, sign = _provider(tmp_path)
    with pytest.raises(AuthError, match=words):
        verifier.read(sign(**changes))


def test_a_jwks_without_an_audience_and_an_issuer_refuses_to_start(tmp_path):
    jwks = str(_jwks_file(tmp_path, rsa.generate_private_key(65537, 2048), "idp-1", "RS256"))
    for audience, issuer in ((None, None), (AUDIENCE, None), (None, ISSUER)):
        with pytest.raises(ValueError, match="GRIDCASE_JWT_AUDIENCE and GRIDCASE_JWT_ISSUER are required"):
            TokenVerifier(SECRET, jwks, audience=audience, issuer=issuer)
    with pytest.raises(ValueError, match="GRIDCASE_JWT_AUDIENCE and GRIDCASE_JWT_ISSUER are required"):
        from_env(tmp_path, env={"GRIDCASE_SECRET": SECRET, "GRIDCASE_JWKS_URL": jwks,
                                "GRIDCASE_JWT_AUDIENCE": AUDIENCE})
    settings = from_env(tmp_path, env={"GRIDCASE_SECRET": SECRET, "GRIDCASE_JWKS_URL": jwks,
                                       "GRIDCASE_JWT_AUDIENCE": AUDIENCE, "GRIDCASE_JWT_ISSUER": ISSUER})
    assert (settings.jwt_audience, settings.jwt_issuer) == (AUDIENCE, ISSUER)


def test_gridcase_up_with_a_jwks_and_no_audience_says_why_and_does_not_start(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gridcase.cli import main

    monkeypatch.delenv("GRIDCASE_JWT_AUDIENCE", raising=False)
    monkeypatch.delenv("GRIDCASE_JWT_ISSUER", raising=False)
    jwks = str(_jwks_file(tmp_path, rsa.generate_private_key(65537, 2048), "idp-1", "RS256"))
    result = CliRunner().invoke(main, ["up", "--port", "0", "--data-dir", str(tmp_path / "data")],
                                env={"GRIDCASE_JWKS_URL": jwks, "GRIDCASE_SECRET": SECRET})
    assert result.exit_code == 1 and "GRIDCASE_JWT_AUDIENCE and GRIDCASE_JWT_ISSUER are required" in result.output
    assert not (tmp_path / "data").exists()


# -- decide ----------------------------------------------------------------------------------------

CASE = Resource(owners=Owners.from_ids({"grid": "G1", "station": "S1", "subcenter": "C1"}), reporter="wang")
WORKER, OTHER_WORKER = Identity("grid_worker", "wang", "G1"), Identity("grid_worker", "liu", "G2")
STATION, OTHER_STATION = Identity("station", "s1", "S1"), Identity("station", "s2", "S2")


def test_a_case_in_the_callers_area_is_allowed_and_one_outside_is_not_found():
    assert decide(WORKER, "case.read", CASE) is Decision.ALLOW
    assert decide(STATION, "case.read", CASE) is Decision.ALLOW
    assert decide(OTHER_WORKER, "case.read", CASE) is Decision.NOT_FOUND
    assert decide(OTHER_STATION, "report.read", CASE) is Decision.NOT_FOUND
    assert decide(Identity("subcenter", "c", "C2"), "photo.read", CASE) is Decision.NOT_FOUND
    assert decide(Identity("command", "hq"), "case.read", CASE) is Decision.ALLOW


def test_a_reporter_reads_their_own_report_wherever_its_case_went():
    moved = Resource(owners=Owners.from_ids({"grid": "G9", "station": "S9", "subcenter": "C9"}), reporter="wang")
    assert decide(WORKER, "report.read", moved) is Decision.ALLOW
    assert decide(Identity("grid_worker", "zhao", "G1"), "report.read", moved) is Decision.NOT_FOUND


def test_a_role_that_may_never_take_an_action_is_forbidden_whatever_the_resource():
    assert decide(Identity("supervisor", "boss"), "report.submit") is Decision.FORBIDDEN
    assert decide(WORKER, "areas.import") is Decision.FORBIDDEN
    assert decide(WORKER, "case.transfer", CASE) is Decision.FORBIDDEN
    assert decide(None, "case.read") is Decision.FORBIDDEN
    assert decide(None, "categories.read") is Decision.ALLOW


def test_every_action_names_known_roles():
    from shared.vocabulary import Role

    assert all(roles is None or roles <= set(Role) for roles in ACTIONS.values())


def test_a_cached_token_still_expires_on_time():
    verifier = TokenVerifier(SECRET)
    token = hs256(iat=NOW, exp=NOW + timedelta(seconds=30))
    assert verifier.read(token, now=NOW).user == "wang"
    assert verifier.read(token, now=NOW + timedelta(seconds=10)).user == "wang"
    with pytest.raises(AuthError, match="expired"):
        verifier.read(token, now=NOW + timedelta(seconds=200))


UNITS = {"G0042": "grid", "S7": "station", "water": "department"}


@pytest.mark.parametrize("subject, kind", sorted(UNITS.items()))
def test_an_identity_providers_token_whose_sub_is_a_units_id_is_refused_naming_sub(tmp_path, subject, kind):
    """Only ``gridcase token`` refused a subject that is an area's or a department's id: an identity
    provider's token with ``sub: "water"`` was read as a person of that name."""
    verifier, sign = _provider(tmp_path)
    verifier.units = UNITS.get
    with pytest.raises(AuthError, match=f"sub claim '{subject}' is the id of a {kind}"):
        verifier.read(sign(sub=subject))
    assert verifier.read(sign(sub="li-7")) == Identity("command", "li-7")


def test_a_development_token_whose_sub_is_a_units_id_is_refused_too():
    verifier = TokenVerifier(SECRET, units=UNITS.get)
    with pytest.raises(AuthError, match="sub claim 'S7'"):
        verifier.read(hs256(sub="S7"))
    assert verifier.read(hs256()) == Identity("grid_worker", "wang", "G1")


@pytest.mark.parametrize("service", ["intake", "dispatch", "escalation"])
def test_each_service_knows_its_departments_and_areas_as_units_from_its_own_database(tmp_path, service):
    """``ServiceSpec.units``: what a token's ``sub`` is checked against, in each service's own copies."""
    import importlib

    import sqlalchemy as sa

    from shared.departments import Department, store_departments
    from shared.migrations import upgrade

    store = importlib.import_module(f"services.{service}.store")
    engine = sa.create_engine(f"sqlite:///{tmp_path}/{service}.db")
    upgrade(engine, service)
    with engine.begin() as db:
        store_departments(db, store.departments, 1, [Department("water", "水务", "Water", "HQ")])
        if service == "escalation":
            db.execute(store.areas.insert().values(version=1, id="G0042", level="grid", name="网格 42"))
        if service == "dispatch":
            db.execute(store.area_versions.insert().values(id=1, active=True, source="t", summary={}, created_at=NOW))
            db.execute(store.areas.insert().values(version=1, id="G0042", level="grid", name="网格 42",
                                                   geometry=b""))
    assert store.unit_kind(engine, "water") == "department" and store.unit_kind(engine, "wang") is None
    assert store.unit_kind(engine, "G0042") == (None if service == "intake" else "grid")
    engine.dispose()
