"""Gopher quality filters (refinedweb.stages.quality) with the shipped thresholds.

Every threshold gets a pair of realistic texts: one whose measured value is exactly the threshold (kept) and
one just beyond it (removed). The measured value is asserted too, so a change in the word definition
shows up as a failing number rather than a silently shifted boundary.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from refinedweb.config import load_config
from refinedweb.errors import UserError
from refinedweb.stages.quality import REASONS, QualityConfig, check_quality, quality_signals

CFG = load_config()["quality"]
QC = QualityConfig.from_config(CFG)

ARTICLE = """
Baking a good loaf of sourdough at home is less about following a rigid recipe than about learning to read your dough. Flour, water and salt behave differently from one kitchen to the next, and the temperature of the room often matters more than the exact number of minutes printed in a cookbook.
Start with an active starter. A healthy culture should roughly double in size within four to eight hours of feeding and smell pleasantly sour, with a faint aroma of yoghurt or ripe fruit. If it smells of nail varnish or shows a layer of grey liquid on top, it is hungry; feed it twice a day for a few days before you plan to bake.
For a single loaf, mix five hundred grams of strong white flour with about three hundred and fifty grams of lukewarm water and leave it to rest for half an hour. This pause, often called an autolyse, lets the flour absorb the water and makes the dough easier to stretch later. Then add one hundred grams of starter and ten grams of fine sea salt, squeezing the mixture between your fingers until everything is evenly combined.
Over the next two to three hours, perform a series of stretches and folds. Wet your hand, lift one side of the dough, stretch it upwards until you feel resistance and fold it over the middle. Turn the bowl a quarter and repeat until you have worked all the way round. Four or five sets, spaced about thirty minutes apart, are usually enough to build strength without heavy kneading.
After the final set, leave the dough covered until it has grown by roughly half, feels airy and shows a few bubbles along the sides of the container. In a warm kitchen this bulk fermentation may take only three hours; in a cold one it can take seven or more. Resist the temptation to judge by the clock alone.
Tip the dough gently onto a lightly floured surface and shape it into a round by folding the edges towards the centre, then flipping it over and dragging it towards you to tighten the surface. Place it seam side up in a banneton or a bowl lined with a well floured tea towel, cover it and refrigerate overnight. The slow, cold proof develops flavour and makes the loaf easier to score.
Preheat your oven to two hundred and fifty degrees Celsius with a lidded cast iron pot inside for at least forty five minutes. Turn the cold dough out onto a sheet of baking paper, slash the top with a sharp blade at a shallow angle and lower it carefully into the hot pot. Bake with the lid on for twenty minutes to trap steam, then remove the lid, reduce the heat slightly and bake for another twenty to twenty five minutes until the crust is deeply browned.
Let the bread cool on a wire rack for at least an hour before cutting it. The crumb continues to set as it cools, and slicing too early leaves it gummy. If the loaf spreads flat, the dough was probably overproofed or shaped too loosely; if it is dense with a few large holes near the top, it likely needed a longer bulk fermentation.
Keep notes each time you bake, including the room temperature, how long each stage took and how the finished loaf looked. After a handful of bakes, patterns will emerge, and you will find yourself adjusting hydration and timing with confidence rather than guesswork.
""".strip()


def signals(text: str) -> dict[str, float]:
    return quality_signals(text, QC, "en")


def kept(text: str) -> dict[str, float]:
    found = signals(text)
    assert check_quality(text, QC, language="en") is None, found
    return found


def dropped(text: str, reason: str) -> dict[str, float]:
    found = signals(text)
    assert check_quality(text, QC, language="en") == reason, found
    return found


# --------------------------------------------------------------------------------------------------
# the shipped config and normal text


def test_shipped_thresholds_are_gophers():
    assert (QC.min_words, QC.max_words) == (50, 100_000)
    assert (QC.min_mean_word_length, QC.max_mean_word_length) == (3, 10)
    assert QC.max_symbol_word_ratio == 0.1
    assert QC.max_bullet_lines_fraction == 0.9 and QC.max_ellipsis_lines_fraction == 0.3
    assert QC.min_alpha_words_fraction == 0.8
    assert QC.min_stop_words == 2 and QC.stop_words["en"] == {"the", "be", "to", "of", "and", "that", "have", "with"}


def test_well_written_article_is_kept():
    found = kept(ARTICLE)
    assert found["word_count"] == len(ARTICLE.split())  # no punctuation-only tokens in it
    assert 4.0 < found["mean_word_length"] < 5.0
    assert found["hash_word_ratio"] == found["ellipsis_word_ratio"] == 0.0
    assert found["bullet_lines_frac"] == found["ellipsis_lines_frac"] == 0.0
    assert found["alpha_words_frac"] > 0.95
    assert found["stop_words"] == 6       # distinct: the, to, of, and, with, have (not "be", "that")
    assert kept(ARTICLE.replace("\n", "\n\n")) == found  # blank lines change nothing


# --------------------------------------------------------------------------------------------------
# word count

FIFTY_WORDS = ("Preheat the oven to two hundred and twenty degrees. Brush the pastry with beaten egg, sprinkle with "
               "flaky salt and bake for twenty minutes until golden. Leave the finished tart to cool for about ten "
               "minutes — then serve it warm with a spoonful of crème fraîche and a green salad.")


def test_min_words_at_threshold_and_beyond():
    found = kept(FIFTY_WORDS)
    assert found["word_count"] == 50  # 51 tokens: the dash is punctuation, not a word
    assert len(FIFTY_WORDS.split()) == 51
    fewer = FIFTY_WORDS.replace("the finished tart", "the tart")
    assert dropped(fewer, "too_few_words")["word_count"] == 49


def test_max_words_at_threshold_and_beyond():
    words = ARTICLE.split()
    at_limit = " ".join((words * (100_000 // len(words) + 1))[:100_000])
    assert kept(at_limit)["word_count"] == 100_000
    assert dropped(at_limit + " again", "too_many_words")["word_count"] == 100_001


# --------------------------------------------------------------------------------------------------
# mean word length

SHORT_WORDS = ("My cat Tom is a big fat cat. He can sit on the mat all day. When the sun is up he sleeps by the "
               "door, and at six he eats his fish. Then he runs to the yellow basket in the hall and climbs in it. "
               "Tom is not shy at all; he will nap on my bed and let me stroke him.")

LONG_WORDS = ("Close collaboration between pharmaceutical manufacturers, regulatory authorities and university "
              "laboratories advanced the study of antimicrobial resistance mechanisms. Comprehensive epidemiological "
              "surveillance, standardised susceptibility methodologies and globally coordinated stewardship programmes "
              "demonstrated substantial effectiveness. Nevertheless, implementation difficulties, insufficient capital "
              "investment and inconsistent reimbursement arrangements repeatedly undermined sustainability throughout "
              "lower-income healthcare environments. Consequently, policymakers increasingly recommended strengthening "
              "microbiological diagnostics, expanding veterinary antibiotic restrictions and funding development of "
              "alternative therapeutics with the industry.")


def test_min_mean_word_length_at_threshold_and_beyond():
    found = kept(SHORT_WORDS)
    assert (found["word_count"], found["mean_word_length"]) == (64, 3.0)  # 192 characters, punctuation excluded
    found = dropped(SHORT_WORDS.replace("yellow", "green"), "mean_word_length")
    assert found["mean_word_length"] == 191 / 64


def test_max_mean_word_length_at_threshold_and_beyond():
    found = kept(LONG_WORDS)
    assert (found["word_count"], found["mean_word_length"]) == (68, 10.0)
    found = dropped(LONG_WORDS.replace("substantial", "considerable"), "mean_word_length")
    assert found["mean_word_length"] == 681 / 68


# --------------------------------------------------------------------------------------------------
# hash and ellipsis symbols per word

HASHTAGS = ("Sunday morning bake: a crackly sourdough loaf with an open, glossy crumb. Seventy-eight percent "
            "hydration, a long cold proof in the fridge and a hot Dutch oven did the trick. Recipe and timings are "
            "in the comments for anyone wanting to try it this weekend. "
            "#sourdough #homebaking #realbread #breadmaking #bakingday")

ELLIPSES = ("So I finally tried the overnight method... honestly, the difference is huge... The crust was darker "
            "and the crumb more open… My only problem is timing. If I mix at nine, the dough is ready at six... far "
            "too early for me, sadly. Any tips? I tried a cooler spot... and a smaller amount of starter… no luck "
            "so far.")


def test_hash_ratio_at_threshold_and_beyond():
    found = kept(HASHTAGS)
    assert (found["word_count"], found["hash_word_ratio"]) == (50, 0.1)  # 5 hashes, 50 words
    found = dropped(HASHTAGS + " #weekendbake", "symbol_word_ratio")
    assert found["hash_word_ratio"] == 6 / 51


def test_ellipsis_ratio_at_threshold_and_beyond():
    found = kept(ELLIPSES)  # "..." and "…" both count
    assert (found["word_count"], found["ellipsis_word_ratio"]) == (60, 0.1)
    assert found["ellipsis_lines_frac"] == 0.0
    found = dropped(ELLIPSES.replace("for me, sadly.", "for me."), "symbol_word_ratio")
    assert found["ellipsis_word_ratio"] == 6 / 59


# --------------------------------------------------------------------------------------------------
# lines

INGREDIENTS = """Ingredients for one large loaf

- 500 g strong white bread flour
- 350 g lukewarm water
• 100 g active sourdough starter, fed the night before
• 10 g fine sea salt
* a handful of rye flour for dusting the banneton
– rice flour for the worktop
- a little olive oil for the bowl
- sesame or poppy seeds for the crust (optional)
- a lidded cast iron pot at least 24 cm wide"""

FORUM = """Latest from the baking forum
Why does my loaf spread flat in the oven? I followed the recipe exactly, weighed everything twice, and still ended up with a pancake...
Best flour for a beginner? I have been using supermarket bread flour and wonder whether a stoneground one is worth the price.
Starter smells like nail varnish, is it dead? It has been sitting in the fridge for three weeks while I was away…
Show us your weekend bakes! Post a photo of the crumb and tell us what hydration you used.
Rye sourdough keeps collapsing. Every rye loaf I make rises well, then sinks as soon as it goes into the oven and I...
Scoring tips for a neat ear: hold the blade at a shallow angle and cut with one confident stroke.
How long can dough stay in the fridge? Two nights seems to give the best flavour in my kitchen.
Gluten-free sourdough results from a small experiment with buckwheat and brown rice flour.
Forum rules: be kind, stay on topic and credit the recipes you share."""


def test_bullet_lines_at_threshold_and_beyond():
    found = kept(INGREDIENTS)
    assert found["bullet_lines_frac"] == 0.9  # 9 of 10 lines; the blank line does not count
    found = dropped(INGREDIENTS + "\n- a sharp blade or razor for scoring", "bullet_lines")
    assert found["bullet_lines_frac"] == 10 / 11


def test_ellipsis_lines_at_threshold_and_beyond():
    found = kept(FORUM)
    assert found["ellipsis_lines_frac"] == 0.3  # 3 of 10 lines end with "..." or "…"
    more = FORUM + ("\nOven spring disappeared after I switched to a new brand of flour, and now every loaf "
                    "comes out...\n"
                    "Weekly challenge: bake a loaf using at least thirty percent wholemeal flour.\n"
                    "Equipment reviews from members, including bannetons, lames and proofing boxes.")
    found = dropped(more, "ellipsis_lines")
    assert found["ellipsis_lines_frac"] == 4 / 13


def test_line_markers_ignore_surrounding_whitespace():
    text = "\n".join(f"   {line}  \t" for line in INGREDIENTS.split("\n"))
    assert signals(text)["bullet_lines_frac"] == 0.9
    assert signals(FORUM.replace("\n", "  \n\n"))["ellipsis_lines_frac"] == 0.3


# --------------------------------------------------------------------------------------------------
# alphabetic words and stop words

STANDINGS = ("Final standings after round 12 of the county league: Harriers 28 points from 12 games, City Athletic 26, "
             "Rovers 25, Old Boys 21 and Millbrook 19, with the rest of the table adrift. Harriers have won 9 of "
             "their last 10 games, scoring 23, conceding 4, and host City on Saturday 14 March at 3pm, while Rovers "
             "travel to Millbrook.")

KETTLE = ("Stainless steel electric kettle. Capacity: 1.7 litres. Rapid boil in under four minutes, concealed heating "
          "element, removable limescale filter, illuminated water window, automatic shut-off plus boil-dry "
          "protection. Cordless design with a 360-degree swivel base for easy filling. Soft-touch handle, one-touch "
          "lid release, cable storage underneath. Dimensions: 22 x 16 x 25 cm. Weight: 1.1 kg. Includes two-year "
          "manufacturer guarantee. Colour: brushed silver. Suitable for the worktops in small kitchens, student "
          "rooms, offices or caravans.")


def test_alpha_words_at_threshold_and_beyond():
    found = kept(STANDINGS)
    assert (found["word_count"], found["alpha_words_frac"]) == (60, 0.8)  # "3pm" and "360-degree" have letters
    found = dropped(STANDINGS.replace("14 March", "14/3"), "alpha_words")
    assert found["alpha_words_frac"] == 47 / 59


def test_stop_words_at_threshold_and_beyond():
    found = kept(KETTLE)
    assert found["stop_words"] == 2  # "with", "the"
    found = dropped(KETTLE.replace("for the worktops", "for worktops"), "stop_words")
    assert found["stop_words"] == 1


def test_stop_words_are_matched_case_insensitively_without_punctuation():
    text = KETTLE.replace("with", "").replace(" the ", " ")
    assert signals(text)["stop_words"] == 0
    for variant, count in [("The", 1), ("(WITH", 1), ("to,", 1), ("\u201cand\u201d", 1), ("that's", 0), ("theory", 0)]:
        assert signals(f"{text} {variant}")["stop_words"] == count, variant


# --------------------------------------------------------------------------------------------------
# word definition, order, early exit


def test_word_definition():
    found = signals("Hello — world ... (see) end. don't 2023 & 🐝 ✓ x")
    # words: Hello, world, see, end, don't, 2023, x  (—, ..., &, 🐝, ✓ are not words)
    assert found["word_count"] == 7
    assert found["mean_word_length"] == (5 + 5 + 3 + 3 + 5 + 4 + 1) / 7
    assert found["alpha_words_frac"] == 6 / 7
    assert signals("Ein schöner Tag, naïve café: 東京 Ünïcödé")["alpha_words_frac"] == 1.0
    assert signals("")["word_count"] == 0
    assert check_quality("", QC, language="en") == "too_few_words"
    assert check_quality("   \n\n ", QC, language="en") == "too_few_words"


def test_checks_run_in_order_and_early_exit_agrees_with_full_signals():
    texts = [ARTICLE, FIFTY_WORDS, SHORT_WORDS, LONG_WORDS, HASHTAGS, ELLIPSES, INGREDIENTS, FORUM, STANDINGS, KETTLE,
             "# Title\n" * 60, "Click here... " * 30, "1 2 3 4 5 " * 20, "- item\n" * 80, "Supercalifragilistic " * 60]
    for text in texts:
        full: dict[str, float] = {}
        assert check_quality(text, QC, full, "en") == check_quality(text, QC, language="en")
        assert full == signals(text)
    many = "# " + "1 2 3 " * 5  # too few words and everything else wrong: the first check wins
    assert check_quality(many, QC, language="en") == "too_few_words"
    assert set(REASONS) == {"too_few_words", "too_many_words", "mean_word_length", "symbol_word_ratio",
                            "bullet_lines", "ellipsis_lines", "alpha_words", "stop_words"}


def test_none_turns_a_check_off():
    qc = replace(QC, min_stop_words=None, min_alpha_words_fraction=None)
    assert check_quality(KETTLE.replace("for the worktops", "for worktops"), qc, language="en") is None
    assert check_quality(STANDINGS.replace("14 March", "14/3"), qc, language="en") is None


# --------------------------------------------------------------------------------------------------
# config


def test_from_config_reads_every_key():
    section = dict(CFG, min_words=10, stop_words=["The", " Of "], max_symbol_word_ratio="0.2")
    qc = QualityConfig.from_config(section)
    assert qc.min_words == 10 and qc.stop_words == {"*": {"the", "of"}} and qc.max_symbol_word_ratio == 0.2
    assert qc.stop_words_for("de") == qc.stop_words_for("") == {"the", "of"}     # one list: every language


@pytest.mark.parametrize("key, value", [
    ("min_words", "many"),
    ("max_bullet_lines_fraction", 1.5),
    ("min_alpha_words_fraction", -0.1),
    ("stop_words", "the"),
    ("stop_words", []),
    ("stop_words", {"en": []}),
    ("stop_words", {"de": "der"}),
])
def test_from_config_rejects_bad_values(key, value):
    with pytest.raises(UserError):
        QualityConfig.from_config(dict(CFG, **{key: value}))


# --------------------------------------------------------------------------------------------------
# stop words per language (RefinedWeb-Europe)

EUROPE = ["en", "de", "es", "fr", "it", "pt", "pl", "nl", "ro", "cs", "sv"]


def _leipzig_documents(lang: str, words: int = 60) -> list[str]:
    """Documents of consecutive real news sentences (lingua's Leipzig test data) of at least `words` words."""
    from .conftest import shared

    path = shared("langid", "lingua_testdata", "sentences_100perlang.jsonl")
    docs, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["lang"] == lang:
            current.append(row["text"])
            if sum(len(s.split()) for s in current) >= words:
                docs.append(" ".join(current))
                current = []
    return docs


@pytest.mark.parametrize("lang", EUROPE)
def test_real_text_of_each_language_has_its_stop_words(lang):
    docs = _leipzig_documents(lang)
    assert len(docs) >= 8
    stop = QC.stop_words_for(lang)
    assert stop and len(stop) == 8
    kept_docs = [d for d in docs if check_quality(d, QC, language=lang) != "stop_words"]
    assert len(kept_docs) == len(docs), [d[:80] for d in docs if d not in kept_docs]
    if lang != "en":      # English's list says nothing about these languages: most of their text fails it
        as_english = sum(check_quality(d, QC, language="en") == "stop_words" for d in docs)
        assert as_english >= len(docs) // 2, (lang, as_english, len(docs))


def test_stop_words_are_distinct_words_of_the_documents_language():
    base = " ".join(["Katze Hund Maus Vogel Fisch Pferd Kuh Schaf Ziege Huhn"] * 6)
    assert check_quality(f"{base} der", QC, language="de") == "stop_words"
    assert check_quality(f"{base} der Der DER der", QC, language="de") == "stop_words"    # one word, four times
    assert check_quality(f"{base} der und", QC, language="de") is None                    # two: at the threshold
    assert quality_signals(f"{base} der und die", QC, "de")["stop_words"] == 3
    assert check_quality(f"{base} der und", QC, language="en") == "stop_words"            # German words, English list


def test_polish_czech_and_romanian_letters():
    base = " ".join(["kot pies mysz ptak ryba koń krowa owca koza kura"] * 6)
    assert check_quality(f"{base} się że", QC, language="pl") is None
    assert check_quality(f"{base} sie ze", QC, language="pl") == "stop_words"   # without diacritics: other words
    assert check_quality(f"{base} že je", QC, language="cs") == "stop_words"    # "že" is not in Czech's eight
    assert check_quality(f"{base} na je", QC, language="cs") is None
    # Romanian: cedilla ş/ţ and comma-below ș/ț are the same letters (both spellings are common on the web)
    assert check_quality(f"{base} şi și", QC, language="ro") == "stop_words"    # one word, two spellings
    assert check_quality(f"{base} şi în", QC, language="ro") is None


def test_a_language_without_a_list_is_not_checked_and_lists_merge_per_language():
    text = " ".join(["kissa koira hiiri lintu kala hevonen lehmä lammas vuohi kana"] * 6)
    assert QC.stop_words_for("fi") is None
    assert check_quality(text, QC, language="fi") is None
    assert quality_signals(text, QC, "fi")["stop_words"] == -1
    with pytest.raises(UserError, match="quote such words"):
        QualityConfig.from_config(load_config(overrides=["quality.stop_words.fi=[ja, on]"])["quality"])
    merged = QualityConfig.from_config(load_config(overrides=["quality.stop_words.fi=[ja, 'on']"])["quality"])
    assert merged.stop_words_for("fi") == {"ja", "on"} and merged.stop_words_for("de") == QC.stop_words_for("de")
    assert check_quality(text, merged, language="fi") == "stop_words"
