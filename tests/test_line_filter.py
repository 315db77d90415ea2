"""RefinedWeb line-wise corrections (refinedweb.stages.line_filter) with the shipped settings.

Each rule is shown on realistic page furniture around a real-looking news story; every threshold gets a pair
of cases exactly at it (kept) and just beyond it (removed / dropped), with the measured value asserted.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import replace

import pytest

from refinedweb.config import load_config
from refinedweb.errors import UserError
from refinedweb.stages import line_filter as lf
from refinedweb.stages.line_filter import LineFilter, LineFilterConfig, correct_lines, uppercase_fraction
from refinedweb.stages.quality import QualityConfig, check_quality
from refinedweb.stages.repetition import RepetitionConfig, check_repetition

CONFIG = load_config()
CFG = CONFIG["line_filter"]
LC = LineFilterConfig.from_config(CFG)
FILTER = LineFilter(LC)

STORY = """
The island's only car ferry returned to service on Monday after a six-week refit, ending a period of disruption that forced residents to rely on a smaller passenger boat and left several shops struggling to restock shelves.
The vessel, which carries up to forty vehicles and three hundred passengers, had been withdrawn in early March so that engineers could replace a worn propeller shaft and upgrade its fire detection system. The operator originally said the work would take three weeks, but the repair yard discovered corrosion in the steering gear compartment that required additional steel to be fabricated on the mainland.
During the closure, a chartered catamaran ran four crossings a day for foot passengers, while freight was moved by a landing craft that could take only two lorries at a time. Hauliers said the arrangement doubled their journey times, and the island's largest supermarket put up notices apologising for empty fridges on several occasions.
"We managed, because people here always manage," said the owner of a hardware store near the harbour, who spent one weekend driving a borrowed van to meet the landing craft at dawn. "But it showed how fragile everything is. One boat breaks down and the whole place feels it within days."
The local council has repeatedly asked the regional transport authority to commission a second vessel that could cover refits and unexpected breakdowns. A feasibility study completed two years ago estimated that a modern hybrid ferry of a similar size would cost around twenty-eight million pounds, and recommended that it be built alongside upgrades to the slipways at both ends of the route.
Officials at the transport authority said this week that funding for a relief vessel had not been ruled out, but that any decision would depend on a wider review of ferry services due to report in the autumn. They pointed out that the fleet serving the region's islands is among the oldest in Europe, with an average age of more than twenty-five years, and that several routes face similar pressures.
Tourism businesses are anxious about the timing of future repairs. Visitor numbers on the island have grown steadily since the pandemic, helped by a long-distance walking trail that opened three years ago and a distillery whose tours are often booked out weeks in advance. Guesthouse owners said some cancellations were inevitable once news of the refit spread, although most visitors simply switched their bookings to later in the season.
The refit did bring some improvements that passengers will notice. The lounge has new seating and charging points, the ramp has been widened to make boarding easier for wheelchair users, and a revised timetable adds an evening sailing on Fridays during the summer months. The operator has also promised to publish live updates about delays on its website rather than relying on social media posts.
Not everyone is convinced the problems are over. Members of the island's community council noted that the ferry has now been out of service, for planned or unplanned reasons, on more than ninety days over the past two years. They want the operator to publish a maintenance schedule so that residents and businesses can plan around it, and they have asked for compensation for hauliers who incurred extra costs.
For now, the mood at the harbour is one of relief. On Monday morning a small queue of cars, tractors and delivery vans waited at the slipway as the ferry rounded the headland, and several people applauded when the bow door opened. A retired fisherman who has watched the crossings for more than half a century said he had seen many boats come and go. "This one is not the prettiest," he said, "but today it looks beautiful."
""".strip()


def action(line: str) -> str | None:
    return FILTER.classify(line)[0]


def prose(words: int) -> str:
    """The first `words` words of the story, in its own paragraphs (the last one cut short)."""
    out, left = [], words
    for paragraph in STORY.split("\n"):
        tokens = paragraph.split()
        out.append(" ".join(tokens[:left]))
        left -= len(tokens[:left])
        if not left:
            return "\n".join(out)
    raise AssertionError("story too short")


# --------------------------------------------------------------------------------------------------
# the shipped config and normal text


def test_shipped_settings_are_refinedwebs():
    assert LC.max_uppercase_fraction == 0.5
    assert LC.remove_numeric_lines and LC.remove_counter_lines and LC.remove_single_word_lines
    assert LC.short_line_max_words == 10
    assert LC.max_removed_words_fraction == 0.05
    assert "likes" in LC.counter_words["*"] and "read more" in LC.end_patterns["*"] and "sign in" in LC.start_patterns["*"]
    europe = {"de", "es", "fr", "it", "pt", "pl", "nl", "ro", "cs", "sv"}
    for kind in (LC.counter_words, LC.start_patterns, LC.end_patterns, LC.anywhere_patterns):
        assert set(kind) == europe | {"*"} and all(kind[lang] for lang in europe)


GERMAN_PAGE = """Der Ausschuss hat den neuen Haushalt am Dienstag nach einer langen Debatte gebilligt und beschlossen.
Die Mittel für Schulen und Straßen steigen im kommenden Jahr deutlich, während die Verwaltung sparen muss.
Die Opposition kritisierte die Pläne als unausgewogen und kündigte an, im Frühjahr eigene Vorschläge zu machen.
Der Bürgermeister zeigte sich dennoch zufrieden mit dem Ergebnis der Beratungen in der Nacht zum Mittwoch.
Auch die Vereine der Stadt erhalten mehr Geld für ihre Arbeit mit Kindern und Jugendlichen in den Stadtteilen.
Die Kämmerin rechnet für das laufende Jahr mit einem kleinen Überschuss, der in die Rücklagen fließen soll.
Im Herbst will der Rat über die Gebühren für Wasser und Abfall beraten, die seit fünf Jahren gleich geblieben sind.
Bürgerinnen und Bürger können ihre Fragen bis Ende des Monats schriftlich bei der Verwaltung einreichen.
Die nächste Sitzung des Ausschusses ist für den zweiten Dienstag im kommenden Monat geplant worden.
Beobachter erwarten dann eine lange Debatte über den Ausbau der Radwege entlang des Flusses."""


def test_each_language_gets_its_own_counters_and_patterns_plus_the_english_ones():
    body = GERMAN_PAGE + "\n" + GERMAN_PAGE                  # 330 words: the 13 tokens removed stay under 5%
    page = ("» Anmelden | Registrieren\n" + body + "\n12 Kommentare\nWeiterlesen »\nShare this\n"
            "Alle Rechte vorbehalten © 2024 Stadtzeitung")
    out, reason, removed = correct_lines(page, LC, "de")
    assert (out, reason, removed) == (body + "\n© 2024 Stadtzeitung", None, 13)
    assert correct_lines(page, LC, "fr")[0].count("\n") > out.count("\n")            # French rules: German kept
    assert correct_lines(GERMAN_PAGE, LC, "de") == (GERMAN_PAGE, None, 0)             # prose is left alone
    french = "Le conseil a voté le budget mardi soir après un long débat entre les groupes de la majorité.\n"
    assert correct_lines(french * 12 + "Lire la suite »\n3 commentaires", LC, "fr")[0] == (french * 12).strip()
    fi = correct_lines(french * 12 + "Lire la suite »\n3 likes", LC, "fi")[0]          # a language without lists: "*"
    assert fi.endswith("Lire la suite »") and "3 likes" not in fi


def test_well_written_article_is_unchanged():
    for text in (STORY, STORY.replace("\n", "\n\n"), STORY + "\n"):
        out, reason, removed = correct_lines(text, LC)
        assert (out, reason, removed) == (text, None, 0)
        assert out is text


def test_well_written_article_passes_all_three_filters():
    repetition = RepetitionConfig.from_config(CONFIG["repetition"])
    quality = QualityConfig.from_config(CONFIG["quality"])
    page = STORY.replace("\n", "\n\n")
    assert check_repetition(page, repetition) is None
    assert check_quality(page, quality) is None
    assert correct_lines(page, LC) == (page, None, 0)


# --------------------------------------------------------------------------------------------------
# upper case

AT_HALF = "SAILINGS CANCELLED for the next two days"                        # 17 upper-case of 34 letters
BEYOND_HALF = "SAILINGS CANCELLED due to strong winds"                      # 17 of 33
LONG_AT_HALF = ("ALL NORTH ROUTE SAILINGS CANCELLED UNTIL FURTHER NOTICE while engineers repair the steering gear "
                "and the old ramp")                                          # 48 of 96, 17 words
LONG_BEYOND_HALF = LONG_AT_HALF.replace("the old ramp", "the ramp")         # 48 of 93


@pytest.mark.parametrize("at, beyond, above", [(AT_HALF, BEYOND_HALF, 17 / 33),
                                               (LONG_AT_HALF, LONG_BEYOND_HALF, 48 / 93)])
def test_uppercase_fraction_at_threshold_and_beyond(at, beyond, above):
    assert uppercase_fraction(at) == 0.5
    assert uppercase_fraction(beyond) == above
    body = prose(400)  # long enough that losing the line stays under 5% of the words
    out, reason, removed = correct_lines(f"{at}\n{body}", LC)
    assert (out, reason, removed) == (f"{at}\n{body}", None, 0)
    out, reason, removed = correct_lines(f"{beyond}\n{body}", LC)
    assert (out, reason, removed) == (body, None, len(beyond.split()))
    assert action(at) is None and action(beyond) == "uppercase"


def test_uppercase_needs_letters():
    assert uppercase_fraction("2 / 14") is None
    assert uppercase_fraction("Ferry") == 0.2
    assert action("NASA and ESA sign a new lunar agreement") is None       # acronyms in a normal line
    assert action("HOME | NEWS | SPORT | WEATHER") == "uppercase"
    assert action("Ünïcödé ÜBER ALLES") == "uppercase"


# --------------------------------------------------------------------------------------------------
# numeric, counter and single-word lines


@pytest.mark.parametrize("line", ["14 / 03 / 2024", "+44 (0)1234 567890", "© 2024", "1 2 3 4 5 6 7 8 9 10 11 12",
                                  "£1,299.00 – £1,499.00"])
def test_numeric_lines_are_removed(line):
    assert action(line) == "numeric"
    assert FILTER.classify(line) == ("numeric", "")


@pytest.mark.parametrize("line", ["12", "3.5", "2023-01-02"])
def test_one_number_alone_is_removed(line):
    assert action(line) == "single_word"  # one word: the single-word rule gets it first


@pytest.mark.parametrize("line", ["Page 2 of 10", "Route 66", "3 ferries, 2 routes", "1st March 2024"])
def test_lines_with_letters_are_not_numeric(line):
    assert action(line) is None


@pytest.mark.parametrize("line", ["12 likes", "1.2k shares", "3,400 views", "Likes: 12", "1 comment", "2.5M Views",
                                  "(12 comments)", "12 likes · 3 comments · 1 share", "Followers 1,024"])
def test_counter_lines_are_removed(line):
    assert action(line) == "counter"


@pytest.mark.parametrize("line", ["12 people liked the idea", "Views from 3 hilltops", "12 likes and counting",
                                  "Comments are closed 4 now"])
def test_sentences_with_counter_words_are_kept(line):
    assert action(line) is None


def test_single_word_lines_are_removed():
    for line in ["Advertisement", "  Menu  ", "Weather", "—"]:
        assert action(line) == "single_word"
    assert action("Related stories") is None


def test_rules_can_be_switched_off():
    lenient = LineFilter(replace(LC, remove_numeric_lines=False, remove_counter_lines=False,
                                 remove_single_word_lines=False, max_uppercase_fraction=None))
    for line in ["© 2024", "12 likes", "Menu", BEYOND_HALF]:
        assert lenient.classify(line) == (None, line)


# --------------------------------------------------------------------------------------------------
# boilerplate patterns in short lines


@pytest.mark.parametrize("line, new", [
    ("Sign in to comment", "to comment"),                                     # start
    ("» Sign up (it's free)", "(it's free)"),
    ("Posted by Maria Okonkwo on the harbour blog", "Maria Okonkwo on the harbour blog"),
    ("Filed under: Transport, Islands", "Transport, Islands"),
    ("Share this: Facebook Twitter", "Facebook Twitter"),
    ("The ferry is back. Read more »", "The ferry is back."),                 # end
    ("Timetable changes for the summer [...]", "Timetable changes for the summer"),
    ("Harbour works to start in May | Continue reading", "Harbour works to start in May"),
    ("© 2024 Island Ferries Ltd. All rights reserved.", "© 2024 Island Ferries Ltd."),  # anywhere
    ("Island Ferries newsletter and timetable updates", "Island Ferries and timetable updates"),
])
def test_patterns_are_cut_out_of_short_lines(line, new):
    assert FILTER.classify(line) == ("pattern", new)


@pytest.mark.parametrize("line", ["Sign in", "Read more…", "Privacy Policy | Terms of Use | Cookie Policy", "Login",
                                  "Continue reading", "(more…)", "Back to top ↑", "3 items in cart",
                                  "Posted by admin", "Posted on 2024-03-18", "Share this"])
def test_lines_that_are_only_boilerplate_go(line):
    assert FILTER.classify(line)[1] == ""


@pytest.mark.parametrize("line", ["Signing the petition took ten minutes", "Registered users can reply",
                                  "A cookie jar sat on the counter", "She logged in from the ferry",
                                  "Tweets about the refit"])
def test_patterns_match_whole_words_at_the_right_place(line):
    assert action(line) is None


def test_short_line_max_words_at_threshold_and_beyond():
    ten = "Posted by Maria Okonkwo on the harbour blog this morning"
    eleven = "Posted by Maria Okonkwo on the harbour blog early this morning"
    assert (len(ten.split()), len(eleven.split())) == (10, 11)
    assert FILTER.classify(ten) == ("pattern", "Maria Okonkwo on the harbour blog this morning")
    assert FILTER.classify(eleven) == (None, eleven)
    body = prose(200)
    assert correct_lines(f"{ten}\n{body}", LC) == (f"Maria Okonkwo on the harbour blog this morning\n{body}", None, 2)
    assert correct_lines(f"{eleven}\n{body}", LC) == (f"{eleven}\n{body}", None, 0)


# --------------------------------------------------------------------------------------------------
# removed words and the document drop

FURNITURE = {  # line -> words it loses
    "SHARE THIS STORY": 3,                                   # upper case
    "Posted by admin": 3,                                    # pattern, then a single word is left
    "Advertisement": 1,                                      # single word (and a start pattern)
    "12 likes": 2,                                           # counter
    "Sign in to comment": 2,                                 # pattern at the start
    "Read more": 2,                                          # pattern is the whole line
    "© 2024 Island Ferries Ltd. All rights reserved.": 3,    # pattern anywhere
    "2 / 14": 3,                                             # numeric
    "Tags: ferry, island, transport": 1,                     # pattern at the start
}
HEADLINE = "Island ferry back in service after six-week refit"


def page(extra: str = "") -> tuple[str, str]:
    """(a 400-word page: story plus furniture, what the line filter should make of it)."""
    furniture = sum(len(line.split()) for line in FURNITURE) + len(HEADLINE.split()) + len(extra.split())
    body = prose(400 - furniture + len(extra.split())).split("\n")
    lines = ["SHARE THIS STORY", HEADLINE, "Posted by admin", *body[:3], "Advertisement", *body[3:]]
    if extra:
        lines.insert(4, extra)
    lines += ["12 likes", "Sign in to comment", "Read more", "© 2024 Island Ferries Ltd. All rights reserved.",
              "2 / 14", "Tags: ferry, island, transport"]
    text = "\n\n".join(lines)
    expected = "\n\n".join([HEADLINE, *body, "to comment", "© 2024 Island Ferries Ltd.", "ferry, island, transport"])
    return text, expected


def test_max_removed_words_fraction_at_threshold_and_beyond():
    text, expected = page()
    assert len(text.split()) == 400 and sum(FURNITURE.values()) == 20
    assert correct_lines(text, LC) == (expected, None, 20)                    # 20 / 400 = 0.05: kept
    text, _ = page(extra="Menu")
    assert len(text.split()) == 401
    assert correct_lines(text, LC) == (text, "too_many_lines_removed", 21)   # 21 / 401 > 0.05: dropped


def test_removed_fraction_threshold_can_be_switched_off():
    text, _ = page(extra="Menu")
    out, reason, removed = correct_lines(text, replace(LC, max_removed_words_fraction=None))
    assert reason is None and removed == 21 and "Menu" not in out


def test_blank_lines_stay_single_where_lines_were_removed():
    a, b = "The ferry returned on Monday.", "Hauliers welcomed the news."
    assert correct_lines(f"MENU BAR\n\n{a}\n\nADVERTISEMENT HERE\n\n{b}\n\nShare this", replace(
        LC, max_removed_words_fraction=None))[0] == f"{a}\n\n{b}"
    assert correct_lines(f"{a}\n12 likes\n{b}\n\n", replace(LC, max_removed_words_fraction=None))[0] == f"{a}\n{b}\n\n"
    assert correct_lines(f"\n\n{a}\n\n\n{b}", LC) == (f"\n\n{a}\n\n\n{b}", None, 0)  # untouched text is untouched


def test_empty_documents():
    assert correct_lines("", LC) == ("", None, 0)
    assert correct_lines("\n \n", LC) == ("\n \n", None, 0)
    assert correct_lines("Advertisement", LC) == ("Advertisement", "too_many_lines_removed", 1)


# --------------------------------------------------------------------------------------------------
# internals that the speed depends on


def test_vectorised_line_counts_match_python():
    rng = random.Random(5)
    pool = STORY.split() + ["ÜBER", "straße", "ǅemal", "İstanbul", "東京", "١٢٣", "²", "🐝", "½"]
    pool += ["\u00a0", "\t", "\u2028"]
    for _ in range(200):
        separators = [" ", " ", " ", "\n", "\n\n", "  "]
        text = "".join(rng.choice(pool) + rng.choice(separators) for _ in range(rng.randint(0, 80)))
        expected = [lf._counts(line) for line in text.split("\n")]
        assert list(zip(*lf._line_counts(text))) == expected
    # a line longer than the 16-bit packed counters hold takes the slow path, with the same result
    text = f"{STORY}\n{'Ferry ' * 14000}\n\nLAST LINE 2"
    assert list(zip(*lf._line_counts(text))) == [lf._counts(line) for line in text.split("\n")]


def test_correct_lines_agrees_with_classify_line_by_line():
    lenient = replace(LC, max_removed_words_fraction=None)
    lines = [HEADLINE, *prose(120).split("\n"), *FURNITURE, AT_HALF, BEYOND_HALF, LONG_AT_HALF, LONG_BEYOND_HALF,
             "© 2024", "1.2k shares", "Page 2 of 10"]
    rng = random.Random(3)
    for _ in range(50):
        rng.shuffle(lines)
        out, reason, removed = correct_lines("\n".join(lines), lenient)
        results = [LineFilter(lenient).classify(line) for line in lines]
        assert out == "\n".join(new for _, new in results if new)
        assert removed == sum(len(line.split()) - len(new.split()) for line, (_, new) in zip(lines, results))


# --------------------------------------------------------------------------------------------------
# config


def test_config_is_hashable_and_picklable():
    again = pickle.loads(pickle.dumps(LC))
    assert again == LC and hash(again) == hash(LC)
    text, expected = page()
    assert correct_lines(text, again) == (expected, None, 20)


@pytest.mark.parametrize("key, value", [
    ("max_uppercase_fraction", 2),
    ("max_removed_words_fraction", "some"),
    ("short_line_max_words", "ten"),
    ("start_patterns", "sign in"),
])
def test_from_config_rejects_bad_values(key, value):
    with pytest.raises(UserError):
        LineFilterConfig.from_config(dict(CFG, **{key: value}))
