"""The message catalogue (shared/words.toml): every key in both languages with the same placeholders,
every key the code names exists, stored notes rendered per language and a person's words never touched."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from shared import words
from shared.words import MESSAGES, Message, Problem, language_of, note, note_text, placeholders

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = {"count": 3, "share": 0.8, "level": 2, "retry_after": 30, "cap": 5, "max": 10, "size": 11_000_000}


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_every_key_has_both_languages_with_the_same_placeholders_and_renders(key):
    texts = MESSAGES[key]
    assert set(texts) == {"en", "zh"}, key
    assert texts["en"].strip() and texts["zh"].strip(), key
    assert placeholders(texts["en"]) == placeholders(texts["zh"]), key
    params = {name: SAMPLE.get(name, f"<{name}>") for name in placeholders(texts["en"])}
    for lang in ("en", "zh"):
        rendered = Message(key, params).text(lang)
        assert "{" not in rendered.replace("{text}", "") or "{" in str(params), (key, lang, rendered)


def test_a_catalogue_missing_a_language_or_with_other_placeholders_is_refused(tmp_path):
    bad = tmp_path / "words.toml"
    bad.write_text('["a.one"]\nen = "x {n}"\n["a.two"]\nen = "y {n}"\nzh = "y {m}"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"a\.one: needs a text in each.*a\.two: placeholders differ"):
        words.load(bad)


def _literal_keys() -> set[tuple[str, str]]:
    """Every message key the code names as a string literal (``Problem("…")``, ``code="…"``, a class's
    ``code = …``, ``note("…")``, ``Message("…")``, ``say("…")``, ``lookup(…, "…")``), with its file."""
    found = set()
    for path in [*ROOT.glob("services/**/*.py"), *ROOT.glob("shared/**/*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            strings = []
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in {"Problem", "note", "Message", "say", "NotAllowed", "InvalidTransition",
                            "InvalidArgument", "Refused", "AuthError", "Said", "Invalid"} and node.args:
                    strings.append(node.args[0])
                if name == "lookup" and len(node.args) == 2:
                    strings.append(node.args[1])
                strings += [k.value for k in node.keywords if k.arg == "code"]
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "code" for t in node.targets):
                strings.append(node.value)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple) and any(
                    isinstance(t, ast.Tuple) and any(getattr(e, "id", None) == "code" for e in t.elts)
                    for t in node.targets):
                strings += node.value.elts
            for s in strings:
                if isinstance(s, ast.Constant) and isinstance(s.value, str) and re.fullmatch(r"[a-z_]+\.[a-z0-9_]+",
                                                                                           s.value):
                    found.add((str(path.relative_to(ROOT)), s.value))
    return found


def test_every_key_the_code_names_is_in_the_catalogue():
    keys = _literal_keys()
    assert len(keys) > 60  # the walk found the code's keys (not an empty walk passing vacuously)
    missing = sorted((path, key) for path, key in keys if key not in MESSAGES)
    assert not missing, missing


def test_every_phrase_the_domain_translates_is_in_the_catalogue():
    """``require_status``/``require_owner``… take an English phrase that ``errors.phrase`` looks up
    (``doing.*``, ``what.*``): each literal phrase in the domain has its key."""
    from services.escalation.domain.errors import phrase

    calls = {"require_status": ("doing", 2), "require_owner": ("doing", 2), "require_level_above": ("doing", 2),
             "require_oversight": ("doing", 1), "require_acceptor": ("doing", 2), "required_text": ("what", 1),
             "_pending": ("done", 1)}
    seen = 0
    for path in ROOT.glob("services/escalation/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(node, "func", None) and getattr(node.func, "id", None)
            if name in calls and len(node.args) > calls[name][1]:
                arg = node.args[calls[name][1]]
                if isinstance(arg, ast.Constant):
                    phrase(calls[name][0], arg.value)  # KeyError when the catalogue lacks it
                    seen += 1
    assert seen > 30


def test_the_caller_language_is_chinese_only_when_ranked_above_english():
    assert language_of([]) == "en"
    assert language_of([("fr", 1.0)]) == "en"
    assert language_of([("zh-CN", 1.0), ("zh", 0.9), ("en", 0.8)]) == "zh"
    assert language_of([("en-US", 1.0), ("zh-CN", 0.5)]) == "en"
    assert language_of([("zh-Hans", 0.7), ("en", 0.6)]) == "zh"


def test_a_system_note_is_stored_as_a_code_and_read_in_either_language():
    stored = note("note.deadline_passed")
    assert stored.startswith(words.NOTE_MARK) and "deadline passed" not in stored
    assert note_text(stored) == "deadline passed" and note_text(stored, "zh") == "已超期"
    warned = note("note.warning", share=0.8)
    assert note_text(warned, "zh") == "处置时限已用 80%" and note_text(warned, "en") == "80% of the time limit used"
    opened = note("note.opened", parts=[Message("note.triage"), Message("note.awaiting_acceptance")])
    assert note_text(opened, "zh") == "位置不在任何网格内：需要分拣；待立案"


def test_a_person_s_note_and_an_old_free_text_note_are_shown_as_written():
    assert note_text("deadline passed", "zh") == "deadline passed"  # stored before notes were codes
    assert note_text("灯还是不亮", "en") == "灯还是不亮"
    assert note_text('{"code": "note.deadline_passed"}', "zh") == '{"code": "note.deadline_passed"}'
    assert note_text("", "zh") == ""
    # a marked note this version cannot read (a code removed since) is shown without the mark, not lost
    assert note_text(words.NOTE_MARK + '{"code": "note.gone"}', "zh") == '{"code": "note.gone"}'


def test_no_person_can_write_the_mark_of_a_system_note():
    from shared.fields import storable_problem

    assert storable_problem(words.NOTE_MARK + '{"code":"note.deadline_passed"}', multiline=True)


def test_a_problem_carries_its_code_field_and_english_text():
    refusal = Problem("report.unknown_category", http_status=422, field="category", choices="a, b")
    assert (refusal.status, refusal.code, refusal.field) == (422, "report.unknown_category", "category")
    assert str(refusal) == "unknown category; one of a, b" and refusal.detail("zh") == "未知的类别；可选：a, b"
    with pytest.raises(KeyError):
        Problem("no.such_key")


@pytest.mark.parametrize(("message", "zh"), [
    ("Missing data for required field.", "缺少必填字段。"),
    ("Not a valid integer.", "不是有效的整数。"),
    ("Must be greater than 0.", "须大于 0。"),
    ("Must be greater than or equal to 1 and less than or equal to 500.", "须大于等于 1 且小于等于 500。"),
    ("Length must be between 1 and 200.", "长度须在 1 到 200 之间。"),
    ("Must be one of: zh, en.", "须为以下之一：zh, en。"),
    ("Not a valid colour.", "不是有效的colour。"),  # a kind the catalogue lacks stays as it came
    ("the schema's own words", "the schema's own words"),
])
def test_the_validation_librarys_messages_are_read_back_into_chinese(message, zh):
    from shared.words import validation

    assert validation(message, "zh") == zh and validation(message, "en") == message


# -- the words of parsers and schemas: catalogue messages read in the caller's language ------------------

def test_a_policy_file_s_problem_names_its_line_in_either_language():
    from shared.policy import PolicyError, parse_policy

    with pytest.raises(PolicyError) as refused:
        parse_policy('version = 1\nbogus = 2\n', "policy")
    assert str(refused.value) == refused.value.text("en") == \
        "policy:2: unknown key 'bogus'; one of calendar, categories, defaults, early_warnings, groups, levels, " \
        "needs_acceptance, severities, version"
    assert refused.value.text("zh").startswith("policy 第 2 行：未知的键 'bogus'；可选：calendar")
    with pytest.raises(PolicyError) as limit:  # a time limit's words (shared.timemodel) inside the policy's
        parse_policy((ROOT / "shared" / "policy.toml").read_text(encoding="utf-8").replace(
            'acceptance = "2 working_hours"', 'acceptance = "2 fortnights"', 1), "policy.toml")
    assert limit.value.line and limit.value.text("zh").startswith(f"policy.toml 第 {limit.value.line} 行：")
    assert "'2 fortnights' 中的单位 'fortnights' 未知" in limit.value.text("zh")
    assert "unknown unit 'fortnights' in '2 fortnights'" in str(limit.value)


def test_an_early_warning_rule_s_problem_reads_in_chinese_with_its_label():
    from shared.policy import PolicyError, parse_policy

    text = (ROOT / "shared" / "policy.toml").read_text(encoding="utf-8") + \
        '\n[[early_warnings]]\nname = "lamps"\ncategory = "street_light"\nradius_m = 5000000\n' \
        'window = "24 hours"\nmin_reports = 3\n'
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "p.toml")
    assert "early warning 'lamps': radius_m is a distance in metres" in str(refused.value)
    assert "预警规则 'lamps'：radius_m 须为" in refused.value.text("zh")


def test_a_respond_within_the_parser_refuses_names_its_field_in_chinese():
    from services.escalation.domain.actions import perform
    from services.escalation.domain.errors import InvalidArgument
    from tests.support.cases import COMMAND, NOW, new_case

    with pytest.raises(InvalidArgument) as refused:
        perform(new_case(), "urge", COMMAND, NOW, note="x", respond_within="soon")
    assert refused.value.field == "respond_within" and refused.value.code == "time.not_a_limit_written"
    assert refused.value.detail("zh") == "不是有效的时限：'soon'（写作 \"4 hours\"、\"2 working_days\" 等）"
    assert str(refused.value).startswith("not a time limit: 'soon'")


def test_the_image_decoder_s_refusal_reads_in_chinese_with_its_pixel_counts():
    from services.intake.photos import MAX_PIXELS, BadImage, clean
    from tests.support.images import png_header_only

    with pytest.raises(BadImage) as refused:
        clean(png_header_only(12_000, 3_333, idat=b"\x00" * 100))
    assert refused.value.field == "file" and refused.value.code == "photo.too_many_pixels_of_kind"
    assert refused.value.detail("zh").startswith(f"图片为 12000 × 3333 像素；PNG 图片最多接受 {MAX_PIXELS} 像素")
    with pytest.raises(BadImage) as damaged:
        clean(png_header_only(64, 64, idat=b"not zlib at all" * 10))
    assert damaged.value.code == "photo.damaged" and damaged.value.detail("zh").startswith("图片已损坏，无法解码")


def test_gridcase_s_own_schema_messages_read_in_chinese():
    from marshmallow import Schema, ValidationError

    from shared.fields import Instant, JsonFloat, Text
    from shared.words import validation

    class Sample(Schema):
        lon = JsonFloat(required=True)
        at = Instant(required=True)
        name = Text(20)

    with pytest.raises(ValidationError) as refused:
        Sample().load({"lon": "102.2", "at": "1900-01-01T00:00:00Z", "name": "a\x00b"})
    messages = {field: [validation(m, "zh") for m in found] for field, found in refused.value.messages.items()}
    assert messages["lon"] == ["不是 JSON 数字：请发送数字，例如 102.26，而不是文本。"]
    assert messages["at"][0].startswith("须在 ") and messages["at"][0].endswith("之间（UTC）")
    assert messages["name"] == ["第 1 个字符是 NUL 字符"]
    assert [validation(m) for m in refused.value.messages["lon"]] == \
        ["Not a JSON number: send a number such as 102.26, not text."]


def test_a_said_message_keeps_its_code_through_a_validation_error():
    from marshmallow import ValidationError

    from shared.words import Said, validation

    said = Said("stats.at_most_years", years=3)
    assert said == "at most 3 years at once" and isinstance(said, str)
    [carried] = ValidationError(said).messages
    assert validation(carried, "zh") == "一次最多 3 年" and validation(carried, "en") == "at most 3 years at once"


# -- the kind stays fixed: no English sentence written beside a refusal, outside the catalogue ----------

#: Refusals whose words are allowed outside the catalogue, each with why. Bus messages' schemas answer no
#: caller: their ValidationError is the reason a message went to the dead letters, read by an operator.
#: (Open311's errors keep the GeoReport v2 format in English by the standard: ``Open311Error`` is no
#: ``Problem`` and is not walked.)
ALLOWED_ENGLISH = {
    ("shared/messages/wire.py", "not an object ({})"),
    ("shared/messages/wire.py", "not an ISO 8601 time"),
    ("shared/messages/wire.py", "not a level (1-4 or {})"),
    ("shared/messages/events.py", "not an object (grid, station, subcenter)"),
}


def reads_as_words(text: str) -> bool:
    """Two words or more (of two letters or more) with a space between: a sentence, not a name or a key."""
    return bool(re.search(r"\s", text.strip())) and len(re.findall(r"[A-Za-z]{2,}", text)) >= 2


def _refusal_classes(trees) -> set[str]:
    """``Problem``, marshmallow's ``ValidationError``, the parsers' errors and every class derived from them."""
    names = {"Problem", "ValidationError", "Invalid", "Said", "PolicyError", "ChangeError", "SubscriptionError",
             "CalendarFileError", "AuthError"}
    grown = True
    while grown:
        grown = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names and any(
                        (getattr(b, "id", None) or getattr(b, "attr", None)) in names for b in node.bases):
                    names.add(node.name)
                    grown = True
    return names


def _texts(node) -> list[str]:
    """The literal text in ``node``: each string constant, and each f-string with ``{}`` for its values."""
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Dict):
        return [t for value in node.values for t in _texts(value)]  # field names are not words
    return [t for child in ast.iter_child_nodes(node) for t in _texts(child)]


def english_beside_refusals() -> list[tuple[str, int, str]]:
    """(file, line, text) of each English sentence written literally into a refusal raised in services/ or
    shared/ — a ``Problem`` (and its kinds), a ``ValidationError``, a parser's error, or ``abort(…,
    message=…, errors=…)`` — instead of a catalogue key."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8"))
             for path in [*ROOT.glob("services/**/*.py"), *ROOT.glob("shared/**/*.py")]}
    refusals = _refusal_classes(trees)
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == "abort":
                parts = [k.value for k in node.keywords if k.arg in ("message", "errors")]
            elif name in refusals:
                parts = [*node.args, *(k.value for k in node.keywords if k.arg not in ("field", "http_status",
                                                                                        "headers"))]
            else:
                continue
            for part in parts:
                for text in _texts(part):
                    if reads_as_words(text) and text not in MESSAGES:
                        found.append((str(path.relative_to(ROOT)), node.lineno, text))
    return found


def test_no_refusal_carries_an_english_sentence_outside_the_catalogue():
    found = english_beside_refusals()
    allowed = {(path, text) for path, _, text in found} & ALLOWED_ENGLISH
    assert allowed == ALLOWED_ENGLISH, "an allowed exception is gone: take it off the list"
    assert [f for f in found if (f[0], f[2]) not in ALLOWED_ENGLISH] == []


def test_the_walk_finds_an_english_sentence_where_one_is_written(tmp_path, monkeypatch):
    """The walk is not vacuous: a refusal written the old way is found (in a file it is pointed at)."""
    services = tmp_path / "services"
    services.mkdir()
    (services / "bad.py").write_text(
        "from shared.words import Problem\n\n\nclass Mine(Problem):\n    pass\n\n\n"
        "def f(x):\n    raise Mine(f'the value {x} is wrong')\n\n\n"
        "def g():\n    abort(422, errors={'to': ['must be after from']})\n", encoding="utf-8")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert [(line, text) for _, line, text in english_beside_refusals()] == [
        (9, "the value {} is wrong"), (13, "must be after from")]


# -- the kind stays fixed: no library's own words inside a refusal --------------------------------------

#: What an exception says in its own words: ``str(exc)``, ``repr(exc)``, ``f"{exc}"``, ``exc.msg``,
#: ``exc.args``, ``exc.strerror``. Its structured facts (``exc.lineno``, ``exc.colno``, ``exc.start``, a
#: gridcase error's ``exc.message``) are not words and may be passed on.
TEXT_OF_AN_EXCEPTION = {"msg", "args", "strerror", "reason"}
#: Callables that build a refusal a caller reads, besides the refusal classes (``_refusal_classes``).
REFUSAL_BUILDERS = {"abort", "problem", "error", "Said", "Message", "AuthError"}


def _says_the_exception(node: ast.AST, name: str) -> bool:
    """Whether ``node`` puts the exception bound to ``name`` into text."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call) and getattr(inner.func, "id", None) in ("str", "repr", "format") \
                and any(isinstance(a, ast.Name) and a.id == name for a in inner.args):
            return True
        if isinstance(inner, ast.FormattedValue) and isinstance(inner.value, ast.Name) and inner.value.id == name:
            return True
        if isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name) and inner.value.id == name \
                and inner.attr in TEXT_OF_AN_EXCEPTION:
            return True
    return False


def _bindings_of_exceptions(tree: ast.AST):
    """(name, statements) for each place an exception is bound to a name: ``except … as name:`` and the
    parameter of an error handler (a function decorated ``…errorhandler(…)``, or webargs' ``_handle_…_error``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.name is not None:
            yield node.name, node.body
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            handler = re.fullmatch(r"_?handle_\w*error", node.name) or any(
                "errorhandler" in ast.unparse(decorator) for decorator in node.decorator_list)
            params = [a.arg for a in node.args.args if a.arg not in ("self", "cls")]
            if handler and params:
                yield params[0], node.body


def library_words_in_refusals(root: Path = ROOT) -> list[tuple[str, int]]:
    """(file, line) of each refusal built, in an ``except … as exc`` block or an error handler of services/ or
    shared/, with the exception's own text (``str(exc)``…) among its arguments: a library's English sentence
    ("Expecting property name enclosed in double quotes", PyJWT's "Not enough segments") that would reach a
    caller inside a problem's detail, whatever their language. Text first put into a variable and passed on
    from there is not followed: the review of such a change is."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8"))
             for path in [*root.glob("services/**/*.py"), *root.glob("shared/**/*.py")]}
    builders = _refusal_classes(trees) | REFUSAL_BUILDERS
    found = []
    for path, tree in trees.items():
        relative = str(path.relative_to(root))
        if relative in ALLOWED_LIBRARY_WORDS:
            continue
        for name, body in _bindings_of_exceptions(tree):
            for statement in body:
                for node in ast.walk(statement):
                    called = isinstance(node, ast.Call) and (getattr(node.func, "id", None)
                                                             or getattr(node.func, "attr", None))
                    if called in builders and any(_says_the_exception(part, name) for part in
                                                  [*node.args, *(k.value for k in node.keywords)]):
                        found.append((relative, node.lineno))
    return sorted(set(found))


#: Files whose refusals may carry an exception's own text, each with why.
ALLOWED_LIBRARY_WORDS = {
    # An area import's findings are a report for the administrator who uploads the files, in English
    # throughout (each finding's ``problem`` code is what clients match on); the parser's or the geometry
    # library's words are part of what the administrator needs to mend a file. Not a problem's detail.
    "services/dispatch/domain/geojson.py",
}


def test_no_refusal_carries_a_librarys_own_words():
    assert library_words_in_refusals() == []


def test_the_walk_finds_a_librarys_words_where_they_are_passed_on(tmp_path):
    """The walk is not vacuous: each way of passing an exception's text on is found."""
    services = tmp_path / "services"
    services.mkdir()
    (services / "bad.py").write_text(
        "from shared.words import Problem, Said\n\n\n"
        "def f(text):\n    try:\n        json.loads(text)\n    except ValueError as exc:\n"
        "        raise Problem('body.not_json', error=str(exc))\n\n\n"
        "def g(text):\n    try:\n        json.loads(text)\n    except ValueError as exc:\n"
        "        abort(400, message=Said('body.not_json', error=f'{exc}'))\n\n\n"
        "def h(text):\n    try:\n        json.loads(text)\n    except ValueError as exc:\n"
        "        raise Problem('body.not_json', error=exc.msg, line=exc.lineno)\n\n\n"
        "def fine(text):\n    try:\n        json.loads(text)\n    except ValueError as exc:\n"
        "        raise Problem('body.not_json', line=exc.lineno, column=exc.colno)\n\n\n"
        "class Parser:\n    def _handle_invalid_json_error(self, error, req):\n"
        "        abort(400, message=Said('body.not_json', error=error.msg))\n\n\n"
        "@app.errorhandler(ParseError)\ndef _malformed(exc):\n"
        "    return problem(400, 'Bad Request', f'the body is malformed: {printable(str(exc), 200)}')\n",
        encoding="utf-8")
    assert library_words_in_refusals(tmp_path) == [("services/bad.py", n) for n in (8, 15, 22, 34, 39)]


# -- a token's refusal and a body's syntax error in the caller's language -----------------------------------

@pytest.mark.parametrize("token", ["abc", "a.b", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30"])
def test_a_malformed_token_is_refused_in_gridcase_s_words_never_pyjwt_s(token):
    from shared.auth import AuthError, TokenVerifier

    with pytest.raises(AuthError) as refused:
        TokenVerifier("x" * 40).read(token)
    assert refused.value.code == "auth.malformed"
    assert refused.value.message.text("zh").startswith("令牌格式错误")
    assert not re.search(r"segments|padding|Invalid header|decode", str(refused.value), re.IGNORECASE)


def test_every_refusal_of_a_token_reads_in_chinese():
    from datetime import UTC, datetime, timedelta

    import jwt

    from shared.auth import AuthError, TokenVerifier

    now = datetime.now(UTC)
    claims = {"sub": "wang", "role": "grid_worker", "area": "G1", "iat": now, "exp": now + timedelta(hours=1)}
    cases = {
        "auth.bad_signature": jwt.encode(claims, "y" * 40, algorithm="HS256"),
        "auth.expired": jwt.encode({**claims, "iat": now - timedelta(days=2), "exp": now - timedelta(days=1)},
                                   "x" * 40, algorithm="HS256"),
        "auth.area_claim_needed": jwt.encode({**claims, "area": None}, "x" * 40, algorithm="HS256"),
        "auth.claim_unstorable": jwt.encode({**claims, "sub": "wa\x00ng"}, "x" * 40, algorithm="HS256"),
        "auth.jti_claim": jwt.encode({**claims, "jti": 7}, "x" * 40, algorithm="HS256"),
    }
    for code, token in cases.items():
        with pytest.raises(AuthError) as refused:
            TokenVerifier("x" * 40).read(token)
        assert refused.value.code == code
        assert re.search(r"[\u4e00-\u9fff]", refused.value.message.text("zh")), code
        assert str(refused.value) == refused.value.message.text("en")
    with pytest.raises(AuthError) as unstorable:
        TokenVerifier("x" * 40).read(cases["auth.claim_unstorable"])
    assert unstorable.value.message.text("zh") == "sub 声明：第 2 个字符是 NUL 字符"


@pytest.mark.parametrize(("body", "key", "line", "column"), [
    ('{"a" 1}', "json.expecting_colon", 1, 6),
    ("{'a': 1}", "json.expecting_name", 1, 2),
    ('{"a": }', "json.expecting_value", 1, 7),
    ('{"a": 1} x', "json.extra_data", 1, 10),
    ('{"a": "b', "json.unterminated_string", 1, 7),
    ('{"a": "\\q"}', "json.bad_escape", 1, 8),
    ('{"a": [1 2]}', "json.expecting_comma", 1, 10),
])
def test_a_json_syntax_error_is_said_in_the_catalogue_s_words_with_its_line_and_column(body, key, line, column):
    import json

    from shared.web import json_problem

    with pytest.raises(json.JSONDecodeError) as found:
        json.loads(body)
    assert json_problem(found.value) == Message(key) and (found.value.lineno, found.value.colno) == (line, column)
