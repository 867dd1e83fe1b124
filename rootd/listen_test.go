package rootd

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestListen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pmcd")
	path := filepath.Join(dir, "root.socket")

	ln, err := Listen(path, ListenOptions{Group: "no-such-group-here"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("parent mode %v, want 0700", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := Listen(path, ListenOptions{}); !errors.Is(err, ErrInUse) {
		t.Errorf("second Listen on a live socket: %v, want ErrInUse", err)
	}

	// A dead server's socket file is stale and gets replaced.
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal("stale socket not left behind for the test")
	}
	ln, err = Listen(path, ListenOptions{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket not removed on close: %v", err)
	}

	// Something that is not a socket is never removed.
	os.WriteFile(path, []byte("precious"), 0o600)
	if _, err := Listen(path, ListenOptions{}); err == nil {
		t.Error("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Error("regular file was changed")
	}
}

func TestListenGroupAccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.socket")
	ln, err := Listen(path, ListenOptions{Group: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v, want 0660 with an existing group", fi.Mode().Perm())
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A numeric group needs no /etc/group: in a scratch image the PCP group is
// given as a gid, and the socket must still be the group's, not root's alone.
func TestListenNumericGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another group needs root")
	}
	path := filepath.Join(t.TempDir(), "root.socket")
	ln, err := Listen(path, ListenOptions{Group: "54321"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != 54321 {
		t.Errorf("mode %v gid %d, want 0660 and 54321", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid)
	}
}

func TestAccess(t *testing.T) {
	a := Access{UIDs: map[uint32]bool{998: true}, GIDs: map[uint32]bool{50: true}}
	tests := []struct {
		peer Peer
		want bool
	}{
		{Peer{UID: 0, GID: 0}, true},
		{Peer{UID: 998, GID: 998}, true},
		{Peer{UID: 1000, GID: 50}, true},
		{Peer{UID: 1000, GID: 1000, Groups: []uint32{27, 50}}, true},
		{Peer{UID: 1000, GID: 1000, Groups: []uint32{27}}, false},
		{Peer{UID: 65534, GID: 65534}, false},
	}
	for _, tc := range tests {
		if got := a.Allows(tc.peer); got != tc.want {
			t.Errorf("Allows(%+v) = %v, want %v", tc.peer, got, tc.want)
		}
	}
}
