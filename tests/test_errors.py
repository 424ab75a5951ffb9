"""One exception base per layer: `except AgiError` / `except AmiError` catches all of it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import agi
import ami
from agi.protocol import AgiEncodeError, AgiError, AgiProtocolError, encode_command
from agi.router import DuplicateFlowError
from agi.session import AgiCommandError, CallerHangup, ReplyTimeout
from ami.client import AmiAuthError, AmiNotConnected, AmiTimeout
from ami.originate import OriginateRefused, Refusal
from ami.protocol import AmiEncodeError, AmiError, AmiProtocolError, encode_action


def exceptions_defined_in(package: ModuleType) -> list[type[BaseException]]:
    """Every exception class a module of `package` defines (not the ones it imports)."""
    found = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found.append(cls)
    return found


@pytest.mark.parametrize(("package", "base"), [(agi, AgiError), (ami, AmiError)])
def test_every_exception_of_a_layer_derives_from_its_base(package: ModuleType, base: type) -> None:
    defined = exceptions_defined_in(package)
    assert base in defined
    assert [cls.__name__ for cls in defined if not issubclass(cls, base)] == []


def test_the_agi_exceptions_keep_their_names_and_meaning() -> None:
    for cls in (AgiProtocolError, AgiEncodeError, CallerHangup, AgiCommandError, ReplyTimeout):
        assert issubclass(cls, AgiError)
    assert issubclass(AgiEncodeError, ValueError)  # a bad value, as before
    assert issubclass(DuplicateFlowError, RuntimeError)
    with pytest.raises(AgiError):
        encode_command("VERBOSE", "two\nlines")


def test_the_ami_exceptions_share_the_base() -> None:
    for cls in (AmiProtocolError, AmiEncodeError, AmiNotConnected, AmiAuthError, AmiTimeout):
        assert issubclass(cls, AmiError)
    assert issubclass(AmiEncodeError, ValueError)
    assert issubclass(AmiTimeout, TimeoutError)
    with pytest.raises(AmiEncodeError):
        encode_action("Originate", [("Exten", "600\r\nAction: Logoff")])


def test_originate_refused_carries_its_reason() -> None:
    refused = OriginateRefused(Refusal.AGENT_BUSY, "agent 1001 is already on a call")
    assert isinstance(refused, AmiError)
    assert refused.reason is Refusal.AGENT_BUSY
    assert str(refused) == "agent 1001 is already on a call"
