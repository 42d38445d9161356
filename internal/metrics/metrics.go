// Package metrics holds the Prometheus metrics of an agentfs daemon (docs/operations.md).
//
// Names follow Prometheus conventions: agentfs_..._seconds, _bytes, _total. No metric has a
// per-branch label: the number of branches is unbounded, and a label per branch would make
// every scrape grow with it. Labels take only values from small fixed sets (a FUSE
// operation, a control call, a result).
//
// The metrics live in a registry of their own, served by the daemon at /metrics
// (serve --metrics ADDR); a CLI process updates them too, harmlessly, and never serves them.
package metrics

import (
	"net/http"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every agentfs metric plus the Go runtime and process collectors.
var Registry = prometheus.NewRegistry()

func counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	Registry.MustRegister(c)
	return c
}

// latencyBuckets span a cached FUSE reply (~1 µs) to a slow remote call (~10 s).
var latencyBuckets = prometheus.ExponentialBuckets(1e-6, 4, 13)

var (
	// FUSE requests served by the mounts, by operation (fs/metrics.go).
	FUSESeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "agentfs_fuse_request_seconds", Help: "Time to serve a FUSE request, by operation.",
		Buckets: latencyBuckets,
	}, []string{"op"})
	FUSEErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentfs_fuse_errors_total", Help: "FUSE requests answered with an error other than ENOENT, by operation.",
	}, []string{"op"})
	ReadBytes    = counter("agentfs_fuse_read_bytes_total", "Bytes returned by FUSE reads.")
	WrittenBytes = counter("agentfs_fuse_written_bytes_total", "Bytes accepted by FUSE writes.")
	Mounts       = counter("agentfs_mounts_total", "Mounts made.")
	MountsActive = prometheus.NewGauge(prometheus.GaugeOpts{Name: "agentfs_mounts", Help: "Mounts served now."})

	// Versions (api/instrument.go).
	Checkpoints = counter("agentfs_checkpoints_total", "Checkpoints made.")
	Forks       = counter("agentfs_forks_total", "Branches created from a ref.")
	Rollbacks   = counter("agentfs_rollbacks_total", "Rollbacks.")
	Merges      = counter("agentfs_merges_total", "Merges that made a checkpoint.")

	// Garbage collection.
	GCRuns           = counter("agentfs_gc_runs_total", "Garbage collections run (dry runs excluded).")
	GCReclaimedBytes = counter("agentfs_gc_reclaimed_bytes_total", "Stored bytes deleted by garbage collection.")

	// Remotes.
	Pushes            = counter("agentfs_remote_pushes_total", "Pushes to a remote.")
	Pulls             = counter("agentfs_remote_pulls_total", "Pulls (and clones) from a remote.")
	PushedBytes       = counter("agentfs_remote_pushed_bytes_total", "Bytes sent by pushes.")
	PulledBytes       = counter("agentfs_remote_pulled_bytes_total", "Bytes received by pulls.")
	FetchedBytes      = counter("agentfs_remote_fetched_bytes_total", "Bytes of blocks fetched on first read (lazy clones), read-ahead included.")
	RemoteErrors      = counter("agentfs_remote_errors_total", "Pushes and pulls that failed.")
	ControlCalls      = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentfs_api_calls_total", Help: "Control API calls, by call and result (ok or the error code)."}, []string{"call", "result"})
	ControlCallSecond = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agentfs_api_call_seconds", Help: "Time to serve a control API call, by call.", Buckets: latencyBuckets}, []string{"call"})
)

func init() {
	Registry.MustRegister(FUSESeconds, FUSEErrors, MountsActive, ControlCalls, ControlCallSecond,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// WatchStore exports the block cache and disk figures of the repository's Pebble database,
// read at each scrape.
func WatchStore(db *pebble.DB) {
	m := func() *pebble.Metrics { return db.Metrics() }
	Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "agentfs_store_cache_hits_total", Help: "Block cache hits of the repository's database."},
			func() float64 { return float64(m().BlockCache.Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "agentfs_store_cache_misses_total", Help: "Block cache misses of the repository's database (reads from disk)."},
			func() float64 { return float64(m().BlockCache.Misses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentfs_store_disk_bytes", Help: "Bytes the repository's database uses on disk, WAL included."},
			func() float64 { return float64(m().DiskSpaceUsage()) }),
	)
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}
