package api

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// HTTPMetrics are the API server's request series, labelled by method,
// route template ("/api/v1/integrations/:name") and status code: never by
// the raw path, so a scan of random URLs adds one series (route
// "unmatched"), not one per URL.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// routeUnmatched labels requests that matched no route.
const routeUnmatched = "unmatched"

// NewHTTPMetrics creates the series and registers them with reg (nil: not
// registered).
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	l := []string{"method", "route", "status"}
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vrsky", Name: "http_requests_total",
			Help: "HTTP requests the API server answered, by method, route template and status code.",
		}, l),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "vrsky", Name: "http_request_duration_seconds",
			Help:    "Time the API server took to answer a request, by method, route template and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, l),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// measure is the outermost middleware: it renders a handler's error
// itself (so the status is the one sent) and records the request.
func (s *Server) measure(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	unmatched := false
	if err != nil {
		var fe *fiber.Error
		// The router's own 404: no route matched.
		unmatched = errors.As(err, &fe) && fe.Code == fiber.StatusNotFound && strings.HasPrefix(fe.Message, "Cannot ")
		if herr := s.handleError(c, err); herr != nil {
			return herr
		}
	}
	route := c.Route().Path
	if unmatched || !s.routeKnown[c.Method()+" "+route] {
		route = routeUnmatched
	}
	status := strconv.Itoa(c.Response().StatusCode())
	// Copies: fiber reuses the method's bytes after the request.
	method := strings.Clone(c.Method())
	s.httpMetrics.requests.WithLabelValues(method, route, status).Inc()
	s.httpMetrics.duration.WithLabelValues(method, route, status).Observe(time.Since(start).Seconds())
	return nil
}

// knownRoutes are the registered routes' "METHOD template" pairs, without
// middleware.
func knownRoutes(app *fiber.App) map[string]bool {
	known := map[string]bool{}
	for _, r := range app.GetRoutes(true) {
		known[r.Method+" "+r.Path] = true
	}
	return known
}
