"""Every word the APIs write for a person to read, in Chinese and English: the message catalogue
(``shared/words.toml``), the caller's language, problem codes and timeline notes stored as codes.

- **Messages** have a stable key (``case.not_owner``) and a text per language with ``str.format``
  placeholders (``{status}``); ``words.toml`` holds them, and loading it checks that every key has a
  text in every language of ``LANGUAGES`` with the same placeholders in each (so a missing translation
  fails at import, not in front of a user). A parameter that is itself a ``Message`` (a status, a verb)
  is rendered in the same language.
- **The caller's language** is ``language_of(Accept-Language)``: ``zh`` when the caller ranks Chinese
  above English, else ``en`` (English stays the APIs' default, as before they spoke Chinese).
- **Problems**: ``Problem`` is the one base of every error that answers as an RFC 9457 problem
  (domain refusals included); it carries its HTTP ``status``, its message ``code`` and ``params`` and
  the request ``field`` it is about. ``shared.web`` renders it once for every service.
- **Timeline notes** the system writes are stored as ``note(code, **params)``: a record separator
  (U+001E, a control character no person's text may contain: ``shared.fields.storable_problem``)
  followed by ``{"code", "params"}`` in JSON, rendered by ``note_text`` in the reader's language. A
  note without the mark — a person's own words, or one stored before notes were codes — is shown as
  written, never translated.
"""
from __future__ import annotations

import json
import re
import string
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CATALOGUE = Path(__file__).with_name("words.toml")
#: The languages every message is written in; the first is the default.
LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = LANGUAGES[0]
#: The first character of a stored note that is a message code (U+001E RECORD SEPARATOR).
NOTE_MARK = "\x1e"


def placeholders(template: str) -> frozenset[str]:
    """The names of the ``{placeholders}`` in a ``str.format`` template (``{n:.0%}`` → ``n``)."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def load(path: Path = CATALOGUE) -> dict[str, dict[str, str]]:
    """The catalogue at ``path``: ``{key: {language: template}}``; ValueError naming each key that
    lacks a language of ``LANGUAGES`` or whose languages' placeholders differ."""
    with path.open("rb") as file:
        catalogue = tomllib.load(file)
    wrong = []
    for key, texts in catalogue.items():
        if set(texts) != set(LANGUAGES) or not all(isinstance(t, str) and t for t in texts.values()):
            wrong.append(f"{key}: needs a text in each of {', '.join(LANGUAGES)} (has {', '.join(texts)})")
        elif len({placeholders(t) for t in texts.values()}) > 1:
            wrong.append(f"{key}: placeholders differ between languages")
    if wrong:
        raise ValueError(f"{path}: " + "; ".join(wrong))
    return catalogue


MESSAGES: dict[str, dict[str, str]] = load()


@dataclass(frozen=True)
class Message:
    """A catalogue key and its parameters (values: text, numbers, ``Message`` for words that are
    themselves translated, such as a status, or a list of those, joined by ``list.separator``)."""

    code: str
    params: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        if self.code not in MESSAGES:
            raise KeyError(f"no message {self.code!r} in {CATALOGUE.name}")

    def text(self, lang: str = DEFAULT_LANGUAGE) -> str:
        """The message in ``lang`` (``en`` or ``zh``; anything else: the default)."""
        texts = MESSAGES[self.code]
        template = texts.get(lang) or texts[DEFAULT_LANGUAGE]
        return template.format_map({k: _render(v, lang) for k, v in self.params.items()})

    def to_json(self) -> dict:
        """``{"code", "params"}``, nested messages likewise (what a stored note holds)."""
        return {"code": self.code, "params": {k: _to_json(v) for k, v in self.params.items()}}

    @classmethod
    def from_json(cls, value: Mapping) -> Message:
        """The inverse of ``to_json``; KeyError for a code the catalogue does not hold."""
        return cls(value["code"], {k: _from_json(v) for k, v in (value.get("params") or {}).items()})


def _render(value: object, lang: str) -> object:
    """A parameter as ``lang`` reads it: a message rendered, a list of them joined (``list.separator``)."""
    if isinstance(value, Message):
        return value.text(lang)
    if isinstance(value, list | tuple):
        return MESSAGES["list.separator"][lang].join(str(_render(v, lang)) for v in value)
    return value


def _to_json(value: object) -> object:
    if isinstance(value, Message):
        return value.to_json()
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _from_json(value: object) -> object:
    if isinstance(value, Mapping) and "code" in value:
        return Message.from_json(value)
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def say(code: str, lang: str = DEFAULT_LANGUAGE, /, **params) -> str:
    """The message ``code`` in ``lang`` with ``params``: ``say("http.404", "zh")`` → ``"未找到"``."""
    return Message(code, params).text(lang)


#: marshmallow's and webargs' validation messages (English, formatted before gridcase sees them) → the
#: catalogue's key that says the same, its placeholders read back from the message.
_VALIDATION = tuple((re.compile(pattern), key) for pattern, key in (
    (r"Missing data for required field\.", "validation.required"),
    (r"Field may not be null\.", "validation.null"),
    (r"Unknown field\.", "validation.unknown_field"),
    (r"Invalid value\.", "validation.invalid_value"),
    (r"Invalid input type\.", "validation.invalid_input"),
    (r"Not a valid (?P<kind>[\w ]+)\.", "validation.not_valid"),
    (r"Number too large\.", "validation.too_large"),
    (r"Must be greater than or equal to (?P<min>\S+) and less than or equal to (?P<max>\S+)\.", "validation.range"),
    (r"Must be greater than or equal to (?P<min>\S+)\.", "validation.at_least"),
    (r"Must be less than or equal to (?P<max>\S+)\.", "validation.at_most"),
    (r"Must be greater than (?P<min>\S+)\.", "validation.greater"),
    (r"Must be less than (?P<max>\S+)\.", "validation.less"),
    (r"Shorter than minimum length (?P<min>\d+)\.", "validation.shorter"),
    (r"Longer than maximum length (?P<max>\d+)\.", "validation.longer"),
    (r"Length must be between (?P<min>\d+) and (?P<max>\d+)\.", "validation.length_between"),
    (r"Length must be (?P<equal>\d+)\.", "validation.length_equal"),
    (r"Must be one of: (?P<choices>.+)\.", "validation.one_of"),
))


class Said(str):
    """A message's English text that carries the message (``.message``): it travels where only text
    may (a marshmallow ``ValidationError``, webargs' ``abort(errors=…)``) and is read in the caller's
    language at the edge (``validation``). ``Said("stats.to_after_from")``."""

    message: Message

    def __new__(cls, code: str, /, **params):
        message = Message(code, params)
        said = super().__new__(cls, message.text(DEFAULT_LANGUAGE))
        said.message = message
        return said


#: The English text of each parameterless schema message (``schema.*``: gridcase's own fields' words,
#: which marshmallow formats into plain text) → its key, to read them back in another language.
_SCHEMA_TEXTS = {texts[DEFAULT_LANGUAGE]: key for key, texts in MESSAGES.items()
                 if key.startswith("schema.") and not placeholders(texts[DEFAULT_LANGUAGE])}


def validation(message: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """A validation message in ``lang``: a ``Said`` rendered; one of gridcase's schema messages
    (``schema.*``) or of marshmallow's and webargs' own (``"Missing data for required field."`` →
    ``"缺少必填字段。"``) by the catalogue's text for it; English as it came; else the message itself."""
    if isinstance(message, Said):
        return message.message.text(lang)
    if lang == DEFAULT_LANGUAGE:
        return message
    if message in _SCHEMA_TEXTS:
        return say(_SCHEMA_TEXTS[message], lang)
    for pattern, key in _VALIDATION:
        if found := pattern.fullmatch(message):
            params = found.groupdict()
            if "kind" in params:  # "Not a valid integer." — the kind of value, in words where the catalogue has it
                kind = f"validation.kind.{params['kind'].replace(' ', '_')}"
                params["kind"] = say(kind, lang) if kind in MESSAGES else params["kind"]
            return say(key, lang, **params)
    return message


def word(kind: str, value: object) -> Message | object:
    """A vocabulary value as a translated word when the catalogue has ``kind.value`` (``status.closed``
    → 已结案), else the value itself."""
    code = f"{kind}.{value}"
    return Message(code) if code in MESSAGES else value


def language_of(accept_language: Iterable[tuple[str, float]]) -> str:
    """``zh`` or ``en`` from an ``Accept-Language`` header as werkzeug parses it
    (``request.accept_languages``: ``(value, quality)`` pairs): the one of the two the caller ranks
    higher (``zh-CN``, ``zh-Hans``… count as ``zh``); ``en`` when it names neither."""
    best, best_quality = DEFAULT_LANGUAGE, -1.0
    for value, quality in accept_language:
        primary = value.lower().split("-")[0]
        if primary in LANGUAGES and quality > best_quality:
            best, best_quality = primary, quality
    return best


def note(code: str, /, **params) -> str:
    """A timeline note the system writes, stored as its code and parameters (``note_text`` renders it)."""
    return stored_note(Message(code, params))


def stored_note(message: Message) -> str:
    """``message`` as a stored note: ``NOTE_MARK`` + its ``{"code", "params"}`` JSON (``note_text`` renders it)."""
    return NOTE_MARK + json.dumps(message.to_json(), ensure_ascii=False, separators=(",", ":"))


def note_message(stored: str) -> Message | None:
    """The message a stored note holds, or None for a person's own words (or an old free-text note)."""
    if not stored or not stored.startswith(NOTE_MARK):
        return None
    try:
        return Message.from_json(json.loads(stored[1:]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def note_text(stored: str | None, lang: str = DEFAULT_LANGUAGE) -> str:
    """A stored note as ``lang`` reads it: a code rendered, anything else as written."""
    if not stored:
        return stored or ""
    message = note_message(stored)
    if message is not None:
        return message.text(lang)
    return stored[1:] if stored.startswith(NOTE_MARK) else stored


class Invalid(ValueError):
    """A value a parser refuses (a time limit, a policy file's line), said as a catalogue message: its
    ``code`` and ``params`` (``message``), so that whoever shows it — an HTTP problem, the desk, the CLI —
    renders it in the reader's language. ``str()`` is the English text (a ValueError as before)."""

    def __init__(self, code: str, /, **params):
        self.message = Message(code, params)
        self.code, self.params = code, params
        super().__init__(self.message.text(DEFAULT_LANGUAGE))

    def text(self, lang: str = DEFAULT_LANGUAGE) -> str:
        """The refusal in ``lang``."""
        return self.message.text(lang)


class LocatedError(ValueError):
    """A file that cannot be used: ``problem`` (a ``Message``) on ``line`` of ``file`` (None: the whole file).
    ``located`` is the message naming the file and line (``policy.at_line``, or ``policy.in_file``); ``str()``
    is ``FILE:LINE: problem`` in English (the CLI's), ``text(lang)`` the same in ``lang``."""

    def __init__(self, problem: Message, file: str, line: int | None = None):
        self.problem, self.file, self.line = problem, file, line
        self.message = problem.text()
        self.located = Message("policy.at_line", {"file": file, "line": line, "problem": problem}) if line \
            else Message("policy.in_file", {"file": file, "problem": problem})
        super().__init__(self.located.text())

    def text(self, lang: str = DEFAULT_LANGUAGE) -> str:
        """``FILE:LINE: problem`` in ``lang``."""
        return self.located.text(lang)


class Problem(Exception):
    """The base of every error that answers as an RFC 9457 problem: ``status`` (HTTP), ``code`` (a key
    of the catalogue, sent as the problem's ``code`` member; its text is the ``detail``), ``params``,
    ``field`` (the request field it is about, listed in ``errors``) and ``headers`` to send.

    Subclasses set a default ``status`` and ``code``. ``str(problem)`` is the English detail, so code
    that logs or compares refusals reads what it did before messages had codes."""

    status = 400
    code = "request.invalid"

    def __init__(self, code: str | None = None, /, *, field: str | None = None, http_status: int | None = None,
                 headers: Mapping[str, str] | None = None, **params):
        self.code = code or type(self).code
        self.message = Message(self.code, params)
        self.params = params
        self.field = field
        self.headers = dict(headers or {})
        if http_status is not None:
            self.status = http_status
        super().__init__(self.message.text(DEFAULT_LANGUAGE))

    def detail(self, lang: str = DEFAULT_LANGUAGE) -> str:
        """The detail in ``lang``."""
        return self.message.text(lang)
