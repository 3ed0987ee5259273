"""Both bucket stores pass the bucket store contract."""

from __future__ import annotations

import uuid

import pytest

from strongroom.llm.limits import BucketStore, InProcessBuckets
from strongroom.testing.limit_contract import BucketStoreContract
from tests.redis_service import needs_redis


class TestInProcessBuckets(BucketStoreContract):
    @pytest.fixture
    def buckets(self) -> BucketStore:
        return InProcessBuckets()


@needs_redis
class TestRedisBuckets(BucketStoreContract):
    @pytest.fixture
    def buckets(self) -> BucketStore:
        from strongroom.llm.redis_limits import RedisBuckets

        return RedisBuckets(prefix=f"strongroom:test:{uuid.uuid4().hex}:")  # the contract closes it; keys expire
