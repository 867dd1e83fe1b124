package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// SyntheticSet describes a generated Docker state directory: what it holds
// and which queries the benchmark asks of it.
type SyntheticSet struct {
	Dir  string // the PCP_DOCKER_DIR: containers live in Dir/containers
	N    int
	PIDs []int // the live processes the containers point at, round robin
	// Pinned are the containers SetPID pointed at a process of their own,
	// by index into IDs.
	Pinned map[int]int
	IDs    []string
	Names  []string // without the leading "/"
	// Positions are indexes into IDs/Names in the order the kernel lists
	// the containers directory (the order the reference walks it): first,
	// middle, last.
	Positions []int
}

// Query is one name the load driver asks.
type Query struct {
	Kind     string // name, id, prefix
	Position string // first, middle, last
	Text     string
	Index    int // into SyntheticSet.IDs
}

// syntheticID is a deterministic 64-hex-digit container ID.
func syntheticID(seed string, i int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "rootbench/%s/%d", seed, i))
	return hex.EncodeToString(sum[:])
}

// Generate writes n synthetic containers under dir/containers, each running
// with one of pids as its init process. The last container's ID shares its
// first 11 hex digits with the first one's, so that its 12-digit prefix is
// unique by a single digit: the hardest unique prefix for a matcher that
// scores common prefix lengths.
func Generate(dir string, n int, pids []int) (*SyntheticSet, error) {
	if n < 1 || len(pids) == 0 {
		return nil, fmt.Errorf("generate: need at least one container and one pid (got %d, %d)", n, len(pids))
	}
	top := filepath.Join(dir, "containers")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(top, 0o700); err != nil {
		return nil, err
	}
	set := &SyntheticSet{Dir: dir, N: n, PIDs: pids}
	seed := fmt.Sprint(n)
	for i := range n {
		id := syntheticID(seed, i)
		if i == n-1 && n > 1 {
			id = set.IDs[0][:11] + flipHex(set.IDs[0][11]) + id[12:]
		}
		name := fmt.Sprintf("bench-%05d", i)
		set.IDs = append(set.IDs, id)
		set.Names = append(set.Names, name)
		if err := os.Mkdir(filepath.Join(top, id), 0o700); err != nil {
			return nil, err
		}
		if err := writeContainer(top, id, name, pids[i%len(pids)], createdAt(i)); err != nil {
			return nil, err
		}
	}
	order, err := dirOrder(top)
	if err != nil {
		return nil, err
	}
	index := make(map[string]int, n)
	for i, id := range set.IDs {
		index[id] = i
	}
	for _, id := range []string{order[0], order[len(order)/2], order[len(order)-1]} {
		set.Positions = append(set.Positions, index[id])
	}
	return set, nil
}

// createdAt is the creation time of the i-th container.
func createdAt(i int) time.Time {
	return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second)
}

// SetPID points the i-th container at process pid instead of the one
// Generate gave it, rewriting its state file (a new file renamed over the
// old one, as Docker writes it).
func (s *SyntheticSet) SetPID(i, pid int) error {
	if i < 0 || i >= len(s.IDs) || pid < 1 {
		return fmt.Errorf("set pid: no container %d or bad pid %d", i, pid)
	}
	if err := writeContainer(filepath.Join(s.Dir, "containers"), s.IDs[i], s.Names[i], pid, createdAt(i)); err != nil {
		return err
	}
	if s.Pinned == nil {
		s.Pinned = map[int]int{}
	}
	s.Pinned[i] = pid
	return nil
}

// PIDOf returns the process the i-th container points at.
func (s *SyntheticSet) PIDOf(i int) int {
	if pid, ok := s.Pinned[i]; ok {
		return pid
	}
	return s.PIDs[i%len(s.PIDs)]
}

// flipHex returns a hex digit other than c.
func flipHex(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

// dirOrder lists dir's entries in the order the kernel returns them.
func dirOrder(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// Queries returns the names asked of a set: each position by exact name, by
// full ID and by 12-digit prefix (the length Docker itself prints).
func (s *SyntheticSet) Queries() []Query {
	var qs []Query
	for _, kind := range []string{"name", "id", "prefix"} {
		for p, i := range s.Positions {
			q := Query{Kind: kind, Position: positionNames[p], Index: i}
			switch kind {
			case "name":
				q.Text = s.Names[i]
			case "id":
				q.Text = s.IDs[i]
			default:
				q.Text = s.IDs[i][:12]
			}
			qs = append(qs, q)
		}
	}
	return qs
}

var positionNames = []string{"first", "middle", "last"}

// writeContainer writes one container's config.v2.json (with the fields
// and roughly the size of a real Docker 20.10 one: the reference parses the
// whole file of every container on every request) and its hostname file,
// in the container's directory, which must exist.
func writeContainer(top, id, name string, pid int, created time.Time) error {
	dir := filepath.Join(top, id)
	short := id[:12]
	cfg := map[string]any{
		"StreamConfig": map[string]any{},
		"State": map[string]any{
			"Running": true, "Paused": false, "Restarting": false, "OOMKilled": false,
			"RemovalInProgress": false, "Dead": false, "Pid": pid, "ExitCode": 0, "Error": "",
			"StartedAt":  created.Add(time.Second).Format(time.RFC3339Nano),
			"FinishedAt": "0001-01-01T00:00:00Z", "Health": nil,
		},
		"ID":      id,
		"Created": created.Format(time.RFC3339Nano),
		"Managed": false,
		"Path":    "sleep",
		"Args":    []string{"600"},
		"Config": map[string]any{
			"Hostname": short, "Domainname": "", "User": "",
			"AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
			"Tty": false, "OpenStdin": false, "StdinOnce": false,
			"Env":        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Cmd":        []string{"sleep", "600"},
			"Image":      "bb:latest",
			"Volumes":    nil,
			"WorkingDir": "",
			"Entrypoint": nil,
			"OnBuild":    nil,
			"Labels":     map[string]string{"com.example.bench": "rootbench"},
		},
		"Image": "sha256:" + syntheticID("image", 0),
		"NetworkSettings": map[string]any{
			"Bridge": "", "SandboxID": syntheticID("sandbox/"+id, 0), "HairpinMode": false,
			"LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
			"Networks": map[string]any{"none": map[string]any{
				"IPAMConfig": nil, "Links": nil, "Aliases": nil,
				"NetworkID": syntheticID("network", 0), "EndpointID": syntheticID("endpoint/"+id, 0),
				"Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
			}},
			"Service": nil, "Ports": map[string]any{},
			"SandboxKey": "/var/run/docker/netns/" + short, "IsAnonymousEndpoint": false,
			"HasSwarmEndpoint": false,
		},
		"LogPath":                filepath.Join("/var/lib/docker/containers", id, id+"-json.log"),
		"Name":                   "/" + name,
		"Driver":                 "overlay2",
		"OS":                     "linux",
		"MountLabel":             "",
		"ProcessLabel":           "",
		"RestartCount":           0,
		"HasBeenStartedBefore":   true,
		"HasBeenManuallyStopped": false,
		"MountPoints":            map[string]any{},
		"SecretReferences":       nil,
		"ConfigReferences":       nil,
		"AppArmorProfile":        "docker-default",
		"HostnamePath":           filepath.Join("/var/lib/docker/containers", id, "hostname"),
		"HostsPath":              filepath.Join("/var/lib/docker/containers", id, "hosts"),
		"ShmPath":                "",
		"ResolvConfPath":         filepath.Join("/var/lib/docker/containers", id, "resolv.conf"),
		"SeccompProfile":         "",
		"NoNewPrivileges":        false,
		"LocalLogCacheMeta":      map[string]any{"HaveNotifyEnabled": false},
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".config.v2.json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "config.v2.json")); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "hostname"), []byte(short+"\n"), 0o644)
}
