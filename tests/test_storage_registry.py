"""The store registry: each entry builds its store, and every mode it lists is one that store's
offers serve, so the settings' check by name and delivery's check by ``needs`` agree."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reporting_svc.http.delivery import make_delivery
from reporting_svc.settings import Settings
from reporting_svc.storage import make_store
from reporting_svc.storage.registry import STORES
from tests.support import BUCKET

MODES = [(name, mode) for name, kind in STORES.items() for mode in kind.deliveries]


@pytest.mark.parametrize(("name", "mode"), MODES, ids=[f"{n}-{m}" for n, m in MODES])
def test_every_listed_delivery_is_served_by_its_stores_offers(
    make_settings: Callable[..., Settings], no_aws_credentials: None, name: str, mode: str
) -> None:
    kind = STORES[name]
    settings = make_settings(
        store=name, s3_bucket=BUCKET, s3_region="us-east-1", **{kind.delivery_setting: mode}
    )

    delivery = make_delivery(settings, make_store(settings))

    assert settings.delivery == mode
    assert delivery.name == mode
