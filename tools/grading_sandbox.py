"""Confinement of a grading kernel: what a submission's processes may read, write, signal and allocate.

Run as a script (standard library only, no threads, so nothing is held across the exec):

    python -I -S tools/grading_sandbox.py '<spec as JSON>' -- <command...>

It confines itself, then replaces itself with the command (the kernel), which keeps every restriction,
as do all its children:

* limits: address space (`memory_bytes`), the size of any file written, no core dumps;
* no privileges: `no_new_privs`, and when the grader runs as root every capability is dropped from the
  bounding set, so the kernel is root without root's powers (it can't raise its own limits, read files by
  bypassing their modes, or trace other processes);
* killed with its parent (the grader's per-submission runner), so a crashed runner leaves no kernel behind;
* Landlock (Linux >= 5.13, unprivileged): files can be read only under `read` (Python, its packages, system
  libraries), read and written only under `write` (the submission's disposable folder); no TCP connections
  or listening sockets; no signals to, and no abstract unix sockets of, processes outside the sandbox.
  Everything else, the instructor's repository and the other submissions included, is out of reach.

`landlock_abi()` says whether Landlock is there (0 when not); the grader reports it, and without it only
the limits apply.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import sys

# Landlock (include/uapi/linux/landlock.h)
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_REMOVE_DIR, _REMOVE_FILE, _MAKE_CHAR, _MAKE_DIR, _MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
_MAKE_SOCK, _MAKE_FIFO, _MAKE_BLOCK, _MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
_READ = _EXECUTE | _READ_FILE | _READ_DIR
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV  # the rights a rule on a file may hold

# prctl
_PR_SET_PDEATHSIG, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 1, 24, 38, 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Read-only system paths a Python kernel needs (missing ones are skipped). Not /proc as a whole: another
# process's /proc/<pid>/environ would show the grader's environment.
SYSTEM_READ = (
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/mime.types",
    "/etc/ssl",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
    "/dev/urandom",
    "/dev/random",
)
SYSTEM_WRITE = ("/dev/null",)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi() -> int:
    """The Landlock ABI version this kernel supports, 0 when it has none (or is not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        version = _libc().syscall(
            _SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
        )
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock(read: list[str], write: list[str], abi: int) -> None:
    libc = _libc()
    fs = _READ | _WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE_CHAR | _MAKE_DIR | _MAKE_REG
    fs |= _MAKE_SOCK | _MAKE_FIFO | _MAKE_BLOCK | _MAKE_SYM
    fs |= (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0) | (_IOCTL_DEV if abi >= 5 else 0)
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for paths, rights in ((read, _READ), (write, fs)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # a path this system doesn't have
                try:
                    allowed = rights & fs if os.path.isdir(path) else rights & fs & _FILE_RIGHTS
                    rule = _PathBeneathAttr(allowed, fd)
                    if libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                                    ctypes.byref(rule), ctypes.c_uint32(0)) < 0:  # fmt: skip
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
                finally:
                    os.close(fd)
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    """Root without capabilities after the exec: empty bounding, ambient and inheritable sets."""
    for cap in range(64):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)  # fails harmlessly past the last capability
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) == 0:
        for d in data:
            d.inheritable = 0
        libc.capset(ctypes.byref(header), data)


def confine(spec: dict) -> None:
    """Apply `spec` to this process: {"memory_bytes", "file_bytes", "read": [...], "write": [...], "landlock"}."""
    limits = [(resource.RLIMIT_AS, spec.get("memory_bytes")), (resource.RLIMIT_FSIZE, spec.get("file_bytes"))]
    for limit, value in [*limits, (resource.RLIMIT_CORE, 0)]:
        if value is not None and (value or limit == resource.RLIMIT_CORE):
            with contextlib.suppress(ValueError, OSError):  # macOS refuses RLIMIT_AS
                resource.setrlimit(limit, (value, value))
    if not sys.platform.startswith("linux"):
        return  # the limits are all there is
    libc = _libc()
    libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if os.getppid() == 1:  # the runner died before we got here
        os._exit(1)
    if os.geteuid() == 0:
        _drop_capabilities(libc)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    abi = landlock_abi() if spec.get("landlock", True) else 0
    if abi:
        _landlock(list(spec.get("read", [])) + list(SYSTEM_READ), list(spec.get("write", [])) + list(SYSTEM_WRITE), abi)


def main(argv: list[str]) -> None:
    spec, sep, command = json.loads(argv[0]), argv[1], argv[2:]
    if sep != "--" or not command:
        raise SystemExit("usage: grading_sandbox.py SPEC -- COMMAND...")
    confine(spec)
    os.execv(command[0], command)  # the environment was already made minimal by the runner


if __name__ == "__main__":
    main(sys.argv[1:])
