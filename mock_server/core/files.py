"""Files the mock serves: rendered output images and uploaded inputs.

Rendered images are stored as a *recipe* (a function that renders the bytes again)
plus a bounded LRU cache of bytes, so memory stays bounded while every URL the
mock ever handed out keeps working.  Uploaded files have no recipe: their bytes
are kept in a bounded store of their own (oldest dropped first).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

Recipe = Callable[[], bytes]
#: ``loader(name)``: a file this store does not hold in memory, from elsewhere (persistence).
Loader = Callable[[str], "StoredFile | None"]


@dataclass(frozen=True, slots=True)
class StoredFile:
    data: bytes
    content_type: str


#: What a recipe costs besides the bytes it holds (closure, params, dict entry): measured ~1 KB.
RECIPE_OVERHEAD = 1024


def recipe_weight(recipe: Recipe) -> int:
    """Bytes a recipe keeps alive, estimated: the overhead plus the byte strings and text it
    holds (``functools.partial`` arguments, one level into tuples/lists, and their
    ``thumbnail``s: the Wan recipe keeps up to two 128x128 RGB input thumbnails, 48 KiB each;
    a video recipe keeps its prompt lines)."""
    weight = RECIPE_OVERHEAD
    values = list(getattr(recipe, "args", ())) + list((getattr(recipe, "keywords", None) or {}).values())
    for value in values:
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, str):
                weight += len(item)
                continue
            data = item if isinstance(item, (bytes, bytearray)) else getattr(item, "thumbnail", None)
            if isinstance(data, (bytes, bytearray)):
                weight += len(data)
    return weight


class FileStore:
    """Name -> bytes, with re-renderable recipes and bounded memory.

    ``cache_bytes`` bounds the rendered-bytes cache; ``max_recipes`` and ``recipe_bytes``
    (by :func:`recipe_weight`) bound how many rendered files stay addressable (the oldest
    recipe goes first; with persistence on, such a file is produced again from its request);
    ``upload_bytes`` bounds uploaded data.  Safe to call from several threads (rendering
    runs in a worker thread).
    """

    def __init__(
        self,
        cache_bytes: int = 64 * 1024 * 1024,
        max_recipes: int = 50_000,
        upload_bytes: int = 512 * 1024 * 1024,
        recipe_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.cache_bytes = cache_bytes
        self.max_recipes = max_recipes
        self.recipe_bytes = recipe_bytes
        self._weights: dict[str, int] = {}
        self._recipe_total = 0
        self.upload_bytes = upload_bytes
        self._lock = threading.Lock()
        self._recipes: OrderedDict[str, tuple[Recipe, str]] = OrderedDict()
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached = 0
        self._uploads: OrderedDict[str, StoredFile] = OrderedDict()
        self._uploaded = 0
        #: upload name -> the namespace that uploaded it, for uploads made outside the default
        #: one (docs/namespaces.md: a namespace's reset forgets its uploads)
        self._owners: dict[str, str] = {}
        self.renders = 0  # how many times a recipe ran (first render + re-renders)
        #: Asked for a name found neither among uploads nor recipes (persisted state); what it
        #: returns is kept as an upload (uploads) or found registered again (re-produced outputs).
        self.loader: Loader | None = None
        #: Called as ``on_upload(name, data, content_type)`` after every :meth:`add_upload`.
        self.on_upload: Callable[[str, bytes, str], None] | None = None
        #: Called as ``on_forget(names)`` when :meth:`forget_uploads_of` drops uploads, so that
        #: a copy kept elsewhere (the state folder) goes too.
        self.on_forget: Callable[[list[str]], None] | None = None

    # -- rendered files ---------------------------------------------------------
    def add_rendered(self, name: str, recipe: Recipe, content_type: str, data: bytes | None = None) -> None:
        """Register a re-renderable file; ``data`` (if already rendered) is cached."""
        weight = recipe_weight(recipe)
        with self._lock:
            self._recipes[name] = (recipe, content_type)
            self._recipes.move_to_end(name)
            self._recipe_total += weight - self._weights.get(name, 0)
            self._weights[name] = weight
            while len(self._recipes) > 1 and (len(self._recipes) > self.max_recipes
                                              or self._recipe_total > self.recipe_bytes):
                old, _ = self._recipes.popitem(last=False)
                self._recipe_total -= self._weights.pop(old, 0)
                self._drop_cached(old)
            if data is not None:
                self._cache_put(name, data)

    def _cache_put(self, name: str, data: bytes) -> None:
        self._drop_cached(name)
        if len(data) > self.cache_bytes:
            return
        self._cache[name] = data
        self._cached += len(data)
        while self._cached > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached -= len(old)

    def _drop_cached(self, name: str) -> None:
        old = self._cache.pop(name, None)
        if old is not None:
            self._cached -= len(old)

    # -- uploads ----------------------------------------------------------------
    def add_upload(self, name: str, data: bytes, content_type: str) -> None:
        self._keep_upload(name, data, content_type)
        if self.on_upload is not None:
            self.on_upload(name, data, content_type)

    def _keep_upload(self, name: str, data: bytes, content_type: str) -> None:
        with self._lock:
            old = self._uploads.pop(name, None)
            if old is not None:
                self._uploaded -= len(old.data)
            self._uploads[name] = StoredFile(data, content_type)
            self._uploaded += len(data)
            self._trim_uploads(self.upload_bytes, 1)

    def claim(self, name: str, namespace: str) -> None:
        """Say which namespace uploads (or has uploaded) ``name``."""
        with self._lock:
            if len(self._owners) > 4 * max(len(self._uploads), 1024):  # names whose upload never came
                self._owners = {n: o for n, o in self._owners.items() if n in self._uploads}
            self._owners[name] = namespace

    def owner(self, name: str) -> str | None:
        """The namespace that uploaded ``name`` (None: unknown, e.g. a rendered output)."""
        return self._owners.get(name)

    def forget_uploads_of(self, namespace: str) -> int:
        """Drop the uploads one namespace made; returns how many."""
        with self._lock:
            names = [n for n, o in self._owners.items() if o == namespace]
            for name in names:
                del self._owners[name]
                dropped = self._uploads.pop(name, None)
                if dropped is not None:
                    self._uploaded -= len(dropped.data)
            on_forget = self.on_forget
        if names and on_forget is not None:
            on_forget(names)
        return len(names)

    @property
    def uploaded_bytes(self) -> int:
        """Bytes of the uploads kept."""
        return self._uploaded

    def trim_uploads(self, limit: int, keep: int = 0) -> None:
        """Drop the oldest uploads until they hold at most ``limit`` bytes (the ``keep``
        newest stay)."""
        with self._lock:
            self._trim_uploads(limit, keep)

    def _trim_uploads(self, limit: int, keep: int) -> None:
        while self._uploaded > limit and len(self._uploads) > keep:
            _, dropped = self._uploads.popitem(last=False)
            self._uploaded -= len(dropped.data)

    # -- lookup -----------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self._uploads or name in self._recipes

    def get(self, name: str) -> StoredFile | None:
        """The file's bytes, rendering again if the cache dropped them."""
        with self._lock:
            upload = self._uploads.get(name)
            if upload is not None:
                return upload
            entry = self._recipes.get(name)
            if entry is not None:
                recipe, content_type = entry
                data = self._cache.get(name)
                if data is not None:
                    self._cache.move_to_end(name)
                    return StoredFile(data, content_type)
            loader = self.loader
        if entry is None:
            return self._load(loader, name) if loader is not None else None
        data = recipe()  # outside the lock: rendering can take a while
        with self._lock:
            self.renders += 1
            if name in self._recipes:
                self._cache_put(name, data)
        return StoredFile(data, content_type)

    def _load(self, loader: Loader, name: str) -> StoredFile | None:
        found = loader(name)
        if found is None:
            return None
        with self._lock:
            registered = name in self._recipes
        if not registered:  # an upload read back: kept in memory like any upload
            self._keep_upload(name, found.data, found.content_type)
        return found

    def clear(self) -> None:
        with self._lock:
            self._recipes.clear()
            self._weights.clear()
            self._recipe_total = 0
            self._cache.clear()
            self._cached = 0
            self._uploads.clear()
            self._uploaded = 0
            self._owners.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "rendered_files": len(self._recipes),
                "recipe_bytes": self._recipe_total,
                "cached_files": len(self._cache),
                "cached_bytes": self._cached,
                "uploaded_files": len(self._uploads),
                "uploaded_bytes": self._uploaded,
                "renders": self.renders,
            }
