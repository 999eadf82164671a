"""The child side of sandbox.py, run as `python -I -B sandbox_worker.py ROOT MEMORY_MB DISK_MB TIMEOUT_S [--unconfined]`:
it confines itself with kernel mechanisms, then serves as a zygote that forks one child per check.

Confinement, in order (Linux only; standard library and ctypes only; this file never imports minirlvr):
1. Namespaces: unshare(user, mount, pid, network, IPC, UTS). The new network namespace has no interface but a
   down loopback, so nothing can be reached; the pid namespace hides every outside process and kills everything
   in it when its first process (the zygote, forked right after) dies.
2. A new root: a tmpfs of DISK_MB mounted on ROOT (the disk cap), the interpreter's folders (its prefixes and
   sys.path folders) and the system library folders bind-mounted read-only into it, an empty /box for the checks,
   then chroot. Nothing else of the machine (/etc, /home, /root, /proc, /tmp, the kit's own files) exists there.
3. uid and gid 65534 (nobody) in the namespace, which is uid 65534 on the machine when started as root (the
   caller's own uid otherwise); every capability dropped; no_new_privs.
4. Landlock (kernel >= 5.13): reads only beneath the read-only folders, writes only beneath /box, no execve,
   no TCP bind/connect (ABI >= 4), no signals or abstract sockets out of the domain (ABI >= 6).
Each check then runs in a child forked for it that adds, before the check's code runs: its own Landlock layer
(writes only in its own folder /box/check, which the zygote empties after it), rlimits (address space, CPU,
file size, open files, no processes or threads at all, no core files), and stdin/stdout/stderr on /dev/null.
The zygote reads one job at a time (a length-prefixed JSON [code, instruction, response] on stdin), keeps the
result channel (stdout) to itself, and hands a child only its own job: the child cannot see other jobs, cannot
write a result but its own (a private pipe the zygote validates), and cannot signal or trace the zygote.

What is not confined: CPU time and memory beyond the rlimits (no cgroup), the kernel's syscall surface (no
seccomp filter), reading anything inside the read-only folders (all of /usr/lib included), and the time a check
takes up to its timeout.
`--unconfined` skips steps 1-4 (the caller's explicit, loudly named opt-out); the zygote and rlimits stay.
"""

import ctypes
import gc
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import time

# modules a check is likely to import, loaded once here so that each forked check finds them ready
import collections, itertools, math, re, string, unicodedata  # noqa: E401,F401

NOBODY = 65534
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_RELATIME, MS_PRIVATE = 1024, 2048, 4096, 16384, 1 << 21, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446  # all arches
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_MAKE_CHAR, FS_MAKE_BLOCK, FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 6, 1 << 11, 1 << 13, 1 << 14, 1 << 15
NET_ALL, SCOPE_ALL = 3, 3  # TCP bind + connect; abstract unix sockets + signals
MAX_LINE = 8192  # bytes of a child's result line; longer is not a result
BOX = "/box"

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class Unconfinable(RuntimeError):
    """The kernel refused a confinement step: the message says which."""


def _ok(rc, what):
    if rc < 0:
        err = ctypes.get_errno()
        raise Unconfinable(f"{what} failed: {os.strerror(err)} (errno {err})")
    return rc


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------------------------------------- Landlock
def landlock_abi():
    return libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))


def landlock(read_dirs, write_dirs):
    """Restrict this process (and its future children) to reading beneath read_dirs and writing beneath
    write_dirs; layers stack, so a child can only narrow what its parent had."""
    abi = landlock_abi()
    if abi < 1:
        raise Unconfinable("Landlock is not available (Linux >= 5.13 with landlock in the LSM list is needed)")
    fs = (1 << 13) - 1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (
        FS_IOCTL_DEV if abi >= 5 else 0)
    attr = ctypes.create_string_buffer(struct.pack("QQQ", fs, NET_ALL if abi >= 4 else 0, SCOPE_ALL if abi >= 6 else 0))
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _ok(libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, ctypes.c_size_t(size), ctypes.c_uint32(0)),
                  "landlock_create_ruleset")
    try:
        rw = fs & ~(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_IOCTL_DEV)
        for dirs, access in ((read_dirs, FS_READ_FILE | FS_READ_DIR), (write_dirs, rw)):
            for d in dirs:
                fd = os.open(d, os.O_PATH | os.O_CLOEXEC)
                try:
                    rule = ctypes.create_string_buffer(struct.pack("=Qi", access, fd))
                    _ok(libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, 1, rule, 0), f"landlock_add_rule({d})")
                finally:
                    os.close(fd)
        _ok(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _ok(libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


# ---------------------------------------------------------------------------------------------- namespaces, root
def interpreter_dirs():
    """Folders a Python check may read: the interpreter's prefixes' lib folders, sys.path, the shared libraries."""
    dirs = {p for p in sys.path if p and os.path.isdir(p)}
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        lib = os.path.join(prefix, "lib")
        if os.path.isdir(lib):
            dirs.add(lib)
    dirs |= {d for d in ("/usr/lib", "/usr/lib64", "/usr/lib32") if os.path.isdir(d) and not os.path.islink(d)}
    with open("/proc/self/maps") as f:  # where this interpreter's shared objects really are
        dirs |= {os.path.dirname(line.split()[5]) for line in f if len(line.split()) >= 6 and line.split()[5][0] == "/"}
    dirs = sorted(os.path.realpath(d) for d in dirs)
    return [d for k, d in enumerate(dirs) if not any(d.startswith(p + "/") or d == p for p in dirs[:k])]


def _mount(src, target, fstype, flags, data):
    _ok(libc.mount(src and src.encode(), target.encode(), fstype and fstype.encode(), ctypes.c_ulong(flags),
                   data and data.encode()), f"mount {src or fstype} on {target}")


def enter_namespaces():
    """unshare everything and map uid/gid 65534 (and 0 when started as root, to set the new root up). A map
    with another uid than one's own must be written from the parent namespace: a forked helper does it."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        os.setgroups([])  # root's supplementary groups would otherwise follow it into the namespace
        maps = (f"0 0 1\n{NOBODY} {NOBODY} 1\n", f"0 0 1\n{NOBODY} {NOBODY} 1\n")
    else:
        maps = (f"{NOBODY} {uid} 1\n", f"{NOBODY} {gid} 1\n")
    go_r, go_w = os.pipe()
    me, helper = os.getpid(), os.fork()
    if helper == 0:
        try:
            os.close(go_w)
            if os.read(go_r, 1) == b"1":
                if uid != 0:
                    _write(f"/proc/{me}/setgroups", "deny")
                _write(f"/proc/{me}/uid_map", maps[0])
                _write(f"/proc/{me}/gid_map", maps[1])
                os._exit(0)
        except BaseException as e:
            sys.stderr.write(f"cannot confine dataset code on this machine: writing the uid/gid map: {e}\n")
        os._exit(1)
    os.close(go_r)
    try:
        _ok(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
            "unshare(user, mount, pid, net, ipc, uts namespaces)")
        os.write(go_w, b"1")
    finally:
        os.close(go_w)
        _, status = os.waitpid(helper, 0)
    if status != 0:
        raise Unconfinable("the uid/gid map of the new user namespace could not be written")


def build_root(root, disk_mb, read_dirs):
    """tmpfs on root (size-capped), read-only binds of read_dirs at their own paths, /box writable; chroot."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size={disk_mb}m,nr_inodes=4096,mode=755")
    for d in read_dirs:
        target = root + d
        os.makedirs(target, exist_ok=True)
        _mount(d, target, None, MS_BIND | MS_REC, None)
        kept = os.statvfs(d).f_flag & (MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME)  # locked flags stay
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | kept, None)
    for link in ("/lib", "/lib64", "/lib32"):  # merged-/usr symlinks, so the loader's paths still resolve
        if os.path.islink(link):
            os.symlink(os.readlink(link), root + link)
    os.mkdir(root + BOX, 0o700)
    os.chown(root + BOX, NOBODY, NOBODY)
    os.chroot(root)
    os.chdir("/")


def drop_privileges():
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    header = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0))  # _LINUX_CAPABILITY_VERSION_3
    _ok(libc.capset(header, ctypes.create_string_buffer(24)), "capset (drop all capabilities)")


# ---------------------------------------------------------------------------------------------- one check
def clean_reason(text, limit=300):
    """One line, printable, bounded: a reason goes into reports and onto the console."""
    text = "".join(c if c.isprintable() else " " for c in str(text)[:4 * limit])
    return text[:limit]


def run_one(code, instruction, response):
    """(ok, reason) of one check; reason None when it ran cleanly."""
    try:
        scope = {"__name__": "dataset_check"}
        exec(compile(code, "<dataset check>", "exec"), scope)
        fn = scope.get("check_following")
        if not callable(fn):
            return False, "the code defines no check_following function"
        result = fn(instruction, response)
        if type(result) is not bool:
            return False, f"returned {clean_reason(type(result).__name__, 60)}, not a bool"
        return result, None
    except BaseException as e:  # SystemExit, MemoryError, RecursionError, ...: all a failed check
        try:
            name, text = clean_reason(type(e).__name__, 60), clean_reason(e)
        except BaseException:
            name, text = "Exception", "?"
        return False, f"{name}: {text}" if text else name


def child(job, result_fd, devnull, memory_mb, timeout_s, read_dirs, confined):
    """In the forked child: narrow the confinement to this check, run it, write one line, exit."""
    try:
        for fd in (0, 1, 2):  # before fd 3 is taken: devnull itself may be fd 3
            os.dup2(devnull, fd)
        os.dup2(result_fd, 3, inheritable=False)
        os.closerange(4, 1 << 16)
        os.chdir(BOX + "/check")
        os.environ.update(HOME=os.getcwd(), TMPDIR=os.getcwd())
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if confined:
            landlock(read_dirs, [os.getcwd()])
        cpu = int(timeout_s) + 1
        for limit, value in ((resource.RLIMIT_AS, memory_mb << 20), (resource.RLIMIT_CPU, cpu),
                             (resource.RLIMIT_FSIZE, 16 << 20), (resource.RLIMIT_NOFILE, 64),
                             (resource.RLIMIT_NPROC, 0), (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(limit, (value, value))
        code, instruction, response = json.loads(bytes(job).decode("utf-8"))
        del job
        ok, reason = run_one(code, instruction, response)
        os.write(3, (json.dumps({"ok": ok, "reason": reason}) + "\n").encode())
    except BaseException:
        os._exit(70)  # the child could not be confined or could not answer: the check fails, nothing else
    os._exit(0)


def parse_child_line(data):
    """(ok, reason) from a child's bytes, or None when they are not exactly one valid result line."""
    if len(data) > MAX_LINE or data.count(b"\n") != 1 or not data.endswith(b"\n"):
        return None
    try:
        row = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if (not isinstance(row, dict) or set(row) != {"ok", "reason"} or type(row["ok"]) is not bool
            or not (row["reason"] is None or isinstance(row["reason"], str))):
        return None
    return row["ok"], row["reason"] if row["reason"] is None else clean_reason(row["reason"])


def wait_child(pid, r, timeout_s):
    """(ok, reason) of the child `pid`, which writes its line on pipe r; it is killed at the deadline."""
    deadline = time.monotonic() + timeout_s
    pidfd, data, exited, status, overflow = os.pidfd_open(pid), b"", False, 0, False
    try:
        watch = [r, pidfd]
        while watch:
            left = deadline - time.monotonic()
            ready = select.select(watch, [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return False, f"timeout: no answer within {timeout_s:g} s"
            if r in ready:
                chunk = os.read(r, 1 << 16)
                if not chunk or len(data) + len(chunk) > MAX_LINE:
                    overflow |= bool(chunk)
                    watch.remove(r)
                else:
                    data += chunk
            if pidfd in ready:
                _, status = os.waitpid(pid, 0)
                exited = True
                watch.remove(pidfd)
                if r in watch:  # the child is gone: what is in the pipe is all there is
                    while len(data) <= MAX_LINE and (chunk := os.read(r, 1 << 16)):
                        data += chunk
                    watch.remove(r)
        if not exited:
            os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.valid_signals() and number < signal.SIGRTMIN else (
            f"signal {number}")
        return False, f"crashed: killed by {name}" + (" (CPU time limit)" if name == "SIGXCPU" else "")
    code = os.WEXITSTATUS(status)
    parsed = None if overflow else parse_child_line(data)
    if parsed and code == 0:
        return parsed
    if code != 0 or not (data or overflow):
        return False, f"crashed: the check exited with code {code}"
    return False, "crashed: the check wrote something that is not a result"


def empty_box():
    """Remove /box/check whatever a check did to its modes; False when it cannot."""
    path = BOX + "/check"

    def unlock(func, p, exc):
        for q in (os.path.dirname(p), p):
            try:
                os.chmod(q, 0o700)
            except OSError:
                pass
        func(p)

    try:
        if os.path.lexists(path):
            shutil.rmtree(path, onerror=unlock)
        os.mkdir(path, 0o700)
        return True
    except OSError:
        return False


def read_exact(fd, n):
    """n bytes from fd into a fresh bytearray (None at end of file): no immutable copy is left behind."""
    buf, got = bytearray(n), 0
    view = memoryview(buf)
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            return None
        got += k
    view.release()
    return buf


def zygote(memory_mb, timeout_s, read_dirs, confined, devnull):
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(devnull, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # pid 1 of its namespace: nothing should stop it but the caller
    if not empty_box():
        raise Unconfinable("cannot create the check folder")
    gc.freeze()  # what exists now stays out of the collector's way: fewer copied pages in each forked child
    out.write(b'{"ready": true}\n')
    i = 0
    while True:
        head = read_exact(0, 8)
        if head is None:
            return
        job = read_exact(0, struct.unpack(">Q", head)[0])
        if job is None:
            return
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            child(job, w, devnull, memory_mb, timeout_s, read_dirs, confined)
        os.close(w)
        job[:] = bytes(len(job))  # this job's text leaves the zygote: later children cannot find it in memory
        del job
        try:
            ok, reason = wait_child(pid, r, timeout_s)
        finally:
            os.close(r)
        clean = empty_box()
        if not clean:
            ok, reason = False, "refused: the check left files that cannot be removed"
        out.write((json.dumps({"i": i, "ok": ok, "reason": reason}) + "\n").encode())
        i += 1
        if not clean:
            return  # the caller starts a fresh worker for the rest


def main():
    global BOX
    root, memory_mb, disk_mb, timeout_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    confined = "--unconfined" not in sys.argv[5:]
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        if confined:
            read_dirs = interpreter_dirs()
            enter_namespaces()
        else:
            read_dirs = []
    except (Unconfinable, OSError) as e:
        sys.stderr.write(f"cannot confine dataset code on this machine: {e}\n")
        os._exit(3)
    pid = os.fork() if confined else 0  # the first process in the new pid namespace is its init: the zygote
    if pid:
        os.close(0), os.close(1)
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if confined:
            build_root(os.path.realpath(root), disk_mb, read_dirs)
            drop_privileges()
            landlock(read_dirs, [BOX])
        else:
            BOX = os.path.realpath(root) + BOX
            os.makedirs(BOX, exist_ok=True)
            os.chdir(BOX)
    except (Unconfinable, OSError) as e:
        sys.stderr.write(f"cannot confine dataset code on this machine: {e}\n")
        os._exit(3)
    zygote(memory_mb, timeout_s, read_dirs, confined, devnull)
    os._exit(0)


if __name__ == "__main__":
    main()
