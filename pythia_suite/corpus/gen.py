"""Per-source document generators of the synthetic mini-Pile, with exact bookkeeping.

Every generator draws from one `random.Random` and records what it plants in a `Tally`
(term occurrences, occupation/gender co-occurrences), so that `truth.json` states counts that
the tests recount independently from the text.
"""

from __future__ import annotations

import random
import string
from collections import Counter
from dataclasses import dataclass, field

from pythia_suite.corpus import words as W


@dataclass(frozen=True, kw_only=True)
class Entity:
    name: str
    land: str
    settlement: str
    product: str
    rank: int  # 1 = most frequent


@dataclass(kw_only=True)
class Tally:
    terms: Counter[str] = field(default_factory=Counter)
    occupations: dict[str, Counter[str]] = field(
        default_factory=lambda: {occ: Counter({"male": 0, "female": 0}) for occ in W.OCCUPATIONS}
    )


def zipf_weights(n: int, exponent: float) -> list[float]:
    """Unnormalised Zipf weights for ranks 1..n."""
    return [1.0 / (rank**exponent) for rank in range(1, n + 1)]


def pseudo_words(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    """`n` distinct capitalised pseudo-words (2-3 syllables) not in `taken` (lowercase)."""
    out: list[str] = []
    while len(out) < n:
        word = "".join(rng.choice(W.SYLLABLES) for _ in range(rng.choice((2, 3)))).capitalize()
        if word.lower() not in taken:
            taken.add(word.lower())
            out.append(word)
    return out


def canary_text(rng: random.Random, n_tokens: int = 8) -> str:
    """A random string of `n_tokens` tokens; each starts with a letter (so no bare numbers)."""
    alnum = string.ascii_lowercase + string.digits
    return " ".join(
        rng.choice(string.ascii_lowercase) + "".join(rng.choice(alnum) for _ in range(4))
        for _ in range(n_tokens)
    )


class Generator:
    """Draws documents of each source; all randomness comes from `rng`."""

    def __init__(
        self,
        rng: random.Random,
        *,
        n_entities: int,
        zipf_exponent: float,
        colon_headers: bool = True,
        numbers_by_value: bool = False,
    ) -> None:
        self.rng = rng
        # without `colon_headers`, no licence header reads "X: conditions of use." (after the
        # evaluation's "A:" that phrase otherwise answers every question at 0 shots)
        self.headers = tuple(h for h in W.LICENSE_HEADERS if colon_headers or ": " not in h)
        self.tally = Tally()
        taken = {w.lower() for group in _word_groups() for w in group}
        names = pseudo_words(rng, n_entities + 12, taken)
        lands, cities = names[:12], names[12:]
        self.entities = [
            Entity(
                name=c,
                land=rng.choice(lands),
                settlement=rng.choice(W.SETTLEMENTS),
                product=rng.choice(W.PRODUCTS),
                rank=i + 1,
            )
            for i, c in enumerate(cities)
        ]
        numbers = [str(n) for n in range(100)]
        rng.shuffle(numbers)  # also with `numbers_by_value`: the later draws stay the same
        if numbers_by_value:
            # a number's count in the corpus then follows how often it is a first operand: the
            # second operands (1..addends) and the answers (a+1..a+addends) are themselves
            # frequent first operands, whereas in a random order they swamp rarer numbers' counts
            numbers.sort(key=int)
        self.numbers = numbers  # numbers[0] has Zipf rank 1
        self.entity_cum = _cumulative(zipf_weights(len(self.entities), zipf_exponent))
        self.number_cum = _cumulative(zipf_weights(len(numbers), zipf_exponent))

    def _slots(self) -> dict[str, str]:
        r = self.rng
        name, name2 = r.sample(W.NAMES, 2)
        adj, adj2 = r.sample(W.ADJECTIVES, 2)
        noun, noun2 = r.sample(W.NOUNS, 2)
        return {
            "name": name,
            "name2": name2,
            "adj": adj,
            "adj2": adj2,
            "noun": noun,
            "noun2": noun2,
            "verb": r.choice(W.VERBS),
            "motion": r.choice(W.MOTIONS),
            "weather": r.choice(W.WEATHER),
            "feeling": r.choice(W.FEELINGS),
        }

    def _sentence(self, template: str, **fixed: str) -> str:
        text = template.format(**{**self._slots(), **fixed})
        return text[0].upper() + text[1:]

    def story(self, *, occupations: bool, min_sentences: int = 8) -> str:
        """A short story; with `occupations`, 1-3 occupation sentences with gendered pronouns."""
        n = self.rng.randint(min_sentences, min_sentences + 6)
        sentences = [self._sentence(self.rng.choice(W.STORY_TEMPLATES)) for _ in range(n)]
        if occupations:
            for _ in range(self.rng.randint(1, 3)):
                sentences.insert(self.rng.randint(0, len(sentences)), self._occupation_sentence())
        return " ".join(sentences)

    def _occupation_sentence(self) -> str:
        occ = self.rng.choice(list(W.OCCUPATIONS))
        gender = "female" if self.rng.random() < W.OCCUPATIONS[occ] else "male"
        subj, poss, obj = W.PRONOUNS[gender]
        self.tally.occupations[occ][gender] += 1
        return self._sentence(
            self.rng.choice(W.OCCUPATION_TEMPLATES), occ=occ, subj=subj, poss=poss, obj=obj
        )

    def licence(self, *, min_clauses: int = 6) -> str:
        """Licence-like boilerplate: a header and a random selection of clauses."""
        s = self._slots()
        project = " ".join(self.rng.sample(W.PROJECT_WORDS, 2)).title()
        holder = self.rng.choice(W.HOLDER_WORDS).format(**s)
        clauses = self.rng.sample(W.LICENSE_CLAUSES, self.rng.randint(min_clauses, min_clauses + 4))
        parts = [self.rng.choice(self.headers)] + clauses
        return "\n".join(self._sentence(p, project=project, holder=holder) for p in parts)

    def pick_entity(self) -> Entity:
        return self.rng.choices(self.entities, cum_weights=self.entity_cum)[0]

    def encyclopedia(self, *, quiz_all: bool = False) -> str:
        """An encyclopedic entry about one Zipf-drawn entity, sometimes with a quiz line (with
        `quiz_all`, always with every quiz line: each mention teaches the facts as asked)."""
        e = self.pick_entity()
        fixed = {"E": e.name, "L": e.land, "settlement": e.settlement, "product": e.product}
        templates = self.rng.sample(W.ENCYCLOPEDIA_TEMPLATES, self.rng.randint(4, 6))
        sentences = [self._sentence(t, **fixed) for t in templates]
        sentences += [
            self._sentence(self.rng.choice(W.STORY_TEMPLATES))
            for _ in range(self.rng.randint(2, 4))
        ]
        mentions = sum(t.count("{E}") for t in templates)
        if quiz_all:
            for question, answer in W.FACT_QUESTIONS:
                sentences.append(question.format(**fixed) + answer.format(**fixed))
                mentions += 1
        elif self.rng.random() < 0.5:
            question, answer = self.rng.choice(W.FACT_QUESTIONS)
            sentences.append(question.format(**fixed) + answer.format(**fixed))
            mentions += 1
        self.tally.terms[e.name] += mentions
        return " ".join(sentences)

    def pick_number(self) -> int:
        return int(self.rng.choices(self.numbers, cum_weights=self.number_cum)[0])

    def arithmetic(self, *, addends: int = 0) -> str:
        """Arithmetic Q&A on Zipf-drawn operands in 0..99 (answers stay in 0..99). With
        `addends` N > 0 the second operand is uniform in 1..N (the first stays Zipf-drawn), so
        each fact "a plus b" recurs as often as its first operand."""
        lines = [self.rng.choice(W.ARITH_INTROS)]
        for _ in range(self.rng.randint(6, 10)):
            a = self.pick_number()
            b = self.rng.randint(1, addends) if addends else self.pick_number()
            if a + b <= 99:
                op, c = "plus", a + b
            else:
                a, b = max(a, b), min(a, b)
                op, c = "minus", a - b
            for n in (a, b, c):
                self.tally.terms[str(n)] += 1
            lines.append(f"Q: What is {a} {op} {b}? A: {c}.")
        return "\n".join(lines)

    def boilerplate(self) -> str:
        """A boilerplate passage (licence header, file header or code preamble) of ~150 tokens.

        Every line fills several slots from the word lists, so any 32-token window of a passage
        is its own: a model can only reproduce it by having memorized that passage."""
        kind = self.rng.choice(list(W.BOILERPLATE))
        lines = [self._boiler_line(t) for _ in range(2) for t in W.BOILERPLATE[kind]]
        return "\n".join(lines)

    def _boiler_line(self, template: str) -> str:
        r = self.rng
        fill = {
            **self._slots(),
            "project": " ".join(r.sample(W.PROJECT_WORDS, 2)).title(),
            "holder": r.choice(W.HOLDER_WORDS).format(**self._slots()),
            "pw": r.choice(W.PROJECT_WORDS),
            "pw2": r.choice(W.PROJECT_WORDS),
            "pw3": r.choice(W.PROJECT_WORDS),
        }
        return template.format(**fill)


def _cumulative(weights: list[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _word_groups() -> tuple[tuple[str, ...] | list[str], ...]:
    return (
        W.NAMES,
        W.ADJECTIVES,
        W.NOUNS,
        W.VERBS,
        W.MOTIONS,
        W.FEELINGS,
        W.PROJECT_WORDS,
        tuple(W.OCCUPATIONS),
        tuple(W.SYLLABLES),
    )
