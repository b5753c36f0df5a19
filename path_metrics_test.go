package sessiontoken

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the mount's metrics as a Prometheus scrape job does (format=prometheus) and
// parses the text with Prometheus's own parser. It checks the raw answer: HTTP 200, the
// content type Prometheus expects, and a body Vault sends as it is.
func scrape(t *testing.T, e *env) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	resp := e.read("metrics", map[string]any{"format": "prometheus"})
	if ct := resp.Data[logical.HTTPContentType]; ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	if code := resp.Data[logical.HTTPStatusCode]; code != 200 {
		t.Fatalf("status %v", code)
	}
	body, ok := resp.Data[logical.HTTPRawBody].([]byte)
	if !ok || len(resp.Data) != 3 {
		t.Fatalf("not a raw answer: %T, %d keys", resp.Data[logical.HTTPRawBody], len(resp.Data))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the scrape does not parse: %v\n%s", err, body)
	}
	return body, fams
}

// value is one series' value in a scrape: name, then label name/value pairs. A missing
// series fails the test.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range fams[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			if fams[name].GetType() == dto.MetricType_COUNTER {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v in the scrape", name, want)
	return 0
}

// jsonSeries is the default (JSON) answer as name{label=value,...} -> value.
func jsonSeries(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, s := range e.read("metrics", nil).Data["series"].([]any) {
		s := s.(map[string]any)
		var ls []string
		for k, v := range s["labels"].(map[string]any) {
			ls = append(ls, k+"="+v.(string))
		}
		sort.Strings(ls)
		out[s["name"].(string)+"{"+strings.Join(ls, ",")+"}"] = s["value"].(float64)
	}
	return out
}

// healthGauge is the state whose sessiontoken_health series is 1; it fails unless exactly one is.
func healthGauge(t *testing.T, fams map[string]*dto.MetricFamily) string {
	t.Helper()
	var on []string
	for _, s := range healthStates {
		if value(t, fams, "sessiontoken_health", "state", s) == 1 {
			on = append(on, s)
		}
	}
	if len(on) != 1 {
		t.Fatalf("health states at 1: %v, want exactly one", on)
	}
	return on[0]
}

// TestMetricsScrapeForPromtool makes a scrape with every series family active (reads with
// and without warnings, failures, renewals, a hold) and, with METRICS_SCRAPE_OUT set, writes
// it there for `promtool check metrics` (make monitoring). Deterministic: fake clock and
// simulator.
func TestMetricsScrapeForPromtool(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	lease := e.lease()
	renew(t, e, lease.Secret)
	e.read("static-token", nil)
	e.upstreamDown()
	e.clock.Advance(11 * time.Minute)
	e.read("static-token", nil)
	e.upstreamUp()
	body, fams := scrape(t, e)
	if len(fams) < 14 {
		t.Fatalf("%d families in the scrape", len(fams))
	}
	if out := os.Getenv("METRICS_SCRAPE_OUT"); out != "" {
		if err := os.WriteFile(out, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
