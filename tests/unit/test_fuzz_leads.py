"""Fuzzing the lead CSV import (cluster/dialer/leads.py, cluster/dialer/phone.py), which
reads files people upload through the REST API and the CLI.

The contract: `parse_leads_csv` returns a `LeadImport` (good rows kept, each bad row a
`RowError` with its row number, repeats dropped) or raises `LeadFileError` for a file
that is not a lead list at all; never another exception, in time linear in the file.
Every lead it keeps has an ASCII E.164 number, an id of the documented shape and a time
zone this machine knows. Errors never repeat the phone number. Each bug the fuzzing found
has a plain regression test at the end.
"""

from __future__ import annotations

import csv
import io
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.dialer.campaign import CampaignConfig
from cluster.dialer.leads import _LEAD_ID, LeadFileError, LeadImport, parse_leads_csv
from cluster.dialer.phone import PhoneNumberError, normalise_e164, valid_timezone

pytestmark = pytest.mark.unit

FUZZ = settings(max_examples=100, deadline=1000, database=None,
                suppress_health_check=[HealthCheck.too_slow])
E164 = re.compile(r"\+[1-9][0-9]{7,14}")
LEAD_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

COLUMNS = st.sampled_from(["phone", "Phone ", "number", "msisdn", "lead_id", "id", "name",
                           "first_name", "last_name", "timezone", "tz", "region", "tier",
                           "vip", "country", "notes", "", "phone"])
phones = st.sampled_from([
    "+1 212 555 0101", "(212) 555-0102", "020 7946 0106", "+44 20 7946 0107", "+4930901820",
    "+44 20 ٣٣٣٣ ٣٣٣٣", "+1 ²¹² 555 0101", "212 555 0101 x12", "+0 123", "1" * 40, "",
    "0044 20 7946 0106", "+999 1234 5678", "+1 212 555 0101\n", "\u0660" * 10,
]) | st.text(max_size=16)
cells = st.sampled_from([
    "", "America/Chicago", "America", "Europe/", "x" * 5000, "../../etc/passwd", "UTC\n",
    "yes", "no", "maybe", "GB", "DE", "ZZ", "L-1", "L 1", "L1\n", "a" * 65, "gold", "vip",
    "\x00", "=cmd|' /C calc'!A0", '"', "\ufeff",
]) | st.text(max_size=12)


@st.composite
def lead_files(draw) -> str:
    header = draw(st.lists(COLUMNS, min_size=1, max_size=7))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for _ in range(draw(st.integers(0, 8))):
        width = draw(st.integers(0, len(header) + 1))
        writer.writerow([draw(phones) if "phone" in name.lower() or name == "number"
                         else draw(cells) for name in (header + ["extra"])[:width]])
    return buffer.getvalue()


def check(text: str, default_country: str = "US", known: tuple[str, ...] = ()) -> None:
    started = time.perf_counter()
    try:
        report = parse_leads_csv(text, default_country, "America/New_York", known)
    except LeadFileError as err:
        assert str(err)
        return
    finally:
        assert time.perf_counter() - started < 0.5
    assert isinstance(report, LeadImport)
    assert len(report.leads) + len(report.errors) + len(report.duplicate_rows) == report.rows
    for lead in report.leads:
        assert E164.fullmatch(lead.phone), lead.phone
        assert LEAD_ID.fullmatch(lead.id), lead.id
        assert valid_timezone(lead.timezone)
        assert lead.phone not in known
    phones_kept = [lead.phone for lead in report.leads]
    assert len(phones_kept) == len(set(phones_kept))
    for error in report.errors:
        assert error.row >= 2 and error.message
        for lead in report.leads:
            assert lead.phone[2:] not in error.message  # a number never goes into a message


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_is_an_import_or_a_lead_file_error(text: str) -> None:
    check(text)


@FUZZ
@given(text=lead_files(), country=st.sampled_from(["US", "GB", "DE", "ZZ"]),
       known=st.sampled_from([(), ("+12125550101",)]))
def test_nearly_right_lead_files_keep_only_good_leads(text, country, known) -> None:
    check(text, country, known)


@FUZZ
@given(raw=phones | st.text(max_size=40), country=st.sampled_from(["US", "GB", "XX", "x" * 50]))
def test_a_number_is_ascii_e164_or_a_phone_number_error(raw: str, country: str) -> None:
    try:
        phone = normalise_e164(raw, country)
    except PhoneNumberError as err:
        digits = "".join(ch for ch in raw if ch.isdigit())
        assert len(digits) < 7 or digits not in str(err)
        return
    assert E164.fullmatch(phone), phone


@FUZZ
@given(name=st.text(max_size=80) | cells)
def test_time_zone_validation_never_raises(name: str) -> None:
    assert valid_timezone(name) in (True, False)


# ---- regressions: what the fuzzing found ----------------------------------------------------


@pytest.mark.parametrize("zone", ["America", "x" * 5000, "Europe/" + "y" * 300, "zone.tab"])
def test_an_odd_time_zone_column_rejects_the_row_not_the_file(zone: str) -> None:
    """ZoneInfo('America') raised IsADirectoryError and a 5,000-character name 'file name
    too long' (OSError): the whole import failed with a server error."""
    report = parse_leads_csv(f"phone,timezone\n+12125550101,{zone}\n+12125550102,UTC\n")
    assert [lead.phone for lead in report.leads] == ["+12125550102"]
    assert report.errors[0].row == 2 and report.errors[0].column == "timezone"
    assert len(report.errors[0].message) < 200


@pytest.mark.parametrize("raw", ["+44 20 ٣٣٣٣ ٣٣٣٣", "+44 20 7946 ０１０６", "+1 ²¹² 555 0101"])
def test_digits_of_other_scripts_are_not_a_phone_number(raw: str) -> None:
    """str.isdigit() took Arabic-Indic and full-width digits: '+4420٣٣٣٣٣٣٣٣' was stored
    as an E.164 number."""
    with pytest.raises(PhoneNumberError, match="other than digits 0-9"):
        normalise_e164(raw, "US")
    report = parse_leads_csv(f'phone\n"{raw}"\n')
    assert report.leads == [] and len(report.errors) == 1


def test_a_lead_id_with_a_trailing_newline_is_refused() -> None:
    report = parse_leads_csv('phone,lead_id\n+12125550101,"L1\n"\n+12125550102,L2\n')
    # the cell is stripped first, so "L1\n" is the id "L1"; the pattern itself must not
    # let a newline through either
    assert [lead.id for lead in report.leads] == ["L1", "L2"]
    assert _LEAD_ID.fullmatch("L1\n") is None


def test_a_long_bad_cell_is_not_echoed_whole() -> None:
    report = parse_leads_csv("phone,vip,tz\n+12125550101," + "y" * 5000 + ",UTC\n"
                             "+12125550102,no," + "z" * 5000 + "\n")
    assert len(report.errors) == 2
    assert all(len(error.message) < 200 for error in report.errors)


def test_campaign_and_caller_id_patterns_refuse_a_trailing_newline() -> None:
    base = {"id": "spring", "name": "Spring", "bot_script": "outbound_promo",
            "caller_id_number": "+12125550100", "gateways": ["carrier"]}
    CampaignConfig.model_validate(base)
    for key, value in (("id", "spring\n"), ("caller_id_number", "+12125550100\n"),
                       ("caller_id_number", "+1212555٠١٠٠")):
        with pytest.raises(ValueError):
            CampaignConfig.model_validate({**base, key: value})
