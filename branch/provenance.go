package branch

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// Provenance says who made a checkpoint and why: the agent, its session and the tool call
// (as the orchestrator names them), the caller the daemon authenticated (a token id or
// "uid:N"), the channel it came through (cli, mcp, run, api) and free key=value labels.
type Provenance struct {
	Agent    string            `json:"agent,omitempty"`
	Session  string            `json:"session,omitempty"`
	ToolCall string            `json:"tool_call,omitempty"`
	Caller   string            `json:"caller,omitempty"`
	Via      string            `json:"via,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// FileCounts summarises the paths a checkpoint created, modified and deleted since its first
// parent.
type FileCounts struct {
	Created  int `json:"created"`
	Modified int `json:"modified"`
	Deleted  int `json:"deleted"`
}

// Limits on provenance, checked when a checkpoint is made and again when a commit is
// decoded (commits can come from a bucket).
const (
	maxProvField  = 256 // bytes in agent, session, tool call, caller, via, label value
	maxLabelKey   = 64
	maxLabels     = 32
	maxFileCounts = 1 << 40
)

// Validate checks the limits and the label keys ([A-Za-z0-9_.-]).
func (p *Provenance) Validate() error {
	for _, f := range []struct{ name, v string }{{"agent", p.Agent}, {"session", p.Session}, {"tool call", p.ToolCall}, {"caller", p.Caller}, {"via", p.Via}} {
		if len(f.v) > maxProvField {
			return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidName, f.name, maxProvField)
		}
	}
	if len(p.Labels) > maxLabels {
		return fmt.Errorf("%w: at most %d labels", ErrInvalidName, maxLabels)
	}
	for k, v := range p.Labels {
		if k == "" || len(k) > maxLabelKey || strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" {
			return fmt.Errorf("%w: label key %q: use 1-%d letters, digits, '_', '.' or '-'", ErrInvalidName, k, maxLabelKey)
		}
		if len(v) > maxProvField {
			return fmt.Errorf("%w: label %s is longer than %d bytes", ErrInvalidName, k, maxProvField)
		}
	}
	return nil
}

// ParseLabels turns k=v strings into a map.
func ParseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%w: label %q: write it as key=value", ErrInvalidName, kv)
		}
		m[k] = v
	}
	return m, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendProvenance encodes the version-2 trailer of a commit: five strings, the labels
// sorted by key, then the three file counts.
func appendProvenance(b []byte, p *Provenance, f FileCounts) []byte {
	for _, s := range []string{p.Agent, p.Session, p.ToolCall, p.Caller, p.Via} {
		b = appendString(b, s)
	}
	keys := make([]string, 0, len(p.Labels))
	for k := range p.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(appendString(b, k), p.Labels[k])
	}
	for _, n := range []int{f.Created, f.Modified, f.Deleted} {
		b = binary.AppendUvarint(b, uint64(n))
	}
	return b
}

// commitReader reads length-checked fields; any field past the end or over its limit makes
// the whole commit malformed, so hostile input costs at most its own size.
type commitReader struct {
	p   []byte
	bad bool
}

func (r *commitReader) uvarint(max uint64) uint64 {
	n, k := binary.Uvarint(r.p)
	if k <= 0 || n > max {
		r.bad = true
		return 0
	}
	r.p = r.p[k:]
	return n
}

func (r *commitReader) str(max int) string {
	l := r.uvarint(uint64(max))
	if r.bad || l > uint64(len(r.p)) {
		r.bad = true
		return ""
	}
	s := string(r.p[:l])
	r.p = r.p[l:]
	return s
}

func decodeProvenance(r *commitReader, c *Commit) {
	for _, dst := range []*string{&c.Agent, &c.Session, &c.ToolCall, &c.Caller, &c.Via} {
		*dst = r.str(maxProvField)
	}
	n := r.uvarint(maxLabels)
	for i := uint64(0); i < n && !r.bad; i++ {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		k := r.str(maxLabelKey)
		c.Labels[k] = r.str(maxProvField)
	}
	c.Files.Created = int(r.uvarint(maxFileCounts))
	c.Files.Modified = int(r.uvarint(maxFileCounts))
	c.Files.Deleted = int(r.uvarint(maxFileCounts))
}
