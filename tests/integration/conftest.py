"""Fixtures of the integration suite: one running call center per combination.

Tests take `site` (parametrized over every install and SIP driver named by
CENTRALITA_ASTERISK, see asterisk.py) and `ami` (the test's own manager session). The site
is booted once per combination and shared by its tests, which run one after another; each
test uses its own caller numbers so that call records and pops never mix.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Generator, Iterator

import pytest

from .amiwatch import AmiWatch
from .asterisk import Target
from .site import AMI_TEST_SECRET, AMI_TEST_USER, Site

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    target: Target = request.param
    index = request.config.integration_targets.index(target)  # type: ignore[attr-defined]
    built = Site(target, tmp_path_factory.mktemp(f"site-{target.name}"), index=index)
    try:
        built.start()
        yield built
    finally:
        built.stop()


@pytest.fixture
async def ami(site: Site) -> AsyncIterator[AmiWatch]:
    async with AmiWatch("127.0.0.1", site.ami_port, AMI_TEST_USER, AMI_TEST_SECRET) as watch:
        yield watch


@pytest.fixture
def number() -> str:
    """A caller number no other test of this run uses (the returning-caller lookup keys on it)."""
    return f"+3460{next(_numbers):07d}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed scenario's report ends with the state of its site's Asterisk and phones
    (Site.state_report): a failure seen only in CI can then be read, not guessed."""
    report = yield
    site = getattr(item, "funcargs", {}).get("site")
    if report.when == "call" and report.failed and isinstance(site, Site):
        report.sections.append(("site state at the failure", site.state_report()))
    return report
