package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerListener admits only connections from root, the daemon's own user and, when gid is not -1,
// peers of that group (SO_PEERCRED): its primary group, or a user that is a member of it. The socket's
// mode and directory already keep others out; this holds even if someone loosens them later.
type peerListener struct {
	net.Listener
	log *slog.Logger
	gid int
}

func (l peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cred, err := peerCred(c)
		if err == nil && l.admits(cred) {
			return c, nil
		}
		uid := -1
		if cred != nil {
			uid = int(cred.Uid)
		}
		l.log.Warn("api connection refused", "uid", uid, "err", err)
		c.Close()
	}
}

func (l peerListener) admits(c *unix.Ucred) bool {
	switch {
	case c.Uid == 0 || int(c.Uid) == os.Geteuid():
		return true
	case l.gid < 0:
		return false
	case int(c.Gid) == l.gid:
		return true
	}
	return memberOf(c.Uid, l.gid)
}

// memberOf reports whether the user uid is a member of the group gid (getgrouplist).
func memberOf(uid uint32, gid int) bool {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return false
	}
	ids, err := u.GroupIds()
	return err == nil && slices.Contains(ids, strconv.Itoa(gid))
}

func peerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	return cred, nil
}

// LookupGroup resolves daemon.socket_group: a group name, or a number.
func LookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("socket group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// shareDir gives the socket's directory to group gid, mode 0750, when the daemon owns it; a directory
// of someone else is left to checkDir, which refuses it.
func shareDir(dir string, gid int) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		return nil
	}
	if err := os.Chown(dir, -1, gid); err != nil {
		return fmt.Errorf("give %s to group %d: %w", dir, gid, err)
	}
	return os.Chmod(dir, 0o750)
}
