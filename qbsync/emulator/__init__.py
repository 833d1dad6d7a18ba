"""A QuickBooks Online v3 emulator (customers, items, invoices, query, CDC, batch, OAuth,
limits, faults, webhooks) for tests, the demo and benchmarks. See docs/emulator.md."""

from qbsync.emulator.admin_client import EmulatorAdmin, EmulatorAdminError
from qbsync.emulator.config import EmulatorConfig
from qbsync.emulator.runner import RunningEmulator, running_emulator

__all__ = [
    "EmulatorAdmin",
    "EmulatorAdminError",
    "EmulatorConfig",
    "RunningEmulator",
    "running_emulator",
]
