"""Run the catalog server over stdio for one role (``biofed serve --lake L --role R``)."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mcp_catalog.manifest import ManifestError, load_manifest
from mcp_catalog.roles import UnknownRoleError
from mcp_catalog.server import CatalogBuildError, build_server

EXIT_CONFIGURATION = 2


def run_stdio(lake: str | Path, role: str) -> None:
    """Load ``<lake>/_catalog/manifest.json``, build the server and serve it on stdio.

    Configuration problems (no or invalid manifest, unknown role, a missing table) print
    their message to stderr and exit with status 2, without a traceback.

    Args:
        lake: the lake root folder.
        role: the role the server runs as.

    Raises:
        SystemExit: with status 2 on a configuration problem.
    """
    try:
        manifest = load_manifest(Path(lake) / "_catalog" / "manifest.json")
        server = build_server(manifest, lake, role=role)
    except (ManifestError, UnknownRoleError, CatalogBuildError) as exc:
        print(f"biofed serve: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIGURATION) from None
    server.run("stdio")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m mcp_catalog.serve --lake L --role R``."""
    parser = argparse.ArgumentParser(
        prog="python -m mcp_catalog.serve",
        description="Serve the biofed catalog over stdio for one role.",
    )
    parser.add_argument("--lake", required=True, help="lake root folder")
    parser.add_argument("--role", default="researcher", help="role to serve (default: researcher)")
    args = parser.parse_args(argv)
    run_stdio(args.lake, args.role)


if __name__ == "__main__":
    main()
