"""Data quality: expectation suites per dataset, freshness SLAs and reports.

Knows nothing of Dagster or MCP; Dagster asset checks in ``pipelines`` call into it.
"""
