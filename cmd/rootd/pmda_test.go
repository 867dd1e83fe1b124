package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenLogSafely(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "root.log")
	f, err := openLogSafely(good)
	if err != nil {
		t.Fatalf("new file: %v", err)
	}
	f.WriteString("one\n")
	f.Close()
	if f, err = openLogSafely(good); err != nil {
		t.Fatalf("existing file: %v", err)
	}
	f.WriteString("two\n")
	f.Close()
	if b, _ := os.ReadFile(good); string(b) != "one\ntwo\n" {
		t.Errorf("not appended: %q", b)
	}

	link := filepath.Join(dir, "link.log")
	os.Symlink(good, link)
	if _, err := openLogSafely(link); err == nil {
		t.Error("followed a symbolic link")
	}
	if _, err := openLogSafely(dir); err == nil {
		t.Error("opened a directory")
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(dir, "other.log")
		os.WriteFile(other, nil, 0o666)
		os.Chown(other, 65534, 65534)
		if _, err := openLogSafely(other); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("file of another user: %v", err)
		}
	}
}
