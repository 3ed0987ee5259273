"""The research agent: a LangGraph graph that answers a question by calling entitled tools
through the gateway, checks every number of its answer against the evidence it cites, and
resumes after a restart from its checkpoints.

- ``base``: the vocabulary (Evidence, ToolOutput, the Toolbox protocol, AgentLimits, RunEvent)
- ``runner``: :class:`~strongroom.agent.runner.AgentRunner` and its
  :class:`~strongroom.agent.runner.AgentResult` (start here)
- ``checkpoint``: :func:`~strongroom.agent.checkpoint.open_checkpointer` (SQLite, PostgreSQL)
- ``graph``: the LangGraph graph; ``decide``: its state and pure next-step decisions;
  ``nodes``: the I/O of each step
- ``prompt``: the system prompt and tool results framed as data
- ``tools``: argument checking and the built-in ``calculate``; ``calculator``, ``numbers``,
  ``citations``: pure functions

Nothing is imported here: ``strongroom.agent.base`` stays cheap to import (the graph pulls
in LangGraph).
"""
