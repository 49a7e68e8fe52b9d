"""A system-call filter for student code: what the allow-listed file tree cannot stop.

An unprivileged process may still create a user namespace (and with it mount, unmount and
remount what it likes inside it), reach the kernel's keyrings (which live per user id, so they
would carry messages from one submission to the next one run under the same slot), or give up
the parent-death signal that ends it when the grader stops. This filter, installed in the
submission's process after ``PR_SET_NO_NEW_PRIVS`` and inherited by everything it starts,
refuses those calls with an error (the call fails, the process goes on):

- namespaces and mounts: ``unshare``, ``setns``, ``clone`` with a namespace flag, ``clone3``
  (``ENOSYS``, so the C library falls back to ``clone``), ``mount``, ``umount2``,
  ``pivot_root``, ``chroot`` and the new mount API;
- keyrings, BPF, ``perf_event_open``, ``userfaultfd`` and ``io_uring`` (kernel attack surface
  no exercise needs);
- ``prctl(PR_SET_PDEATHSIG, ...)``;
- every call of another ABI (32-bit or x32 calls on x86_64).

Written with ctypes (classic BPF, as in the kernel's ``seccomp_filter`` documentation) so that
grading needs no compiled extension.
"""

from __future__ import annotations

import ctypes
import errno
import platform

from course_utils.instructor.grading import isolation

PR_SET_PDEATHSIG, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 22, 2
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
NR, ARCH, ARG0 = 0, 4, 16  # offsets in struct seccomp_data (arg0's low word on little-endian)
#: clone's flags that make a namespace (NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET).
NAMESPACE_FLAGS = 0x7E020000
X32_BIT = 0x40000000


#: Calls numbered alike on every machine (added after the numbers were unified).
UNIFIED = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "clone3": 435, "mount_setattr": 442,
}  # fmt: skip
#: Per machine: AUDIT_ARCH, then the numbers of clone, prctl and the refused calls.
TABLES = {
    "x86_64": (0xC000003E, {
        "clone": 56, "prctl": 157, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166,
        "pivot_root": 155, "chroot": 161, "add_key": 248, "request_key": 249, "keyctl": 250,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, **UNIFIED,
    }),
    "aarch64": (0xC00000B7, {
        "clone": 220, "prctl": 167, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
        "pivot_root": 41, "chroot": 51, "add_key": 217, "request_key": 218, "keyctl": 219,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, **UNIFIED,
    }),
}  # fmt: skip


class _Instruction(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


def program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter for ``machine`` as (code, jump-if-true, jump-if-false, constant) tuples."""
    arch, numbers = TABLES[machine]
    refused = {k: v for k, v in numbers.items() if k not in ("clone", "clone3", "prctl")}

    def deny(error: int) -> tuple:
        return (RET_K, 0, 0, RET_ERRNO | error)

    steps = [(LD_W_ABS, 0, 0, ARCH), (JEQ_K, 1, 0, arch), deny(errno.ENOSYS), (LD_W_ABS, 0, 0, NR)]
    if machine == "x86_64":
        steps += [(JGE_K, 0, 1, X32_BIT), deny(errno.ENOSYS)]
    for number in refused.values():
        steps += [(JEQ_K, 0, 1, number), deny(errno.EPERM)]
    steps += [(JEQ_K, 0, 1, numbers["clone3"]), deny(errno.ENOSYS)]
    for number, mask_test in ((numbers["clone"], (JSET_K, 0, 1, NAMESPACE_FLAGS)),
                              (numbers["prctl"], (JEQ_K, 0, 1, PR_SET_PDEATHSIG))):  # fmt: skip
        steps += [(JEQ_K, 0, 4, number), (LD_W_ABS, 0, 0, ARG0), mask_test]
        steps += [deny(errno.EPERM), (RET_K, 0, 0, RET_ALLOW)]
    return [*steps, (RET_K, 0, 0, RET_ALLOW)]


def install() -> None:
    """Install the filter in this process (after ``PR_SET_NO_NEW_PRIVS``); OSError if the
    machine has no table or the kernel refuses it."""
    machine = platform.machine()
    if machine not in TABLES:
        raise OSError(f"no system-call table for {machine}; grade on {' or '.join(TABLES)}")
    steps = program(machine)
    instructions = (_Instruction * len(steps))(*steps)
    filter_program = _Program(len(steps), instructions)
    isolation.libc_call(
        "prctl", PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(filter_program), 0, 0
    )
