"""Branding (issue 12, item 5): every page and e-mail names the operator, shows the support
contact when set and the footer, all escaped; pages keep their strict CSP; the wrong-browser page
says what usually causes it and what to do; e-mails have a plain-text and an HTML part."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest

from adsauth.mail import invitation_email, reconsent_email
from adsauth.models import Advertiser, AdvertiserStatus
from adsauth.pages import PAGES, SECURITY_HEADERS, STYLE, render
from adsauth.regions import Region
from adsauth.settings import Branding, SettingsError
from tests.unit.fakes import make_settings

HOSTILE_NAME = 'Evil "Corp" <script>alert(1)</script> & \'Co\''
HOSTILE_FOOTER = 'Footer "x" <img src=x onerror=alert(1)> & more'
LINK = "https://auth.example.com/prod/connect/TOKEN123"


class Page(HTMLParser):
    """What a browser would find in a page: elements, attributes, visible text, scripts."""

    def __init__(self, body: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(body)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    @property
    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())

    def by_id(self, element_id: str) -> dict | None:
        return next((attrs for _tag, attrs in self.tags if attrs.get("id") == element_id), None)


def hostile(**env) -> Branding:
    return make_settings(OPERATOR_NAME=HOSTILE_NAME, **env).branding


# --- settings --------------------------------------------------------------------------------------
def test_no_operator_name_is_never_a_lowercase_placeholder():
    settings = make_settings(OPERATOR_NAME="")
    assert settings.operator_name == ""
    with pytest.raises(SettingsError) as refused:
        settings.branding
    assert str(refused.value) == (
        "environment variable OPERATOR_NAME is required to render pages and e-mails "
        "(the stack sets it from cdk.json operator_name)"
    )


def test_branding_is_read_from_the_environment():
    b = make_settings(OPERATOR_NAME=" Acme Media ", SUPPORT_CONTACT="help@acme.example", FOOTER_TEXT="Acme Ltd").branding
    assert b == Branding("Acme Media", "help@acme.example", "Acme Ltd")
    assert b.support_href == "mailto:help@acme.example" and b.footer == "Acme Ltd"
    b = make_settings(OPERATOR_NAME="Acme", SUPPORT_CONTACT="https://acme.example/help").branding
    assert b.support_href == "https://acme.example/help"
    assert b.footer == "Acme \u00b7 Amazon Ads account connection"  # the default names the operator


@pytest.mark.parametrize("name, value, message", [
    ("SUPPORT_CONTACT", "javascript:alert(1)", "environment variable SUPPORT_CONTACT must be an e-mail address or an https:// URL"),
    ("SUPPORT_CONTACT", "http://acme.example", "environment variable SUPPORT_CONTACT must be an e-mail address or an https:// URL"),
    ("FOOTER_TEXT", "<b>x</b>", "environment variable FOOTER_TEXT must be one line of plain text (no < or >), at most 200 characters"),
    ("FOOTER_TEXT", "a\nb", "environment variable FOOTER_TEXT must be one line of plain text (no < or >), at most 200 characters"),
    ("OPERATOR_NAME", "x" * 101, "environment variable OPERATOR_NAME must be one line of plain text (no < or >), at most 100 characters"),
    # Unicode's own line breaks and invisible format characters: a bidi override reverses what follows
    ("OPERATOR_NAME", "Acme \u202eknab", "environment variable OPERATOR_NAME must be one line of plain text (no < or >), at most 100 characters"),
    ("OPERATOR_NAME", "Acme\u2028Subject: x", "environment variable OPERATOR_NAME must be one line of plain text (no < or >), at most 100 characters"),
    ("FOOTER_TEXT", "Acme\x85Ltd", "environment variable FOOTER_TEXT must be one line of plain text (no < or >), at most 200 characters"),
    ("FOOTER_TEXT", "Ac\u200bme", "environment variable FOOTER_TEXT must be one line of plain text (no < or >), at most 200 characters"),
])
def test_malformed_branding_variables_are_fixed_settings_errors(name, value, message):
    with pytest.raises(SettingsError) as refused:
        make_settings(**{name: value})
    assert str(refused.value) == message


# --- pages -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(PAGES))
def test_every_page_shows_the_operator_contact_and_footer_escaped(key):
    status, body = render(key, Branding(HOSTILE_NAME, "https://help.acme.example/ads?a=1&b='x'", HOSTILE_FOOTER))
    assert status == PAGES[key][0]
    page = Page(body)
    assert [tag for tag, _ in page.tags if tag in ("script", "img", "iframe", "form")] == []
    assert all(not name.startswith("on") for _tag, attrs in page.tags for name in attrs)
    assert "<script>" not in body and "<img" not in body
    contact = page.by_id("contact")
    assert contact is not None
    (href,) = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert href == "https://help.acme.example/ads?a=1&b='x'"  # the attribute, once unescaped
    assert f"Questions? Contact {HOSTILE_NAME}: https://help.acme.example/ads?a=1&b='x'" in page.visible
    assert page.visible.endswith(HOSTILE_FOOTER)  # as written, never as markup
    assert page.by_id("page")["data-page"] == key
    if "{operator}" in PAGES[key][2]:
        assert HOSTILE_NAME in page.visible


def test_an_e_mail_contact_is_a_mailto_link_and_no_contact_means_no_line():
    _status, body = render("connected", Branding("Acme", "help@acme.example"))
    assert Page(body).by_id("contact") is not None
    assert '<a href="mailto:help@acme.example">help@acme.example</a>' in body
    _status, body = render("connected", Branding("Acme"))
    page = Page(body)
    assert page.by_id("contact") is None and "<a " not in body
    assert page.visible.endswith("Acme \u00b7 Amazon Ads account connection")
    assert "adsauth" not in page.visible


def test_the_connected_page_reads_as_a_sentence():
    _status, body = render("connected", Branding("Acme Media"))
    assert "Thank you. Acme Media can now work with the advertising access you granted." in Page(body).visible


def test_pages_keep_the_strict_csp_and_the_style_is_the_one_hashed():
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    assert csp == (f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'none'; "
                   "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    _status, body = render("state_unbound", Branding("Acme", "help@acme.example", "Footer"))
    styles = re.findall(r"<style>(.*?)</style>", body)
    assert styles == [STYLE]  # the only style: nothing inline, nothing unhashed
    assert " style=" not in body and "<script" not in body


def test_the_wrong_browser_page_names_the_usual_cause_and_what_to_do():
    status, body = render("state_unbound", Branding("Acme"))
    text = Page(body).visible
    assert status == 400
    assert "Please open the link in your usual browser" in text
    assert "inside a mail app" in text and "built-in browser" in text
    assert "another browser (or another device)" in text
    assert "copy it" in text and "paste the link in the address bar" in text
    for browser in ("Safari", "Chrome", "Edge", "Firefox"):
        assert browser in text
    assert "Nothing was saved." in text


# --- e-mails ---------------------------------------------------------------------------------------
def _advertiser(name: str) -> Advertiser:
    return Advertiser(advertiser_id="adv-1", name=name, email="ads@acme.example", region=Region.NA,
                      status=AdvertiserStatus.CONNECTED, created_at=1.7e9, updated_at=1.7e9)


def _emails(settings):
    yield "invitation", invitation_email(settings, 'Shop <b>"Acme"</b>', LINK, 1.8e9)
    yield "reconsent", reconsent_email(settings, _advertiser('Shop <b>"Acme"</b>'), LINK, 1.8e9, 1.81e9)


def test_subjects_name_the_operator_plainly():
    subjects = dict((kind, mail[0]) for kind, mail in _emails(make_settings(OPERATOR_NAME="Acme Media")))
    assert subjects == {
        "invitation": "Acme Media asks you to connect your Amazon Ads account",
        "reconsent": "Please renew Acme Media's access to your Amazon Ads account",
    }


@pytest.mark.parametrize("kind", ["invitation", "reconsent"])
def test_both_parts_carry_the_link_operator_contact_and_footer(kind):
    settings = make_settings(OPERATOR_NAME=HOSTILE_NAME.replace("<", "").replace(">", "x"),
                             SUPPORT_CONTACT="help@acme.example", FOOTER_TEXT="Acme Ltd & Co \u00b7 London")
    operator = settings.operator_name
    _subject, text, html = dict(_emails(settings))[kind]
    assert LINK in text and f"Questions? Contact {operator}: help@acme.example" in text
    assert text.rstrip().endswith("Acme Ltd & Co \u00b7 London\nQuestions? Contact " + operator + ": help@acme.example")
    page = Page(html)
    assert [tag for tag, _ in page.tags if tag in ("img", "script", "style", "link", "iframe")] == []
    links = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert links == [LINK, "mailto:help@acme.example"]
    assert "on auth.example.com" in page.visible  # the link's text shows where it goes
    assert operator in page.visible and "Acme Ltd & Co \u00b7 London" in page.visible
    assert 'Hello Shop <b>"Acme"</b>,' in page.visible  # the advertiser's name, as text
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert "http://" not in html  # nothing loaded or linked in the clear


def test_a_hostile_operator_name_in_the_html_part_stays_text():
    settings = make_settings(OPERATOR_NAME='Evil "Corp" & Co')
    for _kind, (_subject, _text, html) in _emails(settings):
        assert "Evil &quot;Corp&quot; &amp; Co" in html
        assert 'Evil "Corp" & Co' in Page(html).visible


def test_without_a_name_no_e_mail_is_written():
    for render_mail in (lambda s: invitation_email(s, "Acme", LINK, 1.8e9),
                        lambda s: reconsent_email(s, _advertiser("Acme"), LINK, 1.8e9, 1.81e9)):
        with pytest.raises(SettingsError):
            render_mail(make_settings(OPERATOR_NAME=""))
