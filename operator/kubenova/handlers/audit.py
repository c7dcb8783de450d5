"""The periodic audit as a background task of the operator (audit/ has the logic).

Started by the operator's start-up (handlers/lifecycle.py) once the conductor exists, cancelled
at shutdown with the other background tasks.
"""

from __future__ import annotations

import asyncio
import logging

from kubenova.audit.auditor import Auditor, audit_forever
from kubenova.audit.images import BaseImageJanitor
from kubenova.conductor.context import Conductor
from kubenova.config import OperatorConfig

log = logging.getLogger("kubenova.audit")


def start_audit(conductor: Conductor, config: OperatorConfig) -> asyncio.Task | None:
    if not config.audit_interval:
        log.info("audit disabled (--audit-interval 0)")
        return None
    images = None
    if config.remove_unused_base_images:
        images = BaseImageJanitor(
            conductor.objects,
            conductor.image_cache,
            conductor.hosts.local,
            config.remove_unused_original_minimum_age_seconds,
        )
    auditor = Auditor(conductor, config.audit_grace, images)
    log.info(
        "audit every %gs (orphans removed after %gs)", config.audit_interval, config.audit_grace
    )
    return asyncio.create_task(audit_forever(auditor, config.audit_interval), name="audit")
