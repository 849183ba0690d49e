"""Cross-silo example questions, answered by the catalog's ``find_cohort`` tool on a lake.

``make demo`` ends with these: each question in words, the exact MCP tool call an MCP host
would make for it, and the answer the governed catalog gives on the lake just built. The
calls go to the catalog server in memory, with the role and purpose of the stdio identity in
the server configuration, so each is checked against the policy and audited like any other.
"""

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

COHORT_TOOL = "find_cohort"
DEMO_PRINCIPAL = "biofed-demo"
"""Who asks the examples, in the audit log: ``biofed-demo-1``, ``biofed-demo-2``."""
WIDTH = 96


@dataclass(frozen=True)
class CohortExample:
    """One question in words and the ``find_cohort`` arguments that ask it."""

    question: str
    silos: str
    arguments: dict[str, Any]


EXAMPLES: tuple[CohortExample, ...] = (
    CohortExample(
        question="How many adults with type 2 diabetes have had an HbA1c of 8 % or more and "
        "an imaging study of the chest?",
        silos="EHR conditions and age, laboratory results, imaging",
        arguments={
            "criteria": {
                "conditions": [{"codes": ["44054006"], "system": "http://snomed.info/sct"}],
                "labs": [{"loinc": "4548-4", "min": 8.0}],
                "imaging": [{"body_part": "CHEST"}],
                "age": {"min": 18},
            },
            "output": "count",
        },
    ),
    CohortExample(
        question="How many subjects of trial BIOFED-01 carry rs7903146, the type 2 diabetes "
        "risk variant in TCF7L2 (chr10:112998590 C>T)?",
        silos="genomics, clinical trials",
        arguments={
            "criteria": {
                "variants": [{"chrom": "chr10", "pos": 112998590, "ref": "C", "alt": "T"}],
                "trials": [{"study_id": "BIOFED-01"}],
            },
            "output": "count",
        },
    ),
)
"""The demo's questions; each needs at least two silos joined on the research pseudonym."""


async def _ask_one(lake: str | Path, number: int, example: CohortExample) -> tuple[str, Any]:
    from mcp import Client

    from mcp_catalog.config import load_config
    from mcp_catalog.serve import Identity, open_service

    # One principal per example: the catalog refuses a count whose cohort is within a few
    # people of one the same principal counted before (differencing), as two small example
    # cohorts can be on a small lake.
    identity = Identity(principal=f"{DEMO_PRINCIPAL}-{number}")
    service = open_service(lake, load_config(), identity=identity)
    role = service.stdio_role
    async with Client(service.server_for(role)) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        if COHORT_TOOL not in tools:
            return role, None
        result = await client.call_tool(COHORT_TOOL, example.arguments)
    if result.is_error:
        return role, result.content[0].text if result.content else "refused"
    return role, result.structured_content


async def _ask(lake: str | Path) -> tuple[str, list[Any]]:
    role, answers = "", []
    for number, example in enumerate(EXAMPLES, 1):
        role, answer = await _ask_one(lake, number, example)
        if answer is None:
            return role, []
        answers.append(answer)
    return role, answers


def call_json(arguments: dict[str, Any]) -> str:
    """``find_cohort`` arguments as JSON with one criterion kind per line."""
    criteria = ",\n".join(
        f"     {json.dumps(kind)}: {json.dumps(value)}"
        for kind, value in arguments["criteria"].items()
    )
    rest = "".join(
        f", {json.dumps(key)}: {json.dumps(value)}"
        for key, value in arguments.items()
        if key != "criteria"
    )
    return f'{{"criteria": {{\n{criteria}}}{rest}}}'


def answer_text(answer: Any) -> str:
    """One line for a ``find_cohort`` answer (a structured result, or a refusal's text)."""
    if isinstance(answer, str):
        return f"refused: {answer}"
    if answer["suppressed"]:
        return (
            f"fewer than {answer['min_cell_size']} people: the count is suppressed "
            "(disclosure control)"
        )
    views = ", ".join(answer["datasets"])
    return f"{answer['count']} people (views {views}; materialised {answer['as_of'][:10]})"


def example_calls_text(lake: str | Path) -> str:
    """The example questions, their exact ``find_cohort`` calls and the lake's answers.

    Args:
        lake: the lake root (materialised, with its catalog manifest).

    Returns:
        The text to print.

    Raises:
        ServeError: when the catalog cannot be served from the lake.
    """
    role, answers = anyio.run(_ask, lake)
    if not answers:
        return f"\nThe {role} role is not offered the {COHORT_TOOL} tool by the policy."
    lines = [
        "",
        *textwrap.wrap(
            "Two questions no single silo can answer, and the MCP tool calls that answer them "
            f"(tool {COHORT_TOOL}, asked just now as the {role} of mcp_catalog/server.yaml):",
            WIDTH,
        ),
    ]
    for number, (example, answer) in enumerate(zip(EXAMPLES, answers, strict=True), 1):
        question = f"{number}. {example.question} ({example.silos})"
        lines += [
            "",
            *textwrap.wrap(question, WIDTH, subsequent_indent="   "),
            f"   tools/call {COHORT_TOOL}",
            f"   {call_json(example.arguments)}",
            *textwrap.wrap(
                f"-> {answer_text(answer)}",
                WIDTH,
                initial_indent="   ",
                subsequent_indent="      ",
            ),
        ]
    return "\n".join(lines)
