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

	// A dead server's socket file is stale and gets replaced: closing the
	// bare listener (as a crash would) leaves the file behind.
	ln.UnixListener.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal("stale socket not left behind for the test")
	}
	ln, err = Listen(path, ListenOptions{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if err := ln.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
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
	ln, err := Listen(path, ListenOptions{Group: "nogroup"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v, want 0660 with an existing group", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != nobody {
		t.Errorf("owner %d:%d, want 0:%d", st.Uid, st.Gid, nobody)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// mkdir creates a directory with exactly mode and owner uid.
func mkdir(t *testing.T, path string, mode os.FileMode, uid int) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, -1); err != nil {
		t.Fatal(err)
	}
}

func TestListenDirectoryRules(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name  string
		setup func(t *testing.T, base string) string // returns the socket dir
		ok    bool
	}{
		{"root 0700", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", 0o700, 0)
			return base + "/d"
		}, true},
		{"root 0755, missing subdirectory created", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", 0o755, 0)
			return base + "/d/pmcd/deeper"
		}, true},
		{"owned by nobody", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", 0o700, nobody)
			return base + "/d"
		}, false},
		{"group-writable", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", 0o770, 0)
			return base + "/d"
		}, false},
		{"world-writable without sticky bit", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", 0o777, 0)
			return base + "/d"
		}, false},
		{"root sticky, like /tmp", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", os.ModeSticky|0o777, 0)
			return base + "/d"
		}, true},
		{"sticky but owned by nobody", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", os.ModeSticky|0o777, nobody)
			return base + "/d"
		}, false},
		{"root dir inside nobody's dir", func(t *testing.T, base string) string {
			mkdir(t, base+"/n", 0o755, nobody)
			mkdir(t, base+"/n/d", 0o700, 0)
			return base + "/n/d"
		}, false},
		{"missing dir under nobody's dir", func(t *testing.T, base string) string {
			mkdir(t, base+"/n", 0o755, nobody)
			return base + "/n/pmcd"
		}, false},
		{"symlink to nobody's dir", func(t *testing.T, base string) string {
			mkdir(t, base+"/n", 0o700, nobody)
			os.Symlink(base+"/n", base+"/link")
			return base + "/link"
		}, false},
		{"symlink to root's dir", func(t *testing.T, base string) string {
			mkdir(t, base+"/d", 0o700, 0)
			os.Symlink(base+"/d", base+"/link")
			return base + "/link"
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t, shortTempDir(t))
			ln, err := Listen(filepath.Join(dir, "root.socket"), ListenOptions{})
			if ln != nil {
				defer ln.Close()
			}
			switch {
			case tc.ok && err != nil:
				t.Errorf("Listen refused: %v", err)
			case !tc.ok && !errors.Is(err, ErrUnsafeDir):
				t.Errorf("Listen = %v, want ErrUnsafeDir", err)
			}
			if !tc.ok {
				if _, err := os.Lstat(filepath.Join(dir, "root.socket")); err == nil {
					t.Error("a socket was created in a refused directory")
				}
			}
		})
	}
}

// TestSymlinkSwapAttack is the attack of issue 10: as nobody, in a socket
// directory nobody owns, replace the socket by a symlink to a root-only file
// between bind and the ownership change. The old Listen followed the
// symlink and made the file root:GROUP 0660. Both defences are tested: the
// directory rule refuses nobody's directory before binding, and in a
// directory that passes (where only root could swap) the ownership change
// refuses a file that is not the socket it bound.
func TestSymlinkSwapAttack(t *testing.T) {
	requireRoot(t)
	for _, dirOwner := range []int{nobody, 0} {
		base := t.TempDir()
		secret := filepath.Join(base, "secret")
		if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(base, "pmcd")
		mkdir(t, dir, 0o755, dirOwner)
		swapped := false
		testHookAfterBind = func(path string) {
			os.Remove(path)
			if err := os.Symlink(secret, path); err != nil {
				t.Error(err)
			}
			swapped = true
		}
		ln, err := Listen(filepath.Join(dir, "root.socket"), ListenOptions{Group: "nogroup"})
		testHookAfterBind = nil
		if ln != nil {
			ln.Close()
		}
		if err == nil {
			t.Errorf("dir owner %d: Listen accepted a socket swapped for a symlink", dirOwner)
		}
		fi, err := os.Stat(secret)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o600 || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("dir owner %d (swapped: %v): the root-only file became %d:%d %v", dirOwner, swapped, st.Uid, st.Gid, fi.Mode().Perm())
		}
	}
}

// A server whose path was taken over (pmdaroot started again, or another
// rootd after removing the file) must leave the new socket alone on exit.
func TestCloseLeavesReplacedSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.socket")
	ln, err := Listen(path, ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	other, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := ln.Close(); !errors.Is(err, ErrSocketLost) {
		t.Errorf("Close = %v, want ErrSocketLost", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the other server's socket did not survive: %v", err)
	}
	c.Close()

	// Gone altogether: reported, nothing to remove.
	ln, err = Listen(filepath.Join(t.TempDir(), "root.socket"), ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(ln.Path)
	if err := ln.Close(); !errors.Is(err, ErrSocketLost) {
		t.Errorf("Close after removal = %v, want ErrSocketLost", err)
	}
}

// shortTempDir is a temporary directory with a short name: a socket path
// must fit in 108 bytes, and t.TempDir's names grow with the test's.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create files owned by another user")
	}
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
