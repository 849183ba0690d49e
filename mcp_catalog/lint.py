"""Lint catalog text: titles and descriptions are data shown to a model.

A catalog description reaches the model as part of a tool or resource definition, where a
model is inclined to follow what it reads. So it must describe the data and never instruct:
no directions to the reader, no steering towards other tools, no links, nothing hidden. The
linter fails the build on any of these (SECURITY-CASES E: "instruction-like text in catalog
descriptions: the scanner fails the build").

Rules, each reported at most once per text:

* ``empty``: nothing but white space (or invisible characters).
* ``invisible_characters``: anything ``safety.clean_text`` would strip, or a carriage return.
* ``too_long``: more than ``max_chars`` characters.
* ``url``: anything ``safety.clean_text`` would defang (URLs, ``www.`` hosts, markdown links
  and images, active HTML tags) or any other ``scheme://`` or ``mailto:`` address.
* ``mentions_tool``: one of ``tool_names`` as a whole word (any case), or a token shaped like
  a generated tool name (``query_<x>``, ``aggregate_<x>``).
* ``instruction_like``: ``safety.looks_like_instruction``, or phrasing that addresses the
  reader: "you must/should/will ...", "make sure to", "be sure to", "before answering",
  "do not reveal", "remember to", "instead call", and sentences that open with an imperative
  ("Always use ...", "Never mention ...", "Do not use ...", "First call the ...",
  "Please ...", "Call the ...", "Treat as ..."). Descriptive sentences do not match: "Year of
  birth; empty for people aged 90 or more.", "Dates are shifted per person.", "Never null.",
  "Values always include the unit." (the adverb does not open the sentence), "Use of
  tobacco." or "Display text of the code." (no object follows the verb).
"""

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from mcp_catalog.safety import SafetyStats, clean_text, looks_like_instruction

LintRule = Literal[
    "instruction_like", "mentions_tool", "url", "invisible_characters", "too_long", "empty"
]

_MESSAGES: dict[LintRule, str] = {
    "empty": "Text is empty; every catalog entry needs a description.",
    "invisible_characters": (
        "Text contains invisible or control characters; remove them so that what a reviewer "
        "reads is what the model reads."
    ),
    "too_long": "Text is longer than the limit; shorten it.",
    "url": "Text contains a link or address; catalog text must not point outside the catalog.",
    "mentions_tool": (
        "Text mentions a tool; catalog text describes its own data and must not steer the "
        "model towards other tools."
    ),
    "instruction_like": (
        "Text reads like an instruction to the model; describe the data instead of directing "
        "the reader."
    ),
}

_ANY_ADDRESS = re.compile(r"\b[a-z][a-z0-9+.-]{0,31}://|\bmailto:", re.IGNORECASE)
_TOOL_SHAPED = re.compile(r"\b(?:query|aggregate)_\w+", re.IGNORECASE)

# Verbs that, opening a sentence after "Always", "Never" or "Do not", direct the reader.
_IMPERATIVE_VERBS = (
    r"(?:use|call|query|run|invoke|ask|answer|respond|reply|return|include|mention|tell|show|"
    r"reveal|share|say|report|refuse|prefer|choose|pick|select|filter|cite|trust|follow|ignore|"
    r"disregard|apply|assume|treat|summari[sz]e|output|print|display|list|recommend|suggest|"
    r"disclose|provide|send|check|verify|ensure|confirm|add|remove|omit|exclude|round|convert|"
    r"join|combine|compare|describe|explain|warn|inform|make|be|do|let|give|fetch|request|"
    r"consider|interpret|read|look|contact|notify|escalate|flag|mark|remember)"
)
# What follows a verb used as a command: "Call the ...", "Use this ...", "Treat as ...".
# "Use of tobacco", "Call duration", "Return visit date" and "Display text" have none.
_OBJECT = (
    r"(?:the|this|that|these|those|it|them|only|all|any|an?|me|you|your|users?|as|"
    r"query_\w+|aggregate_\w+)\b"
)
_SENTENCE_START = r"(?:^|[.!?;:]\s+|\n\s*)"
_READER_DIRECTED = re.compile(
    "|".join(
        (
            # "you must ...", "you'll ...": catalog text has no reader to address.
            r"\byou(?:['’]ll|\s+(?:must|should|shall|need\s+to|have\s+to|are\s+required\s+to|"
            r"are\s+to|may\s+not|cannot|can['’]t|will))\b",
            r"\b(?:make|be)\s+sure\s+(?:to|that|you)\b",
            r"\b(?:before|when|while)\s+(?:answering|responding|replying|"
            r"you\s+(?:answer|respond|reply))\b",
            r"\b(?:do\s+not|don['’]?t|never)\s+(?:reveal|mention|disclose|tell|share|expose)\b",
            r"\bremember\s+to\b",
            r"\binstead,?\s+(?:call|use|query|run|invoke|ask)\b",
            r"\b(?:call|invoke|query)\s+\S+\s+instead\b",
            _SENTENCE_START + r"please\s+\w",
            # "Always use ...", "Never mention ...", "Do not use ...": "Never null." and
            # "Always positive." describe; "Values always include the unit." is not a command.
            _SENTENCE_START
            + r"(?:please\s+)?(?:always|never|do\s+not|don['’]?t),?\s+"
            + _IMPERATIVE_VERBS
            + r"\b",
            # "First call the ...", "Then use this ...": "First use of the drug." describes.
            _SENTENCE_START
            + r"(?:please\s+)?(?:first|instead|then|also|now),?\s+"
            + _IMPERATIVE_VERBS
            + r"\s+"
            + _OBJECT,
            _SENTENCE_START
            + r"(?:call|invoke|query|use|ask|tell|reveal|ignore|disregard|ensure|prefer|refuse|"
            r"treat|assume|consider|interpret|remember|include|exclude|return|show|list|filter|"
            r"join|combine|apply|cite|mention)\s+" + _OBJECT,
        )
    ),
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LintFinding:
    """One problem in one piece of catalog text."""

    where: str
    """Which text, e.g. ``dataset patients description`` or ``column patients.zip3
    description``."""
    rule: LintRule
    """The rule that fired."""
    message: str
    """A fixed sentence saying what is wrong and what to do; never the text itself."""


def lint_text(
    where: str,
    text: str,
    *,
    tool_names: Collection[str] = (),
    max_chars: int = 2000,
) -> list[LintFinding]:
    """Check one piece of catalog text (a title or a description) before it is published.

    See the module docstring for the rules. Findings come in a fixed order: ``empty``,
    ``invisible_characters``, ``too_long``, ``url``, ``mentions_tool``,
    ``instruction_like``. Text that is empty, or holds nothing but white space and invisible
    characters, is reported as ``empty`` (plus ``invisible_characters``) and not checked
    further. The judging rules read the text with invisible characters removed, so hiding
    them inside a word does not get an instruction past the linter.

    Args:
        where: Names the text in the findings, e.g. ``dataset patients description``.
        text: The text to check.
        tool_names: Names of the server's tools; mentioning any of them is a finding.
        max_chars: The most characters the text may hold.

    Returns:
        The findings, empty when the text passes.

    Raises:
        ValueError: when ``max_chars`` is not positive.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    stats = SafetyStats()
    cleaned = clean_text(text, stats)
    rules: list[LintRule] = []
    if stats.invisible_removed or "\r" in text:
        rules.append("invisible_characters")
    if not cleaned.strip():
        return [_finding(where, "empty"), *(_finding(where, rule) for rule in rules)]
    if len(text) > max_chars:
        rules.append("too_long")
    if stats.links_defanged or _ANY_ADDRESS.search(cleaned) is not None:
        rules.append("url")
    if _mentions_tool(cleaned, tool_names):
        rules.append("mentions_tool")
    if looks_like_instruction(text) or _READER_DIRECTED.search(cleaned) is not None:
        rules.append("instruction_like")
    return [_finding(where, rule) for rule in rules]


def _finding(where: str, rule: LintRule) -> LintFinding:
    return LintFinding(where=where, rule=rule, message=_MESSAGES[rule])


def _mentions_tool(text: str, tool_names: Collection[str]) -> bool:
    if _TOOL_SHAPED.search(text) is not None:
        return True
    names = sorted((name for name in tool_names if name), key=len, reverse=True)
    if not names:
        return False
    pattern = r"(?<!\w)(?:" + "|".join(re.escape(name) for name in names) + r")(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None
