"""Opening the store a configuration names: SQLite (`Store`) or PostgreSQL (`PgStore`), both
`StoreBackend`s, for the app and every CLI command alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from centralita.store.interface import StoreBackend
from centralita.store.postgres import PgStore
from centralita.store.sqlite import Store
from centralita.store.url import PgLocation, StoreLocation

if TYPE_CHECKING:
    from centralita.settings import Settings


class BackendOpening:
    """What `open_store`/`open_location` return: await it, or use it in `async with`."""

    def __init__(self, opener: Callable[[], Awaitable[StoreBackend]]) -> None:
        self._opener = opener
        self._store: StoreBackend | None = None

    def __await__(self) -> Generator[Any, None, StoreBackend]:
        return self._opener().__await__()

    async def __aenter__(self) -> StoreBackend:
        self._store = await self._opener()
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._store is not None:
            await self._store.close()


def open_location(
    location: StoreLocation,
    *,
    region: str = "ES",
    match_digits: int = 10,
    min_digits: int = 6,
    pool_size: int = 10,
) -> BackendOpening:
    """The store at `location` (created or migrated as it opens)."""

    async def opener() -> StoreBackend:
        if isinstance(location, PgLocation):
            return await PgStore.open(
                location,
                region=region,
                match_digits=match_digits,
                min_digits=min_digits,
                pool_size=pool_size,
            )
        return await Store.open(
            location.path, region=region, match_digits=match_digits, min_digits=min_digits
        )

    return BackendOpening(opener)


def open_store(settings: Settings) -> BackendOpening:
    """The store of `settings`: `[store] url` (default: the SQLite file in `[server]
    data_dir`), with the `[manager]` region and digit rules for number keys (the keys
    contacts and call records are matched by). Await it, or use it in `async with`."""
    manager = settings.site.manager
    return open_location(
        settings.store_location(),
        region=manager.default_region,
        match_digits=manager.match_digits,
        min_digits=manager.min_digits,
        pool_size=settings.store.pool_size,
    )
