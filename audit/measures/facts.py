"""Does an answer state the gold facts and cite the right documents? Pure checks for the loop's yardstick.

ROUGE-L rewards an answer's template; these check its fact: ``states_value`` / ``fact_correct`` look
for each gold key value in the answer after a normaliser that unifies the ways one value is written,
and ``cited_document_ids`` / ``citation_correct`` / ``cites_outdated`` read the answer's citations.

The normaliser (``normalise_for_facts``) turns text into canonical tokens, in this order:

1. Characters: Unicode NFKC (non-breaking and thin spaces become spaces, full-width forms ASCII);
   every Unicode dash and minus becomes "-", curly quotes and primes become ' and ".
2. Dates become one ISO date (a single token) — "2026-03-01", "1 March 2026", "1st of March 2026", "March 1, 2026",
   "1 Mar 2026" → ``2026-03-01``; "March 2026" and "2026-03" → ``2026-03``. Numeric dates with dots
   ("01.03.2026") are day-first, as everywhere dots are used. With slashes the order is a convention
   that varies by country, so "15/03/2026" and "03/15/2026" are read (only one order is a valid date)
   but "01/03/2026" is ambiguous and stays three numbers, matching only itself. Impossible dates stay
   text.
3. Numbers become one canonical decimal token, without separators, leading zeros or trailing zeros
   ("25,000.00" → ``25000``, "1.50" → ``1.5``, "007" → ``7``). Thousands separators are read only
   where unambiguous: commas before groups of exactly three digits ("25,000"); spaces before groups
   of three ("25 000"); dots before two or more groups of three ("1.500.000") or before groups
   followed by a decimal comma ("25.000,50"); a single dot group ("25.000") only in an amount (next to
   a currency), since no amount is written to three decimals while "25.000" elsewhere may be a
   decimal. A comma before anything but three digits is punctuation (decimal commas are read only in
   the dotted form above). Number words become numbers: zero … nineteen, twenty … ninety (also
   "twenty-five", "twenty five"), hundred, thousand, million, billion ("two hundred and fifty",
   "a hundred"); "a"/"an" is 1 before hundred/thousand/million/billion or a time unit ("a week",
   "an hour"). "dozen", "half", ordinals and fractions are not read. Multipliers apply to a number
   before them: "25 thousand", "1.5 million", "25k" (k attached); "m"/"mn"/"bn" attached ("1.5m",
   "2bn") only in an amount, since "5m" elsewhere may be minutes or metres. A hyphen between two digits
   is kept as a range mark ("5-10"); every other hyphen separates words ("30-day" → ``30 day``,
   "harbor-ci" → ``harbor ci``).
4. Currencies become ISO codes and move before their number: EUR / € / euro(s); USD / $ / US$ /
   (US) dollar(s) — "$" and "dollars" are read as US dollars; GBP / £ / pound(s) sterling (a bare
   "pounds" may be weight and is left alone); CHF / Swiss franc(s) / franc(s). So "EUR 25,000",
   "€25,000", "25,000 EUR", "25000 euros" and "EUR 25k" are all ``eur 25000``; the currency is part
   of the amount, so "EUR 5,000" never matches "USD 5,000" nor a bare "5,000".
5. Percentages: "%", "percent", "per cent" and "pct" become ``%`` ("5%" == "5 %" == "5 per cent").
6. Time units become singular canonical units: minute(s)/min/mins, hour(s)/hr/hrs/h, day(s),
   week(s)/wk/wks, month(s)/mth/mths, year(s)/yr/yrs. "business", "working" and "calendar" before a
   unit make a different unit: ``business-day`` ("working day" is the same unit), ``calendar-day``,
   and likewise for the other units. Nothing converts between units: "2 weeks" does not state
   "14 days", and "2 business days" states neither "2 days" nor "2 calendar days". The gold value's
   unit is part of the fact the document states — 10 business days and 14 calendar days are
   different deadlines, and an answer that restates a policy in other units is not quoting it.
7. Everything else is lower-cased; runs of letters are words (not singularised: "Beacons" is not
   "Beacon"), and every other character (. , ; : ( ) ' " / @ …) is a token of its own, so a value
   never matches across punctuation.

``states_value(answer, value)``: the value's canonical tokens occur as a contiguous run of the
answer's. Whole tokens, so "EUR 25,000" is not in "EUR 250,000", "6 years" not in "16 years", "5
minutes" not in "15 minutes". A value made of words only (a name: a system, a team, a role) must also
be the whole name: it does not match when the answer's word just before it is capitalised ("Data
Platform Team" does not state "Platform Team", "Deputy General Counsel" not "General Counsel") —
except a sentence's or line's first word, whose capital says nothing — or is one of the role
modifiers deputy, assistant, acting, interim, associate, vice, senior, junior, former (in any case);
nor when the word just after it on the same line is capitalised (other than "I"). Names match case-insensitively with hyphens
and spaces alike ("Harbor CI" == "harbor-ci"). Known limits: ranges are not understood ("5-10 days"
states "10 days"), nor negation ("not 6 years"); a longer name that opens a sentence hides its first
word ("Data Platform Team owns it." states "Platform Team"), and an all-capitals answer hides every
name's boundaries.

``states_other_value(answer, value)``: for a typed value — a date, an amount (currency + number), a
percentage, a number of a time unit — whether the answer states another value of that type (any
currency, any time unit); names and bare numbers are not typed and never count. ``wrong_value``: the
answer misses a key value and states another value of its type instead (a confidently wrong answer).

Citations (``cited_document_ids``) are read in these forms only: "(source: ID)", "(sources: ID, ID)",
"[source: ID]", "[sources: ID; ID and ID]" (the label in any case, ids separated by commas,
semicolons, "and" or spaces), and a bare "[ID]" / "[ID, ID]" when every item has both a letter and a
digit (so footnote marks like "[1]" and remarks like "[see below]" are not citations). An id is
letters, digits and ``_ - . @ / :``, starting and ending with a letter or digit, so a sentence's
period never becomes part of it. Ids are compared case-insensitively.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Literal

TokenKind = Literal["word", "number", "date", "currency", "unit", "percent", "symbol"]


@dataclass(frozen=True)
class _Token:
    text: str  # canonical form (a raw number keeps its written form until the amount pass reads it)
    kind: TokenKind
    capitalised: bool = False  # the source word began with a capital letter
    attached: bool = False  # no whitespace between this token and the one before
    starts_line: bool = False  # a line break between this token and the one before


# --- 1. characters ---------------------------------------------------------------------------------

_CHARACTER_MAP = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-"),
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u0060\u00b4", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    }
)


def _clean_characters(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_CHARACTER_MAP)


# --- 2. dates ----------------------------------------------------------------------------------------

_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS |= {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_MONTHS["sept"] = 9
_MONTH = "(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_ORDINAL = r"(?:st|nd|rd|th)?"

_DATE = re.compile(
    rf"""
      (?<![\w.])(?P<iso_y>\d{{4}})-(?P<iso_m>\d{{1,2}})(?:-(?P<iso_d>\d{{1,2}}))?(?![\d-])
    | (?<![\w.])(?P<dmy_d>\d{{1,2}}){_ORDINAL}(?:\s+of)?\s+(?P<dmy_m>{_MONTH}),?\s+(?P<dmy_y>\d{{4}})(?!\d)
    | \b(?P<mdy_m>{_MONTH})\s+(?P<mdy_d>\d{{1,2}}){_ORDINAL},?\s+(?P<mdy_y>\d{{4}})(?!\d)
    | (?<![\w.])(?P<num_a>\d{{1,2}})(?P<sep>[/.])(?P<num_b>\d{{1,2}})(?P=sep)(?P<num_y>\d{{4}})(?![\d.])
    | \b(?P<my_m>{_MONTH})\s+(?P<my_y>\d{{4}})(?!\d)
    """,
    re.IGNORECASE | re.VERBOSE,
)


def _month_number(name: str) -> int:
    return _MONTHS[name.lower().rstrip(".")]


def _iso_date(match: re.Match[str]) -> str | None:
    """The ISO form of a date match, or None when it is no valid date or its order is ambiguous."""
    groups = match.groupdict()
    if groups["iso_y"]:
        year, month = int(groups["iso_y"]), int(groups["iso_m"])
        day = int(groups["iso_d"]) if groups["iso_d"] else None
    elif groups["dmy_y"]:
        year, month, day = int(groups["dmy_y"]), _month_number(groups["dmy_m"]), int(groups["dmy_d"])
    elif groups["mdy_y"]:
        year, month, day = int(groups["mdy_y"]), _month_number(groups["mdy_m"]), int(groups["mdy_d"])
    elif groups["num_y"]:
        first, second, year = int(groups["num_a"]), int(groups["num_b"]), int(groups["num_y"])
        if groups["sep"] == ".":
            day, month = first, second
        elif first == second or (first > 12) != (second > 12):
            day, month = (first, second) if first > 12 or first == second else (second, first)
        else:
            return None  # 01/03/2026: 1 March or January 3 depending on the writer's country
    else:
        year, month, day = int(groups["my_y"]), _month_number(groups["my_m"]), None
    try:
        if day is None:
            dt.date(year, month, 1)
            return f"{year:04d}-{month:02d}"
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


# --- scanning ----------------------------------------------------------------------------------------

_NUMBER = re.compile(
    r"""
      \d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]\d)        # 25,000 / 25,000.00
    | \d{1,3}(?:\.\d{3})+,\d+(?!\d)                   # 25.000,50
    | \d{1,3}(?:\.\d{3}){2,}(?![\d.]\d)               # 1.500.000
    | \d{1,3}(?:\ \d{3})+(?:\.\d+)?(?![\d.]\d)        # 25 000
    | \d+(?:\.\d+)?                                    # 25000, 1.5, and 25.000 (read in the amount pass)
    """,
    re.VERBOSE,
)
_WORD = re.compile(r"[^\W\d_]+")


def _scan(text: str) -> list[_Token]:
    text = _clean_characters(text)
    tokens: list[_Token] = []
    position, previous_end = 0, -1
    new_line = False
    while position < len(text):
        character = text[position]
        if character.isspace():
            new_line = new_line or character in "\n\r\u2028\u2029"
            position += 1
            continue
        attached = position == previous_end
        if (match := _DATE.match(text, position)) and (iso := _iso_date(match)):
            tokens.append(_Token(iso, "date", attached=attached))
        elif match := _NUMBER.match(text, position):
            tokens.append(_Token(match.group(), "number", attached=attached))
        elif match := _WORD.match(text, position):
            word = match.group()
            tokens.append(
                _Token(word.lower(), "word", capitalised=word[0].isupper(), attached=attached, starts_line=new_line)
            )
        else:
            match = None
            between_digits = (
                bool(tokens) and tokens[-1].kind == "number" and text[position + 1 : position + 2].isdigit()
            )
            if character != "-" or (attached and between_digits):
                tokens.append(_Token(character, "symbol", attached=attached))
        end = match.end() if match else position + 1
        position = previous_end = end
        new_line = False
    return tokens


# --- 3. number words ---------------------------------------------------------------------------------

_SMALL_NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
_SMALL_NUMBERS = {word: value for value, word in enumerate(_SMALL_NUMBER_WORDS.split())}
_TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety"
_TENS = {word: 10 * (index + 2) for index, word in enumerate(_TENS_WORDS.split())}
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}
_HUNDRED = "hundred"


def _read_number_words(tokens: Sequence[_Token], start: int) -> tuple[int, int] | None:
    """(value, index after it) of the number spelled in words from ``start``, or None if there is none.

    A small grammar: groups of [units | teens | tens [units]] [hundred [and] [tens [units] | units]],
    each optionally followed by a scale (thousand, million, billion); "a"/"an" is 1 before a scale or
    "hundred".
    """

    def word(index: int) -> str | None:
        return tokens[index].text if index < len(tokens) and tokens[index].kind == "word" else None

    def is_number_word(index: int) -> bool:
        return word(index) in _SMALL_NUMBERS or word(index) in _TENS

    total, group, index = 0, 0, start
    state = "start"  # what was read last: start | small | tens | hundred | scale
    while (current := word(index)) is not None:
        next_word = word(index + 1)
        if current in ("a", "an") and state == "start" and (next_word in _SCALES or next_word == _HUNDRED):
            group, state = 1, "small"
        elif current in _TENS and state in ("start", "hundred", "scale"):
            group, state = group + _TENS[current], "tens"
        elif current in _SMALL_NUMBERS and (
            state in ("start", "hundred", "scale") or (state == "tens" and 1 <= _SMALL_NUMBERS[current] <= 9)
        ):
            group, state = group + _SMALL_NUMBERS[current], "small"
        elif current == _HUNDRED and state in ("small", "tens") and group < 100:
            group, state = group * 100, "hundred"
        elif current in _SCALES and state in ("small", "tens", "hundred"):
            total, group, state = total + group * _SCALES[current], 0, "scale"
        elif current == "and" and state in ("hundred", "scale") and is_number_word(index + 1):
            pass
        else:
            break
        index += 1
    if state == "start":
        return None
    return total + group, index


def _numbers_from_words(tokens: list[_Token]) -> list[_Token]:
    result: list[_Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        read = _read_number_words(tokens, index) if token.kind == "word" else None
        if read is None:
            result.append(token)
            index += 1
            continue
        value, index = read
        result.append(_Token(str(value), "number", attached=token.attached))
    return result


# --- 6. time units -----------------------------------------------------------------------------------

_UNITS = {
    **dict.fromkeys(("minute", "minutes", "min", "mins"), "minute"),
    **dict.fromkeys(("hour", "hours", "hr", "hrs", "h"), "hour"),
    **dict.fromkeys(("day", "days"), "day"),
    **dict.fromkeys(("week", "weeks", "wk", "wks"), "week"),
    **dict.fromkeys(("month", "months", "mth", "mths"), "month"),
    **dict.fromkeys(("year", "years", "yr", "yrs"), "year"),
}
_UNIT_QUALIFIERS = {"business": "business", "working": "business", "calendar": "calendar"}


def _units(tokens: list[_Token]) -> list[_Token]:
    def word(index: int) -> str | None:
        return tokens[index].text if 0 <= index < len(tokens) and tokens[index].kind == "word" else None

    result: list[_Token] = []
    index = 0
    while index < len(tokens):
        token, current = tokens[index], word(index)
        if current in _UNIT_QUALIFIERS and word(index + 1) in _UNITS:
            unit = f"{_UNIT_QUALIFIERS[current]}-{_UNITS[word(index + 1) or '']}"
            result.append(_Token(unit, "unit", attached=token.attached))
            index += 2
            continue
        if current in _UNITS:
            result.append(_Token(_UNITS[current], "unit", attached=token.attached))
        elif current in ("a", "an") and (
            word(index + 1) in _UNITS or (word(index + 1) in _UNIT_QUALIFIERS and word(index + 2) in _UNITS)
        ):
            result.append(_Token("1", "number", attached=token.attached))
        else:
            result.append(token)
        index += 1
    return result


# --- 4. currencies and amounts -----------------------------------------------------------------------

_CURRENCY_WORDS = {
    **dict.fromkeys(("eur", "euro", "euros"), "eur"),
    **dict.fromkeys(("usd", "dollar", "dollars"), "usd"),
    **dict.fromkeys(("gbp",), "gbp"),
    **dict.fromkeys(("chf", "franc", "francs"), "chf"),
}
_CURRENCY_SYMBOLS = {"€": "eur", "$": "usd", "£": "gbp"}
# Two-word names whose first word is dropped: "US dollars", "Swiss francs", "pounds sterling".
_CURRENCY_PAIRS = {
    ("us", "dollar"): "usd",
    ("us", "dollars"): "usd",
    ("us", "$"): "usd",
    ("swiss", "franc"): "chf",
    ("swiss", "francs"): "chf",
    ("pound", "sterling"): "gbp",
    ("pounds", "sterling"): "gbp",
}
_AMOUNT_SUFFIXES = {"k": 10**3, "m": 10**6, "mn": 10**6, "bn": 10**9}


def _currencies(tokens: list[_Token]) -> list[_Token]:
    result: list[_Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        pair = (token.text, tokens[index + 1].text) if index + 1 < len(tokens) else None
        if pair in _CURRENCY_PAIRS:
            result.append(_Token(_CURRENCY_PAIRS[pair], "currency", attached=token.attached))
            index += 2
            continue
        if token.kind == "word" and token.text in _CURRENCY_WORDS:
            token = _Token(_CURRENCY_WORDS[token.text], "currency", attached=token.attached)
        elif token.kind == "symbol" and token.text in _CURRENCY_SYMBOLS:
            token = _Token(_CURRENCY_SYMBOLS[token.text], "currency", attached=token.attached)
        result.append(token)
        index += 1
    return result


def _decimal(raw: str, *, in_amount: bool) -> Decimal:
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+,\d+", raw):
        return Decimal(raw.replace(".", "").replace(",", "."))
    if re.fullmatch(r"\d{1,3}(?:\.\d{3}){2,}", raw) or (in_amount and re.fullmatch(r"\d{1,3}\.\d{3}", raw)):
        return Decimal(raw.replace(".", ""))
    return Decimal(raw.replace(",", "").replace(" ", ""))


def _canonical_number(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _amounts(tokens: list[_Token]) -> list[_Token]:
    """Read every raw number (with its multiplier) and put each currency before its number."""
    read: list[_Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.kind != "number":
            read.append(token)
            index += 1
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        after_suffix = tokens[index + 2] if index + 2 < len(tokens) else None
        currency_before = bool(read) and read[-1].kind == "currency"
        suffix = following.text if following and following.kind == "word" and following.attached else None
        in_amount = (
            currency_before
            or (following is not None and following.kind == "currency")
            or (suffix in _AMOUNT_SUFFIXES and after_suffix is not None and after_suffix.kind == "currency")
        )
        try:
            value = _decimal(token.text, in_amount=in_amount)
        except InvalidOperation:  # cannot happen for what _NUMBER matches; keep the text if it does
            read.append(token)
            index += 1
            continue
        index += 1
        if suffix == "k" or (suffix in _AMOUNT_SUFFIXES and in_amount):
            value *= _AMOUNT_SUFFIXES[suffix or ""]
            index += 1
        while index < len(tokens) and tokens[index].kind == "word" and tokens[index].text in (*_SCALES, _HUNDRED):
            value *= _SCALES.get(tokens[index].text, 100)
            index += 1
        read.append(replace(token, text=_canonical_number(value)))

    ordered: list[_Token] = []
    index = 0
    while index < len(read):
        token = read[index]
        following = read[index + 1] if index + 1 < len(read) else None
        currency_before = bool(ordered) and ordered[-1].kind == "currency"
        if token.kind == "number" and following and following.kind == "currency" and not currency_before:
            ordered += [following, token]
            index += 2
            continue
        ordered.append(token)
        index += 1
    return ordered


# --- 5. percentages ----------------------------------------------------------------------------------


def _percentages(tokens: list[_Token]) -> list[_Token]:
    result: list[_Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1].text if index + 1 < len(tokens) else None
        if token.text == "per" and following == "cent":
            result.append(_Token("%", "percent", attached=token.attached))
            index += 2
            continue
        if (token.kind == "symbol" and token.text == "%") or (
            token.kind == "word" and token.text in ("percent", "pct")
        ):
            token = _Token("%", "percent", attached=token.attached)
        result.append(token)
        index += 1
    return result


# --- the normaliser ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)  # fact_correct reads one answer per key value; gold values repeat
def _fact_tokens(text: str) -> tuple[_Token, ...]:
    tokens = _scan(text)
    tokens = _numbers_from_words(tokens)
    tokens = _units(tokens)
    tokens = _currencies(tokens)
    tokens = _amounts(tokens)
    return tuple(_percentages(tokens))


def normalise_for_facts(text: str) -> str:
    """The canonical tokens of ``text``, space-separated (the rules are in the module docstring).

    >>> normalise_for_facts("Above €25,000.00, within two business days (source: FIN-003@v2).")
    'above eur 25000 , within 2 business-day ( source : fin 3 @ v 2 ) .'
    """
    return " ".join(token.text for token in _fact_tokens(text))


# --- stating a value ---------------------------------------------------------------------------------

_ROLE_MODIFIERS = frozenset(
    {"deputy", "assistant", "acting", "interim", "associate", "vice", "senior", "junior", "former"}
)
_SENTENCE_OPENERS = frozenset({".", "!", "?", ":", ";", "(", "[", '"'})


def _extends_name_before(tokens: Sequence[_Token], index: int) -> bool:
    """Whether the word before position ``index`` makes the name there part of a longer name."""
    if index == 0 or tokens[index - 1].kind != "word" or tokens[index].starts_line:
        return False
    before = tokens[index - 1]
    if before.text in _ROLE_MODIFIERS:
        return True
    sentence_initial = index - 1 == 0 or before.starts_line or tokens[index - 2].text in _SENTENCE_OPENERS
    return before.capitalised and not sentence_initial


def _extends_name_after(tokens: Sequence[_Token], index: int) -> bool:
    if index >= len(tokens) or tokens[index].kind != "word" or tokens[index].starts_line:
        return False
    return tokens[index].capitalised and tokens[index].text != "i"


def states_value(answer: str, value: str) -> bool:
    """Whether ``answer`` states ``value``: the value's canonical tokens occur as a contiguous run of the
    answer's (whole tokens), and a name (a value of words only) is not part of a longer name.

    Raises ValueError when ``value`` has no tokens (an empty value would be stated by every answer).
    """
    value_tokens = _fact_tokens(value)
    wanted = [token.text for token in value_tokens]
    if not wanted:
        raise ValueError(f"key value {value!r} is empty after normalisation; give the value the answer must state")
    is_name = all(token.kind == "word" for token in value_tokens)
    tokens = _fact_tokens(answer)
    texts = [token.text for token in tokens]
    size = len(wanted)
    for start in range(len(texts) - size + 1):
        if texts[start : start + size] != wanted:
            continue
        if is_name and (_extends_name_before(tokens, start) or _extends_name_after(tokens, start + size)):
            continue
        return True
    return False


def fact_correct(answer: str, key_values: Sequence[str]) -> bool:
    """True iff ``answer`` states every one of ``key_values`` (``states_value``).

    Raises ValueError for an empty ``key_values``: "states every value of none" would be vacuously
    true, and a gold item without key values cannot be judged on facts — it must be left out, not
    counted as right.
    """
    if not key_values:
        raise ValueError("a gold item needs at least one key value to be judged on facts; it has none")
    return all(states_value(answer, value) for value in key_values)


# --- stating another value ------------------------------------------------------------------------

# The typed runs a value can be, as token kinds: a date, an amount, a percentage, a quantity of a unit.
_TYPED_RUNS: tuple[tuple[TokenKind, ...], ...] = (
    ("date",),
    ("currency", "number"),
    ("number", "percent"),
    ("number", "unit"),
)


def _typed_run(tokens: Sequence[_Token], start: int) -> tuple[TokenKind, ...] | None:
    for kinds in _TYPED_RUNS:
        if tuple(token.kind for token in tokens[start : start + len(kinds)]) == kinds:
            return kinds
    return None


def _value_run(value: str) -> tuple[tuple[TokenKind, ...], tuple[str, ...]] | None:
    """The value's first typed run (its kinds and canonical texts), or None for a value without one."""
    tokens = _fact_tokens(value)
    for start in range(len(tokens)):
        if kinds := _typed_run(tokens, start):
            return kinds, tuple(token.text for token in tokens[start : start + len(kinds)])
    return None


def states_other_value(answer: str, value: str) -> bool:
    """Whether ``answer`` states a value of the same type as ``value`` that is not ``value``: another
    date, another amount (any currency), another percentage, another quantity of a time unit (any
    unit: "12 months" or "15 years" for "6 months").

    Only typed values are judged: a name (a system, a role) or a bare number has no type an answer's
    other words could be told apart by, so it is never "another value" (False). An answer that states
    the value itself and another one besides states both; ``wrong_value`` decides with ``fact_correct``.
    """
    typed = _value_run(value)
    if typed is None:
        return False
    kinds, texts = typed
    tokens = _fact_tokens(answer)
    for start in range(len(tokens) - len(kinds) + 1):
        if _typed_run(tokens, start) == kinds and tuple(t.text for t in tokens[start : start + len(kinds)]) != texts:
            return True
    return False


def wrong_value(answer: str, key_values: Sequence[str]) -> bool:
    """A confidently wrong answer: it does not state every key value (``fact_correct`` is False) and,
    for a key value it misses, states another value of that value's type (``states_other_value``) —
    "reviewed every 12 months" where the document says 6. An answer that states nothing of the kind
    is wrong but not *confidently* wrong. Raises ValueError for empty ``key_values`` as ``fact_correct``."""
    if fact_correct(answer, key_values):
        return False
    return any(states_other_value(answer, value) for value in key_values if not states_value(answer, value))


def typed_values(text: str) -> set[tuple[str, ...]]:
    """Every typed value ``text`` states (a date, an amount, a percentage, a quantity of a unit), each as
    its canonical token texts: "EUR 250,000" and "€250k" give the same value."""
    tokens = _fact_tokens(text)
    found = set()
    for start in range(len(tokens)):
        if kinds := _typed_run(tokens, start):
            found.add(tuple(token.text for token in tokens[start : start + len(kinds)]))
    return found


def ungrounded_values(answer: str, sources: Sequence[str]) -> list[tuple[str, ...]]:
    """The typed values ``answer`` states that none of ``sources`` (its cited documents' texts) states,
    in canonical form, sorted: an answer that says "within 10 business days" citing a document that
    says 5. Names and bare numbers are not judged (``states_other_value``); an answer's citation is
    not part of what it states."""
    stated = typed_values(strip_citations(answer))
    if not stated:
        return []
    grounded: set[tuple[str, ...]] = set()
    for source in sources:
        grounded |= typed_values(source)
    return sorted(stated - grounded)


# --- citations ---------------------------------------------------------------------------------------

_BRACKETED = re.compile(r"[(\[]([^()\[\]]*)[)\]]")
_LABEL = re.compile(r"\s*sources?\s*:(.*)", re.IGNORECASE | re.DOTALL)
_DOCUMENT_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.@/:-]*[A-Za-z0-9])?")
_ITEM_SEPARATOR = re.compile(r"[,;\s]+")


def _items(listing: str) -> list[str]:
    items = [item.strip(".:-/@_") for item in _ITEM_SEPARATOR.split(listing)]
    return [item for item in items if item and item.lower() != "and"]


def strip_citations(answer: str) -> str:
    """``answer`` without its citations ("(source: HR-003@v2)", "[sources: A, B]"): what it states."""
    return _BRACKETED.sub(lambda m: " " if _LABEL.fullmatch(m.group(1)) else m.group(0), answer)


def cited_document_ids(answer: str) -> list[str]:
    """The external document ids ``answer`` cites, in order of first citation, without repeats.

    Forms read (module docstring): "(source: ID)", "(sources: ID, ID)", the same in square brackets,
    and a bare "[ID, …]" whose every item has a letter and a digit.
    """
    cited: list[str] = []
    seen: set[str] = set()
    for bracket in _BRACKETED.finditer(_clean_characters(answer)):
        content = bracket.group(1)
        if labelled := _LABEL.fullmatch(content):
            ids = [item for item in _items(labelled.group(1)) if _DOCUMENT_ID.fullmatch(item)]
        elif bracket.group().startswith("["):
            items = _items(content)
            valid = all(
                _DOCUMENT_ID.fullmatch(item) and re.search(r"[^\W\d_]", item) and re.search(r"\d", item)
                for item in items
            )
            ids = items if items and valid else []
        else:
            ids = []
        for document_id in ids:
            if document_id.casefold() not in seen:
                seen.add(document_id.casefold())
                cited.append(document_id)
    return cited


def citation_correct(cited: Sequence[str], *, gold_document_ids: Collection[str]) -> bool:
    """True iff the answer cites at least one gold document (its current version's external id).

    Citing other documents besides does not make it wrong: assistants cite what they retrieved, and
    citing an outdated version is judged on its own by ``cites_outdated``. An answer that cites
    nothing is not correct.
    """
    gold = {document_id.casefold() for document_id in gold_document_ids}
    return any(document_id.casefold() in gold for document_id in cited)


def cites_outdated(cited: Sequence[str], *, superseded_ids: Collection[str]) -> bool:
    """True iff the answer cites any superseded document version."""
    superseded = {document_id.casefold() for document_id in superseded_ids}
    return any(document_id.casefold() in superseded for document_id in cited)
