package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/cli"
)

// The configuration file alone (no -s, no --engines) says where rootd
// listens and which engines it opens; the command line still wins.
func TestConfigFileSettings(t *testing.T) {
	dir := shortDir(t)
	fromFile := filepath.Join(dir, "pmcd", "file.socket")
	conf := filepath.Join(dir, "rootd.conf")
	text := "socket = \"" + fromFile + "\"\nengines = [\"static\"]\n\n[rootd]\nlog-level = \"debug\"\n\n[rootctl]\ntimeout = \"3s\"\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	d := &daemon{socket: fromFile, done: make(chan error, 1)}
	d.cmd = exec.Command(os.Args[0], "--config", conf)
	d.cmd.Env = append(os.Environ(), daemonEnv+"=1")
	d.cmd.Stderr = &stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	d.mustServe(t)
	d.stop(t)
	log := stderr.String()
	// log-level debug from [rootd]; engines=[static] from the top level.
	if !strings.Contains(log, "level=DEBUG") || !strings.Contains(log, "engines=[static]") {
		t.Errorf("rootd did not take [rootd] log-level and engines from the file:\n%s", log)
	}

	// -s on the command line wins over socket in the file.
	d2 := start(t, &stderr, nil, "--config", conf)
	d2.stop(t)
	if _, err := os.Stat(fromFile); err == nil {
		t.Errorf("%s exists: the file's socket was used although -s was given", fromFile)
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("[docker]\nhots = \"unix:///x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--config", bad}, `bad.conf: unknown key "docker.hots"`},
		{"explicit file absent", []string{"--config", filepath.Join(dir, "none.conf")}, "none.conf: no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(tc.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut.String(), tc.want)
			}
		})
	}
}

// Every setting the shipped file shows, uncommented, is a flag rootd has
// and a value it accepts: --check-config passes the whole configuration
// (names, addresses, engines), and each flag holds the file's value after
// applyConfig.
func TestShippedConfigKeys(t *testing.T) {
	data, err := os.ReadFile("../../packaging/rootd.conf")
	if err != nil {
		t.Fatal(err)
	}
	setting := regexp.MustCompile(`(?m)^#([a-z][a-z-]* = )`)
	uncommented := setting.ReplaceAllString(string(data), "$1")
	if uncommented == string(data) {
		t.Fatal("no commented setting found")
	}
	for name, text := range map[string]string{"shipped": string(data), "uncommented": uncommented} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rootd.conf")
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			if code := run([]string{"--config", path, "--check-config"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "configuration OK") {
				t.Fatalf("--check-config: exit %d: %s%s", code, out.String(), errOut.String())
			}

			// The values are applied, each to its flag.
			fs := flag.NewFlagSet("rootd", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.String("s", "", "")
			fs.String("l", "", "")
			fs.String("config", "", "")
			for _, n := range []string{"log-level", "log-format", "metrics-address", "pmcd-conf"} {
				fs.String(n, "", "")
			}
			for _, n := range []string{"engines", "allow-uid", "allow-gid", "allow-exec"} {
				fs.Var(new(cli.List), n, "")
			}
			fs.Duration("request-timeout", 0, "")
			fs.Duration("read-timeout", 0, "")
			fs.Int("max-connections", 0, "")
			fs.Bool("pmda", false, "")
			engine.Configure(fs)
			if err := fs.Parse([]string{"--config", path}); err != nil {
				t.Fatal(err)
			}
			if err := applyConfig(fs, path); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			section, applied := "", 0
			for _, line := range strings.Split(text, "\n") {
				if m := regexp.MustCompile(`^\[([a-z]+)\]$`).FindStringSubmatch(line); m != nil {
					section = m[1]
					continue
				}
				m := regexp.MustCompile(`^([a-z][a-z-]*) = (.*?)(?:\s+#.*)?$`).FindStringSubmatch(line)
				if m == nil || section == "rootctl" {
					continue
				}
				flagName := m[1]
				switch {
				case section == "" && m[1] == "socket":
					flagName = "s"
				case section == "rootd" && m[1] == "log-file":
					flagName = "l"
				case section != "" && section != "rootd":
					flagName = section + "-" + m[1]
				}
				value := m[2]
				if strings.HasPrefix(value, "[") {
					value = strings.NewReplacer("[", "", "]", "", `"`, "", ", ", ",").Replace(value)
				} else {
					value = strings.Trim(value, `"`)
				}
				want[flagName] = value
				applied++
			}
			for flagName, value := range want {
				f := fs.Lookup(flagName)
				if f == nil {
					t.Errorf("no flag --%s", flagName)
					continue
				}
				if got := f.Value.String(); got != value {
					t.Errorf("--%s = %q, the file says %q", flagName, got, value)
				}
			}
			if name == "uncommented" && applied < 25 {
				t.Errorf("only %d settings checked", applied)
			}
		})
	}
}

// rootd reads a configuration file only if root alone can change it: the
// file can grant root-equivalent access (allow-uid, allow-gid,
// allow-exec). Anything else is refused with exit status 2, at start and
// by --check-config; /dev/null is no file.
func TestConfigFileOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create files owned by another user")
	}
	const nobody = 65534
	good := "[rootd]\nlog-level = \"debug\"\n"
	write := func(t *testing.T, path string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(good), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the --config path
		want  string                                // in the refusal; "" accepts
	}{
		{"root's file", func(t *testing.T, dir string) string {
			write(t, dir+"/rootd.conf", 0o644)
			return dir + "/rootd.conf"
		}, ""},
		{"/dev/null", func(*testing.T, string) string { return os.DevNull }, ""},
		{"relative path", func(t *testing.T, dir string) string {
			write(t, dir+"/rootd.conf", 0o600)
			t.Chdir(dir)
			return "rootd.conf"
		}, ""},
		{"root-owned symlink to root's file", func(t *testing.T, dir string) string {
			write(t, dir+"/real.conf", 0o644)
			os.Symlink(dir+"/real.conf", dir+"/rootd.conf")
			return dir + "/rootd.conf"
		}, ""},
		{"file owned by nobody", func(t *testing.T, dir string) string {
			write(t, dir+"/rootd.conf", 0o644)
			os.Chown(dir+"/rootd.conf", nobody, nobody)
			return dir + "/rootd.conf"
		}, "owned by uid 65534"},
		{"group-writable file", func(t *testing.T, dir string) string {
			write(t, dir+"/rootd.conf", 0o664)
			return dir + "/rootd.conf"
		}, "writable by group or others"},
		{"world-writable file", func(t *testing.T, dir string) string {
			write(t, dir+"/rootd.conf", 0o646)
			return dir + "/rootd.conf"
		}, "writable by group or others"},
		{"directory owned by nobody", func(t *testing.T, dir string) string {
			os.Mkdir(dir+"/etc", 0o755)
			write(t, dir+"/etc/rootd.conf", 0o644)
			os.Chown(dir+"/etc", nobody, nobody)
			return dir + "/etc/rootd.conf"
		}, "owned by uid 65534"},
		{"group-writable directory", func(t *testing.T, dir string) string {
			os.Mkdir(dir+"/etc", 0o775)
			os.Chmod(dir+"/etc", 0o775)
			write(t, dir+"/etc/rootd.conf", 0o644)
			return dir + "/etc/rootd.conf"
		}, "writable by group or others"},
		{"symlink to a file owned by nobody", func(t *testing.T, dir string) string {
			write(t, dir+"/real.conf", 0o644)
			os.Chown(dir+"/real.conf", nobody, nobody)
			os.Symlink(dir+"/real.conf", dir+"/rootd.conf")
			return dir + "/rootd.conf"
		}, "owned by uid 65534"},
		{"symlink into a directory owned by nobody", func(t *testing.T, dir string) string {
			os.Mkdir(dir+"/theirs", 0o755)
			write(t, dir+"/theirs/real.conf", 0o644)
			os.Chown(dir+"/theirs", nobody, nobody)
			os.Symlink(dir+"/theirs/real.conf", dir+"/rootd.conf")
			return dir + "/rootd.conf"
		}, "owned by uid 65534"},
		{"symlink owned by nobody", func(t *testing.T, dir string) string {
			write(t, dir+"/real.conf", 0o644)
			os.Symlink(dir+"/real.conf", dir+"/rootd.conf")
			os.Lchown(dir+"/rootd.conf", nobody, nobody)
			return dir + "/rootd.conf"
		}, "owned by uid 65534"},
		{"FIFO", func(t *testing.T, dir string) string {
			if err := syscall.Mkfifo(dir+"/rootd.conf", 0o600); err != nil {
				t.Fatal(err)
			}
			return dir + "/rootd.conf"
		}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.setup(t, shortDir(t))
			var out, errOut bytes.Buffer
			code := run([]string{"--config", path, "--check-config"}, &out, &errOut)
			if tc.want == "" {
				if code != 0 {
					t.Fatalf("--check-config: exit %d: %s", code, errOut.String())
				}
				return
			}
			if code != 2 || !strings.Contains(errOut.String(), tc.want) || !strings.Contains(errOut.String(), "refused") {
				t.Errorf("--check-config: exit %d, stderr %q; want 2 and %q", code, errOut.String(), tc.want)
			}
			// Starting is refused alike, before anything is opened.
			errOut.Reset()
			sock := filepath.Join(shortDir(t), "root.socket")
			if code := run([]string{"--config", path, "-s", sock, "--engines", "static"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("start: exit %d, stderr %q; want 2 and %q", code, errOut.String(), tc.want)
			}
			if _, err := os.Lstat(sock); err == nil {
				t.Errorf("%s was bound", sock)
			}
		})
	}
}

// --check-config checks every value start would refuse, from the file or
// the command line, without starting anything, and exits 2 for each;
// --version reads no configuration.
func TestCheckConfig(t *testing.T) {
	dir := shortDir(t)
	conf := func(text string) string {
		f, err := os.CreateTemp(dir, "*.conf")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(text)
		f.Close()
		return f.Name()
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // "" is exit 0
	}{
		{"valid file", []string{"--config", conf("engines = [\"static\"]\n[rootd]\nallow-uid = [\"0\", \"1001\"]\nallow-gid = [\"0\"]\nmetrics-address = \"localhost:9559\"\nlog-format = \"json\"\n")}, ""},
		{"no file", []string{"--config", os.DevNull}, ""},
		{"log level in the file", []string{"--config", conf("[rootd]\nlog-level = \"loud\"\n")}, `bad log level "loud"`},
		{"log format on the command line", []string{"--config", os.DevNull, "--log-format", "xml"}, `bad log format "xml"`},
		{"max-connections 0", []string{"--config", conf("[rootd]\nmax-connections = 0\n")}, "--max-connections must be at least 1"},
		{"metrics address not loopback", []string{"--config", conf("[rootd]\nmetrics-address = \"0.0.0.0:9559\"\n")}, "loopback"},
		{"metrics address without a port", []string{"--config", conf("[rootd]\nmetrics-address = \"127.0.0.1\"\n")}, "--metrics-address"},
		{"metrics socket without a path", []string{"--config", os.DevNull, "--metrics-address", "unix:"}, "empty socket path"},
		{"unknown user", []string{"--config", conf("[rootd]\nallow-uid = [\"no-such-user-rootd-test\"]\n")}, `--allow-uid: unknown user or group "no-such-user-rootd-test"`},
		{"unknown group", []string{"--config", conf("[rootd]\nallow-gid = [\"no-such-group-rootd-test\"]\n")}, `--allow-gid: unknown user or group "no-such-group-rootd-test"`},
		{"unknown engine in the file", []string{"--config", conf("engines = [\"static\", \"nosuch\"]\n")}, `unknown engine "nosuch"`},
		{"unknown engine on the command line", []string{"--config", os.DevNull, "--engines", "nosuch"}, `unknown engine "nosuch"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append(tc.args, "--check-config"), &out, &errOut)
			if tc.want == "" {
				if code != 0 || !strings.Contains(out.String(), "configuration OK") {
					t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
				}
				return
			}
			if code != 2 || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut.String(), tc.want)
			}
			// --version reads no configuration: it answers whatever the
			// configuration says.
			out.Reset()
			if code := run(append(tc.args, "--version"), &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "rootd ") {
				t.Errorf("--version: exit %d, %q", code, out.String())
			}
		})
	}
}
