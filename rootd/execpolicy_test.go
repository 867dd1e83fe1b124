package rootd

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tree builds files under a root-owned temporary directory. Entries:
// "d:path:mode:uid", "f:path:mode:uid", "l:path:target:uid".
func tree(t *testing.T, entries ...string) string {
	t.Helper()
	base := t.TempDir()
	// t.TempDir's parent is 0700 root: fine for root, and chmodded for
	// tests that need uid 65534 to see in.
	for _, e := range entries {
		parts := strings.SplitN(e, ":", 4)
		kind, path, arg, uidS := parts[0], filepath.Join(base, parts[1]), parts[2], parts[3]
		uid := 0
		if uidS == "nobody" {
			uid = nobody
		}
		var err error
		switch kind {
		case "d":
			err = os.Mkdir(path, 0o700)
			if err == nil {
				err = os.Chmod(path, parseMode(arg))
			}
		case "f":
			err = os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o600)
			if err == nil {
				err = os.Chmod(path, parseMode(arg))
			}
		case "l":
			if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
				err = os.Symlink(arg, path)
			} else {
				err = os.Symlink(filepath.Join(base, arg), path)
			}
		}
		if err == nil {
			err = os.Lchown(path, uid, uid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return base
}

func parseMode(s string) os.FileMode {
	var m uint32
	for _, c := range s {
		m = m*8 + uint32(c-'0')
	}
	mode := os.FileMode(m & 0o777)
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

func TestResolveTrusted(t *testing.T) {
	base := tree(t,
		"d:bin:755:root", "f:bin/prog:755:root", "f:bin/gw:775:root", "f:bin/noexec:644:root",
		"f:bin/userfile:755:nobody",
		"l:link:bin/prog:root", "l:rellink:./bin/prog:root", "l:userlink:bin/prog:nobody",
		"d:userdir:755:nobody", "f:userdir/prog:755:root", "l:tolink:userdir/prog:root",
		"d:gwdir:775:root", "f:gwdir/prog:755:root",
		"d:sticky:1777:root", "f:sticky/prog:755:root", "f:sticky/uprog:755:nobody",
		"l:sticky/ulink:bin/prog:nobody", "l:sticky/rlink:bin/prog:root",
		"l:loop:loop:root",
		"l:dirlink:bin:root",
	)
	prog := filepath.Join(base, "bin/prog")
	tests := []struct {
		path string
		want string // canonical path, or "" when refused
		err  error
	}{
		{"bin/prog", prog, nil},
		{"link", prog, nil},
		{"rellink", prog, nil},
		{"dirlink/prog", prog, nil},
		{"bin/../bin/./prog", prog, nil},
		{"sticky/prog", filepath.Join(base, "sticky/prog"), nil},
		{"sticky/rlink", prog, nil},
		{"userlink", "", ErrUntrusted},
		{"userdir/prog", "", ErrUntrusted},
		{"tolink", "", ErrUntrusted},
		{"gwdir/prog", "", ErrUntrusted},
		{"bin/gw", "", ErrUntrusted},
		{"bin/userfile", "", ErrUntrusted},
		{"sticky/uprog", "", ErrUntrusted},
		{"sticky/ulink", "", ErrUntrusted},
		{"bin/noexec", "", unix.EACCES},
		{"bin", "", unix.EISDIR},
		{"bin/prog/x", "", unix.ENOTDIR},
		{"missing", "", unix.ENOENT},
		{"loop", "", unix.ELOOP},
	}
	for _, tt := range tests {
		got, err := resolveTrusted(filepath.Join(base, tt.path), true)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: %v, want %v", tt.path, err, tt.err)
			}
			continue
		}
		if err != nil || got.Path != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.path, got.Path, err, tt.want)
		}
	}
	if _, err := resolveTrusted("bin/prog", true); !errors.Is(err, ErrUntrusted) {
		t.Errorf("relative path: %v, want ErrUntrusted", err)
	}
	if got, err := resolveTrusted("/bin/true", true); err != nil || !strings.HasSuffix(got.Path, "/true") {
		t.Errorf("/bin/true: %q, %v", got.Path, err)
	}
}

func writeConf(t *testing.T, path, content string, uid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

var nonRoot = Peer{PID: 4242, UID: nobody, GID: nobody}

func TestExecPolicy(t *testing.T) {
	base := tree(t, "d:pmdas:755:root", "f:pmdas/pmdax:755:root", "f:pmdas/x.python:644:root",
		"d:userdir:755:nobody", "f:userdir/pmday:755:nobody", "f:userdir/y.python:644:nobody",
		"f:pmdas/extra:755:root", "d:allowed:755:root", "f:allowed/one:755:root")
	pmdax := filepath.Join(base, "pmdas/pmdax")
	conf := filepath.Join(base, "pmcd.conf")
	writeConf(t, conf, `# test
x	200	pipe	binary		`+pmdax+` -d 200 "two words"
pysock	201	socket	unix /tmp/sock python3 `+filepath.Join(base, "pmdas/x.python")+`
pyuser	202	pipe	binary	notready python3 `+filepath.Join(base, "userdir/y.python")+`
y	203	pipe	binary	`+filepath.Join(base, "userdir/pmday")+`
sh	204	pipe	binary	/bin/sh -c "exec cat"
dso	205	dso	x_init	/lib/x.so
[access]
allow hosts localhost : all;
z	206	pipe	binary	/bin/cat
`, 0)
	// Scripts under --allow-exec: one run by /bin/sh, one by an
	// interpreter another user can replace.
	goodScript, badScript := filepath.Join(base, "allowed/good.sh"), filepath.Join(base, "allowed/bad.sh")
	os.WriteFile(goodScript, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	os.WriteFile(badScript, []byte("#! "+filepath.Join(base, "userdir/pmday")+" -x\n"), 0o755)
	p := NewExecPolicy(ExecPolicyConfig{Log: discardLog(), PMCDConf: conf,
		AllowedPrograms: []string{filepath.Join(base, "pmdas/extra"), filepath.Join(base, "allowed") + "/"}})
	tests := []struct {
		name string
		peer Peer
		argv []string
		pipe bool
		ok   bool
	}{
		{"configured agent", nonRoot, []string{pmdax, "-d", "200", "two words"}, true, true},
		{"configured agent, other kind", nonRoot, []string{pmdax, "-d", "200", "two words"}, false, false},
		{"configured program, other args", nonRoot, []string{pmdax, "-d", "200"}, true, false},
		{"configured program, words split", nonRoot, []string{pmdax, "-d", "200", "two", "words"}, true, false},
		{"configured interpreter line", nonRoot, []string{"python3", filepath.Join(base, "pmdas/x.python")}, false, true},
		{"interpreter with other code", nonRoot, []string{"python3", "-c", "import os"}, false, false},
		{"interpreter, user-writable script", nonRoot, []string{"python3", filepath.Join(base, "userdir/y.python")}, true, false},
		{"configured, user-owned program", nonRoot, []string{filepath.Join(base, "userdir/pmday")}, true, false},
		{"configured inline shell", nonRoot, []string{"/bin/sh", "-c", "exec cat"}, true, true},
		{"shell with other code", nonRoot, []string{"/bin/sh", "-c", "id"}, true, false},
		{"after [access]", nonRoot, []string{"/bin/cat"}, true, false},
		{"allow-exec file, any args", nonRoot, []string{filepath.Join(base, "pmdas/extra"), "-x"}, false, true},
		{"allow-exec dir", nonRoot, []string{filepath.Join(base, "allowed/one")}, true, true},
		{"unlisted", nonRoot, []string{"/bin/true"}, true, false},
		{"script, trusted interpreter", nonRoot, []string{goodScript}, true, true},
		{"script, user-owned interpreter", nonRoot, []string{badScript}, true, false},
		{"root may start anything", Peer{PID: 1, UID: 0}, []string{"/bin/sh", "-c", "id"}, true, true},
	}
	for _, tt := range tests {
		path, err := p.resolve(tt.peer, tt.argv, tt.pipe)
		if tt.ok && err != nil {
			t.Errorf("%s: refused: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s: %q, %v; want ErrNotAllowed", tt.name, path, err)
		}
		if tt.ok && tt.peer.UID != 0 && err == nil && !filepath.IsAbs(path) {
			t.Errorf("%s: path %q not canonical", tt.name, path)
		}
	}
}

func TestExecPolicyConfFile(t *testing.T) {
	base := tree(t, "d:user:755:nobody")
	conf := filepath.Join(base, "pmcd.conf")
	argv := []string{"/bin/cat"}
	allowed := func(p *ExecPolicy) bool {
		_, err := p.resolve(nonRoot, argv, true)
		if err != nil && !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("unexpected error %v", err)
		}
		return err == nil
	}
	// Missing: nothing allowed; created later: read on the next request.
	p := NewExecPolicy(ExecPolicyConfig{Log: discardLog(), PMCDConf: conf})
	if allowed(p) {
		t.Error("missing pmcd.conf allowed an agent")
	}
	writeConf(t, conf, "cat 2 pipe binary /bin/cat\n", 0)
	if !allowed(p) {
		t.Error("new pmcd.conf not read")
	}
	// Changed (same size, so only mtime/ctime tell): re-read.
	writeConf(t, conf, "cat 2 pipe binary /bin/cax\n", 0)
	future := time.Now().Add(time.Hour)
	os.Chtimes(conf, future, future)
	if allowed(p) {
		t.Error("changed pmcd.conf not re-read")
	}
	// Owned by another user: ignored.
	writeConf(t, conf, "cat 2 pipe binary /bin/cat\n", nobody)
	if allowed(p) {
		t.Error("pmcd.conf owned by uid 65534 was used")
	}
	// Root-owned, but in a directory another user owns: ignored.
	userConf := filepath.Join(base, "user/pmcd.conf")
	writeConf(t, userConf, "cat 2 pipe binary /bin/cat\n", 0)
	if allowed(NewExecPolicy(ExecPolicyConfig{Log: discardLog(), PMCDConf: userConf})) {
		t.Error("pmcd.conf in a user's directory was used")
	}
	// Writable by others: ignored.
	writeConf(t, conf, "cat 2 pipe binary /bin/cat\n", 0)
	os.Chmod(conf, 0o666)
	if allowed(p) {
		t.Error("world-writable pmcd.conf was used")
	}
	os.Chmod(conf, 0o644)
	if !allowed(p) {
		t.Error("pmcd.conf back to 0644 not used")
	}
	if allowed(NewExecPolicy(ExecPolicyConfig{Log: discardLog()})) {
		t.Error("no pmcd.conf at all allowed an agent")
	}
}

func TestRefusalLoggedOncePerPeerAndCommand(t *testing.T) {
	var logs logCapture
	p := NewExecPolicy(ExecPolicyConfig{Log: logs.logger()})
	other := nonRoot
	other.PID++
	for _, req := range []struct {
		peer Peer
		argv []string
	}{
		{nonRoot, []string{"/bin/sh", "-c", "id"}},
		{nonRoot, []string{"/bin/sh", "-c", "id"}},
		{nonRoot, []string{"/bin/sh", "-c", "id"}},
		{nonRoot, []string{"/bin/sh", "-c", "id -u"}},
		{other, []string{"/bin/sh", "-c", "id"}},
		{other, []string{"/bin/sh", "-c", "id"}},
	} {
		if _, err := p.resolve(req.peer, req.argv, true); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("%v: %v", req.argv, err)
		}
	}
	if n := logs.count("refused to start agent"); n != 3 {
		t.Errorf("%d refusals logged, want 3 (one per peer and command)\n%s", n, logs.String())
	}
}

func TestPMDARootWarning(t *testing.T) {
	debian, err := os.ReadFile("../internal/pcpconf/testdata/debian-pmcd.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name, conf string
		warn       bool
	}{
		{"debian default", string(debian), true},
		{"root line commented out", strings.Replace(string(debian), "root\t1", "#root\t1", 1), false},
		{"pmdaroot elsewhere", "root 1 pipe binary /opt/pcp/bin/pmdaroot -x\n", true},
		{"other agents only", "linux 60 pipe binary /var/lib/pcp/pmdas/linux/pmdalinux\n", false},
	}
	for i, tt := range tests {
		conf := filepath.Join(dir, "pmcd.conf"+string(rune('a'+i)))
		writeConf(t, conf, tt.conf, 0)
		var logs logCapture
		NewExecPolicy(ExecPolicyConfig{Log: logs.logger(), PMCDConf: conf})
		got := logs.count("still starts pmdaroot")
		if tt.warn && (got != 1 || !strings.Contains(logs.String(), "remove or comment out that line")) {
			t.Errorf("%s: no pmdaroot warning:\n%s", tt.name, logs.String())
		}
		if !tt.warn && got != 0 {
			t.Errorf("%s: unexpected pmdaroot warning:\n%s", tt.name, logs.String())
		}
	}
}

// TestNonRootPeerOverTheSocket: a real client process running as uid 65534
// starts a configured agent, and is refused anything else with -EPERM.
func TestNonRootPeerOverTheSocket(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "pmcd.conf")
	writeConf(t, conf, "cat 2 pipe binary /bin/cat\nsleeper 3 socket unix /tmp/x /bin/sleep 60\n", 0)
	var logs logCapture
	ts := startServer(t, func(cfg *Config) {
		cfg.Access = Access{UIDs: map[uint32]bool{nobody: true}}
		cfg.Processes = NewSupervisor(SupervisorConfig{Log: logs.logger(), PMCDConf: conf, Stderr: io.Discard})
	})
	ts.openToAll(t)

	out := runHelperAs(t, nobody, helperReq{Op: "start", Socket: ts.path, Argv: []string{"/bin/cat"}, Pipe: true})
	if out.Started != 1 {
		t.Errorf("configured agent: %+v", out)
	}
	for _, argv := range [][]string{{"/bin/sh", "-c", "id"}, {"/bin/cat", "/etc/shadow"}, {"python3", "-c", "print(1)"}} {
		out := runHelperAs(t, nobody, helperReq{Op: "start", Socket: ts.path, Argv: argv, Pipe: true, Count: 3})
		if out.Started != 0 || out.EPERM != 3 {
			t.Errorf("%q as uid 65534: %+v, want 3 EPERM", argv, out)
		}
	}
	// The refused agent is not started, root still may.
	c := ts.client(t)
	p, err := c.ProcessStart(ctx5(t), "root", []string{"/bin/sh", "-c", "exit 7"}, false)
	if err != nil {
		t.Fatalf("root peer refused: %v", err)
	}
	if ws := waitExit(t, c, p.PID); ws.ExitStatus() != 7 {
		t.Errorf("status %d", ws.ExitStatus())
	}
	if n := logs.count("refused to start agent"); n != 3 {
		t.Errorf("%d refusals logged, want 3", n)
	}
	// A start failure that is not a refusal stays PM_ERR_GENERIC.
	if _, err := c.ProcessStart(ctx5(t), "bad", []string{"/nonexistent"}, false); !isStatus(err, -12345) {
		t.Errorf("missing program: %v, want PM_ERR_GENERIC", err)
	}
	if _, err := c.ProcessStart(ctx5(t), "bad", []string{"/nonexistent"}, false); errors.Is(err, syscall.EPERM) {
		t.Error("missing program reported as EPERM")
	}
}

// TestSymlinkSwapRace is the attack that worked before: a client running as
// uid 65534 asks 2,000 times for a symlink in its own directory while
// flipping it between an allowed program and its own script. None of its
// requests may start anything, and its script must never run, even when an
// administrator configured the link as an agent or allowed its directory.
func TestSymlinkSwapRace(t *testing.T) {
	good, _ := filepath.EvalSymlinks("/bin/true")
	tests := []struct {
		name      string
		conf      func(link string) string
		allowExec func(attackDir string) []string
	}{
		{"allow-exec names the good program", func(string) string { return "" },
			func(string) []string { return []string{good} }},
		{"pmcd.conf names the link, allow-exec the attacker's directory", func(link string) string { return "agent 2 socket unix /tmp/x " + link + "\n" },
			func(dir string) []string { return []string{good, dir + "/"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tree(t, "d:attack:755:nobody")
			os.Chmod(filepath.Dir(base), 0o755)
			attack := filepath.Join(base, "attack")
			link := filepath.Join(attack, "agent")
			evil := filepath.Join(attack, "evil.sh")
			conf := filepath.Join(base, "pmcd.conf")
			writeConf(t, conf, tt.conf(link), 0)
			var logs logCapture
			ts := startServer(t, func(cfg *Config) {
				cfg.Access = Access{UIDs: map[uint32]bool{nobody: true}}
				cfg.Processes = NewSupervisor(SupervisorConfig{Log: logs.logger(), PMCDConf: conf,
					AllowedPrograms: tt.allowExec(attack), Stderr: io.Discard})
			})
			ts.openToAll(t)

			out := runHelperAs(t, nobody, helperReq{Op: "race", Socket: ts.path, Link: link, Good: good, Evil: evil, Count: 2000})
			// Let any child that did start finish before looking for its trace.
			for deadline := time.Now().Add(5 * time.Second); len(ts.procs.Live()) > 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			ran, _ := filepath.Glob(filepath.Join(attack, "ran-as-*"))
			if len(ran) > 0 {
				t.Errorf("attacker's script ran %d times, e.g. %s", len(ran), filepath.Base(ran[0]))
			}
			if out.Started != 0 || out.EPERM != 2000 {
				t.Errorf("attacker's starts: %d started, %d EPERM, errors %q; want 2000 refused with EPERM", out.Started, out.EPERM, out.Errs)
			}
			if n := logs.count("refused to start agent"); n != 1 {
				t.Errorf("%d refusal log lines for one client and command, want 1", n)
			}
		})
	}
}
