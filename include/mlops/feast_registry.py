"""The embedded profile's Feast registry store (named in `feature_store.yaml`)."""

from __future__ import annotations

import os
import tempfile

from feast.infra.registry.file import FileRegistryStore


class AtomicFileRegistryStore(FileRegistryStore):
    """Feast's file registry, written to a temporary file and renamed over the old one, so that
    a reader sees the old registry or the new one, never a half-written file."""

    def _write_registry(self, registry_proto: object) -> None:
        import uuid

        from feast.utils import _utc_now

        registry_proto.version_id = str(uuid.uuid4())  # type: ignore[attr-defined]
        registry_proto.last_updated.FromDatetime(_utc_now())  # type: ignore[attr-defined]
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self._filepath.parent, suffix=".tmp", delete=False) as handle:
            handle.write(registry_proto.SerializeToString())  # type: ignore[attr-defined]
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, self._filepath)
