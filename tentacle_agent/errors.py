"""What the runner raises for a request it cannot carry out (the agent answers it as a BadRequest)."""


class RunnerError(Exception):
    """A request the runner cannot carry out; the message says why (it becomes a BadRequest)."""


class NotFound(RunnerError):
    pass
