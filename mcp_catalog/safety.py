"""Output safety for data leaving the MCP server.

Everything a tool returns from a source system is data, never instructions, and a model reads
it verbatim. Before strings leave the server they are:

* cleaned: invisible and control characters are stripped (tag characters can spell a whole
  hidden prompt; bidi overrides can show one text and mean another), and links are defanged so
  that nothing in the answer loads or opens a URL by itself (a markdown image to an outside
  host is a classic exfiltration channel);
* capped: one field holds at most ``MAX_FIELD_CHARS`` characters, with an explicit marker;
* fenced, when the column is free text: wrapped in ``FENCE_OPEN`` ... ``FENCE_CLOSE``, the
  label that tells the model "this is untrusted data from a source system";
* flagged: text that reads like instructions to a model is counted and its column listed, so
  the caller can say so in the result (the text itself is still returned: suppressing it would
  hide clinical content, and the fence already labels it);
* paged honestly: whole rows are kept while the page fits ``MAX_PAGE_BYTES`` and the page says
  ``truncated`` when rows were dropped.

Decisions worth knowing:

* Nothing is normalised beyond stripping (no NFKC): accents, CJK and clinical symbols are kept.
  Unicode's invisible characters are stripped everywhere, including the zero-width joiner
  inside emoji sequences (a family emoji becomes its separate people) and the zero-width
  non-joiner some scripts use; that costs rendering, never meaning for the data, and it is safe.
* ``\\r\\n`` and a lone ``\\r`` become ``\\n`` (a line break, not hidden text, so not counted);
  every other C0/C1 control character except ``\\n`` and ``\\t`` is stripped and counted.
* Defanged links stay readable: ``https://evil.example/x`` becomes
  ``hxxps://evil[.]example/x``, ``[text](url)`` becomes ``text (defanged url)``,
  ``![alt](url)`` becomes ``[image: alt]`` (the URL of an image is dropped), and ``<a``,
  ``<img`` and other active HTML tags lose their ``<`` (it becomes ``‹``).
* The instruction heuristic is English-only and keyword based; see ``looks_like_instruction``.
"""

import json
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

MAX_FIELD_CHARS = 2000
"""Default cap on the characters of one string field."""

MAX_PAGE_BYTES = 1_000_000
"""Default cap on one page of rows, in UTF-8 bytes of its compact JSON."""

FENCE_OPEN = "<untrusted-data>"
"""Opens free text from a source system: what follows is data to read, never instructions."""

FENCE_CLOSE = "</untrusted-data>"
"""Closes the fence opened by ``FENCE_OPEN``; text inside cannot forge it (see ``fence``)."""

# Unicode category Cf, the Default_Ignorable_Code_Point property (which adds Hangul fillers,
# the combining grapheme joiner, Khmer inherent vowels and Mongolian variation selectors),
# variation selectors, C0/C1 controls other than \t and \n (\r is handled before), and lone
# surrogates (never valid text; they would also break UTF-8 encoding of the answer).
# tests/mcp_catalog/test_safety.py checks this against unicodedata's Cf and Cc sets.
_INVISIBLE = re.compile(
    "["
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2"
    "\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164"
    "\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
    "\ud800-\udfff"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
    "]"
)
_CARRIAGE_RETURN = re.compile("\r\n?")
_TAGS_TO_ASCII = {code: code - 0xE0000 for code in range(0xE0020, 0xE007F)}

_HOST = r"[^\s/\\?#<>\"'`()\[\]{}|^]*"
_WEB_URL = rf"(?P<scheme>https?|ftps?)(?P<sep>:[/\\]+)(?P<host>{_HOST})"
_BARE_WWW = rf"\b(?P<www>www\d{{0,3}})\.(?P<whost>{_HOST})"
_PROTOCOL_RELATIVE = r"//(?<![\w:/\\\]]//)(?P<phost>[a-z0-9-]+(?:\.[a-z0-9-]+)+)"
_FILE_URL = rf"\b(?P<file>file):(?P<fsep>[/\\]+)(?P<fhost>{_HOST})"
_SCRIPT_URL = r"\b(?P<script>(?:java|vb)script)\s*:"
_DATA_URL = r"\b(?P<data>data):(?=[\w.+-]+/[\w.+-]|[;,])"
_URL_ALTERNATIVES = "|".join(
    (_WEB_URL, _BARE_WWW, _PROTOCOL_RELATIVE, _FILE_URL, _SCRIPT_URL, _DATA_URL)
)

_ACTIVE_TAGS = (
    "a|applet|audio|base|button|embed|form|frame|frameset|iframe|image|img|input|link|"
    "math|meta|object|picture|portal|script|source|style|svg|track|video"
)
_LINK = re.compile(
    # Bounded parts without brackets keep the scan linear; a link or image too long or too
    # nested for these is still broken up by the leftover rules.
    r"(?P<image>!\[(?P<alt>[^\[\]\n]{0,500})\]\((?P<isrc>[^()\n]{0,2000})\))"
    r"|(?P<mdlink>\[(?P<text>[^\[\]\n]{0,500})\]\((?P<href>[^()\n]{0,2000})\))"
    r"|(?P<tag><(?=/?(?:" + _ACTIVE_TAGS + r")\b))"
    r"|(?P<leftover_link>\]\()"
    r"|(?P<leftover_image>!\[)"
    r"|" + _URL_ALTERNATIVES,
    re.IGNORECASE,
)
# Where any rule of _LINK could start, for lower-cased text. Every alternative begins with a
# literal, which lets the regex engine skip ahead; _LINK itself tries every rule everywhere.
_LINK_START = re.compile(
    r"\]\(|!\[|<(?=/?(?:" + _ACTIVE_TAGS + r")\b)|https?:[/\\]|ftps?:[/\\]|www\d{0,3}\."
    r"|//[a-z0-9-]+\.|file:[/\\]|script\s*:|data:(?:[\w.+-]+/|[;,])"
)
_DEFANGED_SCHEMES = {"http": "hxxp", "https": "hxxps", "ftp": "fxp", "ftps": "fxps"}

_FENCE_TAG = re.compile(r"(?:<|＜|﹤|&lt;)(?=\s*/?\s*untrusted[\s_-]*data)", re.IGNORECASE)


@dataclass
class SafetyStats:
    """What the safety pass changed or noticed in one page; every field is a count."""

    invisible_removed: int = 0
    """Invisible, format and control characters stripped."""
    links_defanged: int = 0
    """URLs, markdown links and images, and active HTML tags neutralised."""
    fields_truncated: int = 0
    """String fields cut to the field cap."""
    instruction_like: int = 0
    """Fields whose text looks like instructions to a model."""
    rows_dropped_for_bytes: int = 0
    """Rows left off the end of the page to keep it within the byte cap."""


def _defang_host(host: str) -> str:
    return host.replace(".", "[.]")


def _defang_url_match(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups["scheme"] is not None:
        scheme = _DEFANGED_SCHEMES[groups["scheme"].lower()]
        return f"{scheme}{groups['sep']}{_defang_host(groups['host'])}"
    if groups["www"] is not None:
        return f"{groups['www']}[.]{_defang_host(groups['whost'])}"
    if groups["phost"] is not None:
        return f"//{_defang_host(groups['phost'])}"
    if groups["file"] is not None:
        return f"{groups['file']}[:]{groups['fsep']}{_defang_host(groups['fhost'])}"
    if groups["script"] is not None:
        return f"{groups['script']}[:]"
    return f"{groups['data']}[:]"


def _defang_inner(text: str) -> str:
    # The parts of a link or image hold no brackets (alt, text) or parentheses (href), so
    # this recursion is shallow and ends.
    return _LINK.sub(_defang_match, text) if _may_hold_link(text) else text


def _defang_match(match: re.Match[str]) -> str:
    if match.group("image") is not None:
        return f"[image: {_defang_inner(match.group('alt'))}]"
    if match.group("mdlink") is not None:
        return f"{_defang_inner(match.group('text'))} ({_defang_inner(match.group('href'))})"
    if match.group("tag") is not None:
        return "‹"
    if match.group("leftover_link") is not None:
        return "] ("
    if match.group("leftover_image") is not None:
        return "! ["
    return _defang_url_match(match)


def _may_hold_link(text: str) -> bool:
    """False when no link rule can match: most values skip the (much slower) link pass."""
    return _LINK_START.search(text.lower()) is not None


def _clean(value: str) -> tuple[str, int, int]:
    """``clean_text`` without the bookkeeping: (text, invisible removed, links defanged)."""
    if "\r" in value:
        value = _CARRIAGE_RETURN.sub("\n", value)
    if value.isascii() and value.isprintable():  # printable ASCII holds nothing to strip
        text, invisible = value, 0
    else:
        text, invisible = _INVISIBLE.subn("", value)
    links = 0
    if _may_hold_link(text):
        text, links = _LINK.subn(_defang_match, text)
    return text, invisible, links


def clean_text(value: str, stats: SafetyStats) -> str:
    """Strip invisible characters and defang links in one string from source data.

    Stripped: Unicode format characters (category Cf: zero-width space and joiners, word
    joiner, BOM, soft hyphen, bidi embeddings, overrides, isolates and marks, tag characters
    U+E0000-U+E007F), the other default-ignorable code points (Hangul fillers, combining
    grapheme joiner, ...), variation selectors U+FE00-U+FE0F and U+E0100-U+E01EF, lone
    surrogates, and C0/C1 control characters except ``\\n`` and ``\\t``. ``\\r\\n`` and a lone
    ``\\r`` become ``\\n``. Nothing else is normalised (no NFKC), so clinical text, accents,
    CJK and emoji are kept; the zero-width joiner inside an emoji sequence is stripped too,
    which splits the emoji but hides nothing.

    Defanged: http, https, ftp and ftps URLs become ``hxxps://evil[.]example/x`` (scheme
    renamed, dots of the host bracketed); bare ``www.`` hosts and protocol-relative ``//host``
    get bracketed dots; ``file:``, ``data:``, ``javascript:`` and ``vbscript:`` get ``[:]``;
    a markdown link ``[text](url)`` becomes ``text (defanged url)``; a markdown image
    ``![alt](url)`` becomes ``[image: alt]`` with the URL dropped; any leftover ``](`` or
    ``![`` is split so that no renderer sees link or image syntax; the ``<`` of ``<a``,
    ``<img``, ``<iframe``, ``<script``, ``<svg`` and other active HTML tags becomes ``‹``.
    Cleaning is idempotent: cleaning cleaned text changes and counts nothing.

    Args:
        value: The text to clean.
        stats: Counters to add to: ``invisible_removed`` (characters) and
            ``links_defanged`` (links, images and tags).

    Returns:
        The cleaned text.
    """
    text, invisible, links = _clean(value)
    stats.invisible_removed += invisible
    stats.links_defanged += links
    return text


# Instruction detection runs on lower-cased text. Each rule starts with a literal anchor (a
# word, or "<", "[" or a line break) so that the regex engine scans for that literal instead
# of trying every rule at every position, and only rules whose anchor occurs in the text run:
# a 2,000-character note costs microseconds, not milliseconds.

# Words that may stand between "ignore" and "instructions" in an override attempt, and the
# ones of them that mark it as aimed at earlier instructions (a model's), not at a clinical
# rule: "Ignore all previous instructions" but not "Ignore the fasting rule" or "disregard
# prior dosing instructions".
_WEAK = r"(?:the|these|those|of|my|our|its|current|given|provided|other|old|above-mentioned)"
_STRONG = (
    r"(?:all|any|every|previous|previously|prior|above|earlier|preceding|foregoing|former|"
    r"original|initial|existing|system|developer|safety|your)"
)
_OVERRIDE_NOUN = (
    r"(?:instructions?|prompts?|directives?|directions|guidelines|guardrails|rules|commands|"
    r"context|messages|policies|constraints|restrictions|programming|training)"
)
_OVERRIDE_OBJECT = (
    rf"(?:(?:{_WEAK}\s+){{0,4}}{_STRONG}\s+(?:(?:{_WEAK}|{_STRONG})\s+){{0,4}}{_OVERRIDE_NOUN}\b"
    r"|(?:everything|anything|all)\s+(?:above|before|previously|prior|said|"
    r"(?:that\s+)?you\s+(?:were|have\s+been)\s+told)\b"
    r"|(?:\w+\s+){0,2}?(?:guardrails|programming|filters|safety\s+(?:rules|guidelines|filters|"
    r"policies)|content\s+polic(?:y|ies))\b)"
)
_OVERRIDE_VERBS = ("ignore", "disregard", "forget", "override", "bypass", "skip", "discard")
# An override counts unless its verb is reported rather than commanded: "Patient instructed
# to ignore ...", "she may disregard ...", "did not ignore ..." do not qualify ("Patient ignored
# ..." does not match the verb at all). "you should ignore ..." has a rule of its own.
_REPORTED = (
    "to not will would did does do may might could can should must shall often sometimes "
    "usually never"
)
_MODEL = (
    r"(?:(?:ai|llm|chatbot|claude|chatgpt|copilot|gemini)\b|a\.i\.|gpt(?:-?\d+)?\b|"
    r"language\s+model\b|ai\s+(?:assistant|model|agent)\b)"
)
_CALL_OBJECT = (
    r"\s+(?:the\s+)?(?:tool\s+|function\s+)?`?"
    r"(?:query|aggregate|list|get|read|fetch|search|delete|update|write|send|export)_\w+"
)
_HIDE_FROM_USER = (
    r"\s+(?:tell(?:ing)?|inform(?:ing)?|alert(?:ing)?|notify(?:ing)?|let(?:ting)?|"
    r"(?:mention|reveal|show)(?:ing)?(?:\s+(?:this|it))?(?:\s+to)?)\s+the\s+"
    r"(?:user|human|operator|requester)\b"
)
_PROMPT_OBJECT = (
    r"\s+(?:me\s+)?(?:your\s+(?:\w+\s+)?(?:prompt|instructions)|the\s+system\s+prompt|"
    r"the\s+(?:hidden|secret|original|initial)\s+(?:prompt|instructions))\b"
)
# (anchor words, what follows the anchor). A rule matches where its anchor starts a word.
_WORD_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    *(
        (
            (verb,),
            "".join(rf"(?<!\b{word} {verb})" for word in _REPORTED.split())
            + rf"(?<!n't {verb})\s+{_OVERRIDE_OBJECT}",
        )
        for verb in _OVERRIDE_VERBS
    ),
    (
        ("you",),
        r"\s+(?:must|should|need\s+to|have\s+to|will|can|may)\s+(?:now\s+)?"
        rf"(?:{'|'.join(_OVERRIDE_VERBS)})\s+{_OVERRIDE_OBJECT}",
    ),
    # A new identity or mode.
    (
        ("you",),
        r"\s+are\s+now\s+(?:an?\s+|the\s+|my\s+|in\s+|acting\s+as\s+)?(?:\w+\s+)?"
        r"(?:mode|assistant|ai|model|chatbot|bot|agent|dan|jailbroken|unrestricted|unfiltered|"
        r"admin|administrator|developer|root|system|superuser)\b",
    ),
    (
        ("developer", "admin", "debug", "god", "dan", "sudo", "jailbreak", "unrestricted"),
        r"\s+mode\b",
    ),
    (("jailbreak", "jailbroken"), r"\b"),
    (("pretend",), r"\s+(?:to\s+be|you\s+are|that\s+you)\b"),
    (("role",), r"-?play\s+as\b"),
    (("roleplay",), r"\s+as\b"),
    (
        ("act",),
        r"\s+as\s+(?:if\s+you|an?\s+(?:unrestricted|unfiltered|different|new)|"
        r"the\s+(?:system|admin|administrator|developer))\b",
    ),
    # The model's own prompt.
    (("system", "initial", "original", "hidden", "secret"), r"\s+prompt\b"),
    (("reveal", "print", "show", "output", "repeat", "display", "leak", "dump"), _PROMPT_OBJECT),
    (("tell",), r"\s+me" + _PROMPT_OBJECT),
    (
        ("as",),
        r"\s+an?\s+(?:(?:ai|llm)\b|a\.i\.|artificial\s+intelligence\b|(?:ai\s+)?language\s+model\b|"
        r"ai\s+(?:assistant|model|agent)\b)",
    ),
    # Instructions addressed to the model.
    (
        ("new", "updated", "additional", "real", "actual", "true", "secret", "hidden"),
        r"\s+(?:system\s+)?instructions?\s+(?:for|to)\s+(?:the\s+|any\s+)?"
        rf"(?:assistant|model|agent|you\b|{_MODEL})",
    ),
    (
        ("your",),
        r"\s+(?:new|real|actual|true|updated)\s+(?:instructions|task|goal|objective|role|"
        r"purpose)\b",
    ),
    # Hiding things from the person the model works for.
    (("do",), r"\s+not" + _HIDE_FROM_USER),
    (("don",), r"['’]?t" + _HIDE_FROM_USER),
    (("dont", "never", "without"), _HIDE_FROM_USER),
    (("hide", "conceal", "keep"), r"\s+(?:this|it|that)\s+(?:secret\s+)?from\s+the\s+user\b"),
    # Tool and code execution.
    (
        ("call", "invoke", "trigger"),
        r"\s+(?:the\s+|this\s+|that\s+|a\s+|another\s+|your\s+)?(?:\w+\s+)?(?:tool|function)s?\b",
    ),
    (("use",), r"\s+(?:the|this|that|another|your)\s+\w+\s+tool\b"),
    (("call", "invoke", "use", "run", "execute", "trigger"), _CALL_OBJECT),
    (("tool", "function"), r"_?call\b"),
    (("toolcall", "functioncall"), r"\b"),
    (
        ("execute", "run"),
        r"\s+(?:the\s+following\s+|this\s+|these\s+|that\s+|an?\s+|the\s+)?(?:\w+\s+)?"
        r"(?:commands?|sql|quer(?:y|ies)|scripts?|shell|python|bash)\b"
        r"|\s+(?:this|the\s+following|following)\s+(?:\w+\s+)?code\b",
    ),
    # Vocatives.
    (("dear", "attention", "hey", "hi", "hello"), rf"\s+{_MODEL}\s*[:,!]"),
    (("note",), rf"\s+to(?:\s+the)?\s+{_MODEL}\s*[:,!]"),
    (
        ("any", "all", "the"),
        r"\s+(?:ai|llms?|language\s+models?|ai\s+(?:assistants?|models?|agents?)|chatbots?)\s+"
        r"(?:reading|processing|summari[sz]ing|parsing|seeing)\b",
    ),
)


def _compile_word_rules() -> dict[bytes, re.Pattern[str]]:
    continuations: dict[str, list[str]] = {}
    for anchors, continuation in _WORD_RULES:
        for anchor in anchors:
            continuations.setdefault(anchor, []).append(continuation)
    return {
        anchor.encode(): re.compile(
            rf"{re.escape(anchor)}(?<=\b{re.escape(anchor)})(?:{'|'.join(rest)})"
        )
        for anchor, rest in continuations.items()
    }


_RULES_BY_ANCHOR = _compile_word_rules()
_ANCHORS = frozenset(_RULES_BY_ANCHOR)
# Lower-cases ASCII letters and blanks every other byte, so that split() yields the words.
_WORDS_ONLY = bytes(
    c | 0x20 if (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A) else 0x20 for c in range(256)
)
# Chat-template role markers: <|im_start|>, <<SYS>>, <system>, </instructions>, ...
_ROLE_TAG = re.compile(
    r"<(?:\|\s*[a-z_]+\s*\||<\s*/?sys\s*>|\s*/?\s*(?:system|assistant|user|developer|"
    r"instructions?|tool_call|tool_use|function_calls?|invoke|im_start|im_end)\s*)>"
)
_INST_TAG = re.compile(r"\[/?inst\]")
# Searched in "\n" + text, so the first line counts as a line too. A role prefix counts when
# its line goes on to address a model: "Assistant: J. Smith, PA-C" in an operative note, or
# "AI: mild" in an echo report, does not.
_ROLE_LINE = re.compile(
    r"\n[ \t]*(?:(?:system|assistant|developer|human|user|ai|model)[ \t]*:[^\n]*\b(?:you|your|"
    r"ignore|disregard|instructions?|prompt|reveal|respond|reply|output|tools?)\b"
    r"|(?:new|updated)\s+(?:system\s+)?instructions\s*:[^\n]*\b(?:ignore|disregard|assistant|"
    r"model|llm|tools?|reveal|system|prompt)\b)"
)
# A fake conversation: a user turn, then an assistant turn, each at a line start.
_USER_TURN = re.compile(r"\n[ \t]*(?:human|user)[ \t]*:")
_ASSISTANT_TURN = re.compile(r"\n[ \t]*assistant[ \t]*:")
# The line rules above cannot match without one of these words.
_LINE_WORDS = frozenset(
    {b"system", b"assistant", b"developer", b"human", b"user", b"ai", b"model", b"new", b"updated"}
)
# Anchors that are an instruction all by themselves ("jailbreak", "toolcall").
_ONE_WORD_INSTRUCTIONS = frozenset(
    anchor.decode()
    for anchor, rule in _RULES_BY_ANCHOR.items()
    if rule.fullmatch(anchor.decode()) is not None
)


def _instruction_like(text: str) -> bool:
    """``looks_like_instruction`` on text that ``clean_text`` already cleaned."""
    if not text.isascii():
        # Fullwidth and other compatibility forms read like their ASCII letters to a model;
        # NFKC here only serves the match, the returned text is not normalised.
        text = unicodedata.normalize("NFKC", text)
    low = text.lower()
    words = set(low.encode("utf-8", "surrogatepass").translate(_WORDS_ONLY).split())
    for anchor in words & _ANCHORS:
        if _RULES_BY_ANCHOR[anchor].search(low) is not None:
            return True
    if "<" in low and _ROLE_TAG.search(low) is not None:
        return True
    if "[" in low and _INST_TAG.search(low) is not None:
        return True
    if ":" in low and not words.isdisjoint(_LINE_WORDS):
        lines = "\n" + low
        if _ROLE_LINE.search(lines) is not None:
            return True
        user_turn = _USER_TURN.search(lines)
        if user_turn is not None and _ASSISTANT_TURN.search(lines, user_turn.end()) is not None:
            return True
    return False


def looks_like_instruction(value: str) -> bool:
    """Tell whether text reads like instructions addressed to an AI model.

    A keyword heuristic, case-insensitive, applied to the text with invisible characters
    stripped (and, separately, replaced by spaces, so they can neither split nor join words;
    and with tag characters read as the ASCII they mirror) and compatibility forms folded
    (fullwidth letters). It looks for: overriding earlier instructions ("Ignore all previous
    instructions", "disregard the system prompt", "forget everything you were told",
    "override your safety filters") unless the verb is reported ("told to ignore", "may
    disregard", "did not ignore"); a new identity or mode ("you are now in admin mode",
    "developer mode", "jailbreak", "pretend to be"); the model's prompt ("system prompt",
    "reveal your instructions", "as an AI"); instructions for the model ("new instructions for
    the assistant", "your new task"); hiding things from the user ("do not tell the user");
    tool and code execution ("call the tool", "call query_patients", "execute the following
    SQL"); chat-template role markers (``<|im_start|>``, ``[INST]``, ``<<SYS>>``,
    ``<system>``); a role prefix at a line start ("system:", "assistant:") followed on its
    line by words aimed at a model; a fake user/assistant transcript; and vocatives ("Dear
    AI,", "any AI reading this").

    To keep false positives low on clinical text the phrasing must be aimed at a model:
    "Patient instructed to ignore the fasting rule", "Patient ignored previous advice on
    diet", "Free-text dosage instructions are withheld", "Assistant: J. Smith, PA-C",
    "Mild AI and trace MR", "Provider chose to override the drug interaction alert" and "You
    are now scheduled for a follow-up" do not match. Known false positive: a note that itself
    tells a patient "Ignore all previous instructions". Known misses: other languages,
    misspellings, homoglyphs from other scripts and paraphrases; the fence, not this flag, is
    what keeps returned text in its place.

    Args:
        value: The text to judge, raw or already cleaned.

    Returns:
        True when the text looks like instructions to a model.
    """
    if "\r" in value:
        value = _CARRIAGE_RETURN.sub("\n", value)
    stripped, removed = _INVISIBLE.subn("", value)
    if _instruction_like(stripped):
        return True
    if removed == 0:
        return False
    # Tag characters mirror ASCII and some models read them as such ("ASCII smuggling"):
    # the returned text loses them, but spelling an instruction in them is worth a flag.
    return _instruction_like(_INVISIBLE.sub(" ", value)) or _instruction_like(
        _INVISIBLE.sub("", value.translate(_TAGS_TO_ASCII))
    )


def fence(value: str) -> str:
    """Wrap free text as labelled untrusted data.

    The result is ``FENCE_OPEN + "\\n" + text + "\\n" + FENCE_CLOSE``. The text cannot close
    the fence early or open a new one: the ``<`` (or its fullwidth and small forms, or
    ``&lt;``) of any embedded ``untrusted-data`` tag, in any case and with any spacing, slash,
    underscore or space in the name, becomes ``‹``. So the result holds exactly one opening
    and one closing tag. Apply it after ``clean_text``, which removes invisible characters
    that could otherwise split a tag name.

    Args:
        value: The text to fence.

    Returns:
        The fenced text.
    """
    return f"{FENCE_OPEN}\n{_FENCE_TAG.sub('‹', value)}\n{FENCE_CLOSE}"


def _truncation_marker(dropped: int) -> str:
    return f" …[truncated {dropped} characters]"


def _cap(value: str, max_chars: int) -> tuple[str, bool]:
    if len(value) <= max_chars:
        return value, False
    return value[:max_chars] + _truncation_marker(len(value) - max_chars), True


def cap_field(value: str, max_chars: int, stats: SafetyStats) -> str:
    """Cut a string to at most ``max_chars`` characters and say so.

    A cut string ends with `` …[truncated N characters]``, N being the number of characters
    dropped; the marker is not counted in ``max_chars``.

    Args:
        value: The text to cap.
        max_chars: The most characters to keep.
        stats: Counters to add to: ``fields_truncated``.

    Returns:
        The text, cut and marked when it was longer than ``max_chars``.

    Raises:
        ValueError: when ``max_chars`` is negative.
    """
    if max_chars < 0:
        raise ValueError("max_chars must be zero or more")
    text, cut = _cap(value, max_chars)
    if cut:
        stats.fields_truncated += 1
    return text


@dataclass(frozen=True)
class ShapedPage:
    """One page of rows made safe to return, with what the safety pass did to it."""

    rows: list[dict[str, Any]]
    """The kept rows, in order; string values cleaned, capped and (free text) fenced."""
    truncated: bool
    """True when rows were dropped from the end to fit the byte cap."""
    stats: SafetyStats
    """What was changed or noticed in the kept rows."""
    flagged_columns: list[str]
    """Columns of the kept rows holding instruction-like text, sorted."""


# shape_rows reads at most this many characters of one value (times the field cap, and at
# least the minimum): cleaning only shrinks text by what it strips, so this is plenty.
_RAW_WINDOW_FACTOR = 4
_RAW_WINDOW_MIN = 1024

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json_bytes(row: Any) -> int:
    text = _JSON.encode(row)
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def shape_rows(
    rows: list[dict[str, Any]],
    *,
    text_columns: Collection[str],
    free_text_columns: Collection[str],
    max_field_chars: int = MAX_FIELD_CHARS,
    max_bytes: int = MAX_PAGE_BYTES,
) -> ShapedPage:
    """Make one page of rows safe to return to a model, and fit it in a byte budget.

    Every string value in ``text_columns`` (pass every column whose strings come from source
    data) goes through ``clean_text`` and then ``cap_field``. Values in
    ``free_text_columns`` (treated as text columns too) are then wrapped by ``fence``; the
    fence is not counted in the cap, and an empty string stays empty. To bound the work per
    field, only the first ``4 * max_field_chars`` characters (at least 1,024) of a value are
    read; the rest is dropped unread and counted in the truncation marker. Text that
    ``looks_like_instruction`` (judged on the cleaned, capped text, which is what is returned,
    and on the raw text too when invisible characters were stripped from it) is counted and
    its column listed; it is still returned, fenced when free text. Values that
    are not strings (None, numbers, booleans) and columns outside both sets are untouched.
    The input rows are not modified.

    Then whole rows are kept from the start while the page, measured as
    ``len(json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode())``, stays
    within ``max_bytes``; the rest are dropped and ``truncated`` is set, so the caller can
    page on from the first dropped row. A row is never cut. If even the first row does not
    fit, the page is empty and truncated. Rows past the first one that does not fit are not
    processed at all, and the stats describe the kept rows only. Sizes are computed per row,
    so the cost is linear in the page.

    Args:
        rows: JSON-ready rows (strings, numbers, booleans, None, lists and dicts of them).
        text_columns: Columns whose string values come from source data.
        free_text_columns: Columns holding free text (notes, verbatim terms) to fence.
        max_field_chars: The most characters of one string value, before the marker.
        max_bytes: The most UTF-8 bytes of the page's compact JSON.

    Returns:
        The shaped page.

    Raises:
        ValueError: when ``max_field_chars`` or ``max_bytes`` is negative.
        TypeError: when a row holds a value JSON cannot encode.
    """
    if max_field_chars < 0:
        raise ValueError("max_field_chars must be zero or more")
    if max_bytes < 0:
        raise ValueError("max_bytes must be zero or more")
    free = frozenset(free_text_columns)
    text = frozenset(text_columns) | free
    stats = SafetyStats()
    flagged: set[str] = set()
    kept: list[dict[str, Any]] = []
    # Clinical columns repeat their values (codes, displays, statuses): each distinct string
    # is shaped once per page, per kind (free text or not). Entries: (output, invisible,
    # links, truncated, instruction-like).
    shaped: dict[bool, dict[str, tuple[str, int, int, bool, bool]]] = {False: {}, True: {}}
    # Rows of a page share their columns: work out which to shape once per set of keys.
    plans: dict[tuple[str, ...], list[tuple[str, bool]]] = {}
    shaped_rows: list[dict[str, Any]] = []
    row_stats: list[tuple[int, int, int, list[str]]] = []
    for row in rows:
        keys = tuple(row)
        plan = plans.get(keys)
        if plan is None:
            plan = plans[keys] = [(column, column in free) for column in keys if column in text]
        new_row = dict(row)
        invisible = links = truncated = 0
        row_flags: list[str] = []
        for column, is_free in plan:
            value = row[column]
            if not isinstance(value, str):
                continue
            cache = shaped[is_free]
            entry = cache.get(value)
            if entry is None:
                entry = cache[value] = _shape_value(value, is_free, max_field_chars)
            new_row[column] = entry[0]
            if entry[1] or entry[2] or entry[3] or entry[4]:
                invisible += entry[1]
                links += entry[2]
                truncated += entry[3]
                if entry[4]:
                    row_flags.append(column)
        shaped_rows.append(new_row)
        row_stats.append((invisible, links, truncated, row_flags))
    # One encoding of the whole page usually shows it fits; only a page over the cap is
    # measured row by row to find the last whole row that does.
    if _json_bytes(shaped_rows) <= max_bytes:
        kept = shaped_rows
    else:
        size = 2  # the enclosing brackets of the JSON array
        for new_row in shaped_rows:
            row_size = _json_bytes(new_row) + (1 if kept else 0)  # a comma before all but one
            if size + row_size > max_bytes:
                break
            size += row_size
            kept.append(new_row)
    for invisible, links, truncated, row_flags in row_stats[: len(kept)]:
        stats.invisible_removed += invisible
        stats.links_defanged += links
        stats.fields_truncated += truncated
        stats.instruction_like += len(row_flags)
        flagged.update(row_flags)
    stats.rows_dropped_for_bytes = len(rows) - len(kept)
    return ShapedPage(
        rows=kept,
        truncated=len(kept) < len(rows),
        stats=stats,
        flagged_columns=sorted(flagged),
    )


def _shape_value(
    value: str, is_free: bool, max_field_chars: int
) -> tuple[str, int, int, bool, bool]:
    if value.isalnum() and value.isascii() and len(value) <= max_field_chars:
        # One plain word (a pseudonym, a code): nothing to clean, cap or read as a sentence.
        text, invisible, links, cut = value, 0, 0, False
        instruction = value.lower() in _ONE_WORD_INSTRUCTIONS
    else:
        # Work per field is bounded: a huge value is read only as far as could matter.
        window = max(_RAW_WINDOW_FACTOR * max_field_chars, _RAW_WINDOW_MIN)
        unread = max(len(value) - window, 0)
        raw = value[:window] if unread else value
        text, invisible, links = _clean(raw)
        dropped = max(len(text) - max_field_chars, 0) + unread
        cut = dropped > 0
        if cut:
            text = text[:max_field_chars] + _truncation_marker(dropped)
        # Invisible characters can join words as well as split them: judge both readings.
        instruction = _instruction_like(text) or (invisible > 0 and looks_like_instruction(raw))
    if is_free and text:
        text = fence(text)
    return text, invisible, links, cut, instruction
