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
                            "InvalidArgument", "Refused"} and node.args:
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
