"""Errors a user can cause. The CLI prints their message as is and exits with code 2."""


class HpsearchError(Exception):
    """A problem the user can fix; the message names it and says how."""


class SpecError(HpsearchError):
    """A study spec that cannot be used."""


class DataError(HpsearchError):
    """Data that is missing or cannot be read."""


class StorageError(HpsearchError):
    """A storage URL or stored study that cannot be used."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C: the running trial is marked failed."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped a search or a retraining; the message says what was kept and how to resume."""


class SearchStopped(Interrupted):
    """A search's stop: ``how`` ("interrupted" or "terminated") and the running trials it marked failed; the
    stops of several workers make one."""

    def __init__(self, how: str, failed: list[int]) -> None:
        self.how, self.failed = how, sorted(failed)
        trials = ", ".join(str(n) for n in self.failed)
        marked = "" if not failed else f"trial {trials} was marked failed; " if len(failed) == 1 else \
            f"trials {trials} were marked failed; "
        super().__init__(f"{how}: {marked}finished trials are kept. Resume with the same command.")
