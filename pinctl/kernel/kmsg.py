"""The kernel log, as ``dmesg`` reads it: /dev/kmsg records (Documentation/ABI/testing/dev-kmsg).

Each record reads ``PRIORITY,SEQUENCE,MICROSECONDS,FLAGS;MESSAGE`` (continuation lines start
with a space and are dropped). Live, /dev/kmsg is a character device that hands out one
record per read and EAGAIN at the end (opened non-blocking); a gathered tree may hold it
as a plain file of records, or a ``dmesg`` capture (``[  12.345678] MESSAGE``) at
/var/log/dmesg. Reading needs CAP_SYSLOG when kernel.dmesg_restrict is 1: that is reported
as a reason, not raised.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass

from pinctl.kernel.files import KernelFiles

KMSG = "/dev/kmsg"
DMESG_FILE = "/var/log/dmesg"
RESTRICT = "/proc/sys/kernel/dmesg_restrict"
UPTIME = "/proc/uptime"
_MAX_RECORDS = 1 << 18
_DMESG_RE = re.compile(r"^\[\s*(\d+)\.(\d+)\]\s?(.*)$")


@dataclass(frozen=True)
class LogLine:
    """One kernel message and when it was logged (microseconds since boot; None when unknown)."""

    usec: int | None
    text: str


def parse_record(record: str) -> LogLine | None:
    """``6,1234,5678,-;NVRM: ...`` -> LogLine(5678, "NVRM: ..."); a ``dmesg`` line too; else None."""
    head, sep, text = record.partition(";")
    if sep:
        fields = head.split(",")
        if len(fields) >= 3 and fields[2].isdigit():
            return LogLine(int(fields[2]), text.rstrip("\n"))
    m = _DMESG_RE.match(record)
    if m:
        return LogLine(int(m.group(1)) * 1_000_000 + int(m.group(2).ljust(6, "0")[:6]), m.group(3))
    return None


def read_log(files: KernelFiles) -> tuple[list[LogLine], str | None]:
    """``(lines, None)``, or ``([], why the log cannot be read here)``."""
    for rel in (KMSG, DMESG_FILE):
        path = files.path(rel)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        except PermissionError:
            restrict = files.read(RESTRICT)
            why = " (kernel.dmesg_restrict = 1)" if restrict == "1" else ""
            return [], f"{rel}: permission denied{why}: run as root or with CAP_SYSLOG to read Xid events"
        except OSError as e:
            return [], f"{rel}: {e.strerror or e}"
        try:
            if stat.S_ISCHR(os.fstat(fd).st_mode):
                return _records(fd), None
            with os.fdopen(os.dup(fd), encoding="utf-8", errors="replace") as f:
                lines = [parse_record(line) for line in f]
            return [x for x in lines if x is not None], None
        except PermissionError:
            return [], f"{rel}: permission denied: run as root or with CAP_SYSLOG to read Xid events"
        finally:
            os.close(fd)
    return [], f"no kernel log in this tree ({KMSG} or {DMESG_FILE})"


def _records(fd: int) -> list[LogLine]:
    """Every record in the ring buffer: one per read, until EAGAIN (EPIPE: some were overwritten)."""
    out = []
    for _ in range(_MAX_RECORDS):
        try:
            data = os.read(fd, 8192)
        except BlockingIOError:
            break
        except OSError as e:
            if e.errno == errno.EPIPE:
                continue
            if e.errno == errno.EPERM:
                raise PermissionError(e.errno, e.strerror) from None
            break
        if not data:
            break
        line = parse_record(data.decode("utf-8", errors="replace").split("\n", 1)[0])
        if line is not None:
            out.append(line)
    return out


def uptime_usec(files: KernelFiles) -> int | None:
    """Microseconds since boot, from /proc/uptime's first field."""
    text = files.read(UPTIME)
    try:
        return int(float(text.split()[0]) * 1_000_000) if text else None
    except ValueError:
        return None
