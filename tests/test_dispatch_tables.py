"""The simulator and the fake AMI dispatch through one table each: every command or action
they model has an entry, and nothing else is answered as if it were modelled."""

from __future__ import annotations

import inspect

from agi.command_line import COMMANDS
from agi.simulator import COMMAND_HANDLERS, INVALID_COMMAND, Caller, CallResult, SimulatedChannel
from ami.testing import ACTION_HANDLERS, FakeAmiServer

# Registered in Asterisk (res_agi.c commands[]) but not simulated: they answer 510.
NOT_MODELLED = {"receive char", "record file", "control stream file"}


def test_every_registered_agi_command_is_simulated_or_known_not_to_be() -> None:
    registered = {" ".join(words) for words in COMMANDS}
    assert set(COMMAND_HANDLERS) <= registered
    assert registered - set(COMMAND_HANDLERS) == NOT_MODELLED
    for name in NOT_MODELLED:
        channel = SimulatedChannel(Caller(), CallResult())
        assert channel.handle(name.upper()) == [INVALID_COMMAND]


def test_every_agi_handler_is_a_method_of_the_channel() -> None:
    for name, handler in COMMAND_HANDLERS.items():
        assert getattr(SimulatedChannel, handler.__name__) is handler, name


def test_every_ami_action_handler_is_a_coroutine_method_of_the_fake() -> None:
    assert {"login", "logoff", "challenge", "ping", "originate"} <= set(ACTION_HANDLERS)
    for name, handler in ACTION_HANDLERS.items():
        assert name == name.lower()
        assert getattr(FakeAmiServer, handler.__name__) is handler, name
        assert inspect.iscoroutinefunction(handler), name
