"""Company name normalisation, shared by the Company model (its stored
`match_name`) and smart link scoring: one function, so that what the
database prefilters on and what Python scores are the same text."""

from __future__ import annotations

import re
import unicodedata

# Compared after lower-casing and removing dots ("G.m.b.H." → "gmbh").
LEGAL_SUFFIXES = frozenset(
    {
        "inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited",
        "llc", "llp", "lp", "plc", "pllc", "gmbh", "mbh", "ag", "kg", "ug", "ohg", "gbr",
        "ev", "se", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "oy", "oyj", "ab", "as",
        "aps", "asa", "pty", "pte", "kk", "sp", "zoo", "sl", "sro", "kft", "haftungsbeschrankt",
    }
)


# Letters NFKD does not split into a base letter and an accent.
_NOT_DECOMPOSABLE = str.maketrans(
    {"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
     "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ı": "i", "þ": "th", "Þ": "TH"}
)


def normalize_company_name(name: str) -> str:
    """Lower case, accents and punctuation removed, legal suffixes dropped:
    "ACME, Inc." and "Acme GmbH" both become "acme", "Müller" "muller"."""
    text = unicodedata.normalize("NFKD", (name or "").translate(_NOT_DECOMPOSABLE))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = text.replace("&", " and ").replace(".", "")
    words = re.sub(r"[^a-z0-9]+", " ", text).split()
    kept = [word for word in words if word not in LEGAL_SUFFIXES]
    # A name made only of suffixes ("Company") keeps its words.
    return " ".join(kept or words)
