package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A row with the three columns gets both ratios, its target's verdict, and all of it in the
// table and in the JSON.
func TestThreeColumnRow(t *testing.T) {
	lat := func(p50 time.Duration) *Value { return &Value{P50: p50, P99: 2 * p50, N: 100} }
	write := &Row{Area: "file I/O", Figure: "4 KiB random write", AgentFS: *lat(40 * time.Microsecond),
		Plain: lat(4 * time.Microsecond), Loopback: lat(20 * time.Microsecond),
		target: forIssue(10, all(p50AtMost(20*time.Microsecond), atMostLoopback("p50")))}
	read := &Row{Area: "file I/O", Figure: "4 KiB random read", AgentFS: *lat(10 * time.Microsecond),
		Plain: lat(8 * time.Microsecond), Loopback: lat(20 * time.Microsecond),
		target: forIssue(17, all(ratioBelow(1.5, "p50"), atMostLoopback("p50")))}
	rate := &Row{Area: "agents", Figure: "16 writers", AgentFS: Value{Rate: 100, Unit: "MB/s"},
		Plain: &Value{Rate: 400, Unit: "MB/s"}, Loopback: &Value{Rate: 200, Unit: "MB/s"},
		target: forIssue(10, rateShareOfPlain(0.5))}
	unknown := &Row{Area: "file I/O", Figure: "no loopback", AgentFS: *lat(time.Microsecond),
		target: atMostLoopback("p50")}
	rep := &Report{}
	for _, r := range []*Row{write, read, rate, unknown} {
		rep.add(r)
	}
	for _, c := range []struct {
		r                   *Row
		ratio, ratioLB      float64
		result, targetStart string
	}{
		{write, 10, 2, "MISS", "#10: p50 ≤ 20µs and p50 ≤ loopback"},
		{read, 1.25, 0.5, "pass", "#17: p50 ≤ 1.5x plain and p50 ≤ loopback"},
		{rate, 4, 2, "MISS", "#10: ≥ 50% of plain"},
		{unknown, 0, 0, "?", "p50 ≤ loopback"},
	} {
		if c.r.Ratio != c.ratio && !(c.ratio == 0 && c.r.Plain == nil) || c.r.RatioLB != c.ratioLB && c.r.Loopback != nil {
			t.Errorf("%s: ratios %.2f/%.2f, want %.2f/%.2f", c.r.Figure, c.r.Ratio, c.r.RatioLB, c.ratio, c.ratioLB)
		}
		if c.r.Result != c.result || c.r.Target != c.targetStart {
			t.Errorf("%s: target %q %s, want %q %s", c.r.Figure, c.r.Target, c.r.Result, c.targetStart, c.result)
		}
	}
	if write.LBRatio != 5 {
		t.Errorf("loopback/plain of the write row = %.2f, want 5", write.LBRatio)
	}

	var table bytes.Buffer
	rep.Print(&table, nil)
	line := strings.Split(table.String(), "\n")[1]
	for _, want := range []string{"p50 40µs", "p50 4.0µs", "p50 20µs", "10.00x", "2.00x", "MISS"} {
		if !strings.Contains(line, want) {
			t.Errorf("table line %q lacks %q", line, want)
		}
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Rows []struct {
			Loopback *Value  `json:"loopback"`
			RatioLB  float64 `json:"ratio_loopback"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Rows[0].Loopback == nil || got.Rows[0].Loopback.P50 != 20*time.Microsecond || got.Rows[0].RatioLB != 2 {
		t.Errorf("JSON of the write row: loopback %+v ratio %.2f, want p50 20µs and 2", got.Rows[0].Loopback, got.Rows[0].RatioLB)
	}
}

// A tool's long stderr becomes one line in the table.
func TestErrValueIsOneLine(t *testing.T) {
	long := "tar: a: Cannot open: Transport endpoint is not connected\n" + strings.Repeat("tar: b: Cannot open\n", 500)
	v := errValue(errors.New(long))
	if strings.Contains(v.Err, "\n") || len(v.Err) > 320 || !strings.HasPrefix(v.Err, "tar: a: Cannot open") || !strings.Contains(v.Err, "+500 more lines") {
		t.Errorf("errValue = %q", v.Err)
	}
}
