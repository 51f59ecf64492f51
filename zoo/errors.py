"""Every error zoo raises on purpose.

``str(error)`` is the message a user sees: what happened, what was expected, and what to run next. The CLI prints it
on one line and exits 1 (``ZOO_DEBUG=1`` adds the traceback). Each class also inherits the matching builtin, so
callers of the Python API can catch ``KeyError``, ``ValueError``, ``OSError`` ... as usual::

    ZooError
    ├── RegistryError          (ValueError)        a registry file is malformed; lists every problem
    ├── UnknownModelError      (KeyError)          no registry entry by that name
    ├── PluginError            (ImportError)       a plugin failed to load, or no plugin has that architecture
    ├── NotCachedError         (FileNotFoundError) the model (or format) is not in the local cache
    ├── OfflineError           (ConnectionError)   offline mode forbids the download that is needed
    ├── DownloadError          (OSError)           every source failed (4xx, 5xx after retries, timeouts, DNS)
    ├── IntegrityError         (ValueError)        sha256 or size does not match what was pinned or recorded
    ├── ArchiveError           (ValueError)        an archive is corrupt or unsafe to extract
    ├── WeightsError           (ValueError)        a .pdparams file is unsafe, or does not fit the network
    ├── ConversionError        (RuntimeError)      paddle2onnx failed or produced an unusable model
    ├── BackendError           (RuntimeError)      an inference backend or device is unavailable or failed
    ├── ImageError             (ValueError)        an input is not an image zoo can segment
    │   └── ImageTooLargeError                      ... because it has more pixels (or bytes) than zoo's caps
    ├── InvalidNameError       (ValueError)        a model name breaks the registry's naming rule
    ├── DiskFullError          (OSError)           no space or quota left for a write; nothing half-written kept
    ├── EngineError            (RuntimeError)      the Ray engine is not installed, cannot connect, or its job failed
    ├── QuantizationError      (ValueError)        a reduced-precision variant could not be made
    ├── DatasetError           (ValueError)        an evaluation data set or one of its labels cannot be read
    ├── EvalError              (ValueError)        an evaluation cannot run as asked (slide/aug on an argmax model)
    ├── DeployError            (ValueError)        a deploy.yaml zoo cannot read faithfully (an unknown transform)
    ├── AddError               (ValueError)        'zoo add' cannot add the model as asked (name taken, labels)
    ├── PrecisionError         (ValueError)        a precision (or artifact kind) zoo does not make, or the backend can't run
    └── ServeError             (RuntimeError)      zoo serve cannot start (extra not installed, port taken, TLS files)
        └── RequestError       (ValueError)        one request to zoo serve is refused; carries its HTTP status
"""

from __future__ import annotations


class ZooError(Exception):
    """Base of every error zoo raises on purpose."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else self.__class__.__name__


class RegistryError(ZooError, ValueError):
    """A registry file is malformed."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        head = self.problems[0] if len(self.problems) == 1 else f"{len(self.problems)} registry problems: "
        message = head if len(self.problems) == 1 else head + "; ".join(self.problems)
        super().__init__(message + " — fix the file, or see 'zoo --help' and the README's registry format")


class UnknownModelError(ZooError, KeyError):
    """No registry entry has that name."""


class PluginError(ZooError, ImportError):
    """A plugin failed to load, or no loaded plugin provides an architecture."""


class NotCachedError(ZooError, FileNotFoundError):
    """The model is not in the local cache."""


class OfflineError(ZooError, ConnectionError):
    """Offline mode forbids a needed download."""


class DownloadError(ZooError, OSError):
    """No source could deliver the artifact."""

    def __init__(self, message: str, *, gone: bool = False, causes: tuple[str, ...] = ()):
        super().__init__(message)
        self.gone = gone  # every registry URL failed for good (4xx, unknown host): a fallback source is in order
        self.causes = causes  # why, per source, in words a user acts on: "DNS lookup failed", "HTTP 404", ...


class IntegrityError(ZooError, ValueError):
    """Content does not match its pinned or recorded sha256/size."""


class ArchiveError(ZooError, ValueError):
    """An archive is corrupt or unsafe."""


class WeightsError(ZooError, ValueError):
    """A .pdparams file is unsafe to read or does not fit the network."""


class ConversionError(ZooError, RuntimeError):
    """Paddle to ONNX conversion failed."""


class BackendError(ZooError, RuntimeError):
    """An inference backend or device is unavailable or failed."""


class ImageError(ZooError, ValueError):
    """An input file is not an image zoo can segment."""


class ImageTooLargeError(ImageError):
    """An image is over zoo's caps (pixels, file size): refused before it is decoded."""


class InvalidNameError(ZooError, ValueError):
    """A model name breaks the registry's naming rule (so it can never be turned into a cache path)."""


class DiskFullError(ZooError, OSError):
    """A write ran out of disk space or quota (ENOSPC, EDQUOT); nothing half-written was kept."""


class EngineError(ZooError, RuntimeError):
    """The Ray engine is not installed, cannot reach its cluster, or its job failed."""


class QuantizationError(ZooError, ValueError):
    """A reduced-precision variant (int8, fp16) could not be made: bad settings, calibration data or model."""


class DatasetError(ZooError, ValueError):
    """An evaluation data set cannot be read: no known layout, or a missing, unreadable or wrongly sized label."""


class EvalError(ZooError, ValueError):
    """An evaluation cannot run as asked (e.g. sliding-window inference on a model that outputs class ids)."""


class PrecisionError(ZooError, ValueError):
    """A precision or artifact kind zoo does not make (zoo/store/artifacts.py), or that the chosen backend cannot run."""


class ServeError(ZooError, RuntimeError):
    """``zoo serve`` cannot start: its extra is not installed, the port is taken, the TLS files are unusable."""


class RequestError(ServeError, ValueError):
    """One HTTP request to ``zoo serve`` is refused; ``status`` is its HTTP code, ``headers`` any to add."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


class DeployError(ZooError, ValueError):
    """A PaddleSeg deploy.yaml zoo cannot read faithfully."""


class AddError(ZooError, ValueError):
    """``zoo add`` cannot add the model as asked: the name is taken, the labels do not fit the program, ..."""
