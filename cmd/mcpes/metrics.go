package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

// meteredStore times Append calls and remembers whether the last one failed for
// want of disk space (readiness reports it); everything else goes straight to the store.
type meteredStore struct {
	store.Store
	bolt    *bolt.Store
	latency prometheus.Histogram
	// full holds the error of the last append when it found the disk full, else nil.
	full atomic.Pointer[error]
}

// newMeteredStore meters appends to st; secrets go through creds, which seals them.
func newMeteredStore(st *bolt.Store, creds store.Store) *meteredStore {
	return &meteredStore{Store: creds, bolt: st, latency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mcpes_store_append_seconds",
		Help:    "Latency of durable appends to the event log (until fsync).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})}
}

func (s *meteredStore) Append(ctx context.Context, stream string, expected int64, evs ...events.Envelope) (store.AppendResult, error) {
	start := time.Now()
	res, err := s.Store.Append(ctx, stream, expected, evs...)
	s.latency.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		s.full.Store(nil)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		s.full.Store(&err)
	}
	return res, err
}

// storageProblem says why the log cannot be written, or "" when the last append worked.
func (s *meteredStore) storageProblem() string {
	if p := s.full.Load(); p != nil {
		return "the event log cannot be written: " + (*p).Error()
	}
	return ""
}

// metrics is the service's Prometheus registry. Counters owned by other parts
// (store, manager, relay) are read at scrape time.
type metrics struct {
	reg         *prometheus.Registry
	m           *Main
	events      *prometheus.CounterVec
	inspections *prometheus.CounterVec
}

func newMetrics(m *Main) *metrics {
	mt := &metrics{reg: prometheus.NewRegistry(), m: m,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpes_events_total",
			Help: "Events committed to the log by this process, by type."}, []string{"type"}),
		inspections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpes_inspections_total",
			Help: "Inspection results recorded, by result (ok, failed, oauth) and failure class."}, []string{"result", "class"}),
	}
	mt.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.metered.latency, mt.events, mt.inspections, mt)
	m.metered.Observe(func(evs []events.Envelope) {
		for _, e := range evs {
			mt.events.WithLabelValues(e.Type).Inc()
			switch {
			case strings.HasPrefix(e.Type, "mcpes.server.inspected."):
				mt.inspections.WithLabelValues("ok", "").Inc()
			case strings.HasPrefix(e.Type, "mcpes.server.inspection_failed."):
				if f, err := events.Decode(e); err == nil {
					if fail, ok := f.(domain.ServerInspectionFailed); ok {
						result := "failed"
						if fail.RequiresOAuth {
							result = "oauth"
						}
						mt.inspections.WithLabelValues(result, string(fail.Class)).Inc()
						continue
					}
				}
				mt.inspections.WithLabelValues("failed", "").Inc()
			}
		}
	})
	return mt
}

func (mt *metrics) handler() http.Handler {
	return promhttp.HandlerFor(mt.reg, promhttp.HandlerOpts{Registry: mt.reg})
}

var (
	descAppends   = prometheus.NewDesc("mcpes_store_appended_events_total", "Events appended to the log since start.", nil, nil)
	descCommits   = prometheus.NewDesc("mcpes_store_commits_total", "Group commits (one fsync'd transaction each) since start.", nil, nil)
	descBatch     = prometheus.NewDesc("mcpes_store_events_per_commit", "Mean events per group commit (fsync batch size) since start.", nil, nil)
	descConns     = prometheus.NewDesc("mcpes_connections", "Upstream connections held by this process, by state.", []string{"state"}, nil)
	descDecisions = prometheus.NewDesc("mcpes_decisions_total", "Connection decisions recorded, by kind and rule or reason.", []string{"kind", "rule"}, nil)
	descReuses    = prometheus.NewDesc("mcpes_connection_reuses_total", "Gets answered by a live, fresh connection (not recorded as events).", nil, nil)
	descRepos     = prometheus.NewDesc("mcpes_repositories", "Owner connection repositories in memory.", nil, nil)
	descLag       = prometheus.NewDesc("mcpes_relay_lag_events", "Events committed but not yet published by the relay.", []string{"relay"}, nil)
	descLagAge    = prometheus.NewDesc("mcpes_relay_lag_seconds", "Age of the oldest unpublished event.", []string{"relay"}, nil)
	descPublished = prometheus.NewDesc("mcpes_relay_published_total", "Events published by the relay since start.", []string{"relay"}, nil)
	descReady     = prometheus.NewDesc("mcpes_ready", "1 once startup inspection finished.", nil, nil)
	descHead      = prometheus.NewDesc("mcpes_log_head", "Last committed log position.", nil, nil)
)

// Describe implements prometheus.Collector.
func (mt *metrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(mt, ch) }

// Collect implements prometheus.Collector, reading the live counters.
func (mt *metrics) Collect(ch chan<- prometheus.Metric) {
	m := mt.m
	bs := m.store.Stats()
	ch <- prometheus.MustNewConstMetric(descAppends, prometheus.CounterValue, float64(bs.Events))
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(bs.Commits))
	batch := 0.0
	if bs.Commits > 0 {
		batch = float64(bs.Events) / float64(bs.Commits)
	}
	ch <- prometheus.MustNewConstMetric(descBatch, prometheus.GaugeValue, batch)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if head, _, err := m.store.Head(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(descHead, prometheus.GaugeValue, float64(head))
	}
	if m.manager != nil {
		s := m.manager.Stats()
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(s.Alive), "alive")
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(s.Dead), "dead")
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(s.Connecting), "connecting")
		ch <- prometheus.MustNewConstMetric(descReuses, prometheus.CounterValue, float64(s.Reuses))
		ch <- prometheus.MustNewConstMetric(descRepos, prometheus.GaugeValue, float64(s.Repositories))
		for k, v := range s.Decisions {
			kind, rule, _ := strings.Cut(k, "/")
			ch <- prometheus.MustNewConstMetric(descDecisions, prometheus.CounterValue, float64(v), kind, rule)
		}
	}
	if m.relay != nil {
		name := m.relay.Name()
		if lag, err := m.relay.Lag(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(lag.Events), name)
			ch <- prometheus.MustNewConstMetric(descLagAge, prometheus.GaugeValue, lag.Age.Seconds(), name)
		}
		ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(m.relay.Stats().Published), name)
	}
	ready := 0.0
	if m.registry != nil && m.registry.IsReady() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
}
