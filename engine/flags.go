package engine

import (
	"slices"
	"strings"
)

// Paths is a repeatable flag of daemon socket paths (--containerd-address,
// --cri-endpoint): each occurrence adds one path, once; rootd.conf gives
// them as a TOML array (internal/config calls Set for each element).
type Paths struct {
	List []string
	// Check, if set, normalises one value (trims a scheme, say) or says
	// why it is refused.
	Check func(string) (string, error)
}

func (p *Paths) String() string {
	if p == nil {
		return ""
	}
	return strings.Join(p.List, ",")
}

// Repeatable marks the flag as a list for internal/config.
func (p *Paths) Repeatable() {}

// Set adds one path, trimmed and checked, unless it is there already.
func (p *Paths) Set(v string) error {
	v = strings.TrimSpace(v)
	if p.Check != nil {
		var err error
		if v, err = p.Check(v); err != nil {
			return err
		}
	}
	if !slices.Contains(p.List, v) {
		p.List = append(p.List, v)
	}
	return nil
}
