package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"supportbridge/bridge"
	"supportbridge/bridge/jobqueue"
)

// metrics are the daemon's Prometheus metrics. Each daemon has its own
// registry: no global state, and tests can run several daemons at once.
type metrics struct {
	reg            *prometheus.Registry
	webhooks       *prometheus.CounterVec
	ingest         prometheus.Histogram
	jobs           *prometheus.CounterVec
	mailsAccepted  *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	inbound        *prometheus.CounterVec
	digestRuns     *prometheus.CounterVec
	callbackResult *prometheus.CounterVec
	operatorAlerts *prometheus.CounterVec
	feedRemoved    prometheus.Counter
	feedPrunes     *prometheus.CounterVec
	notReplicated  prometheus.Counter
	noReferent     prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.webhooks = counterVec("supportbridge_webhooks_total", "ENT webhooks received, by event type and outcome (accepted, duplicate, or the error code).", "type", "outcome")
	m.ingest = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "supportbridge_webhook_duration_seconds",
		Help: "Time to verify, decode and durably apply a webhook.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.jobs = counterVec("supportbridge_jobs_total", "Jobs run, by kind and result (done, retry, given_up).", "kind", "result")
	m.mailsAccepted = counterVec("supportbridge_mails_sent_total", "Mails the desk's server accepted, by kind (esc, fu).", "kind")
	m.deadLetters = counterVec("supportbridge_dead_letters_total", "Jobs given up and moved to the dead letters, by kind.", "kind")
	m.inbound = counterVec("supportbridge_imap_messages_total", "Inbound mails handled, by outcome (applied, duplicate, loop, auto_reply, desk_notice, bounce, quarantined).", "outcome")
	m.digestRuns = counterVec("supportbridge_digest_runs_total", "Digest runs, by period and result.", "period", "result")
	m.callbackResult = counterVec("supportbridge_callbacks_total", "Callback attempts to the ENT, by result (delivered, failed).", "result")
	m.operatorAlerts = counterVec("supportbridge_operator_alerts_total", "Alert mails to the operators about jobs given up, by result (sent, suppressed within the window, failed, dropped).", "result")
	m.feedRemoved = counter("supportbridge_feed_pruned_total", "Feed entries removed by the retention prune.")
	m.feedPrunes = counterVec("supportbridge_feed_prune_runs_total", "Retention prune runs of the feeds on this replica, by result (done, error).", "result")
	m.notReplicated = counter("supportbridge_redis_not_replicated_total", "Round trips of writes that fewer replicas than redis.wait_replicas acknowledged in time (their callers failed and retry).")
	m.noReferent = counter("supportbridge_tickets_without_referent_total", "Demands created in a structure with no referent anywhere up its chain: no referent is notified of them.")
	m.reg.MustRegister(m.webhooks, m.ingest, m.jobs, m.mailsAccepted, m.deadLetters, m.inbound, m.digestRuns,
		m.callbackResult, m.operatorAlerts, m.feedRemoved, m.feedPrunes, m.notReplicated, m.noReferent,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// counterVec is a new counter named name, described by help, with one
// series per value of labels.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// counter is a new counter named name, described by help, without labels.
func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func (m *metrics) feedPruned(removed int, err error) {
	m.feedRemoved.Add(float64(removed))
	if err != nil {
		m.feedPrunes.WithLabelValues("error").Inc()
		return
	}
	m.feedPrunes.WithLabelValues("done").Inc()
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *metrics) observeWebhook(typ, outcome string, d time.Duration) {
	m.webhooks.WithLabelValues(typ, outcome).Inc()
	m.ingest.Observe(d.Seconds())
}

func (m *metrics) jobDone(kind bridge.EffectKind, err error) {
	result := "done"
	switch {
	case bridge.IsPermanent(err):
		result = "given_up"
	case err != nil:
		result = "retry"
	}
	m.jobs.WithLabelValues(string(kind), result).Inc()
	if kind == bridge.EffectCallback {
		if err == nil {
			m.callbackResult.WithLabelValues("delivered").Inc()
		} else {
			m.callbackResult.WithLabelValues("failed").Inc()
		}
	}
}

// queueCollector reports the job queue's depths at each scrape.
type queueCollector struct {
	q    *jobqueue.Queue
	desc *prometheus.Desc
}

func newQueueCollector(q *jobqueue.Queue) *queueCollector {
	return &queueCollector{q: q, desc: prometheus.NewDesc("supportbridge_queue_jobs",
		"Jobs in the durable queue, by state.", []string{"state"}, nil)}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	d, err := c.q.Depths()
	if err != nil {
		return
	}
	for state, n := range map[string]int{"pending": d.Pending, "active": d.Active, "retry": d.Retry,
		"dead": d.Dead} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
}
