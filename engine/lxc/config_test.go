package lxc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseContainerConfig(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{"lxc 5 key", "lxc.uts.name = web\n", "web"},
		{"legacy key (lxc 1.x)", "lxc.utsname = myvm\nlxc.arch = i386\n", "myvm"},
		{"new key wins over legacy", "lxc.utsname = old\nlxc.uts.name = new\n", "new"},
		{"last value wins", "lxc.uts.name = a\nlxc.uts.name = b\n", "b"},
		{"double quotes stripped", `lxc.uts.name = "exp1"` + "\n", "exp1"},
		{"single quotes stripped", "lxc.uts.name='q'\n", "q"},
		{"unmatched quote kept", `lxc.uts.name = "half` + "\n", `"half`},
		{"comments and blanks", "# lxc.uts.name = no\n\n   \n\tlxc.uts.name\t=\tyes  \n", "yes"},
		{"similar keys ignored", "lxc.uts.namex = no\nxlxc.uts.name = no\n", ""},
		{"no equals sign", "lxc.uts.name web\n", ""},
		{"no uts name", "lxc.rootfs.path = dir:/x\n", ""},
		{"empty", "", ""},
		{"no trailing newline", "lxc.uts.name = last", "last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseContainerConfig(strings.NewReader(tt.config))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.utsName != tt.want {
				t.Errorf("utsName = %q, want %q", cfg.utsName, tt.want)
			}
		})
	}
}

func TestParseContainerConfigLongLine(t *testing.T) {
	config := "lxc.uts.name = a\nlxc.hook.start = " + strings.Repeat("x", 100<<10) + "\n"
	if _, err := parseContainerConfig(strings.NewReader(config)); err == nil {
		t.Fatal("a 100 KiB line parsed without error")
	}
}

func TestResolveLXCPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	confWithPath := write("with.conf", "# system config\nlxc.lxcpath = /srv/lxc/\nlxc.default_config = /x\n")
	confQuoted := write("quoted.conf", `lxc.lxcpath = "/srv/quoted"`+"\n")
	confWithout := write("without.conf", "lxc.bdev.lvm.vg = lxc\n")
	confRelative := write("relative.conf", "lxc.lxcpath = containers\n")
	missing := filepath.Join(dir, "missing.conf")
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "PCP_LXC_DIR" {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name, flag, env, conf string
		want                  string
		wantErr               bool
	}{
		{name: "flag wins", flag: "/flag", env: "/env", conf: confWithPath, want: "/flag"},
		{name: "PCP_LXC_DIR next", env: "/env/", conf: confWithPath, want: "/env"},
		{name: "lxc.conf lxcpath", conf: confWithPath, want: "/srv/lxc"},
		{name: "lxc.conf quoted", conf: confQuoted, want: "/srv/quoted"},
		{name: "lxc.conf without lxcpath", conf: confWithout, want: defaultLXCPath},
		{name: "no lxc.conf", conf: missing, want: defaultLXCPath},
		{name: "unreadable lxc.conf", conf: dir, wantErr: true},
		{name: "relative flag", flag: "lxc", conf: missing, wantErr: true},
		{name: "relative lxc.conf value", conf: confRelative, wantErr: true},
		{name: "cleaned", flag: "/a//b/../c/", conf: missing, want: "/a/c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveLXCPath(tt.flag, env(tt.env), tt.conf)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
