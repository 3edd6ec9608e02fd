"""Recording meetings ([recording])."""

import dataclasses
from typing import ClassVar

from .base import _error, _Validated

RECORDING_POLICIES: tuple[str, ...] = ("off", "host", "always")


@dataclasses.dataclass(frozen=True)
class RecordingConfig(_Validated):
    """Recording meetings without transcoding (mediaserver/recording)."""

    _key_prefix: ClassVar[str] = "recording"

    directory: str = ""  # empty: {state.data_dir}/recordings
    #: Who may record rooms that have no link setting (ad-hoc rooms): off|host|always.
    default_policy: str = "off"
    #: Frames waiting for a recording's writer thread; beyond it frames are dropped.
    queue_frames: int = 2000
    #: Finished recordings older than this many days are deleted; 0 keeps them.
    retention_days: float = 0.0

    def _validate(self) -> None:
        if self.default_policy not in RECORDING_POLICIES:
            raise _error(
                self._key("default_policy"), f"must be one of {', '.join(RECORDING_POLICIES)}"
            )
        self._range("queue_frames", self.queue_frames, 16, 1_000_000, "between 16 and 1000000")
        self._range("retention_days", self.retention_days, 0, 36500, "between 0 and 36500")
