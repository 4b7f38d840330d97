"""What NVML's raw health numbers mean: clock-event reasons, fabric states, NVLink error counters.

Pure values and their reading, beside :mod:`pinctl.discovery.nvml` (which asks NVML and
fills them in) so that module stays the one pynvml caller and this one can be read and
tested without a GPU. Bit values and state numbers are nvml.h's (CUDA 12.6):
``nvmlClocksEventReason*``, ``NVML_GPU_FABRIC_STATE_*``, ``NVML_GPU_FABRIC_HEALTH_MASK_*``,
``nvmlNvLinkErrorCounter_t``.
"""

from __future__ import annotations

from dataclasses import dataclass

# nvmlClocksEventReason* bit -> (name as nvidia-smi -q prints it, whether it means a sick GPU).
# Idle, application clocks, the software power cap (a GPU working at its power limit), sync
# boost and display clocks are a healthy GPU's normal states; the hardware slowdowns and the
# software thermal slowdown mean heat, power delivery or an external brake signal.
CLOCK_EVENTS: dict[int, tuple[str, bool]] = {
    0x1: ("GPU idle", False),
    0x2: ("applications clocks setting", False),
    0x4: ("SW power cap", False),
    0x8: ("HW slowdown", True),
    0x10: ("sync boost", False),
    0x20: ("SW thermal slowdown", True),
    0x40: ("HW thermal slowdown", True),
    0x80: ("HW power brake slowdown", True),
    0x100: ("display clock setting", False),
}

FABRIC_STATES = {0: "not supported", 1: "not started", 2: "in progress", 3: "completed"}
FABRIC_COMPLETED = 3
_DEGRADED_BW_TRUE = 1  # NVML_GPU_FABRIC_HEALTH_MASK_DEGRADED_BW_TRUE, bits 0-1 of healthMask
_GFM_DISCONNECTED = 2  # NVML_GPU_FABRIC_HEALTH_MASK_GFM_STATE_DISCONNECTED, bits 14-15

# nvmlNvLinkErrorCounter_t 0-3, the counters pinctl reads, in that order
NVLINK_COUNTERS = ("replay", "recovery", "CRC flit", "CRC data")


@dataclass(frozen=True)
class NvLinkErrors:
    """One NVLink's error counters since the driver loaded (None: the counter did not answer)."""

    link: int
    active: bool
    counts: tuple[int | None, ...]  # in NVLINK_COUNTERS order

    @property
    def nonzero(self) -> dict[str, int]:
        return {name: n for name, n in zip(NVLINK_COUNTERS, self.counts, strict=False) if n}


@dataclass(frozen=True)
class FabricInfo:
    """nvmlGpuFabricInfo(V): the GPU's registration with the NVLink fabric (NVSwitch systems)."""

    state: int
    status: int  # an nvmlReturn_t, meaningful once the state is "completed"
    health_mask: int | None = None
    status_text: str | None = None  # nvmlErrorString(status) when it is not NVML_SUCCESS

    @property
    def state_name(self) -> str:
        return FABRIC_STATES.get(self.state, f"state {self.state}")

    @property
    def applies(self) -> bool:
        return self.state != 0

    @property
    def degraded_bandwidth(self) -> bool:
        return self.health_mask is not None and self.health_mask & 0x3 == _DEGRADED_BW_TRUE

    @property
    def manager_disconnected(self) -> bool:
        return self.health_mask is not None and (self.health_mask >> 14) & 0x3 == _GFM_DISCONNECTED


@dataclass(frozen=True)
class GpuCondition:
    """The GPU's running condition, for doctor's gpu.clocks/ecc/nvlink-errors/fabric/driver checks.

    None (or empty) wherever NVML did not answer: not supported, lost, or too old a driver.
    """

    clock_events: int | None = None
    ecc_uncorrected_volatile: int | None = None
    ecc_uncorrected_aggregate: int | None = None
    ecc_enabled: bool | None = None  # nvmlDeviceGetEccMode's current mode (None: no ECC on this GPU)
    nvlink_errors: tuple[NvLinkErrors, ...] = ()
    fabric: FabricInfo | None = None
    vbios: str | None = None
    gsp_firmware: str | None = None


def clock_event_names(mask: int, *, faults: bool) -> list[str]:
    """The reasons set in *mask*: those that mean a sick GPU (*faults*) or the others."""
    return [name for bit, (name, bad) in CLOCK_EVENTS.items() if mask & bit and bad == faults]
