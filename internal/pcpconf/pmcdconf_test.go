package pcpconf

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rootd-project/rootd/wire"
)

// testdata/debian-pmcd.conf is /etc/pcp/pmcd/pmcd.conf from Debian 12's
// pcp 6.0.3-1.1 package, unchanged (a generated file with no licence
// header).
func TestParseDebianPMCDConf(t *testing.T) {
	f, err := os.Open("testdata/debian-pmcd.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	agents, err := ParsePMCDConf(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []Agent{
		{Label: "root", Domain: 1, IPC: IPCPipe, Argv: []string{"/var/lib/pcp/pmdas/root/pmdaroot"}, Line: 5},
		{Label: "pmcd", Domain: 2, IPC: IPCDSO, Line: 6},
		{Label: "proc", Domain: 3, IPC: IPCPipe, Argv: []string{"/var/lib/pcp/pmdas/proc/pmdaproc", "-d", "3"}, Line: 7},
		{Label: "xfs", Domain: 11, IPC: IPCPipe, Argv: []string{"/var/lib/pcp/pmdas/xfs/pmdaxfs", "-d", "11"}, Line: 8},
		{Label: "linux", Domain: 60, IPC: IPCPipe, Argv: []string{"/var/lib/pcp/pmdas/linux/pmdalinux"}, Line: 9},
		{Label: "pmproxy", Domain: 4, IPC: IPCDSO, Line: 10},
		{Label: "mmv", Domain: 70, IPC: IPCDSO, Line: 11},
		{Label: "jbd2", Domain: 122, IPC: IPCDSO, Line: 12},
		{Label: "kvm", Domain: 95, IPC: IPCPipe, Argv: []string{"/var/lib/pcp/pmdas/kvm/pmdakvm", "-d", "95"}, Line: 13},
	}
	if !reflect.DeepEqual(agents, want) {
		t.Errorf("got\n%+v\nwant\n%+v", agents, want)
	}
	root, ok := StartsPMDARoot(agents)
	if !ok || root.Line != 5 {
		t.Errorf("StartsPMDARoot: %+v, %v", root, ok)
	}
}

func TestParsePMCDConf(t *testing.T) {
	tests := []struct {
		name  string
		conf  string
		argv  [][]string // Argv of each agent, in order
		ipc   []string
		isErr bool
	}{
		{"comments and blank lines", "# x\n\n   # y\nx 1 pipe binary /a/b -d 1 # trailing\n", [][]string{{"/a/b", "-d", "1"}}, []string{IPCPipe}, false},
		{"case-insensitive keywords", "x 1 PIPE Binary NotReady notready /a\n", [][]string{{"/a"}}, []string{IPCPipe}, false},
		{"quoted words", `x 1 pipe binary "/opt/my pmda/p"  "two  words"	"tab	in" ""` + "\n",
			[][]string{{"/opt/my pmda/p", "two  words", "tab\tin", ""}}, []string{IPCPipe}, false},
		{"escapes", `x 1 pipe binary /p a\"b \#not-comment "q\"q" "h#sh" c\d` + "\n",
			[][]string{{"/p", `a"b`, "#not-comment", `q"q`, "h#sh", `c\d`}}, []string{IPCPipe}, false},
		{"quote inside a bare word is literal", `x 1 pipe binary /p a"b` + "\n", [][]string{{"/p", `a"b`}}, []string{IPCPipe}, false},
		{"closing quote ends the word", `x 1 pipe binary /p "ab"cd` + "\n", [][]string{{"/p", "ab", "cd"}}, []string{IPCPipe}, false},
		{"comment glued to a word", "x 1 pipe binary /p a#b c\n", [][]string{{"/p", "a"}}, []string{IPCPipe}, false},
		{"continued line", "x 1 pipe binary /p \\\n  -d 1\ny 2 pipe binary /q\n", [][]string{{"/p", "-d", "1"}, {"/q"}}, []string{IPCPipe, IPCPipe}, false},
		{"socket with and without command", "a 1 socket inet 2222 /p -x\nb 2 socket unix /tmp/s\nc 3 socket ipv6 4444\n",
			[][]string{{"/p", "-x"}, nil, nil}, []string{IPCSocket, IPCSocket, IPCSocket}, false},
		{"interpreter lines", "bcc 149 pipe binary notready python3 /var/lib/pcp/pmdas/bcc/pmdabcc.python\n",
			[][]string{{"python3", "/var/lib/pcp/pmdas/bcc/pmdabcc.python"}}, []string{IPCPipe}, false},
		{"access section ends agents", "x 1 pipe binary /p\n[access]\nallow hosts x : all;\ny 2 pipe binary /q\n", [][]string{{"/p"}}, []string{IPCPipe}, false},
		{"access keyword split", "x 1 pipe binary /p\n[ access ]\ny 2 pipe binary /q\n", [][]string{{"/p"}}, []string{IPCPipe}, false},
		{"text pipes are not pmcd's", "x 1 pipe text /p\ny 2 pipe binary /q\n", [][]string{{"/q"}}, []string{IPCPipe}, true},
		{"bad domain", "x one pipe binary /p\ny 511 pipe binary /q\nz 510 pipe binary /r\n", [][]string{{"/r"}}, []string{IPCPipe}, true},
		{"domain clash", "x 5 pipe binary /p\ny 5 pipe binary /q\n", [][]string{{"/p"}}, []string{IPCPipe}, true},
		{"pipe without command", "x 5 pipe binary notready\n", nil, nil, true},
		{"unknown kind", "x 5 fifo /p\n", nil, nil, true},
		{"bad socket domain", "x 5 socket tcp 22 /p\n", nil, nil, true},
		{"relative dso", "x 5 dso init lib.so\n", nil, nil, true},
		{"unterminated quote stops the parse", "x 1 pipe binary /p\ny 2 pipe binary \"/q\nz 3 pipe binary /r\n", [][]string{{"/p"}}, []string{IPCPipe}, true},
		{"no final newline", "x 1 pipe binary /p", [][]string{{"/p"}}, []string{IPCPipe}, false},
	}
	for _, tt := range tests {
		agents, err := ParsePMCDConf(strings.NewReader(tt.conf))
		if (err != nil) != tt.isErr || err != nil && !errors.Is(err, ErrPMCDConf) {
			t.Errorf("%s: err %v, want error %v", tt.name, err, tt.isErr)
		}
		var argv [][]string
		var ipc []string
		for _, a := range agents {
			argv = append(argv, a.Argv)
			ipc = append(ipc, a.IPC)
		}
		if !reflect.DeepEqual(argv, tt.argv) || !reflect.DeepEqual(ipc, tt.ipc) {
			t.Errorf("%s: argv %q ipc %q, want %q %q", tt.name, argv, ipc, tt.argv, tt.ipc)
		}
	}
}

// pmcd sends each agent's argv joined by its BuildCmdLine; rootd splits it
// with wire.SplitArgs and compares the result with the argv parsed here, so
// that round trip must be exact for every word pmcd.conf can express.
func TestConfiguredArgvSurvivesSTARTPMDA(t *testing.T) {
	conf := `x 1 pipe binary "/opt/my pmda/p" "two  words" a\"b "q\"q" "tab	in" "" c\d x\\ "ends\\ " \#h` + "\n"
	agents, err := ParsePMCDConf(strings.NewReader(conf))
	if err != nil || len(agents) != 1 {
		t.Fatal(agents, err)
	}
	argv := agents[0].Argv
	got, err := wire.SplitArgs(wire.JoinArgs(argv))
	if err != nil || !reflect.DeepEqual(got, argv) {
		t.Errorf("round trip: %q, %v; want %q", got, err, argv)
	}
}

func TestStartsPMDARoot(t *testing.T) {
	tests := []struct {
		conf string
		want bool
	}{
		{"root 1 pipe binary /var/lib/pcp/pmdas/root/pmdaroot\n", true},
		{"r 1 pipe binary /usr/local/libexec/pmdaroot -d 1\n", true},
		{"#root 1 pipe binary /var/lib/pcp/pmdas/root/pmdaroot\n", false},
		{"root 1 pipe binary /usr/sbin/rootd\n", false},
		{"root 1 dso root_init /var/lib/pcp/pmdas/root/pmdaroot.so\n", false},
	}
	for _, tt := range tests {
		agents, _ := ParsePMCDConf(strings.NewReader(tt.conf))
		if _, got := StartsPMDARoot(agents); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.conf, got, tt.want)
		}
	}
}
