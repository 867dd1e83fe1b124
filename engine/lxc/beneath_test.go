package lxc

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Both openat2 and the fallback for kernels without it must refuse the
// same escapes.
func TestOpenBeneath(t *testing.T) {
	root := t.TempDir()
	lxcpath := filepath.Join(root, "lxc")
	outside := filepath.Join(root, "outside")
	mkContainer(t, outside, "victim", "secret")
	mkContainer(t, lxcpath, "ok", "fine")
	must(t, os.Symlink("ok", filepath.Join(lxcpath, "inside-link")))
	must(t, os.Symlink(filepath.Join(outside, "victim"), filepath.Join(lxcpath, "abs-escape")))
	must(t, os.Symlink("../outside/victim", filepath.Join(lxcpath, "rel-escape")))
	must(t, os.MkdirAll(filepath.Join(lxcpath, "cfg-escape"), 0o755))
	must(t, os.Symlink("../../outside/victim/config", filepath.Join(lxcpath, "cfg-escape", "config")))

	dir, err := os.Open(lxcpath)
	must(t, err)
	defer dir.Close()
	openers := map[string]func(rel string) (*os.File, error){
		"openat2":  func(rel string) (*os.File, error) { return openBeneath(dir, lxcpath, rel) },
		"fallback": func(rel string) (*os.File, error) { return openBeneathFallback(lxcpath, rel) },
	}
	tests := []struct {
		rel        string
		want       string
		wantEscape bool
	}{
		{rel: "ok/config", want: "fine"},
		{rel: "inside-link/config", want: "fine"},
		{rel: "abs-escape/config", wantEscape: true},
		{rel: "rel-escape/config", wantEscape: true},
		{rel: "cfg-escape/config", wantEscape: true},
	}
	for name, open := range openers {
		for _, tt := range tests {
			f, err := open(tt.rel)
			if tt.wantEscape {
				if !errors.Is(err, errEscapes) {
					t.Errorf("%s %s: err = %v, want errEscapes", name, tt.rel, err)
				}
				if f != nil {
					f.Close()
				}
				continue
			}
			if err != nil {
				t.Errorf("%s %s: %v", name, tt.rel, err)
				continue
			}
			data, err := io.ReadAll(f)
			f.Close()
			if err != nil || string(data) != tt.want {
				t.Errorf("%s %s: read %q, %v; want %q", name, tt.rel, data, err, tt.want)
			}
		}
	}
}
