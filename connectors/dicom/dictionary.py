"""The parts of pydicom's data dictionaries the parser needs, as plain dicts.

Pool workers get these tables from the process that starts the pool (about 170 KB,
2 ms to unpickle) instead of importing pydicom, which with numpy costs about 0.3 s every
time a fork server starts. The tables are built from pydicom, lazily, in the process that
reads first; pydicom itself is imported by a worker only for what the tables do not hold
(ISO 2022 code extensions, misspelled character set terms).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Tables:
    """Lookup tables taken from pydicom.

    Attributes:
        vrs: standard tag -> VR as the dictionary writes it ('US or SS' included).
        repeaters: (mask, value, VR) of the repeating groups, in pydicom's order: a tag
            matches when ``tag & mask == value``.
        private: private creator -> {'ggggeeee', 'ggggxxee' or 'ggxxxxee' key -> VR}.
        charsets: Specific Character Set term -> Python codec.
        sop_classes: SOP Class UID -> its registered name.
    """

    vrs: dict[int, str]
    repeaters: tuple[tuple[int, int, str], ...]
    private: dict[str, dict[str, str]]
    charsets: dict[str, str]
    sop_classes: dict[str, str]


_installed: Tables | None = None


def tables() -> Tables:
    """The tables of this process: installed by the pool, else built from pydicom once.

    Returns:
        The lookup tables.
    """
    global _installed
    if _installed is None:
        _installed = _from_pydicom()
    return _installed


def install(shipped: Tables) -> None:
    """Use tables built elsewhere (the pool's worker initializer).

    Args:
        shipped: tables built by ``tables()`` in the process that started the pool.
    """
    global _installed
    _installed = shipped


def _from_pydicom() -> Tables:
    from pydicom._uid_dict import UID_dictionary
    from pydicom.charset import python_encoding
    from pydicom.datadict import DicomDictionary, RepeatersDictionary, private_dictionaries

    repeaters = tuple(
        (
            int("".join("0" if c == "x" else "F" for c in mask), 16),
            int(mask.replace("x", "0"), 16),
            entry[0],
        )
        for mask, entry in RepeatersDictionary.items()
    )
    return Tables(
        vrs={tag: entry[0] for tag, entry in DicomDictionary.items()},
        repeaters=repeaters,
        private={
            creator: {key: entry[0] for key, entry in entries.items()}
            for creator, entries in private_dictionaries.items()
        },
        charsets=dict(python_encoding),
        sop_classes={uid: e[0] for uid, e in UID_dictionary.items() if e[1] == "SOP Class"},
    )


def standard_vr(tag: int) -> str | None:
    """The VR of a standard attribute, repeating groups included.

    Args:
        tag: the tag as a 32-bit integer.

    Returns:
        The VR as the dictionary writes it, or None when the tag is not in it.
    """
    found = tables()
    vr = found.vrs.get(tag)
    if vr is None and not (tag >> 16) & 1:
        for mask, value, repeater_vr in found.repeaters:
            if tag & mask == value:
                return repeater_vr
    return vr


def private_vr(tag: int, creator: str) -> str | None:
    """The VR of a private element by its creator, looked up as pydicom does.

    Args:
        tag: the tag as a 32-bit integer.
        creator: the value of the private creator element reserving its block.

    Returns:
        The VR, or None when the creator or the element is unknown.
    """
    entries = tables().private.get(creator)
    if entries is None:
        return None
    group = f"{tag >> 16:04X}"
    elem = f"{tag & 0xFFFF:04X}"
    for key in (group + elem, f"{group}xx{elem[2:]}", f"{group[:2]}xxxx{elem[2:]}"):
        vr = entries.get(key)
        if vr is not None:
            return vr
    return None
