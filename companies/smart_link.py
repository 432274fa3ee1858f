"""Smart linking (SPEC §3): find the existing customer a product's new org
most likely belongs to, from hints (company name, domain, contact emails).

This module only reads; `companies.services.smart_link.company_smart_link` decides and
writes the link. Scores are 0–100:

- same normalised domain as the hint domain: 95
- a hint email's domain equal to the company domain: 70 (free-mail never)
- company name: 80 for the same normalised name (legal suffixes such as Inc,
  GmbH, Ltd, LLC ignored), otherwise 80 × similarity (difflib ratio), and
  nothing below a similarity of 0.5
A candidate's score is the best of its signals.

**Clear winner**: the best candidate reaches the threshold and beats the
runner-up by at least CLEAR_WINNER_MARGIN points (so two companies on the
same domain, or "Acme GmbH" and "Acme Inc", are never picked blindly).

**Candidates** are the companies of the calling product's customer pool
(SPEC §2), not only those already linked to the product: the point of smart
linking is to find the customer record that another product of the pool (or
staff) already created. A company of another pool is never a candidate, so
it can be neither linked nor suggested. The database does the prefiltering
(pool and domain on an index; name tokens on `match_name`, the stored
normalised name, so accents are ignored on both sides), and at most
MAX_NAME_CANDIDATES rows per query reach Python, so the cost does not grow
with the size of the customer base."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from django.db.models import Q
from django.db.models.functions import Length

from .domains import email_domain, is_free_mail
from .names import normalize_company_name
from .models import Company

DOMAIN_SCORE = 95
NAME_EXACT_SCORE = 80
EMAIL_DOMAIN_SCORE = 70
NAME_MIN_SIMILARITY = 0.5
CLEAR_WINNER_MARGIN = 10
MAX_SUGGESTIONS = 5
MAX_NAME_CANDIDATES = 200
MAX_NAME_TOKENS = 4
DEFAULT_MIN_CONFIDENCE = 0.6

MATCHED_BY_DOMAIN = "domain"
MATCHED_BY_NAME = "name"
MATCHED_BY_EMAIL_DOMAIN = "email_domain"
MATCHED_BY_EXTERNAL_ORG_ID = "external_org_id"

def name_score(hint_name: str, company_name: str) -> int:
    """0–80 for how alike two company names are (already normalised)."""
    if not hint_name or not company_name:
        return 0
    if hint_name == company_name:
        return NAME_EXACT_SCORE
    similarity = SequenceMatcher(None, hint_name, company_name).ratio()
    if similarity < NAME_MIN_SIMILARITY:
        return 0
    # Never equal to an exact match: 79 at most for near-identical names.
    return min(NAME_EXACT_SCORE - 1, round(NAME_EXACT_SCORE * similarity))


@dataclass(frozen=True)
class SmartLinkHints:
    company_name: str = ""
    domain: str = ""  # normalised
    emails: tuple[str, ...] = ()

    @property
    def email_domains(self) -> frozenset[str]:
        domains = {email_domain(email) for email in self.emails}
        return frozenset(d for d in domains if d and not is_free_mail(d))

    @property
    def usable_domain(self) -> str:
        return "" if not self.domain or is_free_mail(self.domain) else self.domain


@dataclass(frozen=True)
class SmartLinkCandidate:
    company: Company
    confidence: int
    matched_by: str


@dataclass
class SmartLinkMatch:
    """The ranked candidates (best first) and, if there is one, the clear winner."""

    candidates: list[SmartLinkCandidate] = field(default_factory=list)
    winner: SmartLinkCandidate | None = None

    @property
    def suggestions(self) -> list[SmartLinkCandidate]:
        return self.candidates[:MAX_SUGGESTIONS]


# Words too common to narrow the name prefilter down ("The Acme Group").
NAME_STOPWORDS = frozenset(
    {"the", "and", "for", "group", "holding", "holdings", "international", "global", "services", "solutions",
     "und", "der", "die", "das", "les", "des", "del", "los", "las"}
)


# German spells an umlaut out when it cannot type it ("Mueller" for
# "Müller", stored as "muller" once accents are stripped): the prefilter
# also looks for the folded word, and the similarity score does the rest.
_UMLAUT_SPELLINGS = (("ae", "a"), ("oe", "o"), ("ue", "u"))


def _folded(word: str) -> str:
    for spelled, folded in _UMLAUT_SPELLINGS:
        word = word.replace(spelled, folded)
    return word


def _name_tokens(normalized_name: str) -> list[str]:
    """The longest distinctive words of the hint (and their umlaut-folded
    spelling), for the database prefilter."""
    words = sorted(
        {w for w in normalized_name.split() if len(w) >= 3 and w not in NAME_STOPWORDS}, key=lambda w: (-len(w), w)
    )
    if not words and normalized_name:
        words = [normalized_name]
    words = words[:MAX_NAME_TOKENS]
    return words + [folded for word in words if (folded := _folded(word)) != word and folded not in words]


def _candidate_companies(hints: SmartLinkHints, normalized_name: str, *, customer_pool: str) -> Iterable[Company]:
    fields = ("id", "name", "domain", "short_id")
    in_pool = Company.objects.filter(customer_pool=customer_pool)
    domains = set(hints.email_domains)
    if hints.usable_domain:
        domains.add(hints.usable_domain)
    seen: dict = {}
    if domains:
        for company in in_pool.filter(domain__in=domains).only(*fields)[:MAX_NAME_CANDIDATES]:
            seen[company.pk] = company
    tokens = _name_tokens(normalized_name)
    if tokens:
        name_filter = Q()
        for token in tokens:
            name_filter |= Q(match_name__contains=token)
        rows = (
            in_pool.filter(name_filter)
            # Shorter names first: "Acme" before "Acme Widgets International".
            .order_by(Length("name"), "pk")
            .only(*fields)[:MAX_NAME_CANDIDATES]
        )
        for company in rows:
            seen.setdefault(company.pk, company)
    return seen.values()


def score_company(hints: SmartLinkHints, normalized_name: str, company: Company) -> SmartLinkCandidate | None:
    """The best signal for one company, or None when nothing matches."""
    signals: list[tuple[int, str]] = []
    company_domain = company.domain
    if company_domain and not is_free_mail(company_domain):
        if hints.usable_domain and company_domain == hints.usable_domain:
            signals.append((DOMAIN_SCORE, MATCHED_BY_DOMAIN))
        if company_domain in hints.email_domains:
            signals.append((EMAIL_DOMAIN_SCORE, MATCHED_BY_EMAIL_DOMAIN))
    score = name_score(normalized_name, normalize_company_name(company.name))
    if score:
        signals.append((score, MATCHED_BY_NAME))
    if not signals:
        return None
    confidence, matched_by = max(signals, key=lambda s: s[0])
    return SmartLinkCandidate(company=company, confidence=confidence, matched_by=matched_by)


def smart_link_match(
    *,
    customer_pool: str,
    company_name: str = "",
    domain: str = "",
    emails: Iterable[str] = (),
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> SmartLinkMatch:
    """Rank the companies of `customer_pool` against the hints. `domain` must
    already be normalised; `min_confidence` is 0–1 as in the API."""
    hints = SmartLinkHints(company_name=company_name or "", domain=domain or "", emails=tuple(emails))
    normalized_name = normalize_company_name(hints.company_name)
    scored = [
        candidate
        for company in _candidate_companies(hints, normalized_name, customer_pool=customer_pool)
        if (candidate := score_company(hints, normalized_name, company)) is not None
    ]
    scored.sort(key=lambda c: (-c.confidence, c.company.name.lower(), str(c.company.pk)))
    match = SmartLinkMatch(candidates=scored)
    if scored:
        best = scored[0]
        runner_up = scored[1].confidence if len(scored) > 1 else 0
        # round(): 0.7 * 100 is 70.00000000000001 in floating point.
        threshold = round(min_confidence * 100, 6)
        if best.confidence >= threshold and best.confidence - runner_up >= CLEAR_WINNER_MARGIN:
            match.winner = best
    return match
