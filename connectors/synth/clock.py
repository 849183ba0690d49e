"""Local wall-clock time at a site, rendered as FHIR dateTime with the UTC offset of the day.

US daylight saving time is computed from its rule (second Sunday of March to first Sunday of
November, since 2007) rather than read from the machine's time-zone database, so the output
does not depend on what tzdata happens to be installed.
"""

from datetime import date, datetime, timedelta

from connectors.synth.demographics import Site


def _nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    first_sunday = first + timedelta(days=(6 - first.weekday()) % 7)
    return first_sunday + timedelta(weeks=n - 1)


_DST_CACHE: dict[int, tuple[datetime, datetime]] = {}


def _dst_bounds(year: int) -> tuple[datetime, datetime]:
    bounds = _DST_CACHE.get(year)
    if bounds is None:
        start = datetime.combine(_nth_sunday(year, 3, 2), datetime.min.time()) + timedelta(hours=2)
        end = datetime.combine(_nth_sunday(year, 11, 1), datetime.min.time()) + timedelta(hours=2)
        bounds = _DST_CACHE[year] = (start, end)
    return bounds


def utc_offset(site: Site, local: datetime) -> str:
    """The ``±HH:MM`` offset of the site's clock at a local wall-clock time.

    Args:
        site: the site whose clock is read.
        local: a naive local date-time.

    Returns:
        The offset, for instance ``-05:00`` in Boston in January and ``-04:00`` in July.
    """
    hours = site.utc_offset_hours
    if site.observes_dst:
        start, end = _dst_bounds(local.year)
        if start <= local < end:
            hours += 1
    sign = "-" if hours < 0 else "+"
    return f"{sign}{abs(hours):02d}:00"


def fhir_datetime(site: Site, local: datetime) -> str:
    """A FHIR ``dateTime`` (seconds precision, with offset) for a local time at a site.

    Args:
        site: the site whose clock is read.
        local: a naive local date-time.

    Returns:
        For instance ``2021-03-04T09:15:00-05:00``.
    """
    return local.isoformat(timespec="seconds") + utc_offset(site, local)
