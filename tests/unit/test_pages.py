"""The pages' static contracts: every label in both languages, the language a browser asks for, and the
gateway sending the pages' own Content-Security-Policy."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from shared.pages import PAGE_CSP, language

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "services/escalation/pages/board", ROOT / "services/escalation/pages/desk",
         ROOT / "services/intake/pages/app", ROOT / "services/escalation/pages/wall"]


@pytest.mark.parametrize("folder", PAGES, ids=lambda p: p.name)
def test_every_label_a_page_names_is_in_its_catalogue_in_both_languages(folder):
    catalogue = json.loads((folder / "messages.json").read_text(encoding="utf-8"))
    assert set(catalogue) == {"zh", "en"} and set(catalogue["zh"]) == set(catalogue["en"])
    html = (folder / "index.html").read_text(encoding="utf-8")
    scripts = "".join(p.read_text(encoding="utf-8") for p in folder.glob("*.js"))
    named = set(re.findall(r'data-i18n="([\w-]+)"', html)) | set(re.findall(r"\{\{ t\.(\w+) \}\}", html))
    named |= {key for pair in re.findall(r'data-i18n-attr="([^"]+)"', html) for key in re.findall(r":(\w+)", pair)}
    named |= set(re.findall(r"gc\.t\('([\w-]+)'", scripts))
    named = {n for n in named if not n.endswith("_")}  # a prefix completed at run time ('level_' + n)
    assert named and not named - set(catalogue["zh"]), sorted(named - set(catalogue["zh"]))


@pytest.mark.parametrize(("header", "expected"), [
    ("", "zh"), ("en-US,en;q=0.9", "en"), ("fr,en;q=0.5,zh;q=0.7", "zh"), ("de, en-GB;q=0.3", "en"),
    ("zh-TW", "zh"), ("*", "zh"),
])
def test_a_page_speaks_the_language_the_browser_prefers_and_chinese_otherwise(header, expected):
    assert language(parse_accept_header(header, LanguageAccept)) == expected


def test_the_gateway_passes_the_pages_own_content_security_policy_and_sends_the_other_headers():
    """The page's policy names the base map's tile host, which only the service knows: the gateway's page
    locations must neither hide nor replace it, and must repeat every other security header."""
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    for page in ("app", "board", "desk", "wall"):
        block = re.search(rf"location /{page}/ \{{(.*?)\n        \}}", nginx, re.S).group(1)
        assert "Content-Security-Policy" not in block
        for header in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
            assert f"proxy_hide_header {header};" in block
        for header in ("X-Content-Type-Options nosniff", "X-Frame-Options DENY", "Referrer-Policy no-referrer"):
            assert f"add_header {header} always;" in block
    assert "proxy_hide_header Content-Security-Policy;" in nginx  # the APIs' own policy, outside the pages
    assert "'unsafe-inline'" not in PAGE_CSP and "'unsafe-eval'" not in PAGE_CSP
