"""The Dagster code location: everything under ``defs/``, plus the shared resources."""

from pathlib import Path

import dagster as dg

from pipelines.resources import LakeResource, LandingResource


def build_definitions(lake: str | None = None, landing: str | None = None) -> dg.Definitions:
    """All definitions, with the lake and landing roots given or taken from the environment.

    Args:
        lake: lake root; ``$BIOFED_LAKE`` or ``./lake`` when None.
        landing: landing root; ``$BIOFED_LANDING`` or ``./landing`` when None.
    """
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent / "defs"),
        dg.Definitions(
            resources={
                "lake": LakeResource() if lake is None else LakeResource(root=lake),
                "landing": LandingResource() if landing is None else LandingResource(root=landing),
            }
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
