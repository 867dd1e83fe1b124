package logfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const nobody = 65534

func TestOpenRefusesUnsafePaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create files owned by another user")
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the log path
		// want: "ok" (opened), "unsafe" (refused with ErrUnsafe) or
		// "error" (the open itself fails).
		want string
	}{
		{"new file", func(t *testing.T, dir string) string { return dir + "/rootd.log" }, "ok"},
		{"root's file", func(t *testing.T, dir string) string {
			os.WriteFile(dir+"/rootd.log", nil, 0o600)
			return dir + "/rootd.log"
		}, "ok"},
		{"symlink to a root file", func(t *testing.T, dir string) string {
			os.WriteFile(dir+"/shadow", []byte("secret"), 0o600)
			os.Symlink(dir+"/shadow", dir+"/rootd.log")
			return dir + "/rootd.log"
		}, "unsafe"},
		{"dangling symlink", func(t *testing.T, dir string) string {
			os.Symlink(dir+"/created-by-root", dir+"/rootd.log")
			return dir + "/rootd.log"
		}, "unsafe"},
		{"symlinked directory", func(t *testing.T, dir string) string {
			os.Mkdir(dir+"/etc", 0o700)
			os.Symlink(dir+"/etc", dir+"/pmcd")
			return dir + "/pmcd/rootd.log"
		}, "unsafe"},
		{"owned by nobody", func(t *testing.T, dir string) string {
			os.WriteFile(dir+"/rootd.log", nil, 0o666)
			os.Chown(dir+"/rootd.log", nobody, nobody)
			return dir + "/rootd.log"
		}, "unsafe"},
		{"hard link to a root file", func(t *testing.T, dir string) string {
			os.WriteFile(dir+"/shadow", []byte("secret"), 0o600)
			os.Link(dir+"/shadow", dir+"/rootd.log")
			return dir + "/rootd.log"
		}, "unsafe"},
		{"FIFO with no reader", func(t *testing.T, dir string) string {
			syscall.Mkfifo(dir+"/rootd.log", 0o666)
			return dir + "/rootd.log"
		}, "error"}, // ENXIO, and above all without blocking
		{"FIFO with a reader", func(t *testing.T, dir string) string {
			syscall.Mkfifo(dir+"/rootd.log", 0o666)
			r, err := os.OpenFile(dir+"/rootd.log", os.O_RDONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return dir + "/rootd.log"
		}, "unsafe"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(t, dir)
			before := snapshot(dir)
			l, err := Open(path, io.Discard)
			switch tc.want {
			case "error":
				if err == nil || errors.Is(err, ErrUnsafe) {
					t.Fatalf("Open = %v, want an open error", err)
				}
				return
			case "unsafe":
				if !errors.Is(err, ErrUnsafe) {
					t.Fatalf("Open = %v, want ErrUnsafe", err)
				}
				if after := snapshot(dir); after != before {
					t.Errorf("refused open changed the directory:\n%s\nbecame\n%s", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer l.Close()
			l.Write([]byte("line\n"))
			fi, err := os.Lstat(path)
			if err != nil || fi.Mode() != 0o600 {
				t.Errorf("log file: %v %v, want a regular file 0600", fi.Mode(), err)
			}
		})
	}
}

// snapshot lists dir's files with their sizes and owners.
func snapshot(dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			st := fi.Sys().(*syscall.Stat_t)
			b.WriteString(p + " " + fi.Mode().String() + " " + itoa(fi.Size()) + " " + itoa(int64(st.Uid)) + "\n")
		}
		return nil
	})
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rootd.log")
	l, err := Open(path, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write([]byte("before\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	l.Write([]byte("after\n"))
	if b, _ := os.ReadFile(path + ".1"); string(b) != "before\n" {
		t.Errorf("rotated file holds %q", b)
	}
	if b, _ := os.ReadFile(path); string(b) != "after\n" {
		t.Errorf("new file holds %q", b)
	}

	// Someone replaces the path with a symlink before the next rotation:
	// Reopen refuses and logging stays on the file already open.
	os.Rename(path, path+".2")
	os.Symlink(filepath.Join(dir, "target"), path)
	if err := l.Reopen(); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Reopen onto a symlink = %v, want ErrUnsafe", err)
	}
	l.Write([]byte("still here\n"))
	if b, _ := os.ReadFile(path + ".2"); string(b) != "after\nstill here\n" {
		t.Errorf("file kept after a refused reopen holds %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "target")); err == nil {
		t.Error("Reopen created the symlink's target")
	}

	if err := (&Log{}).Reopen(); !errors.Is(err, ErrNoFile) {
		t.Errorf("Reopen on stderr = %v, want ErrNoFile", err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write(p []byte) (int, error) { return 0, w.err }

func TestDroppedWritesAreCounted(t *testing.T) {
	l, err := Open("", failingWriter{syscall.EPIPE})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.Write([]byte("x\n")); !errors.Is(err, syscall.EPIPE) {
			t.Errorf("Write = %v, want EPIPE passed on", err)
		}
	}
	if n := l.Dropped(); n != 3 {
		t.Errorf("Dropped = %d, want 3", n)
	}
}
