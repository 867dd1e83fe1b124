package pcpconf

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "pcp.conf")
	os.WriteFile(conf, []byte("# comment\nPCP_VAR_DIR=/srv/pcp\nPCP_USER='pcpd'\nPCP_PMCDCONF_PATH=/srv/pcp/pmcd.conf\n\nnot a setting\n"), 0o644)
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{"file", map[string]string{"PCP_CONF": conf}, Config{VarDir: "/srv/pcp", User: "pcpd", Group: "pcp", LogDir: "/var/log/pcp", PMCDConf: "/srv/pcp/pmcd.conf"}},
		{"env wins", map[string]string{"PCP_CONF": conf, "PCP_VAR_DIR": "/tmp/v"}, Config{VarDir: "/tmp/v", User: "pcpd", Group: "pcp", LogDir: "/var/log/pcp", PMCDConf: "/srv/pcp/pmcd.conf"}},
		{"no file", map[string]string{"PCP_CONF": filepath.Join(dir, "missing")}, Config{VarDir: "/var/lib/pcp", User: "pcp", Group: "pcp", LogDir: "/var/log/pcp", PMCDConf: "/etc/pcp/pmcd/pmcd.conf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Load(func(k string) string { return tc.env[k] })
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if p := (Config{VarDir: "/var/lib/pcp"}).SocketPath(); p != "/var/lib/pcp/pmcd/root.socket" {
		t.Errorf("SocketPath = %s", p)
	}
}
