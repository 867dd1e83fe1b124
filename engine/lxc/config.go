package lxc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxConfigSize bounds what is read of one config file: real ones are a few
// KiB, and the daemon must not be made to swallow a huge file.
const maxConfigSize = 1 << 20

// configValues returns the last value of each wanted key in an LXC config
// file (container config or the system lxc.conf): "key = value" lines,
// '#' comments, values optionally in matching quotes, as LXC's parser reads
// them. lxc.include is not followed.
func configValues(r io.Reader, wanted ...string) (map[string]string, error) {
	found := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(r, maxConfigSize))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		for _, w := range wanted {
			if key == w {
				found[key] = unquote(strings.TrimSpace(value))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return found, nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// containerConfig is what rootd takes from a container's config file.
type containerConfig struct {
	// utsName is lxc.uts.name (lxc.utsname before LXC 2.1).
	utsName string
}

func parseContainerConfig(r io.Reader) (containerConfig, error) {
	v, err := configValues(r, "lxc.uts.name", "lxc.utsname")
	if err != nil {
		return containerConfig{}, err
	}
	name, ok := v["lxc.uts.name"]
	if !ok {
		name = v["lxc.utsname"]
	}
	return containerConfig{utsName: name}, nil
}

// The system-wide LXC configuration, where an administrator may move the
// container directory with lxc.lxcpath.
const (
	systemLXCConf  = "/etc/lxc/lxc.conf"
	defaultLXCPath = "/var/lib/lxc"
)

// resolveLXCPath picks the container directory: the flag, else
// $PCP_LXC_DIR (what PCP's pmdaroot honours), else lxc.lxcpath from the
// system lxc.conf, else LXC's compiled-in default.
func resolveLXCPath(flagValue string, getenv func(string) string, lxcConf string) (string, error) {
	p := flagValue
	if p == "" {
		p = getenv("PCP_LXC_DIR")
	}
	if p == "" {
		f, err := os.Open(lxcConf)
		switch {
		case err == nil:
			v, perr := configValues(f, "lxc.lxcpath")
			f.Close()
			if perr != nil {
				return "", fmt.Errorf("read %s: %w", lxcConf, perr)
			}
			p = v["lxc.lxcpath"]
		case !errors.Is(err, os.ErrNotExist):
			return "", fmt.Errorf("read %s: %w", lxcConf, err)
		}
	}
	if p == "" {
		p = defaultLXCPath
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("lxc path %q is not absolute", p)
	}
	// LXC strips trailing slashes too; the command socket name depends on it.
	return filepath.Clean(p), nil
}
