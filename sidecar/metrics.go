package sidecar

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the sidecar's Prometheus series, on a registry of its own.
type metrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	batchSize   prometheus.Histogram
	batchTokens prometheus.Histogram
	queueDepth  *prometheus.GaugeVec
	inference   prometheus.Histogram
	truncations prometheus.Counter
	dropped     prometheus.Counter
	modelInfo   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "xling", "sidecar"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "HTTP requests by endpoint and status code."}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help:    "Time from receiving a request to answering it, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"endpoint"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_size",
			Help: "Texts per forward pass.", Buckets: prometheus.ExponentialBuckets(1, 2, 9)}),
		batchTokens: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_tokens",
			Help: "Padded tokens per forward pass (texts times the longest).", Buckets: prometheus.ExponentialBuckets(16, 2, 12)}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_depth",
			Help: "Texts waiting for a forward pass, by task type."}, []string{"task_type"}),
		inference: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "inference_duration_seconds",
			Help: "Time of one forward pass.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		truncations: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "truncations_total",
			Help: "Texts cut to the model's maximum length."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "cancelled_total",
			Help: "Queued texts dropped from their batch because the client had gone."}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "model_info",
			Help: "The served models (value 1)."}, []string{"task_type", "model", "model_type", "dims", "pooling"}),
	}
	reg.MustRegister(m.requests, m.latency, m.batchSize, m.batchTokens, m.queueDepth, m.inference, m.truncations, m.dropped, m.modelInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
