"""Every kind of store by its ``REPORTING_SVC_STORE`` name: adding a store is one entry here.

An entry says how to build the store from the settings, which setting picks its delivery
mode and the modes it can serve, and which settings it cannot run without. Settings check
a deployment against its entry at start-up; ``make_store`` builds from it. A store's
module is imported only when it is built, so a local deployment never loads boto3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import Settings
    from .base import Store


@dataclass(frozen=True)
class StoreKind:
    """One kind of store, as the settings choose and check it."""

    build: Callable[[Settings], Store]
    #: The setting that names this store's delivery mode, and the modes its offers serve
    #: (http/delivery.py: ``needs``); the first is its default, the worker streaming.
    delivery_setting: str
    deliveries: tuple[str, ...]
    #: Settings this store cannot run without.
    required: tuple[str, ...] = ()


def _local(settings: Settings) -> Store:
    from .local import LocalStore

    return LocalStore(settings.local_root)


def _s3(settings: Settings) -> Store:
    from .s3 import S3Store

    return S3Store.from_settings(settings)


STORES: dict[str, StoreKind] = {
    "local": StoreKind(_local, "local_delivery", ("stream", "x-accel")),
    "s3": StoreKind(_s3, "s3_delivery", ("proxy", "redirect", "x-accel"), ("s3_bucket",)),
}
