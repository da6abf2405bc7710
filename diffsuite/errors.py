"""Exceptions shared across diffsuite. Each message says what was required, what was given, what to do."""


class BudgetExceeded(RuntimeError):
    """A node or time budget stopped expensive work (symbolic building, differentiation, CSE).

    Attributes: ``stage`` (what was being done), ``budget`` (the limit, with unit), ``progress``
    (how far it got). Studies record it as a row with status ``budget`` and go on.
    """

    def __init__(self, stage: str, budget: str, progress: str = ""):
        self.stage, self.budget, self.progress = stage, budget, progress
        msg = f"{stage} exceeded its budget of {budget}"
        if progress:
            msg += f" (got as far as {progress})"
        super().__init__(msg + "; raise the budget, or use a smaller network or the reverse differentiator")


class StudyError(ValueError):
    """A study, option or device that cannot be used; the message lists the choices."""
