"""What each channel sends, and how.

- **webhook**: ``POST target`` with the notification as JSON (``{"id", "event", "at", "case": {"id",
  "number", "category", "level", "owners", "deadline", "url", …}, "step", "to", "urgent"}``) and the
  headers ``Gridcase-Event-Id`` (the event id: the same on every retry, for the receiver to deduplicate)
  and ``Gridcase-Signature: t=UNIX_SECONDS,v1=HEX``, HEX being HMAC-SHA256 with the subscription's secret
  over ``"{t}.{raw body}"`` (``signature``; a receiver checks it with ``verify_signature`` and refuses an
  old ``t``, so a captured delivery cannot be replayed later).
- **wecom** (企业微信群机器人): ``POST`` the robot's webhook URL with ``{"msgtype": "markdown", "markdown":
  {"content": …}}``; the robot answers ``{"errcode": 0, "errmsg": "ok"}``.
- **dingtalk** (钉钉自定义机器人): ``POST`` with ``{"msgtype": "markdown", "markdown": {"title", "text"}}``;
  with a 加签 secret the URL carries ``timestamp`` (milliseconds) and ``sign`` = URL-encoded base64 of
  HMAC-SHA256 over ``"{timestamp}\\n{secret}"`` keyed by the secret (``dingtalk_url``); answers as WeCom.
- **email**: one message through ``GRIDCASE_SMTP_URL`` (``smtp://[user:password@]host:port``, STARTTLS
  whenever the server offers it, then the login; ``smtps://`` for TLS from the start) from
  ``GRIDCASE_MAIL_FROM``, in the subscription's language.

A delivery returns normally or raises ``DeliveryError``: ``retryable`` for a network failure, a timeout,
a 408, 429 or 5xx answer, a robot's non-zero ``errcode`` and an SMTP 4xx; not for any other 4xx, a
redirect (never followed), an SMTP 5xx or a target that now resolves to an internal address. Every
HTTP call has a connect and a read timeout, so a receiver that hangs is cut off.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import quote_plus, unquote, urlsplit
from zoneinfo import ZoneInfo

import requests

from services.escalation.notify.subscriptions import url_problem
from shared.words import Message

RESPONSE_LIMIT = 64 * 1024  # bytes of an answer read (a robot's JSON is tiny)
TITLES = {
    "zh": {"assigned": "新案卷到达", "warned": "处置时限预警", "overdue": "案卷超期", "escalated": "案卷已升级",
           "returned": "案卷已回退", "rework": "核查未通过，返工", "verification_due": "待核查",
           "urged": "督办", "early_warning": "预警", "accepted": "已立案", "refused": "不予立案", "test": "测试通知"},
    "en": {"assigned": "New case assigned", "warned": "Deadline warning", "overdue": "Case overdue",
           "escalated": "Case escalated", "returned": "Case returned", "rework": "Verification failed: rework",
           "verification_due": "Verification due", "urged": "Case urged (督办)", "early_warning": "Early warning",
           "accepted": "Accepted", "refused": "Refused", "test": "Test notification"},
}
LABELS = {
    "zh": {"case": "案卷", "category": "类别", "level": "层级", "owner": "承办", "deadline": "处置时限", "note": "说明",
           "open": "打开案卷", "levels": {1: "网格", 2: "工作站", 3: "分中心", 4: "指挥部"}, "urgent": "紧急"},
    "en": {"case": "Case", "category": "Category", "level": "Level", "owner": "Owner", "deadline": "Deadline",
           "note": "Note", "open": "Open the case", "urgent": "URGENT",
           "levels": {1: "grid", 2: "station", 3: "sub-center", 4: "headquarters"}},
}
LEVEL_NAMES = {1: "grid", 2: "station", 3: "subcenter", 4: "hq"}


class DeliveryError(Exception):
    """A delivery that failed: ``retryable`` or given up at once; ``retry_after`` (seconds) when the
    receiver asked for a pause."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message[:480])
        self.retryable, self.retry_after = retryable, retry_after


@dataclass(frozen=True)
class Outlet:
    """How this process delivers: timeouts (seconds), internal targets allowed, SMTP, the sender, the
    base URL of case links and the city's time zone (deadlines in messages)."""

    timeout: float = 10.0
    allow_private: bool = False
    smtp_url: str | None = None
    mail_from: str = "gridcase@localhost"
    public_url: str = "http://127.0.0.1:8000"
    time_zone: str = "Asia/Shanghai"

    @classmethod
    def of(cls, settings) -> Outlet:
        return cls(settings.notify_timeout, settings.notify_allow_private, settings.smtp_url, settings.mail_from,
                   settings.public_url or f"http://{settings.host}:{settings.port}", settings.time_zone)


# -- signatures -------------------------------------------------------------------------------------------

def signature(secret: str, body: bytes, t: int) -> str:
    """``Gridcase-Signature`` of ``body`` sent at unix second ``t``: ``t=<t>,v1=<hex HMAC-SHA256 of
    "{t}.{body}">``."""
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(header: str, secret: str, body: bytes, now: float, tolerance: float = 300.0) -> bool:
    """What a receiver does: the header's ``v1`` matches ``body`` under ``secret`` and its ``t`` is
    within ``tolerance`` seconds of ``now`` (a replayed old delivery fails)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    expected = signature(secret, body, t).split("v1=", 1)[1]
    return abs(now - t) <= tolerance and hmac.compare_digest(expected, parts.get("v1", ""))


def dingtalk_url(url: str, secret: str, timestamp_ms: int) -> str:
    """A DingTalk robot URL signed for ``timestamp_ms`` (DingTalk's 加签: the robot refuses a timestamp
    more than an hour off)."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    sign = quote_plus(base64.b64encode(hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp_ms}&sign={sign}"


# -- what is said ---------------------------------------------------------------------------------------

def with_link(payload: dict, outlet: Outlet) -> dict:
    """The payload with the case's link (``case.url``: the board, opened on the case)."""
    if not isinstance(payload.get("case"), dict) or not payload["case"].get("id"):
        return payload
    url = f"{outlet.public_url.rstrip('/')}/board/#case={payload['case']['id']}"
    return {**payload, "case": {**payload["case"], "url": url}}


def lines(payload: dict, language: str, outlet: Outlet) -> tuple[str, list[tuple[str, str]], str | None]:
    """(title, [(label, value)], link) of a notification in ``language``."""
    words = LABELS[language]
    case = payload.get("case") or {}
    title = TITLES[language].get(payload["event"], payload["event"])
    if payload.get("urgent"):
        title = f"{words['urgent']} · {title}"
    if case.get("number"):
        title = f"{title} · {case['number']}"
    rows = []
    if case:
        level = case.get("level")
        owner = (case.get("owners") or {}).get(LEVEL_NAMES.get(level, ""), None) or {}
        rows += [(words["case"], case.get("number", "")), (words["category"], case.get("category", "")),
                 (words["level"], f"{level} {words['levels'].get(level, '')}".strip()),
                 (words["owner"], owner.get("name") or owner.get("id") or "")]
        if case.get("deadline"):
            rows.append((words["deadline"], _local(case["deadline"], outlet.time_zone)))
    step = payload.get("step") or {}
    note = step.get("note") or payload.get("note")
    if isinstance(step.get("note_message"), dict):
        try:
            note = Message.from_json(step["note_message"]).text(language)
        except (KeyError, TypeError, ValueError):
            pass  # a message this version does not know: its English text
    if note:
        rows.append((words["note"], str(note)[:500]))
    return title, [(k, str(v)) for k, v in rows if v], case.get("url")


def _local(iso: str, zone: str) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone)).strftime(
            "%Y-%m-%d %H:%M %Z")
    except ValueError:
        return iso


def markdown(payload: dict, language: str, outlet: Outlet) -> tuple[str, str]:
    """(title, markdown text) for the group robots."""
    title, rows, link = lines(payload, language, outlet)
    text = f"#### {title}\n" + "".join(f"> **{k}**: {_md(v)}\n" for k, v in rows)
    if link:
        text += f"\n[{LABELS[language]['open']}]({link})\n"
    return title, text


def _md(text: str) -> str:
    return text.replace("\n", " ").replace("[", "［").replace("]", "］")


# -- sending ----------------------------------------------------------------------------------------------

def deliver(channel: str, target: str, secret: str | None, language: str, payload: dict, event_id: str,
            outlet: Outlet, *, session: requests.Session | None = None) -> None:
    """Send one notification (``payload`` as stored, the link added here); ``DeliveryError`` otherwise."""
    payload = with_link(payload, outlet)
    if channel == "email":
        return send_email(target, language, payload, outlet)
    if not outlet.allow_private:
        refused = url_problem(target, False)
        if refused:
            raise DeliveryError(f"target refused: {refused}", retryable=False)
    if channel == "webhook":
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Gridcase-Event-Id": event_id,
                   "Gridcase-Signature": signature(secret or "", body, int(time.time()))}
        return _post(target, body, headers, outlet, session, robot=False)
    title, text = markdown(payload, language, outlet)
    if channel == "wecom":
        body = {"msgtype": "markdown", "markdown": {"content": text}}
        return _post(target, _json(body), {}, outlet, session, robot=True)
    if channel == "dingtalk":
        body = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        url = dingtalk_url(target, secret, int(time.time() * 1000)) if secret else target
        return _post(url, _json(body), {}, outlet, session, robot=True)
    raise DeliveryError(f"no channel {channel!r}", retryable=False)


def _json(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _post(url: str, body: bytes, headers: dict, outlet: Outlet, session, *, robot: bool) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "gridcase-notifier", **headers}
    try:
        response = (session or requests).post(url, data=body, headers=headers, allow_redirects=False, stream=True,
                                               timeout=(outlet.timeout, outlet.timeout))
    except requests.Timeout:
        raise DeliveryError(f"no answer within {outlet.timeout:g} s", retryable=True) from None
    except requests.RequestException as exc:
        raise DeliveryError(f"cannot reach the receiver: {type(exc).__name__}", retryable=True) from None
    try:
        text = response.raw.read(RESPONSE_LIMIT, decode_content=True) or b""
    except Exception:  # noqa: BLE001 — a broken or hanging answer after the status line
        text = b""
    finally:
        response.close()
    status = response.status_code
    if 200 <= status < 300:
        if robot:
            _robot_answer(text)
        return
    if status in (408, 429) or status >= 500:
        raise DeliveryError(f"HTTP {status}", retryable=True, retry_after=_retry_after(response))
    if 300 <= status < 400:
        raise DeliveryError(f"HTTP {status}: redirects are not followed", retryable=False)
    raise DeliveryError(f"HTTP {status}: {text[:200].decode('utf-8', 'replace')}", retryable=False)


def _robot_answer(text: bytes) -> None:
    try:
        answer = json.loads(text)
    except ValueError:
        raise DeliveryError("the robot did not answer JSON", retryable=True) from None
    if not isinstance(answer, dict) or answer.get("errcode") != 0:
        detail = answer.get("errmsg") if isinstance(answer, dict) else answer
        code = answer.get("errcode") if isinstance(answer, dict) else None
        raise DeliveryError(f"robot errcode {code}: {detail}", retryable=True)


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def send_email(to: str, language: str, payload: dict, outlet: Outlet) -> None:
    """One plain-text message to ``to`` through ``outlet.smtp_url``; STARTTLS when the server offers it
    (certificates checked against the system's authorities), the login after it."""
    if not outlet.smtp_url:
        raise DeliveryError("no SMTP server: set GRIDCASE_SMTP_URL", retryable=True)
    parts = urlsplit(outlet.smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise DeliveryError("GRIDCASE_SMTP_URL is smtp://[user:password@]host:port", retryable=False)
    title, rows, link = lines(payload, language, outlet)
    message = EmailMessage()
    message["Subject"] = f"[gridcase] {title}"
    message["From"] = outlet.mail_from
    message["To"] = to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="gridcase")
    message["Content-Language"] = "zh-CN" if language == "zh" else "en"
    message["X-Gridcase-Event-Id"] = payload.get("id", "")
    body = "\n".join(f"{k}: {v}" for k, v in rows)
    if link:
        body += f"\n\n{LABELS[language]['open']}: {link}"
    message.set_content(body + "\n")
    context = ssl.create_default_context()
    try:
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=outlet.timeout, context=context)
        else:
            client = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=outlet.timeout)
        with client:
            client.ehlo()
            if parts.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=exc.smtp_code < 500) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryError(f"SMTP refused the recipient: {codes}", retryable=all(c < 500 for c in codes)) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}", retryable=True) from None


def endpoint(channel: str, target: str, outlet: Outlet) -> str:
    """The receiver a delivery goes to, for its circuit: ``scheme://host:port`` (every e-mail: the SMTP server)."""
    url = (outlet.smtp_url or "smtp://unset") if channel == "email" else target
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"
    except ValueError:
        return url
