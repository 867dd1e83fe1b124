package lxc

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseContainerConfig feeds arbitrary container config files (and the
// system lxc.conf, which the same reader parses) through configValues:
// nothing may panic, and a value found is the text of one of the file's
// lines, trimmed and with at most one pair of matching quotes removed.
func FuzzParseContainerConfig(f *testing.F) {
	for _, s := range []string{
		"lxc.uts.name = web\n",
		"lxc.utsname = myvm\nlxc.arch = i386\n",
		"# comment\n\n\tlxc.uts.name\t=\t\"exp1\"  \nlxc.uts.name='q'\n",
		"lxc.uts.name = \"half\nlxc.uts.name =\nlxc.uts.name==x\n",
		"lxc.include = /usr/share/lxc/config/common.conf\nlxc.lxcpath = /srv/lxc\nlxc.rootfs.path = dir:/var/lib/lxc/c1/rootfs\n",
		"lxc.uts.name = a\nlxc.hook.start = " + strings.Repeat("x", 70<<10) + "\n",
		"lxc.uts.name = \"\"\r\nlxc.uts.name = '\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseContainerConfig(bytes.NewReader(data))
		if err != nil {
			return
		}
		v, err := configValues(bytes.NewReader(data), "lxc.uts.name", "lxc.utsname", "lxc.lxcpath")
		if err != nil {
			t.Fatalf("configValues failed where parseContainerConfig did not: %v", err)
		}
		want, ok := v["lxc.uts.name"]
		if !ok {
			want = v["lxc.utsname"]
		}
		if cfg.utsName != want {
			t.Fatalf("utsName %q, want %q", cfg.utsName, want)
		}
		for key, val := range v {
			if strings.ContainsAny(val, "\n") || !bytes.Contains(data, []byte(key)) || !bytes.Contains(data, []byte(val)) {
				t.Fatalf("%s = %q is not from the file", key, val)
			}
		}
	})
}

// FuzzParseLXCInfo feeds arbitrary lxc-info output through its parser:
// nothing may panic, a state parsed is a known one, and a PID is positive
// (0 only when the output has none).
func FuzzParseLXCInfo(f *testing.F) {
	for _, s := range []string{
		"Name:           web\nState:          RUNNING\nPID:            1234\nIP:  10.0.3.5\n",
		"Name: x\nState: STOPPED\n",
		"state: frozen\npid: 9\n",
		"PID: 5\n",
		"State: DANCING\n",
		"State: RUNNING\nPID: twelve\n",
		"State: RUNNING\nPID: -3\nPID: 99999999999999999999\n",
		"State:RUNNING\r\nPID:1\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		st, pid, err := parseLXCInfo(out)
		if err != nil {
			if st != 0 || pid != 0 {
				t.Fatalf("error %v with state %v pid %d", err, st, pid)
			}
			return
		}
		if st < 0 || int(st) >= len(lxcStateNames) {
			t.Fatalf("state %d out of range", st)
		}
		if pid < 0 {
			t.Fatalf("pid %d", pid)
		}
	})
}
