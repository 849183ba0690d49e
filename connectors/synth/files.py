"""Replace a folder's files all at once: write under temporary names, rename when complete."""

import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO


class AtomicFolder:
    """A set of files in one folder that appear under their final names only when complete.

    Use as a context manager: ``open(name)`` hands out a binary file under a hidden temporary
    name; on a clean exit every file is flushed, synced and renamed over its final name; if
    the block raises, the temporary files are removed and the existing files stay untouched.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._files: dict[str, tuple[Path, BinaryIO]] = {}

    def __enter__(self) -> "AtomicFolder":
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def open(self, name: str) -> BinaryIO:
        """A writable binary file that will become ``folder / name``.

        Raises:
            ValueError: if ``name`` was already opened in this folder.
        """
        if name in self._files:
            raise ValueError(f"{name} is already being written")
        temporary = self.folder / f".{name}.{os.getpid()}.tmp"
        handle = temporary.open("wb")
        self._files[name] = (temporary, handle)
        return handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                for _, handle in self._files.values():
                    handle.flush()
                    os.fsync(handle.fileno())
                    handle.close()
                for name, (temporary, _) in self._files.items():
                    os.replace(temporary, self.folder / name)
        finally:
            for temporary, handle in self._files.values():
                handle.close()
                temporary.unlink(missing_ok=True)
