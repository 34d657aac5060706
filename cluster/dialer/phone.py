"""E.164 normalisation and a time zone guess from a phone number.

Written here rather than pulling in libphonenumber: the dialer needs only a canonical
`+<digits>` form (so de-duplication and the do-not-call sets compare like with like) and a
best-effort local time zone for the calling window. The rules are deliberately simple:

* ``+…`` or an international prefix (``00``, ``011``) means the digits carry their own
  country code; anything else is national and gets the campaign's default country.
* North America (``+1``) must be ``NPA NXX XXXX`` with ``N`` in 2-9; elsewhere the
  national significant number must be 6-13 digits and the total at most 15 (E.164).
* The time zone comes from a *small documented table*: NANP area codes of the larger
  US/Canadian cities (see `NANP_TIMEZONES`) and single-zone countries (`COUNTRIES`). An
  area code or a multi-zone country not listed gives ``None``; the lead import then uses
  the campaign's default zone and says so. A ``timezone`` column in the CSV always wins.

The 555-0100..555-0199 exchange range is reserved for fiction; sample data uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "COUNTRIES",
    "NANP_TIMEZONES",
    "Country",
    "PhoneNumberError",
    "guess_timezone",
    "normalise_e164",
    "valid_timezone",
]


class PhoneNumberError(ValueError):
    """A phone number that cannot be turned into E.164; the message says why, without
    echoing the number (numbers stay out of logs)."""


@dataclass(frozen=True)
class Country:
    """What the normaliser knows about one calling code."""

    iso: str
    calling_code: str
    trunk_prefix: str = "0"  # national prefix dropped when a national number is given
    timezone: str | None = None  # None = several zones (or NANP: decided per area code)


# ITU calling codes are prefix-free, so a number's code is the one listed prefix it has.
COUNTRIES: dict[str, Country] = {c.iso: c for c in (
    Country("US", "1", "1"), Country("CA", "1", "1"),
    Country("GB", "44", "0", "Europe/London"), Country("IE", "353", "0", "Europe/Dublin"),
    Country("FR", "33", "0", "Europe/Paris"), Country("DE", "49", "0", "Europe/Berlin"),
    Country("ES", "34", "", "Europe/Madrid"), Country("IT", "39", "", "Europe/Rome"),
    Country("PT", "351", "", "Europe/Lisbon"), Country("NL", "31", "0", "Europe/Amsterdam"),
    Country("BE", "32", "0", "Europe/Brussels"), Country("CH", "41", "0", "Europe/Zurich"),
    Country("AT", "43", "0", "Europe/Vienna"), Country("DK", "45", "", "Europe/Copenhagen"),
    Country("SE", "46", "0", "Europe/Stockholm"), Country("NO", "47", "", "Europe/Oslo"),
    Country("FI", "358", "0", "Europe/Helsinki"), Country("PL", "48", "", "Europe/Warsaw"),
    Country("GR", "30", "", "Europe/Athens"), Country("IL", "972", "0", "Asia/Jerusalem"),
    Country("AE", "971", "0", "Asia/Dubai"), Country("IN", "91", "0", "Asia/Kolkata"),
    Country("SG", "65", "", "Asia/Singapore"), Country("HK", "852", "", "Asia/Hong_Kong"),
    Country("JP", "81", "0", "Asia/Tokyo"), Country("KR", "82", "0", "Asia/Seoul"),
    Country("NZ", "64", "0", "Pacific/Auckland"), Country("ZA", "27", "0", "Africa/Johannesburg"),
    Country("AU", "61", "0"), Country("MX", "52", ""), Country("BR", "55", "0"),
)}
_BY_CODE: dict[str, Country] = {}
for _country in COUNTRIES.values():
    _BY_CODE.setdefault(_country.calling_code, _country)

_NANP_ZONES = {
    "America/New_York": (
        "201 202 203 207 212 215 216 234 239 240 248 267 301 302 304 305 313 315 321 330 "
        "336 347 352 386 401 404 407 410 412 413 434 440 443 470 478 484 508 513 516 517 "
        "518 540 551 561 570 585 586 603 607 609 610 614 617 631 646 678 703 704 706 716 "
        "717 718 724 727 732 734 754 757 770 772 774 781 786 802 803 804 813 814 828 843 "
        "845 848 856 860 862 864 904 908 910 914 917 919 929 937 941 954 973 978 980 984"
    ),
    "America/Chicago": (
        "205 210 214 217 218 224 225 251 254 256 262 281 309 312 314 316 318 319 320 334 "
        "337 361 402 405 409 414 417 430 469 479 501 504 507 512 515 563 573 601 608 612 "
        "615 618 630 636 641 651 662 682 708 713 715 737 763 773 779 785 806 815 816 817 "
        "830 832 847 870 872 901 903 913 918 920 931 936 940 952 956 972 979 985"
    ),
    "America/Denver": "208 303 307 385 406 435 505 575 719 720 801 915 970",
    "America/Phoenix": "480 520 602 623 928",
    "America/Los_Angeles": (
        "206 209 213 253 310 323 360 408 415 424 425 503 509 510 530 541 559 562 619 626 "
        "650 657 661 702 707 714 725 747 760 775 805 818 831 858 909 916 925 949 951 971"
    ),
    "America/Anchorage": "907",
    "Pacific/Honolulu": "808",
    "America/Toronto": "226 289 343 416 418 437 438 450 514 519 581 613 647 705 819 905",
    "America/Vancouver": "236 250 604 778",
    "America/Edmonton": "403 587 780 825",
    "America/Winnipeg": "204 431",
    "America/Regina": "306 639",
    "America/Halifax": "782 902",
    "America/Moncton": "506",
    "America/St_Johns": "709",
}
#: NANP area code -> IANA zone, for the area codes of the larger US/Canadian cities.
NANP_TIMEZONES: dict[str, str] = {
    code: zone for zone, codes in _NANP_ZONES.items() for code in codes.split()
}

_STRIP = re.compile(r"[\s().\-/]")
# ASCII digits only ("\d" and str.isdigit() take other scripts' digits and superscripts),
# matched whole (fullmatch: "$" would allow a trailing newline)
_DIGITS = re.compile(r"[0-9]+")
_NANP = re.compile(r"[2-9][0-9]{2}[2-9][0-9]{6}")
# IANA zone names: letters, digits, '_', '+', '-' in '/'-separated parts, at most 64 chars
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")


def normalise_e164(raw: str, default_country: str = "US") -> str:
    """`raw` as ``+<country code><number>``; raises PhoneNumberError when it cannot be.

    `default_country` (ISO code from `COUNTRIES`) applies to numbers written without a
    country code. Extensions, letters and lengths E.164 cannot hold are refused.
    """
    text = _STRIP.sub("", raw.strip())
    if not text:
        raise PhoneNumberError("empty phone number")
    if re.search(r"(?i)(ext|x|#|;)", text):
        raise PhoneNumberError("phone number has an extension; give the main number only")
    if text.startswith("+"):
        digits = text[1:]
        international = True
    elif text.startswith("011"):
        digits, international = text[3:], True
    elif text.startswith("00"):
        digits, international = text[2:], True
    else:
        digits, international = text, False
    if not _DIGITS.fullmatch(digits):
        raise PhoneNumberError("phone number has characters other than digits 0-9")
    if international:
        country = _country_of(digits)
        if country is None:
            return _generic(digits)
        national = digits[len(country.calling_code):]
    else:
        country = COUNTRIES.get(default_country.upper())
        if country is None:
            raise PhoneNumberError(f"unknown default country {default_country[:20]!r}; "
                                   f"known: {', '.join(sorted(COUNTRIES))}")
        national = digits
        if country.calling_code == "1" and len(national) == 11 and national.startswith("1"):
            national = national[1:]
        elif country.trunk_prefix and country.calling_code != "1" and national.startswith(
                country.trunk_prefix):
            national = national[len(country.trunk_prefix):]
    if country.calling_code == "1":
        if not _NANP.fullmatch(national):
            raise PhoneNumberError("North American number must be 10 digits: area code and "
                                   "exchange each starting with 2-9")
    elif not 6 <= len(national) <= 13 or len(country.calling_code) + len(national) > 15:
        raise PhoneNumberError(f"national number of {len(national)} digits is not a valid "
                               f"length for country code +{country.calling_code}")
    return f"+{country.calling_code}{national}"


def guess_timezone(e164: str) -> str | None:
    """The IANA zone the number most likely rings in, or None when the table cannot say."""
    digits = e164.lstrip("+")
    if digits.startswith("1"):
        return NANP_TIMEZONES.get(digits[1:4])
    country = _country_of(digits)
    return country.timezone if country else None


def valid_timezone(name: str) -> bool:
    """Whether `name` is an IANA zone this machine's tz database knows. Never raises:
    a name is looked up as a file, so odd ones ("America", 10,000 characters) would
    otherwise raise IsADirectoryError or "file name too long"."""
    if len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _country_of(digits: str) -> Country | None:
    for size in (1, 2, 3):
        country = _BY_CODE.get(digits[:size])
        if country is not None:
            return country
    return None


def _generic(digits: str) -> str:
    """A number with a calling code we have no rules for: check only E.164's limits."""
    if not 8 <= len(digits) <= 15:
        raise PhoneNumberError(f"international number of {len(digits)} digits; E.164 allows 8-15")
    if digits[0] == "0":
        raise PhoneNumberError("country code cannot start with 0")
    return f"+{digits}"
