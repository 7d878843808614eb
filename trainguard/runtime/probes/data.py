"""Data probe: which DataLoader each batch came from, and where the user iterated it."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader
from torch.utils.data.dataloader import _BaseDataLoaderIter

from trainguard.runtime.callsite import Location, user_location
from trainguard.runtime.events import LoaderBatch, LoaderIterated
from trainguard.runtime.probes import Patches

if TYPE_CHECKING:
    from trainguard.runtime.context import ObserverContext


@dataclass
class _Pass:
    """One iteration over a loader (usually an epoch): where it started, batches drawn so far."""

    loader: weakref.ref
    location: Location
    batches: int = 0


class DataProbe:
    def __init__(self, session: ObserverContext) -> None:
        self.session = session
        self._patches = Patches()
        self._passes: weakref.WeakKeyDictionary[Any, _Pass] = weakref.WeakKeyDictionary()  # by iterator
        self._last_pass: weakref.WeakKeyDictionary[DataLoader, _Pass] = weakref.WeakKeyDictionary()

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
                probe._pass_started(loader, iterator)
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

    def _pass_started(self, loader: DataLoader, iterator: Any) -> None:
        previous = self._last_pass.get(loader)
        started = self._last_pass[loader] = self._passes[iterator] = _Pass(weakref.ref(loader), user_location())
        self.session.emit("loader_iter", LoaderIterated(loader, started.location, None if previous is None else previous.batches))

    def _batch_drawn(self, iterator: Any) -> None:
        self.session.window.batches += 1
        current = self._passes.get(iterator)
        if current is None:
            return
        current.batches += 1
        loader = current.loader()
        if loader is not None:
            self.session.emit("loader_batch", LoaderBatch(loader, current.location))
