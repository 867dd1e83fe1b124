package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tree builds:
//
//	outside/secret                  "secret"
//	root/ok                         "hello"
//	root/dir/nested                 "nested"
//	root/big                        4097 bytes
//	root/exact                      4096 bytes
//	root/fifo                       a FIFO
//	root/null                       a character device (1,3)
//	root/abs -> OUTSIDE/secret      absolute symlink out
//	root/rel -> ../outside/secret   relative symlink out
//	root/in -> ok                   symlink to a file inside
//	root/dirlink -> dir             symlink to a directory inside
//	root/outdir -> ../outside       symlink to a directory outside
//	root/procroot -> /proc/self/root
func tree(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "dir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(outside, "secret"), "secret")
	write(filepath.Join(root, "ok"), "hello")
	write(filepath.Join(root, "dir", "nested"), "nested")
	write(filepath.Join(root, "big"), strings.Repeat("x", 4097))
	write(filepath.Join(root, "exact"), strings.Repeat("x", 4096))
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Logf("mknod: %v (device case skipped)", err)
	}
	for link, target := range map[string]string{
		"abs":      filepath.Join(outside, "secret"),
		"rel":      "../outside/secret",
		"in":       "ok",
		"dirlink":  "dir",
		"outdir":   "../outside",
		"procroot": "/proc/self/root",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

// modes runs f with openat2 and with the component walk.
func modes(t *testing.T, f func(t *testing.T, walk bool)) {
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) {
			forceFallback = walk
			t.Cleanup(func() { forceFallback = false })
			f(t, walk)
		})
	}
}

func TestReadFile(t *testing.T) {
	root, _ := tree(t)
	const max = 4096
	type want struct {
		data string
		err  error // errors.Is target; nil: success
	}
	modes(t, func(t *testing.T, walk bool) {
		// What openat2 follows (symlinks that stay inside, before the last
		// component) the walk refuses.
		// (O_DIRECTORY|O_NOFOLLOW on a symlink gives ENOTDIR.)
		inside := want{data: "nested"}
		if walk {
			inside = want{err: unix.ENOTDIR}
		}
		noSymlinks := want{err: unix.ELOOP}
		if walk {
			noSymlinks = want{err: unix.ENOTDIR}
		}
		tests := []struct {
			rel  string
			opts []Option
			want want
		}{
			{"ok", nil, want{data: "hello"}},
			{"dir/nested", nil, want{data: "nested"}},
			{"./dir/nested", nil, want{data: "nested"}},
			{"exact", nil, want{data: strings.Repeat("x", 4096)}},
			{"big", nil, want{err: ErrTooLarge}},
			{"fifo", nil, want{err: ErrNotRegular}},
			{"null", nil, want{err: ErrNotRegular}},
			{"dir", nil, want{err: ErrNotRegular}},
			{"missing", nil, want{err: unix.ENOENT}},
			// ".." and absolute paths are refused before any lookup.
			{"../outside/secret", nil, want{err: ErrEscapes}},
			{"dir/../../outside/secret", nil, want{err: ErrEscapes}},
			{"dir/../ok", nil, want{err: ErrEscapes}},
			{"/etc/hostname", nil, want{err: ErrEscapes}},
			{"", nil, want{err: ErrEscapes}},
			// A symlink as the last component is never followed.
			{"abs", nil, want{err: unix.ELOOP}},
			{"rel", nil, want{err: unix.ELOOP}},
			{"in", nil, want{err: unix.ELOOP}},
			// Symlinks before it: inside is followed by openat2 only,
			// outside never.
			{"dirlink/nested", nil, inside},
			{"dirlink/nested", []Option{NoSymlinks}, noSymlinks},
			{"outdir/secret", nil, map[bool]want{false: {err: ErrEscapes}, true: {err: unix.ENOTDIR}}[walk]},
			{"procroot/etc/hostname", nil, map[bool]want{false: {err: ErrEscapes}, true: {err: unix.ENOTDIR}}[walk]},
		}
		for _, tt := range tests {
			done := make(chan struct{})
			var data []byte
			var err error
			go func() { defer close(done); data, err = ReadFile(root, tt.rel, max, tt.opts...) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("ReadFile(%q) hangs", tt.rel)
			}
			if tt.rel == "null" {
				if _, serr := os.Lstat(filepath.Join(root, "null")); serr != nil {
					continue // no mknod here
				}
			}
			if tt.want.err == nil {
				if err != nil || string(data) != tt.want.data {
					t.Errorf("ReadFile(%q) = %.20q, %v; want %.20q", tt.rel, data, err, tt.want.data)
				}
				continue
			}
			if !errors.Is(err, tt.want.err) {
				t.Errorf("ReadFile(%q) = %.20q, %v; want %v", tt.rel, data, err, tt.want.err)
			}
			if strings.Contains(string(data), "secret") {
				t.Errorf("ReadFile(%q) read the file outside", tt.rel)
			}
		}
	})
}

// TestProcMagicLinks: with a directory under /proc as the root, magic
// links (root, cwd, exe, fd/N) lead nowhere.
func TestProcMagicLinks(t *testing.T) {
	f, err := os.Open("/etc/hostname")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	self := "/proc/" + strconv.Itoa(os.Getpid())
	modes(t, func(t *testing.T, walk bool) {
		for _, rel := range []string{"root/etc/hostname", "cwd/x", "exe", "fd/" + strconv.Itoa(int(f.Fd()))} {
			if data, err := ReadFile(self, rel, 1<<20); err == nil {
				t.Errorf("ReadFile(%s, %q) = %.20q; want refused", self, rel, data)
			}
		}
		// Ordinary procfs files read whole although fstat says 0 bytes.
		data, err := ReadFile(self, "status", 1<<20)
		if err != nil || !strings.Contains(string(data), "Pid:") {
			t.Errorf("ReadFile(%s, status) = %.40q, %v", self, data, err)
		}
	})
}

func TestReadFileIn(t *testing.T) {
	root, _ := tree(t)
	dir, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	modes(t, func(t *testing.T, walk bool) {
		if data, err := ReadFileIn(dir, "dir/nested", 100); err != nil || string(data) != "nested" {
			t.Errorf("ReadFileIn = %q, %v", data, err)
		}
		if _, err := ReadFileIn(dir, "rel", 100); !errors.Is(err, unix.ELOOP) {
			t.Errorf("ReadFileIn(rel) = %v; want ELOOP", err)
		}
		if _, err := ReadFileIn(dir, "ok", 4); !errors.Is(err, ErrTooLarge) {
			t.Errorf("ReadFileIn(ok, 4) = %v; want ErrTooLarge", err)
		}
	})
}

func TestLstat(t *testing.T) {
	root, _ := tree(t)
	modes(t, func(t *testing.T, walk bool) {
		st, err := Lstat(root, "abs")
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("Lstat(abs) = %o, %v; want the link itself", st.Mode, err)
		}
		if st, err := Lstat(root, "dir/nested"); err != nil || st.Size != 6 {
			t.Errorf("Lstat(dir/nested) = %d, %v", st.Size, err)
		}
		if _, err := Lstat(root, "outdir/secret"); err == nil {
			t.Error("Lstat(outdir/secret) followed a symlink out")
		}
		if _, err := Lstat(root, "../outside/secret"); !errors.Is(err, ErrEscapes) {
			t.Errorf("Lstat(..) = %v; want ErrEscapes", err)
		}
		if _, err := Lstat(root, "dirlink/nested", NoSymlinks); err == nil {
			t.Error("Lstat(dirlink/nested, NoSymlinks) followed a symlink")
		}
	})
}
