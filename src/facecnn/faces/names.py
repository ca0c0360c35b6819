"""Person names: what a gallery accepts, and when two names are one person spelt twice.

Names become labels, folder names and the text drawn on a photo, so a name must look like
what it is: one Unicode form (NFC: macOS writes folder names decomposed), no invisible or
direction-changing characters, and no Latin/Cyrillic/Greek mixtures such as a Cyrillic "а"
inside "alice". Names that differ only in case or compatibility forms are one person.
"""

from __future__ import annotations

import unicodedata

from facecnn.errors import FacecnnError

UNKNOWN = "unknown"
# Letters of these scripts look alike ("a" and Cyrillic "а"); one name never mixes them.
_CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")
# Control, format (zero-width, bidi overrides), separators other than space, private use,
# surrogates and unassigned code points: all invisible or ambiguous.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"}


def _script(char: str) -> str | None:
    name = unicodedata.name(char, "")
    return next((s for s in _CONFUSABLE_SCRIPTS if name.startswith(s + " ")), None)


def _problem(name: str) -> str | None:
    if not name or len(name) > 100:
        return "use 1 to 100 characters"
    if name != name.strip():
        return "no surrounding spaces"
    if name in (".", "..") or any(c in "/\\" for c in name):
        return "no slashes, and not '.' or '..'"
    if name_key(name) == UNKNOWN:
        return f"{UNKNOWN!r} is what strangers are called"
    for char in name:
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES or (category == "Zs" and char != " "):
            return f"no invisible or control characters (U+{ord(char):04X})"
    scripts = {s for s in map(_script, name) if s}
    if len(scripts) > 1:
        return f"it mixes {' and '.join(sorted(scripts)).title()} letters that look alike"
    return None


def check_name(name: str) -> str:
    """The name in NFC form, or FacecnnError saying what is wrong with it."""
    normal = unicodedata.normalize("NFC", name) if isinstance(name, str) else ""
    problem = _problem(normal)
    if problem:
        raise FacecnnError(f"invalid person name {name!r}: {problem}")
    return normal


def name_key(name: str) -> str:
    """Equal for names a person would read as the same ("Ana", "ana", "Ａｎａ")."""
    return unicodedata.normalize("NFKC", name).casefold()
