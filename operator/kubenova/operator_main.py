"""Run the kopf operator in this process (`kubenova operator`)."""

from __future__ import annotations

import asyncio
import logging

import kopf

from kubenova.config import OperatorConfig


def run(config: OperatorConfig, verbose: bool = False, liveness: str | None = None) -> None:
    """`liveness`: kopf's health endpoint URL (answers once start-up is done), or None."""
    import kubenova.handlers  # noqa: F401  (registers the handlers)

    if config.admission:  # kopf refuses admission handlers without a webhook server
        from kubenova.handlers import admission  # noqa: F401

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("kopf.objects", "kopf.activities", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            clusterwide=True,
            standalone=True,
            memo=kopf.Memo(config=config),
            liveness_endpoint=liveness,
        )
    )
