// Package bench is the agentfs benchmark suite: version operations through the engine API,
// file workloads run with plain os calls on an agentfs mount, on a plain directory of the
// same disk and on a go-fuse loopback mount of that disk (the cost of FUSE alone), and on any
// --compare directory; daemon memory, storage and agent fan-out.
// cmd/agentfs-bench drives it; docs/performance.md holds the latest full run.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Value is one measured figure: a latency distribution, a rate, a duration, a byte count
// or a text (e.g. "n/a (...)"). Err is set when the workload failed.
type Value struct {
	P50   time.Duration `json:"p50_ns,omitempty"`
	P99   time.Duration `json:"p99_ns,omitempty"`
	N     int           `json:"samples,omitempty"`
	Rate  float64       `json:"rate,omitempty"` // in Unit
	Unit  string        `json:"unit,omitempty"` // for Rate: "MB/s", "ops/s", "files/s"
	Dur   time.Duration `json:"duration_ns,omitempty"`
	Bytes int64         `json:"bytes,omitempty"`
	Text  string        `json:"text,omitempty"`
	Err   string        `json:"error,omitempty"`
}

func (v Value) isLatency() bool { return v.N > 0 }

// cost is the number a ratio compares: higher means slower or bigger.
func (v Value) cost() float64 {
	switch {
	case v.Err != "" || v.Text != "" && v.N == 0 && v.Rate == 0 && v.Dur == 0 && v.Bytes == 0:
		return math.NaN()
	case v.isLatency():
		return float64(v.P50)
	case v.Rate > 0:
		return 1 / v.Rate
	case v.Dur > 0:
		return float64(v.Dur)
	case v.Bytes > 0:
		return float64(v.Bytes)
	}
	return math.NaN()
}

func (v Value) String() string {
	if v.Err != "" {
		return "ERROR: " + v.Err
	}
	var s string
	switch {
	case v.isLatency():
		s = fmt.Sprintf("p50 %s / p99 %s", fmtDur(v.P50), fmtDur(v.P99))
	case v.Rate > 0:
		s = fmtRate(v.Rate) + " " + v.Unit
	case v.Dur > 0:
		s = fmtDur(v.Dur)
	case v.Bytes > 0:
		s = fmtBytes(v.Bytes)
	}
	if v.Text != "" {
		if s != "" {
			s += " "
		}
		s += v.Text
	}
	return s
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func fmtRate(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

func fmtBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// Latencies summarises samples as p50/p99 (nearest rank).
func Latencies(s []time.Duration) Value {
	if len(s) == 0 {
		return Value{Err: "no samples"}
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	pct := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Value{P50: pct(0.50), P99: pct(0.99), N: len(s)}
}

// Named is a measured value on one side (a filesystem, or a comparison).
type Named struct {
	Name  string `json:"name"`
	Dir   string `json:"dir,omitempty"`
	Value Value  `json:"value"`
	Ratio string `json:"ratio,omitempty"` // cost relative to the plain directory
}

// Target is a goal a figure should meet. It never fails the run.
type Target struct {
	Text  string
	Check func(r *Row) (pass, known bool)
}

// Row is one figure of the report: agentfs, and for file workloads the same workload on the
// plain directory and on the go-fuse loopback mount (three columns, see suite.go).
type Row struct {
	Area     string  `json:"area"`
	Figure   string  `json:"figure"`
	Params   string  `json:"params"`
	AgentFS  Value   `json:"agentfs"`
	Plain    *Value  `json:"plain,omitempty"`
	Loopback *Value  `json:"loopback,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`          // agentfs cost / plain cost (>1 = agentfs slower or bigger)
	RatioLB  float64 `json:"ratio_loopback,omitempty"` // agentfs cost / loopback cost
	LBRatio  float64 `json:"loopback_ratio,omitempty"` // loopback cost / plain cost: what FUSE alone costs
	Others   []Named `json:"compare,omitempty"`
	Target   string  `json:"target,omitempty"`
	Result   string  `json:"result,omitempty"`  // pass, MISS, or ? (not measurable)
	Profile  string  `json:"profile,omitempty"` // CPU profile of the daemon taken for a miss (-pprof)

	target *Target
	again  func() error // runs the agentfs side once more (for -pprof); nil if not repeatable
	// againIn, if set before fileRows, is what again runs in a fresh directory on the agentfs
	// side instead of the whole workload (one figure of several measured together).
	againIn func(dir string) error
	// inProcess: the row measures this process (the engine API), so that is what -pprof
	// profiles instead of the daemon.
	inProcess bool
	// heap: the row is the daemon's memory, so -pprof takes heap snapshots (heapprof.go)
	// instead of a CPU profile.
	heap bool
}

func ratio(a, b Value) float64 {
	ca, cb := a.cost(), b.cost()
	if math.IsNaN(ca) || math.IsNaN(cb) || cb == 0 {
		return math.NaN()
	}
	return ca / cb
}

// finish computes ratios and evaluates the target.
func (r *Row) finish() {
	if r.Loopback != nil {
		r.RatioLB = ratio(r.AgentFS, *r.Loopback)
		if r.Plain != nil {
			r.LBRatio = ratio(*r.Loopback, *r.Plain)
		}
	}
	if r.Plain != nil {
		r.Ratio = ratio(r.AgentFS, *r.Plain)
		for i := range r.Others {
			if x := ratio(r.Others[i].Value, *r.Plain); !math.IsNaN(x) {
				r.Others[i].Ratio = fmt.Sprintf("%.2fx", x)
			}
		}
	}
	if r.target != nil {
		r.Target = r.target.Text
		pass, known := r.target.Check(r)
		switch {
		case !known:
			r.Result = "?"
		case pass:
			r.Result = "pass"
		default:
			r.Result = "MISS"
		}
	}
}

// Report collects rows.
type Report struct {
	Started  time.Time         `json:"started"`
	Duration time.Duration     `json:"duration_ns"`
	Quick    bool              `json:"quick"`
	Machine  map[string]string `json:"machine"`
	Rows     []*Row            `json:"rows"`
	Failed   int               `json:"failed"`
	// The load average (/proc/loadavg: 1, 5, 15 min) when the run started and ended: on a
	// shared machine it says how much to trust the figures.
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

// LoadAvg returns the 1, 5 and 15 minute load averages from /proc/loadavg.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func (rep *Report) add(r *Row) {
	r.finish()
	if r.AgentFS.Err != "" || r.Plain != nil && r.Plain.Err != "" || r.Loopback != nil && r.Loopback.Err != "" {
		rep.Failed++
	}
	for _, o := range r.Others {
		if o.Value.Err != "" {
			rep.Failed++
		}
	}
	rep.Rows = append(rep.Rows, r)
}

// Print writes the table.
func (rep *Report) Print(w io.Writer, compare []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hdr := []string{"area", "figure", "parameters", "agentfs", "plain dir", "loopback", "÷plain", "÷loopback"}
	for _, c := range compare {
		hdr = append(hdr, c, "ratio")
	}
	hdr = append(hdr, "target", "result")
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, r := range rep.Rows {
		cols := r.columns()
		for i := range compare {
			if i < len(r.Others) {
				cols = append(cols, r.Others[i].Value.String(), orDash(r.Others[i].Ratio))
			} else {
				cols = append(cols, "-", "-")
			}
		}
		cols = append(cols, orDash(r.Target), orDash(r.Result))
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	tw.Flush()
	fmt.Fprintln(w, "÷plain = agentfs cost / plain-dir cost, ÷loopback = agentfs cost / go-fuse loopback cost (time, or bytes): >1 means agentfs is slower or bigger.")
}

// columns are the first eight cells of a row: area to ÷loopback.
func (r *Row) columns() []string {
	val := func(v *Value) string {
		if v == nil {
			return "-"
		}
		return v.String()
	}
	return []string{r.Area, r.Figure, r.Params, r.AgentFS.String(), val(r.Plain), val(r.Loopback), fmtRatio(r.Ratio), fmtRatio(r.RatioLB)}
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) || x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}

// Markdown writes the table as GitHub markdown.
func (rep *Report) Markdown(w io.Writer) {
	fmt.Fprintln(w, "| area | figure | parameters | agentfs | plain dir | loopback | ÷plain | ÷loopback | target | result |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rep.Rows {
		res := orDash(r.Result)
		if res == "MISS" {
			res = "**MISS**"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", strings.Join(r.columns(), " | "), orDash(r.Target), res)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteJSON writes the report as JSON to path.
func (rep *Report) WriteJSON(path string) error {
	for _, r := range rep.Rows {
		for _, x := range []*float64{&r.Ratio, &r.RatioLB, &r.LBRatio} {
			if math.IsNaN(*x) {
				*x = 0
			}
		}
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Targets. Each prints as the issue's wording ("#10: p50 ≤ 20µs") beside the figure.

// forIssue prefixes a target with the issue that set it.
func forIssue(n int, t *Target) *Target {
	return &Target{Text: fmt.Sprintf("#%d: %s", n, t.Text), Check: t.Check}
}

// all is met when every target is; its result is known when every result is.
func all(ts ...*Target) *Target {
	var texts []string
	for _, t := range ts {
		texts = append(texts, t.Text)
	}
	return &Target{Text: strings.Join(texts, " and "), Check: func(r *Row) (bool, bool) {
		pass, known := true, true
		for _, t := range ts {
			p, k := t.Check(r)
			pass, known = pass && p, known && k
		}
		return pass, known
	}}
}

func p99Below(d time.Duration) *Target {
	return &Target{Text: "p99 < " + fmtDur(d), Check: func(r *Row) (bool, bool) {
		v := r.AgentFS
		return v.P99 < d, v.Err == "" && v.isLatency()
	}}
}

func p50Below(d time.Duration) *Target {
	return &Target{Text: "p50 < " + fmtDur(d), Check: func(r *Row) (bool, bool) {
		v := r.AgentFS
		return v.P50 < d, v.Err == "" && v.isLatency()
	}}
}

func p50AtMost(d time.Duration) *Target {
	return &Target{Text: "p50 ≤ " + fmtDur(d), Check: func(r *Row) (bool, bool) {
		v := r.AgentFS
		return v.P50 <= d, v.Err == "" && v.isLatency()
	}}
}

func durBelow(d time.Duration) *Target {
	return &Target{Text: "< " + fmtDur(d), Check: func(r *Row) (bool, bool) {
		v := r.AgentFS
		return v.Dur < d, v.Err == "" && v.Dur > 0
	}}
}

// ratioBelow: agentfs cost at most x times the plain directory's (what = "p50", "time"...).
func ratioBelow(x float64, what string) *Target {
	return &Target{Text: fmt.Sprintf("%s ≤ %gx plain", what, x), Check: func(r *Row) (bool, bool) {
		return r.Ratio <= x, !math.IsNaN(r.Ratio) && r.Ratio > 0
	}}
}

// rateShareOfPlain: a rate at least share (0.5 = 50%) of the plain directory's.
func rateShareOfPlain(share float64) *Target {
	text := fmt.Sprintf("≥ %g%% of plain", share*100)
	if share == 1 {
		text = "≥ plain"
	}
	return &Target{Text: text, Check: func(r *Row) (bool, bool) {
		return r.Ratio <= 1/share, !math.IsNaN(r.Ratio) && r.Ratio > 0
	}}
}

// atMostLoopback: agentfs cost at most the go-fuse loopback's (what = "p50"...).
func atMostLoopback(what string) *Target {
	return &Target{Text: what + " ≤ loopback", Check: func(r *Row) (bool, bool) {
		return r.RatioLB <= 1, !math.IsNaN(r.RatioLB) && r.RatioLB > 0
	}}
}

func rateAtLeast(x float64, unit string) *Target {
	return &Target{Text: fmt.Sprintf("≥ %g %s", x, unit), Check: func(r *Row) (bool, bool) {
		v := r.AgentFS
		return v.Rate >= x, v.Err == "" && v.Rate > 0
	}}
}

func bytesBelow(b int64) *Target {
	return &Target{Text: "< " + fmtBytes(b), Check: func(r *Row) (bool, bool) {
		v := r.AgentFS
		return v.Bytes < b, v.Err == "" && v.Bytes > 0
	}}
}

func bytesAtMost(b int64) *Target {
	return &Target{Text: "≤ " + fmtBytes(b), Check: func(r *Row) (bool, bool) {
		v := r.AgentFS
		return v.Bytes <= b, v.Err == "" && v.Bytes > 0
	}}
}

// errValue is a failed figure. Its text is the error's first line, at most 300 characters,
// so that a tool's long stderr (tar lists every file it could not write) keeps the table
// readable.
func errValue(err error) Value {
	msg := err.Error()
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	msg = lines[0]
	if len(lines) > 1 {
		msg += fmt.Sprintf(" (+%d more lines)", len(lines)-1)
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return Value{Err: msg}
}
