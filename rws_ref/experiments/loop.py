"""What a long loop needs around it: Ctrl-C that stops at the end of a step, and an optional progress bar.
Training (rws_ref.train) and the experiments' runner (rws_ref.runner) share them."""
import signal
import threading

__all__ = ["Interrupts", "progress_bar"]


class Interrupts:
    """Ctrl-C inside the ``with`` block asks the loop to stop at the end of the current step (``requested``
    turns True), so the last checkpoint and the history are those of a whole step; a second Ctrl-C interrupts
    at once.  Only in the main thread (signals go there); elsewhere a no-op."""

    def __init__(self):
        self.requested, self._previous = False, None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **values):
        pass

    def close(self):
        pass


def progress_bar(progress, total, desc, unit, initial=0):
    """A tqdm bar of ``total`` steps (``initial`` already done) when ``progress`` is true, else one that shows
    nothing; both take update, set_postfix and close."""
    if not progress:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit=unit)
