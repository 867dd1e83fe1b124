// Package pcpconf reads the few PCP settings rootd shares with PCP: where
// the root socket lives and which account PCP's daemons run as.
package pcpconf

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// Config holds the settings, already defaulted.
type Config struct {
	VarDir   string // PCP_VAR_DIR
	User     string // PCP_USER
	Group    string // PCP_GROUP
	LogDir   string // PCP_LOG_DIR
	PMCDConf string // PCP_PMCDCONF_PATH: pmcd's configuration (its agents)
}

// SocketPath is where PCP's clients look for the root socket.
func (c Config) SocketPath() string { return filepath.Join(c.VarDir, "pmcd", "root.socket") }

// Load reads the settings the way PCP does: the environment first, then the
// file named by $PCP_CONF (default /etc/pcp.conf), then PCP's defaults. A
// missing or unreadable file is not an error; PCP may simply not be
// installed.
func Load(getenv func(string) string) Config {
	file := map[string]string{}
	path := getenv("PCP_CONF")
	if path == "" {
		path = "/etc/pcp.conf"
	}
	if f, err := os.Open(path); err == nil {
		file = parse(f)
		f.Close()
	}
	get := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		if v := file[key]; v != "" {
			return v
		}
		return def
	}
	return Config{
		VarDir:   get("PCP_VAR_DIR", "/var/lib/pcp"),
		User:     get("PCP_USER", "pcp"),
		Group:    get("PCP_GROUP", "pcp"),
		LogDir:   get("PCP_LOG_DIR", "/var/log/pcp"),
		PMCDConf: get("PCP_PMCDCONF_PATH", "/etc/pcp/pmcd/pmcd.conf"),
	}
}

// parse reads KEY=value lines; pcp.conf is a shell fragment but only ever
// holds plain assignments, optionally quoted.
func parse(f *os.File) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		val = strings.Trim(strings.TrimSpace(val), `"'`)
		out[strings.TrimSpace(key)] = val
	}
	return out
}
