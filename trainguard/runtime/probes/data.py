"""Data probe: which DataLoader each batch came from, where the user iterated it, and which
dataset indices the loader's sampler chose for it.

The indices are taken where the iterator asks its sampler for them (`_next_index`). Worker
processes are sent indices ahead of the batches they return (prefetching), so the probe keeps
them in a queue per iterator; with `in_order=True` (the default) batches come back in the order
their indices were sent, so the queue's head belongs to the batch being returned.

Batches are counted and `loader_batch` is emitted always (O(1) per batch, next to what drawing a
batch costs): rules count a pass's batches with it. A loader's first pass begins a phase,
observed in full.
"""

from __future__ import annotations

import weakref
from collections import deque
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
        self._pending_indices: weakref.WeakKeyDictionary[Any, deque] = weakref.WeakKeyDictionary()  # by iterator

    def install(self) -> None:
        self._patches.replace(DataLoader, "__iter__", self._wrap_iter)
        self._patches.replace(_BaseDataLoaderIter, "__next__", self._wrap_next)
        self._patches.replace(_BaseDataLoaderIter, "_next_index", self._wrap_next_index)

    def uninstall(self) -> None:
        self._patches.undo()

    def _wrap_iter(self, original: Any) -> Any:
        probe = self

        def __iter__(loader: DataLoader) -> Any:
            # Persistent workers reuse the loader's iterator, whose reset prefetches the next
            # pass's indices: what was left queued from the last pass goes first.
            reused = loader.__dict__.get("_iterator")
            if reused is not None and reused in probe._pending_indices:
                probe._pending_indices[reused].clear()
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
                probe._batch_drawn(iterator, batch)
            except Exception as error:
                probe.session.internal_error("data probe", error)
            return batch

        return __next__

    def _wrap_next_index(self, original: Any) -> Any:
        probe = self

        def _next_index(iterator: Any) -> Any:
            index = original(iterator)  # may raise StopIteration
            try:
                queue = probe._pending_indices.get(iterator)
                if queue is None:
                    queue = probe._pending_indices[iterator] = deque()
                queue.append(index)
            except Exception as error:
                probe.session.internal_error("data probe", error)
            return index

        return _next_index

    def _pass_started(self, loader: DataLoader, iterator: Any) -> None:
        previous = self._last_pass.get(loader)
        if previous is None:
            self.session.phase_changed()
        started = self._last_pass[loader] = self._passes[iterator] = _Pass(weakref.ref(loader), user_location())
        self.session.emit("loader_iter", LoaderIterated(loader, started.location, None if previous is None else previous.batches))

    def _batch_drawn(self, iterator: Any, batch: Any) -> None:
        self.session.window.batches += 1
        queue = self._pending_indices.get(iterator)
        index = queue.popleft() if queue else None
        current = self._passes.get(iterator)
        if current is None:
            return
        current.batches += 1
        loader = current.loader()
        if loader is not None:
            self.session.emit("loader_batch", LoaderBatch(loader, current.location, batch, _sample_indices(iterator, index)))


def _sample_indices(iterator: Any, index: Any) -> Any:
    """The dataset indices of one batch as the sampler gave them (a batch sampler's sequence, or
    one index without automatic batching), unconverted: handlers that use them read them with
    `trainguard.runtime.fingerprints.plain_indices` on the batches they sample. None when the
    batch's indices are unknown."""
    if index is None or getattr(iterator, "_in_order", True) is False:
        return None
    return index if getattr(iterator, "_auto_collation", True) else [index]
