"""Every word in the caller's language, over real HTTP: problem details carry a stable ``code`` and read
in Chinese when ``Accept-Language`` asks for it (English otherwise, as before), and the system's
timeline notes are stored as codes and read in the caller's language while a person's note is shown as
written."""
from __future__ import annotations

import re
import time

import pytest
import requests

from shared.clock import parse_time
from tests.support.system import ROOT, a_point_in_grid, auth, embedded_system, token, wait_for_case

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}
SCALE = 7200.0


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    data = tmp_path_factory.mktemp("words")
    with embedded_system(data) as base:
        admin = token(data, "admin")
        grid, lon, lat = a_point_in_grid(base, admin)
        people = {"worker": token(data, "grid_worker", area=grid, user="wang"),
                  "command": token(data, "command", user="chen"), "admin": admin}
        yield base, people, (lon, lat)


def new_case(system) -> str:
    base, people, (lon, lat) = system
    filed = requests.post(f"{base}/intake/v1/reports", headers=auth(people["worker"]), timeout=10, json={
        "category": "street_light", "description": "路灯不亮", "location": {"lon": lon, "lat": lat}})
    assert filed.status_code == 201, filed.text
    wait_for_case(base, filed.json()["id"], people["worker"])
    return filed.json()["id"]


def act(base, case_id, who, body, **headers):
    etag = requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(who), timeout=10).headers["ETag"]
    return requests.post(f"{base}/escalation/v1/cases/{case_id}/actions", json=body, timeout=10,
                         headers=auth(who, **{"If-Match": etag, **headers}))


def test_a_refusal_reads_in_chinese_when_asked_and_in_english_by_default(system):
    base, people, _ = system
    case_id = new_case(system)
    body = {"action": "resolve", "note": "换了灯泡"}
    answers = {lang: act(base, case_id, people["command"], body, **headers)
               for lang, headers in (("zh", ZH), ("en", EN), ("default", {}))}
    for answer in answers.values():
        assert answer.status_code == 403 and answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["code"] == "case.not_owner"
    assert answers["zh"].json()["title"] == "无权操作"
    assert answers["zh"].json()["detail"] == "只有承办此案卷的网格可以处置"
    assert answers["zh"].headers["Content-Language"] == "zh"
    assert answers["en"].json()["title"] == answers["default"].json()["title"] == "Forbidden"
    assert answers["en"].json()["detail"] == answers["default"].json()["detail"] == \
        "only the grid owning the case may resolve it"


def test_a_missing_argument_names_its_field_in_either_language(system):
    base, people, _ = system
    case_id = new_case(system)
    zh = act(base, case_id, people["worker"], {"action": "resolve", "note": "  "}, **ZH)
    en = act(base, case_id, people["worker"], {"action": "resolve", "note": "  "})
    assert zh.status_code == en.status_code == 422
    assert zh.json()["code"] == en.json()["code"] == "case.required"
    assert zh.json()["errors"] == [{"field": "note", "detail": "请填写处置情况"}]
    assert en.json()["errors"] == [{"field": "note", "detail": "what was done is required"}]
    assert zh.json()["title"] == "内容有误" and en.json()["title"] == "Unprocessable Entity"
    missing = act(base, case_id, people["worker"], {"action": "resolve"}, **ZH)
    assert missing.status_code == 422 and missing.json()["code"] == "case.needs_argument"
    assert missing.json()["errors"] == [{"field": "note", "detail": "resolve 需要参数 'note'"}]


def test_a_state_refusal_names_the_status_in_chinese(system):
    base, people, _ = system
    case_id = new_case(system)
    answer = act(base, case_id, people["command"], {"action": "reopen", "reason": "再看看"}, **ZH)
    assert answer.status_code == 409 and answer.json()["code"] == "case.wrong_status"
    assert answer.json()["detail"] == "待处置的案卷不能重新开启"


def test_intake_s_refusals_read_in_chinese(system):
    base, people, (lon, lat) = system
    unknown = requests.post(f"{base}/intake/v1/reports", headers=auth(people["worker"], **ZH), timeout=10,
                            json={"category": "no_such", "description": "x", "location": {"lon": lon, "lat": lat}})
    assert unknown.status_code == 422 and unknown.json()["code"] == "report.unknown_category"
    assert unknown.json()["errors"][0]["field"] == "category"
    assert unknown.json()["errors"][0]["detail"].startswith("未知的类别；可选：")
    missing = requests.get(f"{base}/intake/v1/reports/no-such-report", headers=auth(people["worker"], **ZH),
                           timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "report.not_found"
    assert (missing.json()["title"], missing.json()["detail"]) == ("未找到", "没有该上报")


def test_the_verifier_rule_is_told_in_chinese_to_the_one_who_made_the_fix(system):
    base, people, _ = system
    case_id = new_case(system)
    assert act(base, case_id, people["worker"], {"action": "resolve", "note": "换了灯泡"}).status_code == 200
    deadline = time.monotonic() + 10
    while requests.get(f"{base}/intake/v1/reports/{case_id}", headers=auth(people["worker"]),
                       timeout=10).json()["status"] != "verifying":
        assert time.monotonic() < deadline, "intake never saw the case resolved"
        time.sleep(0.05)
    answers = [requests.post(f"{base}/intake/v1/cases/{case_id}/verification", json={"passed": True}, timeout=10,
                             headers=auth(people["worker"], **headers)) for headers in (ZH, {})]
    assert [a.status_code for a in answers] == [403, 403]
    assert {a.json()["code"] for a in answers} == {"verification.not_verifier"}
    assert answers[0].json()["detail"].startswith("您不负责核查此案卷")
    assert answers[1].json()["detail"].startswith("you do not verify this case")


def test_a_person_s_own_note_is_never_translated(system):
    base, people, _ = system
    case_id = new_case(system)
    assert act(base, case_id, people["worker"], {"action": "acknowledge", "note": "on my way"}).status_code == 200
    for headers in (ZH, EN):
        case = requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(people["worker"], **headers),
                            timeout=10).json()
        assert case["timeline"][-1]["note"] == "on my way"


@pytest.fixture(scope="module")
def fast_clock(tmp_path_factory):
    data = tmp_path_factory.mktemp("words-clock")
    policy = ROOT / "tests" / "support" / "calendar_hours_policy.toml"
    with embedded_system(data, env={"GRIDCASE_TIME_SCALE": str(SCALE), "GRIDCASE_POLICY_FILE": str(policy)}) as base:
        yield base, token(data, "admin")


def test_the_system_s_deadline_note_reads_in_the_caller_s_language(fast_clock):
    base, admin = fast_clock
    _, lon, lat = a_point_in_grid(base, admin)
    created = requests.post(f"{base}/intake/v1/reports", headers=auth(admin), timeout=10, json={
        "category": "street_light", "description": "lamp", "location": {"lon": lon, "lat": lat}}).json()
    case, _ = wait_for_case(base, created["id"], admin)
    wait = (parse_time(case["deadline"]) - parse_time(case["opened_at"])).total_seconds() / SCALE
    started = time.monotonic()
    while case["level"] == 1 and time.monotonic() - started < wait + 10:
        time.sleep(0.05)
        case = requests.get(f"{base}/escalation/v1/cases/{created['id']}", headers=auth(admin), timeout=10).json()
    assert case["level"] >= 2, "the scheduler escalated the case"
    read = {lang: requests.get(f"{base}/escalation/v1/cases/{created['id']}", headers=auth(admin, **headers),
                               timeout=10).json()["timeline"] for lang, headers in (("zh", ZH), ("en", EN))}
    escalated = {lang: next(s for s in steps if s["type"] == "escalated" and s["actor"] == "system")
                 for lang, steps in read.items()}
    assert escalated["zh"]["note"] == "已超期"
    assert escalated["en"]["note"] == "deadline passed"


def test_the_validation_librarys_messages_read_in_chinese_too(system):
    """marshmallow and webargs write their messages in English; a Chinese caller reads them in Chinese, each
    still naming its field, and an English caller reads them as they were."""
    base, people, (lon, lat) = system
    body = {"category": "street_light", "location": {"lon": lon, "lat": lat}, "client_time": 7}
    answers = {lang: requests.post(f"{base}/intake/v1/reports", json=body, timeout=10,
                                   headers=auth(people["worker"], **headers))
               for lang, headers in (("zh", ZH), ("en", EN))}
    zh = {e["field"]: e["detail"] for e in answers["zh"].json()["errors"]}
    en = {e["field"]: e["detail"] for e in answers["en"].json()["errors"]}
    assert answers["zh"].status_code == answers["en"].status_code == 422
    assert en["description"] == "Missing data for required field." and zh["description"] == "缺少必填字段。"
    assert en["client_time"] == "Not a valid datetime." and zh["client_time"] == "不是有效的日期时间。"
    assert set(zh) == set(en)


@pytest.fixture(scope="module")
def accepting(tmp_path_factory):
    """A city whose grid workers' reports wait for acceptance (立案), so that one can be refused or merged."""
    data = tmp_path_factory.mktemp("words-accepting")
    policy = data / "policy.toml"
    text = (ROOT / "shared" / "policy.toml").read_text(encoding="utf-8")
    assert "grid_worker = false" in text
    policy.write_text(text.replace("grid_worker = false", "grid_worker = true", 1), encoding="utf-8")
    with embedded_system(data, env={"GRIDCASE_POLICY_FILE": str(policy)}) as base:
        admin = token(data, "admin")
        grid, _, _ = a_point_in_grid(base, admin)
        places = [a_point_in_grid(base, admin, index=i)[1:] for i in range(4)]  # a street apart: no duplicates
        yield base, {"worker": token(data, "grid_worker", area=grid, user="wang"),
                     "command": token(data, "command", user="chen")}, places


def filed(system, at, description) -> str:
    base, people, _ = system
    answer = requests.post(f"{base}/intake/v1/reports", headers=auth(people["worker"]), timeout=10, json={
        "category": "street_light", "description": description, "location": {"lon": at[0], "lat": at[1]}})
    assert answer.status_code == 201, answer.text
    case, _ = wait_for_case(base, answer.json()["id"], people["command"])
    assert case["status"] == "pending_acceptance"
    return answer.json()["id"]


def status_note(base, worker, report_id, status, headers) -> str:
    deadline = time.monotonic() + 10
    while (report := requests.get(f"{base}/intake/v1/reports/{report_id}", headers=auth(worker, **headers),
                                  timeout=10).json())["status"] != status:
        assert time.monotonic() < deadline, f"intake never saw the report {status}: {report}"
        time.sleep(0.05)
    return report["status_note"]


def test_why_a_report_was_refused_reads_in_the_reporter_s_language_and_their_note_as_written(accepting):
    base, people, places = accepting
    report_id = filed(accepting, places[0], "路灯不亮")
    assert act(base, report_id, people["command"], {"action": "refuse", "reason": "insufficient_information",
                                                    "note": "没有门牌号"}).status_code == 200
    assert status_note(base, people["worker"], report_id, "refused", ZH) == "信息不足：没有门牌号"
    assert status_note(base, people["worker"], report_id, "refused", EN) == "too little information: 没有门牌号"
    bare = filed(accepting, places[1], "灯杆歪了")
    assert act(base, bare, people["command"], {"action": "refuse", "reason": "already_fixed"}).status_code == 200
    assert status_note(base, people["worker"], bare, "refused", ZH) == "已经处理"
    assert status_note(base, people["worker"], bare, "refused", {}) == "already fixed"


def test_a_merge_reads_in_the_reporter_s_language_and_a_void_s_reason_as_written(accepting):
    base, people, places = accepting
    target, merged = filed(accepting, places[2], "路灯不亮（一）"), filed(accepting, places[3], "同一盏灯")
    number = requests.get(f"{base}/intake/v1/reports/{target}", headers=auth(people["worker"]), timeout=10).json()[
        "number"]
    assert act(base, merged, people["command"], {"action": "merge", "into": target}).status_code == 200
    deadline = time.monotonic() + 10
    while not (report := requests.get(f"{base}/intake/v1/reports/{merged}", headers=auth(people["worker"], **ZH),
                                      timeout=10).json())["status_note"]:
        assert time.monotonic() < deadline, f"intake never saw the merge: {report}"
        time.sleep(0.05)
    assert report["status_note"] == f"已合并到 {number}"
    assert requests.get(f"{base}/intake/v1/reports/{merged}", headers=auth(people["worker"], **EN),
                        timeout=10).json()["status_note"] == f"merged into {number}"
    voided = filed(accepting, places[0], "录错了")
    assert act(base, voided, people["command"], {"action": "void", "reason": "entered twice"}).status_code == 200
    assert status_note(base, people["worker"], voided, "voided", ZH) == "entered twice"


BOTH = (("zh", ZH), ("en", {}))  # Chinese when asked, English by default


def field_errors(answer) -> dict[str, str]:
    assert answer.status_code == 422, answer.text
    return {e["field"]: e["detail"] for e in answer.json()["errors"]}


def test_the_words_of_parsers_and_checks_read_in_the_caller_s_language_naming_their_field(system):
    """A statistics range, a policy file's line, a time limit and the image decoder each answer in the
    caller's language, naming the field (and the line) as before; English by default."""
    from tests.support.images import png_header_only

    base, people, _ = system
    stats = {"group_by": "station", "period": "day", "from": "2026-02-01", "to": "2026-01-01"}
    answers = {lang: requests.get(f"{base}/escalation/v1/stats/closure-times", params=stats, timeout=10,
                                  headers=auth(people["command"], **headers)) for lang, headers in BOTH}
    assert field_errors(answers["zh"]) == {"to": "须晚于起始日期（from）"}
    assert field_errors(answers["en"]) == {"to": "must be after from"}

    replay = {"policy": "version = 1\n[[categories]]\n", "from": "2026-01-01", "to": "2026-02-01"}
    answers = {lang: requests.post(f"{base}/escalation/v1/stats/replay", json=replay, timeout=10,
                                   headers=auth(people["command"], **headers)) for lang, headers in BOTH}
    assert field_errors(answers["zh"]) == {"policy": "policy 第 2 行：类别需要代码（code）"}
    assert field_errors(answers["en"]) == {"policy": "policy:2: a category needs a code"}
    assert answers["zh"].json()["code"] == answers["en"].json()["code"] == "policy.at_line"

    case_id = new_case(system)
    zh = act(base, case_id, people["command"], {"action": "urge", "note": "快点", "respond_within": "soon"}, **ZH)
    en = act(base, case_id, people["command"], {"action": "urge", "note": "快点", "respond_within": "soon"})
    assert field_errors(zh) == {"respond_within": "不是有效的时限：'soon'（写作 \"4 hours\"、\"2 working_days\" 等）"}
    assert field_errors(en) == {"respond_within": "not a time limit: 'soon' (write \"4 hours\", \"2 working_days\", …)"}

    wide = png_header_only(12_000, 3_333, idat=b"\x00" * 100)
    answers = {lang: requests.post(f"{base}/intake/v1/reports/{case_id}/photos", timeout=10,
                                   files={"file": ("wide.png", wide, "image/png")}, data={"kind": "before"},
                                   headers=auth(people["worker"], **headers)) for lang, headers in BOTH}
    assert field_errors(answers["zh"])["file"].startswith("图片为 12000 × 3333 像素；PNG 图片最多接受")
    assert field_errors(answers["en"])["file"].startswith("the image is 12000 x 3333 pixels; at most")


def test_answers_whose_words_follow_the_language_tell_caches_so(system):
    """A report, a case, a problem and a CSV read differently in each language: each answer says
    ``Vary: Accept-Language``, so a cache between the pages and the API never serves one language's answer
    to another."""
    base, people, _ = system
    case_id = new_case(system)
    answers = {
        "report": requests.get(f"{base}/intake/v1/reports/{case_id}", headers=auth(people["worker"], **ZH), timeout=10),
        "case": requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(people["worker"], **ZH), timeout=10),
        "problem": act(base, case_id, people["command"], {"action": "resolve", "note": "x"}, **ZH),
        "csv": requests.get(f"{base}/escalation/v1/cases", params={"format": "csv"},
                            headers=auth(people["command"], **ZH), timeout=10),
    }
    for name, answer in answers.items():
        assert answer.status_code < 500, (name, answer.status_code, answer.text[:300])
        assert "accept-language" in answer.headers.get("Vary", "").lower(), (name, answer.headers.get("Vary"))


def test_the_case_list_csv_is_for_people_in_the_callers_language(system):
    """The case list's CSV, like the statistics': column names in the caller's language, the category's
    name beside its code, times in the city's time zone, the time left in hours, overdue as a word."""
    import csv
    import io
    from zoneinfo import ZoneInfo

    base, people, _ = system
    case_id = new_case(system)
    case = requests.get(f"{base}/escalation/v1/cases/{case_id}", headers=auth(people["command"]), timeout=10).json()
    zone = requests.get(f"{base}/escalation/v1/stats/closure-times", params={
        "group_by": "station", "period": "month", "from": "2026-01-01", "to": "2026-01-02"},
        headers=auth(people["command"]), timeout=10).json()["time_zone"]
    opened = parse_time(case["opened_at"]).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
    expected = {"zh": ("案卷号", "类别", "路灯", "超期", "否", f"建立案卷时间（{zone}）", "剩余时间（小时）"),
                "en": ("case number", "category", "street light", "overdue", "no", f"opened ({zone})",
                       "time left (hours)")}
    for lang, headers in (("zh", ZH), ("en", EN)):
        answer = requests.get(f"{base}/escalation/v1/cases", params={"format": "csv", "page_size": 200},
                              headers=auth(people["command"], **headers), timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Language"] == lang
        assert answer.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
        number, category, category_name, overdue, no, opened_col, left_col = expected[lang]
        row = next(r for r in rows if r[number] == case["number"])
        assert category_name in row[category].lower(), row
        assert row[overdue] == no and row[opened_col] == opened, row
        assert abs(float(row[left_col]) * 3600 - case["time_left"]) < 120, (row[left_col], case["time_left"])


#: Two English words in a row: a sentence a library wrote (gridcase's Chinese holds at most a lone name
#: such as JSON, a claim's name, or header.claims.signature).
ENGLISH_SENTENCE = r"[A-Za-z]{2,}\s+[A-Za-z]{2,}"


def test_a_malformed_json_body_is_told_in_chinese_with_its_line_and_column_not_the_parser_s_english(system):
    """The JSON parser says "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)";
    a Chinese caller reads gridcase's words for it, with the line and column, and nothing is filed."""
    base, people, _ = system
    sent = {lang: requests.post(f"{base}/intake/v1/reports", data=b'{category: "street_light"}', timeout=10,
                                headers=auth(people["worker"], **{"Content-Type": "application/json", **headers}))
            for lang, headers in BOTH}
    for answer in sent.values():
        assert answer.status_code == 400 and answer.headers["Content-Type"] == "application/problem+json"
    zh, en = sent["zh"].json()["detail"], sent["en"].json()["detail"]
    assert zh == "请求内容不是有效的 JSON：第 1 行第 2 列，此处应为用双引号括起的属性名", zh
    assert en == "the body is not valid JSON: a property name in double quotes is expected at line 1, column 2"
    assert not re.search(ENGLISH_SENTENCE, zh) and "Expecting" not in zh + en and "char 1" not in zh + en


@pytest.mark.parametrize("token", ["not-a-token", "abc.def", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"],
                         ids=["one part", "two parts", "a signature that does not verify"])
def test_a_malformed_or_forged_bearer_token_is_refused_in_chinese_not_in_pyjwt_s_english(system, token):
    """PyJWT says "Not enough segments" or "Signature verification failed"; a Chinese caller reads that the
    token is malformed (or does not verify) in Chinese, as a 401 asking for a bearer token."""
    base, _, _ = system
    sent = {lang: requests.get(f"{base}/intake/v1/reports", timeout=10,
                               headers={"Authorization": f"Bearer {token}", **headers}) for lang, headers in BOTH}
    for answer in sent.values():
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["code"] == "request.token_invalid"
    zh, en = sent["zh"].json()["detail"], sent["en"].json()["detail"]
    assert zh.startswith("令牌无效：") and not re.search(ENGLISH_SENTENCE, zh), zh
    assert not re.search(r"segments|Signature verification|padding|Invalid header", zh + en), (zh, en)
    if token.endswith("c2ln"):
        assert (zh, en) == ("令牌无效：令牌签名校验失败", "invalid token: the token's signature does not verify")
    else:
        assert zh == "令牌无效：令牌格式错误：JWT 应为以点分隔的三段 base64url（header.claims.signature）"
        assert en.startswith("invalid token: the token is malformed: a JWT is three base64url parts")
