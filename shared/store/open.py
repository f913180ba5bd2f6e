"""Opening the vector store the settings name: the only module that imports a backend."""

from __future__ import annotations

from shared.settings import PlatformSettings, QdrantSettings
from shared.store.base import VectorStore, slug


def open_store(
    settings: QdrantSettings,
    platform: PlatformSettings,
    prefix: str = "",
    convert_legacy: bool = False,
) -> VectorStore:
    """The server in ``settings.url``, else the embedded store on disk.

    A store an older version wrote raises LegacyStore, unless ``convert_legacy`` (``llmops
    reindex``, which fills a new collection from docs.chunks): an embedded one
    (qdrant-client's local mode) is then moved aside and a new one made; a server's old
    collection stays until the alias moves off it.
    """
    alias = slug(f"{prefix}{settings.alias}") or "chunks"
    if settings.url:
        from shared.store.client import ClientStore

        return ClientStore.connect(settings, alias, convert_legacy)
    from shared.store.edge import EdgeStore

    path = settings.embedded_path(platform)
    return EdgeStore.at(path, alias, legacy=platform.data_dir / "qdrant", convert=convert_legacy)
