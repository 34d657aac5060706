"""Lead import: E.164 normalisation, row-numbered errors with good rows kept,
de-duplication, time zones from a column or the number, tags and extra variables, and
the dial order they give."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.dialer.leads import LeadFileError, parse_leads_csv, priority_score
from cluster.dialer.phone import PhoneNumberError, guess_timezone, normalise_e164

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[2] / "configs" / "campaigns" / "spring-offer-leads.csv"


@pytest.mark.parametrize(("raw", "country", "expected"), [
    ("+1 212 555 0101", "US", "+12125550101"),
    ("(212) 555-0101", "US", "+12125550101"),
    ("1-212-555-0101", "US", "+12125550101"),
    ("011 44 20 7946 0106", "US", "+442079460106"),
    ("020 7946 0106", "GB", "+442079460106"),
    ("0044 20 7946 0106", "DE", "+442079460106"),
    ("+49 30 901820", "US", "+4930901820"),
    ("+972 3 555 0101", "US", "+97235550101"),
])
def test_numbers_are_normalised_to_e164(raw, country, expected):
    assert normalise_e164(raw, country) == expected


@pytest.mark.parametrize("raw", ["555-0107", "+1 112 555 0101", "212 555 0101 x12", "call me",
                                 "+1 212 555 01011", "", "+0 123 456 789"])
def test_unusable_numbers_are_refused_without_echoing_them(raw):
    with pytest.raises(PhoneNumberError) as err:
        normalise_e164(raw, "US")
    digits = "".join(ch for ch in raw if ch.isdigit())
    assert len(digits) < 7 or digits not in str(err.value)


def test_time_zone_comes_from_the_area_code_or_country():
    assert guess_timezone("+12125550101") == "America/New_York"
    assert guess_timezone("+14155550101") == "America/Los_Angeles"
    assert guess_timezone("+16025550101") == "America/Phoenix"
    assert guess_timezone("+442079460106") == "Europe/London"
    assert guess_timezone("+15555550101") is None  # not in the table
    assert guess_timezone("+61255550101") is None  # Australia: several zones


def test_sample_file_keeps_good_rows_and_reports_bad_ones_by_row():
    report = parse_leads_csv(SAMPLE.read_text(), default_timezone="America/Chicago")
    assert report.summary() == {"rows": 15, "accepted": 9, "rejected": 5, "duplicates": 1}
    problems = {e.row: (e.column, e.message) for e in report.errors}
    assert problems[8][0] == "phone" and "10 digits" in problems[8][1]
    assert problems[10] == ("phone", "phone is empty")
    assert problems[11][0] == "timezone" and "Mars/Olympus" in problems[11][1]
    assert problems[12][0] == "vip"
    assert problems[15][0] == "phone" and "extension" in problems[15][1]
    assert report.duplicate_rows == [9]  # row 9 repeats row 2's number

    leads = {lead.id: lead for lead in report.leads}
    ada = leads["C1001"]
    assert (ada.phone, ada.name, ada.region, ada.tier) == ("+12125550101", "Ada Lovelace", "NY", "gold")
    assert ada.variables == {"plan": "premium", "last_order": "2026-01-12"}
    assert (ada.timezone, ada.tz_source) == ("America/New_York", "number")
    assert (leads["C1013"].timezone, leads["C1013"].tz_source) == ("America/Denver", "column")
    assert leads["C1003"].vip and leads["C1006"].vip  # vip column, and tier 'vip'
    assert leads["C1006"].phone == "+442079460106"


def test_missing_time_zone_falls_back_to_the_campaign_default():
    report = parse_leads_csv("phone\n+1 555 555 0101\n", default_timezone="America/Chicago")
    (lead,) = report.leads
    assert (lead.timezone, lead.tz_source) == ("America/Chicago", "default")


def test_already_known_numbers_are_duplicates_and_ids_are_stable():
    text = "Phone,Segment\n2125550101,gold\n+1 646 555 0102,silver\n"
    first = parse_leads_csv(text)
    again = parse_leads_csv(text, known_phones={"+12125550101"})
    assert [lead.phone for lead in again.leads] == ["+16465550102"]
    assert again.duplicate_rows == [2]
    assert first.leads[1].id == again.leads[0].id  # derived from the number, not the row
    assert "555" not in first.leads[0].id  # the id does not reveal the number


def test_a_row_with_too_many_fields_is_rejected_alone():
    report = parse_leads_csv("phone,name\n+12125550101,Ada\n+12125550102,Lovelace, Ada\n")
    assert len(report.leads) == 1
    assert report.errors[0].row == 3 and "unquoted comma" in report.errors[0].message


@pytest.mark.parametrize(("text", "expected"), [
    ("", "empty"), ("name,email\nAda,a@example.com\n", "no phone column"),
])
def test_a_file_without_leads_is_refused_as_a_whole(text, expected):
    with pytest.raises(LeadFileError, match=expected):
        parse_leads_csv(text)


def test_dial_order_puts_vips_and_likely_converters_first():
    report = parse_leads_csv(SAMPLE.read_text())
    tiers = ["vip", "gold", "silver"]
    scores = {lead.id: priority_score(lead, tiers) for lead in report.leads}
    order = sorted(scores, key=scores.get)
    assert set(order[:2]) == {"C1003", "C1006"}  # the two VIPs
    assert set(order[2:5]) == {"C1001", "C1005", "C1015"}  # gold
    lead = report.leads[0]
    assert priority_score(lead, tiers, conversion=0.9) < priority_score(lead, tiers, conversion=0.1)
