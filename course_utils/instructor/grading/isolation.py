"""The world a submission's process sees: an allow-list, not a list of things to hide.

In a fresh mount namespace the sandbox builds a new root on an empty tmpfs, puts into it only
what student code needs, and ``pivot_root``s into it, so that nothing else of the host's file
tree is left in the namespace (the mechanism of bubblewrap and of container runtimes, done in
the zygote's forked child so that no interpreter has to start per submission):

- read-only: the system's programs and libraries (``/usr`` and the ``/lib``, ``/bin`` folders or
  links beside it), a few files of ``/etc`` the C library reads, the Python installation and its
  site-packages, and the course package, whose ``instructor`` subpackage (grading, hidden tests)
  is covered by an empty folder;
- fresh: ``/dev`` with five harmless devices, ``/dev/shm`` and ``/tmp`` as private tmpfs (gone
  with the namespace), ``/proc`` of the submission's own PID namespace (mounted by its PID 1).

No repository, ``build/`` folder, other checkout, home folder or host ``/tmp`` is reachable.
"""

from __future__ import annotations

import ctypes
import os
import platform
import site
import sys
import sysconfig

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000,
    0x08000000,
    0x20000000,
    0x40000000,
)
#: pivot_root's system-call number, which glibc does not wrap, by machine.
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
#: System folders bound read-only (or re-created as the same links, on merged-/usr systems).
SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
#: Files of /etc the C library and Python read.
ETC = ("ld.so.cache", "ld.so.conf", "localtime", "nsswitch.conf", "passwd", "group", "hosts")
DEVICES = ("null", "zero", "full", "random", "urandom")
#: Where the new root is assembled, inside the namespace's own tmpfs over /tmp.
STAGING = "/tmp/course-sandbox-root"

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def libc_call(name: str, *args) -> None:
    """Call a C library function; OSError with the function's name when it fails."""
    _check(getattr(_libc, name)(*args), name)


def mount(
    source: str, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    libc_call(
        "mount",
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )


def readable_paths() -> list[str]:
    """What student code may read besides the system: the Python installation, its
    site-packages and the course package (real paths, outermost first, no duplicates)."""
    import course_utils

    paths = [sys.base_prefix, sys.prefix, *site.getsitepackages()]
    paths += [sysconfig.get_path(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    paths.append(os.path.dirname(os.path.abspath(course_utils.__file__)))
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)})
    return [p for p in real if not any(p.startswith(q + os.sep) for q in real if q != p)]


def instructor_package() -> str:
    """The course package's ``instructor`` folder (grading and hidden tests), covered in the
    new root."""
    import course_utils

    return os.path.realpath(os.path.join(os.path.dirname(course_utils.__file__), "instructor"))


def _bind(source: int, target: str, *, folder: bool, read_only: bool = True) -> None:
    """Bind the file or folder open as ``source`` (an O_PATH descriptor) at ``target``; folders
    made on the way are root's and read-only to others."""
    if folder:
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        open(target, "a").close()
    mount(f"/proc/self/fd/{source}", target, None, MS_BIND | MS_REC)
    if read_only:
        mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def enter(uid: int, workdir: str, readable: list[str], covered: list[str]) -> None:
    """In B (root): new namespaces, then a root holding only the allow-list (``readable``, with
    the folders ``covered`` emptied), pivoted into; ``workdir`` (inside the new /tmp) is an
    empty folder owned by ``uid``."""
    number = PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root's system call is not known on {platform.machine()}")
    libc_call("unshare", CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC)
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    # what to bind, held open before /tmp is covered (the course may live under /tmp)
    wanted = [p for p in SYSTEM if os.path.isdir(p) and not os.path.islink(p)]
    wanted += [f"/etc/{name}" for name in ETC if os.path.isfile(f"/etc/{name}")]
    wanted += [*readable, *(f"/dev/{device}" for device in DEVICES)]
    held = {path: (os.open(path, os.O_PATH), os.path.isdir(path)) for path in wanted}
    try:
        mount(
            "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=700"
        )  # this namespace's
        root = STAGING
        os.makedirs(root)
        mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        for folder in SYSTEM:
            if os.path.islink(folder):  # merged /usr: /lib -> usr/lib
                os.symlink(os.readlink(folder), root + folder)
        os.makedirs(root + "/dev")
        mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
        for scratch in ("/dev/shm", "/tmp"):  # before the binds: the course may live under /tmp
            os.makedirs(root + scratch)
            mount("tmpfs", root + scratch, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
        for path, (fd, folder) in held.items():
            _bind(fd, root + path, folder=folder, read_only=not path.startswith("/dev/"))
    finally:
        for fd, _ in held.values():
            os.close(fd)
    for path in covered:
        if os.path.isdir(root + path):
            mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=000")
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{root}/dev/{name}")
    os.makedirs(root + "/proc")
    os.makedirs(root + workdir)
    os.chown(root + workdir, uid, uid)
    os.chmod(root + workdir, 0o700)
    os.makedirs(root + "/.old")
    os.chdir(root)
    _check(_libc.syscall(number, b".", b".old"), "pivot_root")
    os.chdir("/")
    libc_call("umount2", b"/.old", MNT_DETACH)
    os.rmdir("/.old")
    mount("none", "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def mount_proc() -> None:
    """In C, PID 1 of the new PID namespace, still root: a /proc that shows only its own."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
