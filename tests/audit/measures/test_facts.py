"""The fact and citation checks against hand-written cases, the demo's whole vocabulary, and hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.demo.corpus import grounded_answer
from audit.demo.vocabulary import DEPARTMENTS
from audit.measures.facts import (
    citation_correct,
    cited_document_ids,
    cites_outdated,
    fact_correct,
    normalise_for_facts,
    states_other_value,
    states_value,
    strip_citations,
    typed_values,
    ungrounded_values,
    wrong_value,
)

DEMO_VALUES = (
    "6 years",
    "10 years",
    "Clausebase",
    "EUR 25,000",
    "EUR 500,000",
    "2 business days",
    "10 calendar days",
    "24 hours",
    "14 days",
    "Harbor CI",
    "Atlas Console",
    "1 approving review",
    "2 approving reviews",
    "5 minutes",
    "1 week",
    "3 months",
    "24 months",
)


def _sentence(value: str) -> str:
    return f"The retention period for X is {value}. (source: FIN-003@v2)"


# --- the normaliser, form by form ------------------------------------------------------------------

SAME_VALUE = [
    # (case name, one form, another form that must normalise alike)
    ("case", "HARBOR ci", "Harbor CI"),
    ("whitespace", "Atlas \t\n  Console", "Atlas Console"),
    ("non-breaking space", "EUR\u00a025\u202f000", "EUR 25,000"),
    ("thin space grouping", "25\u2009000 EUR", "EUR 25,000"),
    ("en dash hyphen", "30\u2013day", "30 days"),
    ("curly quotes", "\u201cClausebase\u201d", '"Clausebase"'),
    ("thousands comma", "25,000", "25000"),
    ("thousands space", "25 000", "25000"),
    ("thousands dots, two groups", "1.500.000", "1,500,000"),
    ("decimal comma after dot groups", "25.000,50", "25000.5"),
    ("trailing .00", "25,000.00", "25000"),
    ("trailing decimal zeros", "1.50", "1.5"),
    ("leading zeros", "007", "7"),
    ("number word", "one week", "1 week"),
    ("number word two", "two weeks", "2 weeks"),
    ("teen word", "fourteen days", "14 days"),
    ("tens word", "thirty days", "30 days"),
    ("compound hyphen", "twenty-four hours", "24 hours"),
    ("compound space", "twenty four hours", "24 hours"),
    ("hundred", "one hundred and eighty days", "180 days"),
    ("a hundred", "a hundred days", "100 days"),
    ("a before unit", "a week", "1 week"),
    ("an before unit", "an hour", "1 hour"),
    ("a before qualified unit", "a business day", "1 business day"),
    ("k multiplier", "EUR 25k", "EUR 25,000"),
    ("K multiplier upper", "EUR 25K", "EUR 25,000"),
    ("thousand word after digits", "EUR 25 thousand", "EUR 25,000"),
    ("million decimal", "1.5 million", "1500000"),
    ("m suffix in an amount", "EUR 1.5m", "EUR 1,500,000"),
    ("bn suffix in an amount", "USD 2bn", "USD 2,000,000,000"),
    ("euro sign before", "€25,000", "EUR 25,000"),
    ("code after", "25,000 EUR", "EUR 25,000"),
    ("euros word after", "25000 euros", "EUR 25,000"),
    ("euro word before", "Euro 25,000", "EUR 25,000"),
    ("single dot group in an amount", "EUR 25.000", "EUR 25,000"),
    ("dollar sign", "$5,000", "USD 5,000"),
    ("US$", "US$ 5,000", "USD 5,000"),
    ("US dollars", "5,000 US dollars", "USD 5,000"),
    ("pound sign", "£5,000", "GBP 5,000"),
    ("pounds sterling", "5,000 pounds sterling", "GBP 5,000"),
    ("Swiss francs", "5,000 Swiss francs", "CHF 5,000"),
    ("percent sign spaced", "5 %", "5%"),
    ("percent word", "5 percent", "5%"),
    ("per cent", "5 per cent", "5%"),
    ("singular unit", "1 weeks", "1 week"),
    ("hyphenated day", "30-day", "30 days"),
    ("hyphenated month", "6-month", "6 months"),
    ("unit abbreviation hrs", "24 hrs", "24 hours"),
    ("unit abbreviation attached h", "24h", "24 hours"),
    ("unit abbreviation mins", "5 mins", "5 minutes"),
    ("unit abbreviation yrs", "6 yrs", "6 years"),
    ("working day is business day", "2 working days", "2 business days"),
    ("hyphenated qualified unit", "10-business-day", "10 business days"),
    ("date day month year", "1 March 2026", "2026-03-01"),
    ("date month day year", "March 1, 2026", "2026-03-01"),
    ("date abbreviated month", "1 Mar 2026", "2026-03-01"),
    ("date ordinal of", "1st of March 2026", "2026-03-01"),
    ("date abbreviation with dot", "Mar. 1st, 2026", "2026-03-01"),
    ("date dotted day first", "01.03.2026", "2026-03-01"),
    ("date slashes, day first unambiguous", "15/03/2026", "2026-03-15"),
    ("date slashes, month first unambiguous", "03/15/2026", "2026-03-15"),
    ("date slashes, equal parts", "03/03/2026", "2026-03-03"),
    ("month and year", "March 2026", "2026-03"),
    ("name hyphen", "harbor-ci", "Harbor CI"),
]


@pytest.mark.parametrize(("form", "other"), [case[1:] for case in SAME_VALUE], ids=[case[0] for case in SAME_VALUE])
def test_forms_of_one_value_normalise_alike(form: str, other: str) -> None:
    assert normalise_for_facts(form) == normalise_for_facts(other)
    assert states_value(f"It is {form} in total.", other)


def test_normalised_text_by_hand() -> None:
    assert normalise_for_facts("Above €25,000.00, within two business days (source: FIN-003@v2).") == (
        "above eur 25000 , within 2 business-day ( source : fin 3 @ v 2 ) ."
    )


DIFFERENT = [
    ("ambiguous slashed date stays text", "01/03/2026", "2026-03-01"),
    ("ambiguous slashed date is not month first", "01/03/2026", "2026-01-03"),
    ("impossible date stays text", "31 February 2026", "2026-02-28"),
    ("single dot group outside an amount is a decimal", "25.000", "25000"),
    ("m suffix outside an amount is not million", "5m", "5000000"),
    ("bare pounds may be weight", "5 pounds", "GBP 5"),
    ("decimal comma alone is punctuation", "2,5", "2.5"),
]


@pytest.mark.parametrize(("form", "other"), [case[1:] for case in DIFFERENT], ids=[case[0] for case in DIFFERENT])
def test_forms_that_are_deliberately_not_unified(form: str, other: str) -> None:
    assert normalise_for_facts(form) != normalise_for_facts(other)


# --- stating a value -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", DEMO_VALUES)
def test_every_demo_value_states_itself_in_a_sentence(value: str) -> None:
    assert states_value(_sentence(value), value)
    assert fact_correct(_sentence(value), [value])


STATED = [
    ("amount written with the euro sign", "Agreements above €25,000 need review.", "EUR 25,000"),
    ("amount written after the number", "Above 500,000 EUR, Legal reviews.", "EUR 500,000"),
    ("amount in words", "Above 25 thousand euros, Legal reviews.", "EUR 25,000"),
    ("duration in words", "Give one week of notice.", "1 week"),
    ("duration plural in words", "Give two weeks of notice.", "2 weeks"),
    ("hyphenated duration", "A 14-day deadline applies.", "14 days"),
    ("qualified unit in words", "Legal answers within two business days.", "2 business days"),
    ("name lower case with hyphen", "It runs through harbor-ci.", "Harbor CI"),
    ("name at the sentence start", "Clausebase stores them.", "Clausebase"),
    ("name after a sentence-initial verb", "Ask General Counsel first.", "General Counsel"),
    ("name before a possessive", "The Platform Team's lead approves.", "Platform Team"),
    ("name in a colon list", "Owner: General Counsel.", "General Counsel"),
    ("name followed by I", "Ask Clausebase I think.", "Clausebase"),
    ("name at a line end in a list", "Owner: General Counsel\nReview: every 12 months", "General Counsel"),
    ("name after a capitalised word on the line before", "Contact Legal\nGeneral Counsel approves.", "General Counsel"),
    ("percentage in words", "A fee of 5 per cent applies.", "5%"),
    ("date in another form", "Effective 1 March 2026.", "2026-03-01"),
    ("unit in parentheses", "Kept (6 years) after closure.", "6 years"),
    ("unicode dash in the value", "A 30\u2013day window.", "30 days"),
]


@pytest.mark.parametrize(("answer", "value"), [case[1:] for case in STATED], ids=[case[0] for case in STATED])
def test_value_is_stated(answer: str, value: str) -> None:
    assert states_value(answer, value)


NEAR_MISSES = [
    ("amount with an extra zero", "EUR 25,000", "Above EUR 250,000, Legal reviews."),
    ("amount in another currency", "EUR 5,000", "Above USD 5,000, the CFO approves."),
    ("amount without its currency", "EUR 5,000", "Above 5,000, the CFO approves."),
    ("years with a leading digit", "6 years", "Records are kept for 16 years."),
    ("years versus months", "6 years", "Records are kept for 6 months."),
    ("years with a decimal", "6 years", "Records are kept for 6.5 years."),
    ("weeks with a leading digit", "2 weeks", "Give 12 weeks of notice."),
    ("business days versus plain days", "2 business days", "Legal answers within 2 days."),
    ("business days versus calendar days", "2 business days", "Legal answers within 2 calendar days."),
    ("plain days versus calendar days", "14 days", "Training within 14 calendar days."),
    ("no conversion between units", "2 weeks", "Give 14 days of notice."),
    ("no conversion back", "14 days", "Give 2 weeks of notice."),
    ("reviews with a leading digit", "1 approving review", "Changes need 11 approving reviews."),
    ("plural of a name", "Beacon", "It is carried out through Beacons."),
    ("minutes with a leading digit", "5 minutes", "Acknowledge within 15 minutes."),
    ("hours versus months", "24 hours", "Report within 24 months."),
    ("percentage with a leading digit", "5%", "A fee of 15% applies."),
    ("name inside a longer name, capitalised word before", "Platform Team", "The Data Platform Team owns it."),
    ("name after a role modifier", "General Counsel", "The Deputy General Counsel owns it."),
    ("name after a lower-case role modifier", "General Counsel", "Ask the deputy general counsel."),
    ("name followed by a capitalised word", "Harbor CI", "It runs through Harbor CI Server."),
    ("name across punctuation", "Atlas Console", "It runs through Atlas. Console access is logged."),
    ("value across a sentence end", "6 years", "It is 6. Years later it is gone."),
    ("date on another day", "2026-03-01", "Effective 2 March 2026."),
    ("number word for another number", "1 week", "Give two weeks of notice."),
]


@pytest.mark.parametrize(("value", "answer"), [case[1:] for case in NEAR_MISSES], ids=[case[0] for case in NEAR_MISSES])
def test_near_miss_is_not_stated(value: str, answer: str) -> None:
    assert not states_value(answer, value)


def test_fact_correct_needs_every_value() -> None:
    answer = "Within 2 business days, above EUR 25,000."
    assert fact_correct(answer, ["2 business days", "EUR 25,000"])
    assert not fact_correct(answer, ["2 business days", "EUR 50,000"])


def test_fact_correct_refuses_an_item_without_key_values() -> None:
    with pytest.raises(ValueError, match="at least one key value"):
        fact_correct("Anything.", [])


@pytest.mark.parametrize("value", ["", "   ", "\u00a0"])
def test_an_empty_value_is_refused_not_stated_by_everything(value: str) -> None:
    with pytest.raises(ValueError, match="empty after normalisation"):
        states_value("Anything.", value)


# --- the demo's whole vocabulary: right template, wrong value -------------------------------------


def _vocabulary_cases() -> list[tuple[str, str, str, str]]:
    """(department, fact key, right value, answer) for every subject and value, and for every other
    value of the same kind rendered into the same template."""
    cases = []
    for vocab in DEPARTMENTS:
        for index, subject in enumerate(vocab.subjects):
            title = f"{subject} {vocab.kinds[index % len(vocab.kinds)]}"
            document_id = f"{vocab.code}-{index + 1:03d}@v2"
            for kind in vocab.facts:
                for value in kind.values:
                    for rendered in kind.values:
                        answer = grounded_answer(
                            kind, title=title, subject=subject, value=rendered, document_id=document_id
                        )
                        cases.append((f"{vocab.name}:{kind.key}", value, rendered, answer))
    return cases


def test_every_vocabulary_value_states_itself_and_no_other_value_of_its_kind() -> None:
    cases = _vocabulary_cases()
    wrong = [
        (where, value, rendered)
        for where, value, rendered, answer in cases
        if states_value(answer, value) != (value == rendered)
    ]
    assert len(cases) > 10_000  # every subject x every value pair of every kind
    assert wrong == []


@pytest.mark.parametrize(
    ("answer", "value", "other"),
    [
        ("The policy is reviewed every 12 months.", "6 months", True),  # another quantity, same unit
        ("Records are kept for 15 years.", "6 months", True),  # another time unit is another value too
        ("Responses within 10 business days.", "10 calendar days", True),
        ("Above EUR 250,000 Legal reviews it.", "EUR 500,000", True),
        ("Above USD 500,000 Legal reviews it.", "EUR 500,000", True),  # another currency
        ("It took effect on 2 March 2025.", "1 March 2025", True),
        ("A 5% discount applies.", "15%", True),
        ("The policy is reviewed every 6 months.", "6 months", False),  # the value itself
        ("Reviewed every six months.", "6 months", False),  # the same value in words
        ("It is stored in DocketOne.", "Clausebase", False),  # names are not typed
        ("The Head of People owns it.", "Head of Litigation", False),
        ("(source: LEG-001@v1)", "6 months", False),  # a citation's digits are no quantity
        ("Version 2 applies to 3 teams.", "6 months", False),  # bare numbers are not typed values
        ("", "6 months", False),
    ],
)
def test_states_other_value(answer: str, value: str, other: bool) -> None:
    assert states_other_value(answer, value) is other


def test_wrong_value_is_a_missed_value_with_another_of_its_type_instead() -> None:
    assert wrong_value("Reviewed every 12 months. (source: X-1@v1)", ["6 months"])
    assert not wrong_value("Reviewed every 6 months; records kept 7 years.", ["6 months"])  # right, and more
    assert not wrong_value("Reviewed by the board. (source: X-1@v1)", ["6 months"])  # wrong, not confidently
    assert not wrong_value("Stored in DocketOne.", ["Clausebase"])  # a name cannot be judged this way
    # two key values: the missed one's type decides
    assert wrong_value("Above EUR 500,000, within 3 months.", ["EUR 500,000", "6 months"])
    assert not wrong_value("Above EUR 500,000, by the board.", ["EUR 500,000", "6 months"])
    with pytest.raises(ValueError):
        wrong_value("anything", [])


def test_every_demo_value_of_another_typed_value_is_a_wrong_value() -> None:
    """In every demo answer template, each other value of a typed kind is a wrong value (the rest of
    the template — title, citation — adds none), and the value itself never is."""
    checked = 0
    for where, value, rendered, answer in _vocabulary_cases():
        typed = states_other_value(rendered, value)  # the other value alone, outside the template
        if value == rendered:
            assert not wrong_value(answer, [value]), (where, value)
        elif typed:
            checked += 1
            assert wrong_value(answer, [value]), (where, value, rendered)
    assert checked > 1_000


# --- property checks -------------------------------------------------------------------------------

_FILLER = st.lists(st.sampled_from(["the", "policy", "says", "it", "is", "within", "of", "notice", "so"]), max_size=6)


@given(value=st.sampled_from(DEMO_VALUES), before=_FILLER, after=_FILLER)
def test_a_demo_value_inserted_anywhere_states_itself(value: str, before: list[str], after: list[str]) -> None:
    answer = " ".join([*before, value, *after]) + "."
    assert states_value(answer, value)


_NUMERIC_VALUES = [value for value in DEMO_VALUES if any(ch.isdigit() for ch in value)]


@given(value=st.sampled_from(_NUMERIC_VALUES), number=st.integers(min_value=0, max_value=10**7))
def test_another_number_in_the_value_is_not_stated(value: str, number: int) -> None:
    digits = "".join(ch for ch in value if ch.isdigit() or ch == ",")
    if int(digits.replace(",", "")) == number:
        return
    answer = _sentence(value.replace(digits, f"{number:,}"))
    assert not states_value(answer, value)


# --- citations -------------------------------------------------------------------------------------

CITATIONS = [
    ("the demo's form", "It is 6 years. (source: HR-004@v2)", ["HR-004@v2"]),
    ("period after the parenthesis", "It is 6 years (source: HR-004@v2).", ["HR-004@v2"]),
    ("period inside the parenthesis", "It is 6 years (source: HR-004@v2.)", ["HR-004@v2"]),
    ("several sources", "It is so (sources: HR-004@v2, FIN-003@v1).", ["HR-004@v2", "FIN-003@v1"]),
    ("semicolons and and", "It is so (sources: A-1@v1; B-2@v1 and C-3@v2).", ["A-1@v1", "B-2@v1", "C-3@v2"]),
    ("square brackets and capital label", "It is so [Source: ENG-010@v1].", ["ENG-010@v1"]),
    ("bare square brackets", "It is so [HR-004@v2, LEG-001@v1].", ["HR-004@v2", "LEG-001@v1"]),
    (
        "repeated citation kept once in order",
        "A (source: B-1@v1). C (source: A-1@v1). D (source: b-1@v1).",
        ["B-1@v1", "A-1@v1"],
    ),
    ("id characters", "So (source: policies/hr_handbook.v2:sec-4)", ["policies/hr_handbook.v2:sec-4"]),
    ("footnote mark is no citation", "It is so [1].", []),
    ("remark is no citation", "It is so [see below] (per HR).", []),
    ("no citation", "It is 6 years.", []),
    ("unicode full-width brackets", "It is so \uff08source: HR-004@v2\uff09", ["HR-004@v2"]),
]


@pytest.mark.parametrize(("answer", "expected"), [case[1:] for case in CITATIONS], ids=[case[0] for case in CITATIONS])
def test_cited_document_ids(answer: str, expected: list[str]) -> None:
    assert cited_document_ids(answer) == expected


def test_citation_correct_needs_one_gold_document_and_allows_extra_ones() -> None:
    gold = {"HR-004@v2"}
    assert citation_correct(["HR-004@v2"], gold_document_ids=gold)
    assert citation_correct(["FIN-003@v1", "hr-004@V2"], gold_document_ids=gold)  # extra ones, another case
    assert not citation_correct(["HR-004@v1"], gold_document_ids=gold)  # the outdated version
    assert not citation_correct([], gold_document_ids=gold)


def test_cites_outdated() -> None:
    superseded = {"HR-004@v1"}
    assert cites_outdated(["HR-004@v2", "HR-004@v1"], superseded_ids=superseded)
    assert not cites_outdated(["HR-004@v2"], superseded_ids=superseded)
    assert not cites_outdated([], superseded_ids=superseded)


def test_demo_reference_answers_cite_their_gold_document() -> None:
    vocab = DEPARTMENTS[0]
    kind = vocab.facts[0]
    answer = grounded_answer(
        kind, title="Contract Review Policy", subject="Contract Review", value=kind.values[0], document_id="LEG-001@v2"
    )
    cited = cited_document_ids(answer)
    assert cited == ["LEG-001@v2"]
    assert citation_correct(cited, gold_document_ids=["LEG-001@v2"])
    assert not cites_outdated(cited, superseded_ids=["LEG-001@v1"])


def test_typed_values_are_canonical_whatever_the_form() -> None:
    assert typed_values("EUR 250,000 within 10 business days") == typed_values("€250k within ten business days")
    assert typed_values("Approved on 1 March 2026, 15% of the budget.") == {("2026-03-01",), ("15", "%")}
    assert typed_values("Stored in Clausebase by the Head of Legal.") == set()  # names are not typed values


def test_strip_citations_keeps_brackets_that_are_not_citations() -> None:
    assert strip_citations("Kept 6 years (source: HR-003@v2).").split() == ["Kept", "6", "years", "."]
    assert strip_citations("Kept 6 years (see below) [sources: A, B]").split() == [
        "Kept",
        "6",
        "years",
        "(see",
        "below)",
    ]


def test_ungrounded_values_are_those_no_source_states() -> None:
    answer = "Requests are answered within 10 business days (source: HR-003@v2)."
    assert ungrounded_values(answer, ["We answer within ten business days."]) == []
    assert ungrounded_values(answer, ["We answer within 5 business days."]) == [("10", "business-day")]
    assert ungrounded_values(answer, ["Other text.", "Answers within 10 business days."]) == []  # any source
    assert ungrounded_values(answer, []) == [("10", "business-day")]
    assert ungrounded_values("Stored in SignFlow (source: LEG-008@v1).", ["Stored in Clausebase."]) == []  # names
    # the citation's version number is not a stated value
    assert ungrounded_values("See the policy (source: HR-003@v2).", ["Nothing."]) == []
