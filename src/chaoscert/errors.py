"""The short hierarchy every foreign error is mapped into at the edge."""


class ChaoscertError(Exception):
    """Base of every error chaoscert raises on purpose."""


class ConfigError(ChaoscertError):
    """A file or field given by the user is malformed; the message names it."""


class MissingProgramError(ChaoscertError):
    """A program the local stack needs is not installed; says how to get it."""


class ComponentError(ChaoscertError):
    """A component of the platform did not start, stop or answer in time."""

    def __init__(
        self, message: str, component: str = "", node: str = "", log: str = ""
    ):
        super().__init__(message)
        self.component = component
        self.node = node
        self.log = log

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                f"component {self.component}" if self.component else "",
                f"on node {self.node}" if self.node else "",
                f"(log: {self.log})" if self.log else "",
            )
            if part
        )
        base = super().__str__()
        return f"{base}: {where}" if where else base


class FaultError(ChaoscertError):
    """A fault could not be injected or healed."""


class OdooError(ChaoscertError):
    """Odoo answered with a JSON-RPC error; `name` is Odoo's exception class path."""

    def __init__(self, message: str, code: int = 0, name: str = ""):
        super().__init__(message)
        self.code = code
        self.name = name


class SessionExpired(OdooError):
    """Odoo's code 100: the session is unknown to the server."""


class TransportError(ChaoscertError):
    """The request did not get an Odoo answer: connect, reset, timeout, HTTP >= 500."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class FaultNotApplicable(FaultError):
    """The platform has no way to make this fault; the scenario is skipped."""


class ReportError(ChaoscertError):
    """The report could not be printed or shot: the browser failed or timed out."""
