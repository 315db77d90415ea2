"""Gopher repetition removal (refinedweb.stages.repetition) with the shipped thresholds.

Every threshold gets a pair of documents built so that the measured value is exactly the threshold (kept)
and just beyond it (removed). The texts are cut from two realistic articles; a small builder hands out
consecutive, never reused words of them so that exact character counts can be reached without introducing
accidental repetition.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from fractions import Fraction

import pytest

from refinedweb.config import load_config
from refinedweb.errors import UserError
from refinedweb.stages import repetition
from refinedweb.stages.repetition import RepetitionConfig, check_repetition, repetition_signals

CFG = load_config()["repetition"]
RC = RepetitionConfig.from_config(CFG)
REASONS = RC.reasons()                    # every reason code of the shipped thresholds, in check order

BEES = """
When the first hives appeared on the roof of the old post office in 2014, most of the building's tenants assumed they were a temporary experiment. A decade later, the rooftop apiary has grown to twelve colonies, supplies honey to three bakeries on the same street, and has become an unlikely classroom for schoolchildren who have never seen a working hive up close.
Urban beekeeping has expanded rapidly across European and North American cities over the past fifteen years. Enthusiasts point to the surprising variety of forage available in parks, gardens, cemeteries and railway embankments, where ornamental trees and weeds flower from early spring until late autumn. Because many cities are slightly warmer than the surrounding countryside, colonies often begin foraging several weeks earlier than their rural cousins.
Researchers are more cautious. A study published last year by ecologists at a university in Zurich found that some neighbourhoods now host more managed honeybee colonies than the local flowers can comfortably support. When hive density climbs too high, the authors argue, honeybees compete with hundreds of species of wild bees, many of which are solitary, forage over much shorter distances and cannot simply fly elsewhere when nectar runs short.
"People see a hive on a roof and think they are saving the bees," said one of the researchers, who has spent years counting pollinators along transects in city parks. "But the honeybee is a domesticated animal. It is not endangered. The species that are declining are the small, unglamorous ones nesting in bare soil, hollow stems and old walls."
The beekeepers who look after the post office hives say they take the criticism seriously. They have stopped adding new colonies, planted lavender, borage and phacelia in window boxes across the neighbourhood, and persuaded the council to leave several verges unmown through the summer. Last July a volunteer survey recorded forty-one species of wild bee within a kilometre of the building, up from twenty-six when counting began.
Keeping bees in a dense city also brings practical problems. Swarms that settle on a bus shelter or a café awning can alarm passers-by, even though swarming bees are usually docile. Neighbours sometimes complain about spotting on washing hung out to dry, and a single careless inspection on a hot afternoon can leave a courtyard full of agitated insects. Most municipal guidelines now require beekeepers to register their hives, keep a water source nearby and place colonies where the flight path rises quickly above head height.
Disease is a further concern. The varroa mite, a parasite that arrived in Britain in the early nineties, spreads easily between colonies kept close together, and untreated hives can collapse within two seasons. Experienced keepers monitor mite levels with sugar rolls or sticky boards and treat in late summer, but newcomers who buy a hive as a lifestyle accessory may not realise how much work is involved until the colony dies over winter.
Honey from city hives tends to taste different from the rural product. Lime trees lend it a minty, slightly medicinal note in early summer, while later harvests carry hints of sweet chestnut, bramble and the Himalayan balsam that grows along canal banks. Laboratory tests commissioned by several beekeeping associations have found no worrying levels of heavy metals, although researchers say more sampling is needed near major roads and industrial sites.
The bakeries that buy the post office honey use it sparingly. One makes a spiced loaf only in October, when the season's final extraction is bottled; another sells small jars beside the till and donates part of the proceeds to a charity that trains young people in horticulture. The owner said customers are often more interested in the story than the flavour, which she admits is "a little unpredictable from one year to the next".
For the schoolchildren who visit every Thursday morning, the appeal is simpler. Dressed in borrowed veils and gloves several sizes too large, they take turns lifting frames, looking for the queen and trying to spot the difference between worker cells and the larger drone cells at the edges of the comb. Teachers say the visits prompt questions about everything from geometry to climate, and that even the most nervous pupils usually leave asking when they can come back.
The beekeepers hope to publish their survey data so that other groups can compare results. They are also working with a local college on a small experiment: half of the verges around the building will be sown with native wildflowers, the other half left to regenerate naturally, and volunteers will record which plots attract the most pollinators over the next three summers.
Whatever the results, the group insists that the future of urban beekeeping lies in restraint rather than expansion. "A city can support some hives," one of the founders said as she closed the last box of the afternoon. "What it needs far more is flowers, bare ground and people willing to leave a corner of their garden a bit untidy."
""".strip()

LIBRARY = """
The central library reopened its doors on Saturday after an eighteen-month renovation that cost the city just over nine million dollars and transformed a gloomy concrete building into one of the brightest public spaces downtown.
Visitors who remember the old entrance, a narrow corridor lined with notice boards and a broken drinking fountain, will barely recognise the new lobby. Architects removed an entire floor slab above the front desk to create a double-height atrium, and tall windows on the eastern wall now flood the reading room with morning light. The original terrazzo floor, hidden for decades under worn carpet tiles, was uncovered during demolition and carefully restored.
Library director Maria Okonkwo said the design grew out of more than forty public meetings held before construction began. Residents asked for longer opening hours, more quiet study space, better access for people using wheelchairs and a place where teenagers could gather without feeling they were in the way. "We heard again and again that people wanted a building that felt like it belonged to them," she said. "Not a warehouse for books, but a living room for the city."
The children's section has moved from the basement to the ground floor, where low shelves, a puppet theatre and a sensory corner with soft lighting occupy a former storage area. A dedicated teen room on the second floor includes recording booths, a small gaming area and tables wired for laptops. Staff say the booths were booked solid within an hour of the reopening announcement.
Much of the collection has also been reorganised. Instead of the strict Dewey arrangement that many patrons found confusing, popular nonfiction is now grouped by themes such as cooking, travel, health and local history, while the reference collection occupies a smaller footprint after years of declining use. Librarians spent several months weeding outdated and damaged volumes, donating usable copies to community groups and prison libraries.
Sustainability was a major goal of the project. A rooftop array provides around a fifth of the building's electricity, rainwater is collected for flushing toilets, and the heating system now relies on air source heat pumps rather than the gas boilers installed in the seventies. The city expects energy costs to fall by roughly forty percent compared with the year before the closure.
Not every change has been welcomed. Some longtime patrons criticised the decision to reduce the number of public computers from sixty to forty, arguing that many residents still lack reliable internet access at home. Library officials responded that laptops and mobile hotspots can now be borrowed for up to three weeks, and that the number of devices available for loan has tripled since the pandemic.
Parking is another sore point. The renovation removed a surface lot to make space for a garden and outdoor reading terrace, and nearby street spaces fill up quickly on weekdays. The city has added bicycle racks and says a new bus stop will open directly outside the main entrance this summer, but several older residents told reporters they worried about carrying heavy bags of books from a distant garage.
The local history archive, which had been stored off site during construction, returned in climate controlled cases last month. Among its treasures are hand drawn maps of the original street grid, photographs of the 1937 flood and the handwritten diaries of a nineteenth century schoolteacher who documented daily life in the growing town. Archivists plan to digitise the most fragile items over the next two years with help from a state grant.
On opening day, a line stretched around the block well before the doors opened at ten. A brass band from the high school played on the steps, volunteers handed out free tote bags, and the mayor cut a ribbon made from recycled catalogue cards. By the afternoon, staff had issued more than eight hundred new library cards, a record for a single day according to circulation records dating back to the nineteen eighties.
Among the first visitors was Harold Jensen, a retired machinist who said he had visited the library nearly every week since he moved to the city as a young man. He spent the morning in the restored reading room with a stack of newspapers and a cup of coffee from the new café. "It used to feel like a place you went because you had to," he said. "Now it feels like a place you want to stay."
The library will be open seven days a week, with evening hours until nine on weekdays. A full programme of author talks, language classes, job search workshops and story times for toddlers begins next month, and officials say they will publish quarterly reports on visitor numbers and feedback to judge whether the renovation meets its goals.
""".strip()


# --------------------------------------------------------------------------------------------------
# builders


class Prose:
    """Consecutive words of the articles, each handed out at most once (so nothing repeats by accident)."""

    def __init__(self, *texts: str, skip: int = 0) -> None:
        self.words = [w for text in (texts or (BEES, LIBRARY)) for w in text.split()]
        self.pos = skip

    def _next(self) -> str:
        assert self.pos < len(self.words), "ran out of prose"
        self.pos += 1
        return self.words[self.pos - 1]

    def words_totalling(self, chars: int, sep: int = 1) -> list[str]:
        """Next words whose lengths, plus `sep` characters between neighbours, add up to exactly `chars`
        (a word that would overshoot is skipped; a dead end of one character gives back the last word)."""
        out: list[str] = []
        length = 0
        while length < chars:
            gap = chars - length
            if out and gap < sep + 1:
                length -= len(out.pop()) + (sep if out else 0)
                continue
            word = self._next()
            add = len(word) + (sep if out else 0)
            if add <= gap:
                out.append(word)
                length += add
        return out

    def line(self, chars: int) -> str:
        """A line of exactly `chars` characters."""
        text = " ".join(self.words_totalling(chars))
        assert len(text) == chars
        return text

    def lines(self, total: int, count: int) -> list[str]:
        """`count` lines with `total` characters between them."""
        sizes = [total // count] * count
        sizes[-1] += total - sum(sizes)
        return [self.line(size) for size in sizes]


def wrap(tokens: list[str], per_line: int = 13) -> str:
    return "\n".join(" ".join(tokens[i:i + per_line]) for i in range(0, len(tokens), per_line))


def signals(text: str) -> dict[str, float]:
    return repetition_signals(text, RC)


def threshold(name: str) -> float:
    """The shipped threshold behind a reason code."""
    keys = {"dup_line_frac": "max_duplicate_line_fraction", "dup_para_frac": "max_duplicate_paragraph_fraction",
            "dup_line_char_frac": "max_duplicate_line_char_fraction",
            "dup_para_char_frac": "max_duplicate_paragraph_char_fraction"}
    if name in keys:
        return CFG[keys[name]]
    n = int(re.search(r"\d+", name).group())
    table = CFG["max_top_ngram_char_fraction"] if name.startswith("top") else CFG["max_duplicate_ngram_char_fraction"]
    return table[n]


def clean(build, ok) -> int:
    """The first prose offset `skip` for which build(skip) satisfies ok(signals). Word boundaries cut from
    the articles can by chance give a repeated phrase the same neighbour twice (two paragraphs ending in
    "the"), which adds repetition a test did not ask for; a test states what must stay quiet and the
    builder shifts the prose until it does."""
    for skip in range(60):
        if ok(signals(build(skip))):
            return skip
    raise AssertionError("no clean prose offset")


NGRAM_REASONS = [name for name in REASONS if "gram" in name]


def quiet(names, margin: float = 0.75):
    """ok() for `clean`: these measures stay below `margin` x their thresholds."""
    return lambda found: all(found[name] <= margin * threshold(name) for name in names)


def assert_kept_at(text: str, name: str) -> dict[str, float]:
    found = signals(text)
    assert found[name] == threshold(name), (name, found[name])
    assert check_repetition(text, RC) is None, found
    return found


def assert_dropped_just_beyond(text: str, name: str, above: float) -> dict[str, float]:
    found = signals(text)
    assert found[name] == pytest.approx(above, abs=1e-12)
    assert threshold(name) < found[name] < threshold(name) + 0.02
    assert check_repetition(text, RC) == name, found
    return found


# --------------------------------------------------------------------------------------------------
# the shipped config and normal text


def test_shipped_thresholds_are_gophers():
    assert RC.max_duplicate_line_fraction == 0.30 and RC.max_duplicate_paragraph_fraction == 0.30
    assert RC.max_duplicate_line_char_fraction == 0.20 and RC.max_duplicate_paragraph_char_fraction == 0.20
    assert RC.max_top_ngram_char_fraction == ((2, 0.20), (3, 0.18), (4, 0.16))
    assert RC.max_duplicate_ngram_char_fraction == ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
    assert "dup_7gram_char_frac" in REASONS and "top_2gram_char_frac" in REASONS


@pytest.mark.parametrize("article", [BEES, LIBRARY, BEES + "\n\n" + LIBRARY, BEES.replace("\n", "\n\n")])
def test_well_written_article_is_kept(article):
    assert check_repetition(article, RC) is None
    found = signals(article)
    assert set(found) == set(REASONS)
    assert found["dup_line_frac"] == found["dup_para_frac"] == 0.0
    assert 0 < found["top_2gram_char_frac"] < 0.02
    assert found["dup_5gram_char_frac"] == 0.0


def test_empty_and_tiny_documents():
    for text in ["", "   \n\n  ", "Bees", "Bees swarm", "Bees swarm twice"]:
        assert check_repetition(text, RC) is None
    assert check_repetition("Bees bees bees", RC) == "top_2gram_char_frac"  # "bees bees" twice: 16 of 12 chars
    assert all(v == 0.0 for v in signals("").values())
    # an n-gram seen once is no repetition, however short the document
    assert signals("Urban beekeeping is growing")["top_2gram_char_frac"] == 0.0


# --------------------------------------------------------------------------------------------------
# paragraphs


def test_dup_para_frac_at_threshold_and_beyond():
    caption = "Photo: Reuters"

    def page(others: int, copies: int, skip: int = 0) -> str:
        prose = Prose(skip=skip)
        paragraphs = ["\n".join(prose.lines(180, 3)) for _ in range(others)]
        for i in range(copies):  # interleaved, never two captions in a row
            paragraphs.insert(2 * i + 1, caption)
        return "\n\n".join(paragraphs)

    skip = clean(lambda k: page(8, 5, k), quiet(NGRAM_REASONS))
    kept = page(others=6, copies=4, skip=skip)          # 10 paragraphs, 3 duplicates
    assert kept.count(caption) == 4
    found = assert_kept_at(kept, "dup_para_frac")
    assert found["dup_para_frac"] == 3 / 10 and found["dup_line_frac"] < 0.3
    dropped = page(others=8, copies=5, skip=skip)       # 13 paragraphs, 4 duplicates
    assert_dropped_just_beyond(dropped, "dup_para_frac", 4 / 13)


CAPTIONS = ["Photograph: Rebecca Naden/Reuters", "Illustration: Guardian Design", "Source: Municipal Archives"]
CAPTION_CHARS = sum(map(len, CAPTIONS))


def captioned(separator: str, extra: int = 0, skip: int = 0) -> str:
    """Five prose blocks and three 3-word captions shown twice, joined by `separator`: the captions'
    second copies are exactly 20% of the characters (with `extra` fewer characters of prose, a bit more)."""
    units = 5 + 2 * len(CAPTIONS)
    prose_chars = 5 * CAPTION_CHARS - 2 * CAPTION_CHARS - len(separator) * (units - 1) - extra
    blocks = Prose(skip=skip).lines(prose_chars, 5)
    order = [blocks[0], CAPTIONS[0], blocks[1], CAPTIONS[1], blocks[2], CAPTIONS[2], blocks[3], blocks[4],
             CAPTIONS[0], CAPTIONS[1], CAPTIONS[2]]
    text = separator.join(order)
    assert len(text) == 5 * CAPTION_CHARS - extra
    return text


def test_dup_para_char_frac_at_threshold_and_beyond():
    # the captions' own 2- and 3-grams repeat too (inherently): they only have to stay below their limits
    skip = clean(lambda k: captioned("\n\n", skip=k), quiet(NGRAM_REASONS, 0.95))
    found = assert_kept_at(captioned("\n\n", skip=skip), "dup_para_char_frac")
    assert found["dup_para_frac"] == 3 / 11
    dropped = captioned("\n\n", extra=1, skip=skip)
    assert_dropped_just_beyond(dropped, "dup_para_char_frac", CAPTION_CHARS / (5 * CAPTION_CHARS - 1))


# --------------------------------------------------------------------------------------------------
# lines (one paragraph, so the paragraph measures stay at zero)


def test_dup_line_frac_at_threshold_and_beyond():
    def page(others: int, copies: int, skip: int = 0) -> str:
        lines = Prose(skip=skip).lines(70 * others, others)
        for i in range(copies):
            lines.insert(2 * i + 1, "Advertisement")
        return "\n".join(lines)

    skip = clean(lambda k: page(8, 5, k), quiet(NGRAM_REASONS))
    found = assert_kept_at(page(others=6, copies=4, skip=skip), "dup_line_frac")   # 10 lines, 3 duplicates
    assert found["dup_para_frac"] == 0.0
    assert_dropped_just_beyond(page(others=8, copies=5, skip=skip), "dup_line_frac", 4 / 13)  # 13 lines, 4 dups


def test_dup_line_char_frac_at_threshold_and_beyond():
    skip = clean(lambda k: captioned("\n", skip=k), quiet(NGRAM_REASONS, 0.95))
    found = assert_kept_at(captioned("\n", skip=skip), "dup_line_char_frac")
    assert found["dup_line_frac"] == 3 / 11 and found["dup_para_frac"] == 0.0
    dropped = captioned("\n", extra=1, skip=skip)
    assert_dropped_just_beyond(dropped, "dup_line_char_frac", CAPTION_CHARS / (5 * CAPTION_CHARS - 1))


def test_lines_are_compared_stripped_and_blank_lines_are_not_duplicates():
    prose = Prose()
    text = "\n\n\n".join(prose.lines(600, 8)) + "\n\n   \n"
    assert signals(text)["dup_line_frac"] == 0.0
    a, b = prose.lines(120, 2)
    text = f"{a}\n  {b}  \n{b}\n" + "\n".join(prose.lines(500, 6))
    assert signals(text)["dup_line_frac"] == 1 / 9


# --------------------------------------------------------------------------------------------------
# n-grams


def keyword_stuffed(phrase: str, count: int, name: str, extra: int = 0, skip: int = 0) -> str:
    """Prose with `phrase` inserted `count` times, sized so that its top n-gram fraction is the threshold
    (word characters reduced by `extra` for the just-beyond case)."""
    words = phrase.split()
    chars = sum(map(len, words)) * count
    total = Fraction(chars) / Fraction(str(threshold(name)))
    assert total.denominator == 1
    filler = int(total) - chars - extra
    prose = Prose(skip=skip)
    sizes = [filler // (count + 1)] * (count + 1)
    sizes[-1] += filler - sum(sizes)
    tokens: list[str] = []
    for i, size in enumerate(sizes):
        tokens += prose.words_totalling(size, sep=0)
        if i < count:
            tokens += words
    assert sum(map(len, tokens)) == int(total) - extra
    return wrap(tokens)


@pytest.mark.parametrize("n, phrase, count", [
    (2, "raw honey", 10),
    (3, "local raw honey", 9),
    (4, "buy local raw honey", 6),
])
def test_top_ngram_char_frac_at_threshold_and_beyond(n, phrase, count):
    name = f"top_{n}gram_char_frac"
    chars = sum(map(len, phrase.split())) * count
    others = [r for r in NGRAM_REASONS if r.startswith("dup") or int(re.search(r"\d+", r).group()) > n]
    skip = clean(lambda k: keyword_stuffed(phrase, count, name, skip=k), quiet(others))
    found = assert_kept_at(keyword_stuffed(phrase, count, name, skip=skip), name)
    assert found["dup_line_frac"] == 0.0
    total = int(Fraction(chars) / Fraction(str(threshold(name))))
    assert found[name] == chars / total
    dropped = keyword_stuffed(phrase, count, name, extra=1, skip=skip)
    assert_dropped_just_beyond(dropped, name, chars / (total - 1))


def test_top_ngram_picks_the_most_frequent_and_is_case_insensitive():
    prose = Prose()
    tokens = prose.words_totalling(300, sep=0)
    for i, variant in enumerate(["Raw honey", "raw Honey", "RAW HONEY"]):
        tokens[10 + 20 * i:10 + 20 * i] = variant.split()
    found = signals(wrap(tokens))
    assert found["top_2gram_char_frac"] == 3 * 8 / (300 + 3 * 8)


def repeated_phrase(phrase: str, name: str, extra: int = 0, skip: int = 0) -> str:
    """Prose with `phrase` twice, in different company, sized so that its duplicate n-gram fraction is the
    threshold (word characters reduced by `extra` for the just-beyond case)."""
    words = phrase.split()
    covered = 2 * sum(map(len, words))
    total = Fraction(covered) / Fraction(str(threshold(name)))
    assert total.denominator == 1, "pick a phrase whose length fits the threshold"
    filler = int(total) - covered - extra
    prose = Prose(skip=skip)
    first = prose.words_totalling(filler // 3, sep=0)
    second = prose.words_totalling(filler // 3, sep=0)
    third = prose.words_totalling(filler - 2 * (filler // 3), sep=0)
    tokens = first + words + second + words + third
    assert sum(map(len, tokens)) == int(total) - extra
    return wrap(tokens)


DUP_PHRASES = {
    5: "bees visit the lime trees",
    6: "rooftop hives need a water source",
    7: "swarms sometimes settle on quiet bus shelters",
    8: "fresh local honey from the post office roof",
    9: "buy fresh jars of linden honey from rooftop colonies",
    10: "jars of raw honey from the old post office roof",
}


@pytest.mark.parametrize("n", sorted(DUP_PHRASES))
def test_dup_ngram_char_frac_at_threshold_and_beyond(n):
    phrase = DUP_PHRASES[n]
    assert len(phrase.split()) == n
    name = f"dup_{n}gram_char_frac"
    covered = 2 * sum(map(len, phrase.split()))
    longer = [f"dup_{m}gram_char_frac" for m in range(n + 1, 11)]
    skip = clean(lambda k: repeated_phrase(phrase, name, skip=k),
                 lambda found: quiet([r for r in NGRAM_REASONS if r.startswith("top")], 0.95)(found)
                 and all(found[r] == 0.0 for r in longer))
    kept = repeated_phrase(phrase, name, skip=skip)
    found = assert_kept_at(kept, name)
    total = int(Fraction(covered) / Fraction(str(threshold(name))))
    # the phrase repeats as a whole and no further: every smaller n sees the same characters, larger none
    for m in range(5, 11):
        assert found[f"dup_{m}gram_char_frac"] == (covered / total if m <= n else 0.0)
    dropped = repeated_phrase(phrase, name, extra=1, skip=skip)
    assert_dropped_just_beyond(dropped, name, covered / (total - 1))


def test_overlapping_duplicate_ngrams_count_each_word_once():
    # "a b c d e f" twice: the 5-grams (a..e) and (b..f) overlap; the six words are counted once each
    prose = Prose()
    phrase = "honey bees forage over short distances".split()
    tokens = prose.words_totalling(200, sep=0) + phrase + prose.words_totalling(200, sep=0) + phrase
    tokens += prose.words_totalling(200, sep=0)
    found = signals(wrap(tokens))
    covered = 2 * sum(map(len, phrase))
    assert found["dup_5gram_char_frac"] == found["dup_6gram_char_frac"] == covered / (600 + covered)
    assert found["dup_7gram_char_frac"] == 0.0


# --------------------------------------------------------------------------------------------------
# order, early exit and agreement with a plain reference implementation


def reference(text: str) -> dict[str, float]:
    """The documented definitions, written out naively."""
    def dups(units):
        seen, count, chars = set(), 0, 0
        for unit in units:
            if unit in seen:
                count, chars = count + 1, chars + len(unit)
            seen.add(unit)
        return count, chars

    def fold(word):
        return "".join(c.lower() if ord(c) < 0x10000 and len(c.lower()) == 1 else c for c in word)

    out: dict[str, float] = {}
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    for unit, items in (("para", paragraphs), ("line", lines)):
        count, chars = dups(items)
        out[f"dup_{unit}_frac"] = count / len(items) if items else 0.0
        out[f"dup_{unit}_char_frac"] = chars / len(text) if text else 0.0
    words = [fold(w) for w in text.split()]
    total = sum(map(len, words))
    for n, _ in RC.max_top_ngram_char_fraction:
        grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
        top = max(grams.values(), default=0)
        value = top * max(sum(map(len, g)) for g, c in grams.items() if c == top) if top >= 2 else 0
        out[f"top_{n}gram_char_frac"] = value / total if total else 0.0
    for n, _ in RC.max_duplicate_ngram_char_fraction:
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        counts = Counter(grams)
        covered = set()
        for i, gram in enumerate(grams):
            if counts[gram] > 1:
                covered.update(range(i, i + n))
        out[f"dup_{n}gram_char_frac"] = sum(len(words[i]) for i in covered) / total if total else 0.0
    return out


def noisy_documents(seed: int, count: int):
    rng = random.Random(seed)
    pool = (BEES + " " + LIBRARY).split()
    pool += ["Über", "über", "ΟΔΟΣ", "οδος", "naïve", "🐝", "İstanbul", "ǅemal"]
    for _ in range(count):
        words = [rng.choice(pool) for _ in range(rng.randint(0, 60))] if rng.random() < 0.3 else \
            pool[(start := rng.randrange(len(pool) - 400)):start + rng.randint(1, 400)]
        words = list(words)
        for _ in range(rng.randint(0, 4)):  # paste copies of random spans
            if words:
                a = rng.randrange(len(words))
                span = words[a:a + rng.randint(1, 15)]
                b = rng.randrange(len(words) + 1)
                words[b:b] = [w.upper() if rng.random() < 0.2 else w for w in span]
        pieces = []
        for word in words:
            pieces.append(word)
            pieces.append(rng.choice([" "] * 12 + ["\n", "\n\n", "  ", "\t", "\n \n", "\u00a0"]))
        yield "".join(pieces)


@pytest.mark.parametrize("backend", ["numpy", "python", "by length"])
def test_matches_reference_implementation_on_noisy_documents(backend, monkeypatch):
    # short texts take a plain-Python path, long ones the numpy one: both must give the same numbers
    small = {"numpy": 0, "python": 10**12, "by length": repetition._SMALL_TEXT}[backend]
    monkeypatch.setattr(repetition, "_SMALL_TEXT", small)
    for text in noisy_documents(seed=7, count=300):
        expected = reference(text)
        found = signals(text)
        assert found.keys() == expected.keys()
        for key in expected:
            assert found[key] == pytest.approx(expected[key], abs=1e-15), (key, text[:200])


def test_early_exit_reports_the_first_failure_in_order():
    for text in noisy_documents(seed=11, count=200):
        found = signals(text)
        first = next((name for name in REASONS if found[name] > threshold(name)), None)
        assert check_repetition(text, RC) == first
        filled: dict[str, float] = {}
        assert check_repetition(text, RC, filled) == first and filled == found


def test_paragraph_checks_come_before_line_checks():
    text = "\n\n".join(["Stay tuned for updates."] * 6)
    assert check_repetition(text, RC) == "dup_para_frac"
    assert check_repetition(text.replace("\n\n", "\n"), RC) == "dup_line_frac"


# --------------------------------------------------------------------------------------------------
# config


def test_from_config_accepts_string_sizes_and_none():
    section = dict(CFG, max_top_ngram_char_fraction={"2": 0.2, "4": "0.16"}, max_duplicate_line_fraction=None)
    rc = RepetitionConfig.from_config(section)
    assert rc.max_top_ngram_char_fraction == ((2, 0.2), (4, 0.16))
    assert rc.max_duplicate_line_fraction is None
    lines = Prose().lines(300, 4)
    text = "\n".join(line for pair in zip(["Click to enlarge"] * 4, lines) for line in pair)
    assert check_repetition(text, rc) is None
    assert check_repetition(text, RC) == "dup_line_frac"


@pytest.mark.parametrize("key, value", [
    ("max_duplicate_line_fraction", 1.5),
    ("max_duplicate_line_fraction", "lots"),
    ("max_top_ngram_char_fraction", [0.2]),
    ("max_duplicate_ngram_char_fraction", {"five": 0.1}),
    ("max_duplicate_ngram_char_fraction", {0: 0.1}),
])
def test_from_config_rejects_bad_values(key, value):
    with pytest.raises(UserError):
        RepetitionConfig.from_config(dict(CFG, **{key: value}))
