"""The devices a rank uses, as a plan names them: its GPU, its NICs and its storage, with their distances.

Part of THE plan (:mod:`pinctl.planfile.types`); on the ``launch --plan`` path, so
:class:`~pinctl.record.Record` values, not dataclasses.
"""

from __future__ import annotations

from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from typing import Any, Final

GPU_VENDORS = ("nvidia", "amd", "intel", "other")  # pinctl.model.GpuVendor, without importing the model


class GpuRef(Record):
    """A rank's GPU: PCI-order index, bus id, UUID, N of its device file (/dev/nvidiaN, or
    /dev/dri/renderDN for AMD and Intel) when the source named it, and the vendor; the index
    the launched process gives it (the job's visibility variables applied) and the MIG
    instance's UUID, when known (optional in the JSON: written only when set)."""

    __slots__ = ("index", "mig", "minor", "pci_bus_id", "uuid", "vendor", "visible_index")

    def __init__(
        self,
        index: int,
        pci_bus_id: str | None,
        uuid: str | None = None,
        minor: int | None = None,
        vendor: str | None = None,
        *,
        visible_index: int | None = None,
        mig: str | None = None,
    ) -> None:
        self.index: Final = index
        self.pci_bus_id: Final = pci_bus_id
        self.uuid: Final = uuid
        self.minor: Final = minor
        self.vendor: Final = vendor
        self.visible_index: Final = visible_index
        self.mig: Final = mig

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "pci_bus_id": self.pci_bus_id,
            "uuid": self.uuid,
            "minor": self.minor,
            "vendor": self.vendor,
        }
        if self.visible_index is not None:
            out["visible_index"] = self.visible_index
        if self.mig is not None:
            out["mig"] = self.mig
        return out


class NicUse(Record):
    """A NIC port a rank uses and its distance from the rank's GPU (X, PIX, ... SYS)."""

    __slots__ = ("distance", "kind", "name", "netdev", "pci_bus_id", "port")

    def __init__(
        self,
        name: str,
        port: int | None,
        netdev: str | None,
        pci_bus_id: str | None,
        distance: str | None,
        kind: str | None = None,
    ) -> None:
        self.name: Final = name
        self.port: Final = port
        self.netdev: Final = netdev
        self.pci_bus_id: Final = pci_bus_id
        self.distance: Final = distance
        self.kind: Final = kind


class StorageUse(Record):
    """A storage device a rank uses and its distance."""

    __slots__ = ("distance", "name", "pci_bus_id")

    def __init__(self, name: str, pci_bus_id: str | None, distance: str | None) -> None:
        self.name: Final = name
        self.pci_bus_id: Final = pci_bus_id
        self.distance: Final = distance
