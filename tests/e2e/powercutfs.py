"""powercutfs.py - a FUSE file system that forgets, on command, everything
a power cut would: the test file system of tests/e2e/test_powercut.py.

    /usr/bin/python3 powercutfs.py BACKING MOUNTPOINT SNAPSHOT

Every operation passes through to BACKING (a plain directory), so programs
on MOUNTPOINT see a normal file system.  Beside it the file system keeps a
model of what is durable, as POSIX promises it and no more:

- a file's content is durable as of its last fsync()/fdatasync();
- a directory's entries (names -> inodes) are durable as of its last
  fsync(); creating, renaming, linking or unlinking a name changes nothing
  durable until the directory holding that name is synced;
- everything in BACKING at mount time is durable (the machine came up).

Writing rules to MOUNTPOINT/.faults makes chosen operations fail with EIO
(a failing disk; see PowerCutFS.set_faults).

Writing anything to MOUNTPOINT/.powercut cuts the power: the durable model
is written out as a fresh directory tree SNAPSHOT (the disk as it would be
found after the cut), and from then on every operation fails with EIO, as
on a dead disk.  A file whose content was changed after its last sync (and
that is still open) may come back torn: with its synced content plus a
random prefix of what was appended since, as partial writeback leaves it.
The write to .powercut returns once SNAPSHOT is complete; a summary of what
was in flight at the cut goes to SNAPSHOT.json.

Everything an fsync reported as done is in SNAPSHOT, since a sync updates
the model before it returns and the cut takes the same lock.

Written with pyfuse3 (Debian's python3-pyfuse3, libfuse3): its requests
run one at a time on one trio loop, so the model needs no more locking
than the lock kept for clarity.  (fuse-python 1.0.5 crashes on FSYNCDIR.)
Renames honour RENAME_NOREPLACE.
"""

import errno
import json
import os
import random
import stat
import sys
import threading

import pyfuse3
import trio

# The control files, in the root: their inode numbers double as their
# file handles (no descriptor number is that large).
CUT = 1 << 62
FAULTS = CUT + 1
CONTROLS = {b".powercut": CUT, b".faults": FAULTS}


class Model:
    """What is durable, keyed by our own inode ids (a backing inode number
    can be reused after an unlink; a new object always gets a new id)."""

    def __init__(self, backing: str):
        self.lock = threading.Lock()
        self.backing = backing
        self.dead = False
        self.next_id = 0
        self.ino2id: dict[int, int] = {}
        self.kind: dict[int, str] = {}            # "f", "d", "l"
        self.meta: dict[int, tuple] = {}          # (mode, uid, gid)
        self.data: dict[int, bytes] = {}          # durable file content
        self.link: dict[int, str] = {}            # symlink targets
        self.entries: dict[int, dict[str, int]] = {}  # durable dir entries
        self.open_fds: dict[int, set[int]] = {}   # id -> fds open on it
        self.synced_files = 0
        self.synced_dirs = 0
        self.root = self._scan(backing)

    def new_id(self, st: os.stat_result) -> int:
        self.next_id += 1
        self.ino2id[st.st_ino] = self.next_id
        kind = ("d" if stat.S_ISDIR(st.st_mode) else
                "l" if stat.S_ISLNK(st.st_mode) else "f")
        self.kind[self.next_id] = kind
        self.meta[self.next_id] = (stat.S_IMODE(st.st_mode), st.st_uid,
                                   st.st_gid)
        if kind == "f":
            self.data[self.next_id] = b""
        elif kind == "d":
            self.entries[self.next_id] = {}
        return self.next_id

    def _scan(self, path: str) -> int:
        st = os.lstat(path)
        if st.st_ino in self.ino2id:  # a hard link seen before
            return self.ino2id[st.st_ino]
        ident = self.new_id(st)
        if self.kind[ident] == "d":
            self.entries[ident] = {
                name: self._scan(os.path.join(path, name))
                for name in os.listdir(path)}
        elif self.kind[ident] == "l":
            self.link[ident] = os.readlink(path)
        else:
            with open(path, "rb") as f:
                self.data[ident] = f.read()
        return ident

    def id_of(self, st: os.stat_result) -> int:
        ident = self.ino2id.get(st.st_ino)
        return ident if ident is not None else self.new_id(st)

    # --- the cut ----------------------------------------------------------

    def _torn(self, ident: int, rng: random.Random) -> bytes:
        """The file as a cut may leave it: its synced content, or that plus
        part of what was appended since (read from a descriptor still open
        on it)."""
        durable = self.data[ident]
        for fd in self.open_fds.get(ident, ()):
            try:
                live = os.pread(fd, 1 << 30, 0)
            except OSError:
                continue
            if len(live) > len(durable) and live.startswith(durable) and \
                    rng.random() < 0.5:
                return live[:rng.randint(len(durable), len(live))]
            break
        return durable

    def _write(self, ident: int, path: str, made: dict, rng) -> None:
        kind = self.kind[ident]
        mode, uid, gid = self.meta[ident]
        if ident in made:
            if kind == "d":
                return  # a directory reachable twice: keep the first
            os.link(made[ident], path)
            return
        made[ident] = path
        if kind == "d":
            os.mkdir(path, 0o700)
            for name, child in sorted(self.entries[ident].items()):
                self._write(child, os.path.join(path, name), made, rng)
        elif kind == "l":
            os.symlink(self.link[ident], path)
            return
        else:
            with open(path, "wb") as f:
                f.write(self._torn(ident, rng))
        os.chmod(path, mode)
        os.chown(path, uid, gid)

    def _in_flight(self) -> dict:
        """What differs between the live tree and the durable model: the
        names not yet synced, per top directory, "+DIR" for names that a
        cut loses (created or renamed in since the directory's last sync),
        "-DIR" for names that a cut brings back (unlinked or renamed away):
        for the test's report of what each cut interrupted."""
        pending: dict[str, int] = {}

        def walk(path: str, ident: int, rel: str) -> None:
            try:
                live = os.listdir(path)
            except OSError:
                return
            durable = self.entries.get(ident, {})
            top = "/".join(rel.split("/")[:3]) or "/"
            for sign, names in (("+", set(live) - set(durable)),
                                ("-", set(durable) - set(live))):
                if names:
                    key = sign + top
                    pending[key] = pending.get(key, 0) + len(names)
            for name in live:
                child = os.path.join(path, name)
                try:
                    st = os.lstat(child)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode) and st.st_ino in self.ino2id:
                    walk(child, self.ino2id[st.st_ino], f"{rel}/{name}")

        walk(self.backing, self.root, "")
        return pending

    def cut(self, snapshot: str) -> None:
        rng = random.Random()
        with self.lock:
            if self.dead:
                return
            self.dead = True
            self._write(self.root, snapshot, {}, rng)
            summary = {"synced_files": self.synced_files,
                       "synced_dirs": self.synced_dirs,
                       "unsynced_names": self._in_flight()}
        with open(snapshot + ".json", "w") as f:
            json.dump(summary, f)


class PowerCutFS(pyfuse3.Operations):
    """Passes every operation to BACKING; FUSE inode numbers are the
    backing inode numbers (the root is pyfuse3.ROOT_INODE)."""

    supports_dot_lookup = False
    enable_writeback_cache = False

    def __init__(self, backing: str, snapshot: str):
        super().__init__()
        self.backing = backing
        self.snapshot = snapshot
        self.model = Model(backing)
        self.root_ino = os.lstat(backing).st_ino
        self.paths: dict[int, set[str]] = {pyfuse3.ROOT_INODE: {backing}}
        self.fds: dict[int, int] = {}  # fh (the backing fd) -> model id
        self.fd_paths: dict[int, str] = {}  # fh -> its path at open
        self.faults: list[list] = []  # [operation, path part, times left]
        self.injected = 0

    # --- helpers -----------------------------------------------------------

    def alive(self) -> None:
        if self.model.dead:
            raise pyfuse3.FUSEError(errno.EIO)

    def ino(self, st: os.stat_result) -> int:
        return pyfuse3.ROOT_INODE if st.st_ino == self.root_ino else st.st_ino

    def path(self, inode: int) -> str:
        paths = self.paths.get(inode)
        if not paths:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return next(iter(paths))

    def child(self, parent: int, name: bytes) -> str:
        return os.path.join(self.path(parent), os.fsdecode(name))

    def remember(self, path: str, st: os.stat_result) -> None:
        self.paths.setdefault(self.ino(st), set()).add(path)

    def forget_path(self, path: str, inode: int) -> None:
        paths = self.paths.get(inode)
        if paths is not None:
            paths.discard(path)
            # a directory renamed away: its children's paths moved too
            prefix = path + "/"
            for other in list(self.paths.values()):
                for p in [p for p in other if p.startswith(prefix)]:
                    other.discard(p)

    def attributes(self, st: os.stat_result) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        for name in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev",
                     "st_size", "st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
            setattr(entry, name, getattr(st, name))
        entry.st_ino = self.ino(st)
        entry.generation = 0
        entry.entry_timeout = 0
        entry.attr_timeout = 0
        entry.st_blksize = 512
        entry.st_blocks = (st.st_size + 511) // 512
        return entry

    def control_attributes(self, inode: int) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = inode
        entry.st_mode = stat.S_IFREG | 0o600
        entry.st_nlink = 1
        entry.entry_timeout = 0
        entry.attr_timeout = 0
        return entry

    def lstat(self, path: str) -> os.stat_result:
        try:
            return os.lstat(path)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)

    def new_object(self, path: str) -> pyfuse3.EntryAttributes:
        st = self.lstat(path)
        with self.model.lock:
            ident = self.model.new_id(st)
            if stat.S_ISLNK(st.st_mode):
                self.model.link[ident] = os.readlink(path)
        self.remember(path, st)
        return self.attributes(st)

    def set_faults(self, text: str) -> None:
        """Replaces the fault rules: one per line, `OPERATION PATH-PART
        COUNT`: the next COUNT calls of OPERATION (write, fsync, fsyncdir,
        rename) on a path containing PATH-PART fail with EIO."""
        self.faults = []
        for line in text.splitlines():
            if line.strip():
                op, part, count = line.split()
                self.faults.append([op, part, int(count)])

    def fault(self, op: str, path: str) -> None:
        for rule in self.faults:
            if rule[0] == op and rule[1] in path and rule[2] > 0:
                rule[2] -= 1
                self.injected += 1
                raise pyfuse3.FUSEError(errno.EIO)

    # --- names -------------------------------------------------------------

    async def lookup(self, parent_inode, name, ctx=None):
        if parent_inode == pyfuse3.ROOT_INODE and name in CONTROLS:
            return self.control_attributes(CONTROLS[name])
        self.alive()
        path = self.child(parent_inode, name)
        st = self.lstat(path)
        self.remember(path, st)
        return self.attributes(st)

    async def getattr(self, inode, ctx=None):
        if inode in CONTROLS.values():
            return self.control_attributes(inode)
        self.alive()
        return self.attributes(self.lstat(self.path(inode)))

    async def setattr(self, inode, attr, fields, fh, ctx):
        if inode in CONTROLS.values():
            return self.control_attributes(inode)
        self.alive()
        path = self.path(inode)
        try:
            if fields.update_size:
                if fh is not None:
                    os.ftruncate(fh, attr.st_size)
                else:
                    os.truncate(path, attr.st_size)
            if fields.update_mode:
                os.chmod(path, stat.S_IMODE(attr.st_mode))
            if fields.update_uid or fields.update_gid:
                os.lchown(path, attr.st_uid if fields.update_uid else -1,
                          attr.st_gid if fields.update_gid else -1)
            if fields.update_atime or fields.update_mtime:
                st = os.lstat(path)
                os.utime(path, ns=(
                    attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                    attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns),
                    follow_symlinks=False)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        st = self.lstat(path)
        with self.model.lock:
            self.model.meta[self.model.id_of(st)] = (
                stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        return self.attributes(st)

    async def readlink(self, inode, ctx):
        self.alive()
        return os.fsencode(os.readlink(self.path(inode)))

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        self.alive()
        path = self.child(parent_inode, name)
        try:
            os.mknod(path, mode, rdev)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        return self.new_object(path)

    async def mkdir(self, parent_inode, name, mode, ctx):
        self.alive()
        path = self.child(parent_inode, name)
        try:
            os.mkdir(path, mode)
            os.lchown(path, ctx.uid, ctx.gid)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        return self.new_object(path)

    async def symlink(self, parent_inode, name, target, ctx):
        self.alive()
        path = self.child(parent_inode, name)
        try:
            os.symlink(os.fsdecode(target), path)
            os.lchown(path, ctx.uid, ctx.gid)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        return self.new_object(path)

    async def unlink(self, parent_inode, name, ctx):
        self.alive()
        path = self.child(parent_inode, name)
        st = self.lstat(path)
        try:
            os.unlink(path)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        self.forget_path(path, self.ino(st))

    async def rmdir(self, parent_inode, name, ctx):
        self.alive()
        path = self.child(parent_inode, name)
        st = self.lstat(path)
        try:
            os.rmdir(path)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        self.forget_path(path, self.ino(st))

    async def rename(self, parent_old, name_old, parent_new, name_new, flags,
                     ctx):
        self.alive()
        old = self.child(parent_old, name_old)
        new = self.child(parent_new, name_new)
        self.fault("rename", old + " " + new)
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        if flags & pyfuse3.RENAME_NOREPLACE and os.path.lexists(new):
            raise pyfuse3.FUSEError(errno.EEXIST)
        st = self.lstat(old)
        replaced = os.lstat(new) if os.path.lexists(new) else None
        try:
            os.rename(old, new)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        if replaced is not None:
            self.forget_path(new, self.ino(replaced))
        self.forget_path(old, self.ino(st))
        self.remember(new, st)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        self.alive()
        path = self.child(new_parent_inode, new_name)
        try:
            os.link(self.path(inode), path)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        st = self.lstat(path)
        self.remember(path, st)
        return self.attributes(st)

    # --- files -------------------------------------------------------------

    def open_backing(self, path: str, flags: int, mode: int = 0o600,
                     created: bool = False) -> int:
        # Readable too: a sync reads the content into the model.
        if flags & os.O_ACCMODE == os.O_WRONLY:
            flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
        try:
            fd = os.open(path, flags & ~os.O_NOFOLLOW, mode)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        st = os.fstat(fd)
        with self.model.lock:
            ident = self.model.new_id(st) if created else self.model.id_of(st)
            self.model.open_fds.setdefault(ident, set()).add(fd)
        self.fds[fd] = ident
        self.fd_paths[fd] = path
        return fd

    async def open(self, inode, flags, ctx):
        if inode in CONTROLS.values():
            return pyfuse3.FileInfo(fh=inode)
        self.alive()
        return pyfuse3.FileInfo(fh=self.open_backing(self.path(inode), flags))

    async def create(self, parent_inode, name, mode, flags, ctx):
        if parent_inode == pyfuse3.ROOT_INODE and name in CONTROLS:
            inode = CONTROLS[name]
            return pyfuse3.FileInfo(fh=inode), self.control_attributes(inode)
        self.alive()
        path = self.child(parent_inode, name)
        fd = self.open_backing(path, flags | os.O_CREAT | os.O_EXCL, mode,
                               created=True)
        os.fchown(fd, ctx.uid, ctx.gid)
        st = os.fstat(fd)
        self.remember(path, st)
        return pyfuse3.FileInfo(fh=fd), self.attributes(st)

    async def read(self, fh, off, size):
        self.alive()
        return os.pread(fh, size, off)

    async def write(self, fh, off, buf):
        if fh == CUT:
            self.model.cut(self.snapshot)
            return len(buf)
        if fh == FAULTS:
            self.set_faults(buf.decode())
            return len(buf)
        self.alive()
        self.fault("write", self.fd_paths.get(fh, ""))
        try:
            return os.pwrite(fh, buf, off)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)

    async def fsync(self, fh, datasync):
        if fh in CONTROLS.values():
            return
        self.alive()
        self.fault("fsync", self.fd_paths.get(fh, ""))
        content = os.pread(fh, 1 << 30, 0)
        with self.model.lock:
            if self.model.dead:
                raise pyfuse3.FUSEError(errno.EIO)
            self.model.data[self.fds[fh]] = content
            self.model.synced_files += 1

    async def flush(self, fh):
        pass

    async def release(self, fh):
        if fh in CONTROLS.values():
            return
        self.fd_paths.pop(fh, None)
        ident = self.fds.pop(fh, None)
        with self.model.lock:
            self.model.open_fds.get(ident, set()).discard(fh)
        os.close(fh)

    # --- directories -------------------------------------------------------

    async def opendir(self, inode, ctx):
        self.alive()
        self.path(inode)
        return inode

    async def readdir(self, fh, start_id, token):
        self.alive()
        path = self.path(fh)
        names = sorted(os.listdir(path))
        if fh == pyfuse3.ROOT_INODE:
            names = [n for n in names if os.fsencode(n) not in CONTROLS]
        for index in range(start_id, len(names)):
            child = os.path.join(path, names[index])
            try:
                st = os.lstat(child)
            except OSError:
                continue
            if not pyfuse3.readdir_reply(token, os.fsencode(names[index]),
                                         self.attributes(st), index + 1):
                return
            self.remember(child, st)

    async def releasedir(self, fh):
        pass

    async def fsyncdir(self, fh, datasync):
        self.alive()
        path = self.path(fh)
        self.fault("fsyncdir", path)
        stats = {}
        for name in os.listdir(path):
            try:
                stats[name] = os.lstat(os.path.join(path, name))
            except OSError:
                pass
        st = self.lstat(path)
        with self.model.lock:
            if self.model.dead:
                raise pyfuse3.FUSEError(errno.EIO)
            ident = self.model.id_of(st)
            self.model.entries[ident] = {
                name: self.model.id_of(s) for name, s in stats.items()}
            self.model.synced_dirs += 1

    async def statfs(self, ctx):
        self.alive()
        vfs = os.statvfs(self.backing)
        out = pyfuse3.StatvfsData()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                     "f_files", "f_ffree", "f_favail", "f_namemax"):
            setattr(out, name, getattr(vfs, name))
        return out

    async def access(self, inode, mode, ctx):
        return True


def main() -> None:
    backing, mountpoint, snapshot = sys.argv[1:4]
    fs = PowerCutFS(os.path.abspath(backing), os.path.abspath(snapshot))
    options = set(pyfuse3.default_options)
    options.add("fsname=pst-powercut")
    options.discard("default_permissions")
    pyfuse3.init(fs, mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)


if __name__ == "__main__":
    main()
