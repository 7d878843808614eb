"""Data probe: which DataLoader each batch came from, and where the user iterated it."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader
from torch.utils.data.dataloader import _BaseDataLoaderIter

from trainguard.runtime.callsite import Location, user_location
from trainguard.runtime.events import LoaderBatch
from trainguard.runtime.probes import Patches

if TYPE_CHECKING:
    from trainguard.runtime.session import GuardSession


class DataProbe:
    def __init__(self, session: GuardSession) -> None:
        self.session = session
        self._patches = Patches()
        self._iterators: weakref.WeakKeyDictionary[Any, tuple[weakref.ref, Location]] = weakref.WeakKeyDictionary()

    def install(self) -> None:
        self._patches.replace(DataLoader, "__iter__", self._wrap_iter)
        self._patches.replace(_BaseDataLoaderIter, "__next__", self._wrap_next)

    def uninstall(self) -> None:
        self._patches.undo()

    def _wrap_iter(self, original: Any) -> Any:
        probe = self

        def __iter__(loader: DataLoader) -> Any:
            iterator = original(loader)
            try:
                probe._iterators[iterator] = (weakref.ref(loader), user_location())
            except Exception as error:
                probe.session.internal_error("data probe", error)
            return iterator

        return __iter__

    def _wrap_next(self, original: Any) -> Any:
        probe = self

        def __next__(iterator: Any) -> Any:
            batch = original(iterator)
            try:
                probe._batch_drawn(iterator)
            except Exception as error:
                probe.session.internal_error("data probe", error)
            return batch

        return __next__

    def _batch_drawn(self, iterator: Any) -> None:
        self.session.window.batches += 1
        known = self._iterators.get(iterator)
        if known is None:
            return
        loader = known[0]()
        if loader is not None:
            self.session.emit("loader_batch", LoaderBatch(loader, known[1]))
