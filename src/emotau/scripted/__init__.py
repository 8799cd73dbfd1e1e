"""The scripted models: offline stand-ins for the agent, the user and the judge, in process
(the ``scripted`` model provider) or over real HTTP (``emotau mock-server``).

Their results are synthetic and labelled so wherever they are shown.
"""

from emotau.scripted._mockserver import Faults, MockBackend, Spawned, serve, spawn
from emotau.scripted._models import ScriptedAgent, ScriptedJudge, ScriptedUser, provider

__all__ = [
    "Faults",
    "MockBackend",
    "ScriptedAgent",
    "ScriptedJudge",
    "ScriptedUser",
    "Spawned",
    "provider",
    "serve",
    "spawn",
]
