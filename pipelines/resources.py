"""Dagster resources: the lake (one writer for every table) and the landing zone."""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from mcp_catalog.governance.keys import DeidKeys, load_keys
from pipelines.lake import DEFAULT_LAKE, Lake


class LakeResource(dg.ConfigurableResource):
    """The Delta lake every asset writes through.

    ``root`` defaults to ``$BIOFED_LAKE`` or ``./lake``; ``storage_options`` go to delta-rs for
    object stores (endpoint, credentials), so the same code runs on S3-compatible storage.
    """

    root: str = Field(default_factory=lambda: os.environ.get("BIOFED_LAKE", DEFAULT_LAKE))
    storage_options: dict[str, str] = Field(default_factory=dict)

    def lake(self) -> Lake:
        """The lake handle."""
        return Lake(self.root, self.storage_options)

    def deid_keys(self) -> DeidKeys:
        """Pseudonym and date-shift keys: environment first, else the lake's restricted key file."""
        return load_keys(self.lake().local_path("restricted/keys.json"))


class LandingResource(dg.ConfigurableResource):
    """Where source systems drop files: ``$BIOFED_LANDING`` or ``./landing``."""

    root: str = Field(default_factory=lambda: os.environ.get("BIOFED_LANDING", "./landing"))

    def silo(self, name: str) -> Path:
        """The landing folder of one silo (``ehr``, ``lab``, ...)."""
        return Path(self.root) / name
