package sessiontoken

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

const pathMetricsHelpSyn = `This mount's metrics, as JSON or in the Prometheus text format.`

const pathMetricsHelpDesc = `
This mount's series only, with labels from fixed sets (never a token, user, URL or error
text): upstream calls by kind and outcome, reads by path and outcome, reads that waited on
the upstream, renewals by outcome (counters, kept across config writes, since the plugin
started); and, as of the read, the session's expiry and when it was obtained (Unix time), the
health state, the credentials hold, the failure backoff's end and the host's auth budget.
format=prometheus answers in the Prometheus text exposition format (text/plain;
version=0.0.4), for a Prometheus scrape job, as sys/metrics does; the default is JSON: series,
a list of {name, type, labels, value}.
`

// promFormat is the text exposition format, which Prometheus expects as
// "text/plain; version=0.0.4; charset=utf-8".
var promFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

func (b *backend) pathMetrics() *framework.Path {
	return &framework.Path{
		Pattern:      "metrics",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sessiontoken", OperationSuffix: "metrics"},
		Fields: map[string]*framework.FieldSchema{
			"format": {Type: framework.TypeString, Query: true, AllowedValues: []any{"json", "prometheus"},
				Description: "json (the default) or prometheus (the text exposition format, served raw with its content type)."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.metricsRead, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK (JSON; format=prometheus answers text/plain)", Fields: metricsFields}}}},
		},
		HelpSynopsis:    pathMetricsHelpSyn,
		HelpDescription: strings.TrimSpace(pathMetricsHelpDesc),
	}
}

var metricsFields = map[string]*framework.FieldSchema{
	"series": {Type: framework.TypeSlice, Description: "Every series of this mount: name, type (counter or gauge), labels (an object) and value."},
}

func (b *backend) metricsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	format := d.Get("format").(string)
	switch format {
	case "", "json", "prometheus":
	default:
		return logical.ErrorResponse("format: %q is not json or prometheus; leave it out for JSON, or write format=prometheus for the Prometheus text format", format), nil
	}
	// Loads the account if this node has not yet, so that a scrape right after a restart
	// shows the stored session and hold. No config: only the counters and configured 0.
	if _, err := b.account(ctx, req.Storage); err != nil {
		return nil, err
	}
	families, err := b.metrics.reg.Gather()
	if err != nil {
		return nil, err
	}
	if format == "prometheus" {
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, promFormat)
		for _, f := range families {
			if err := enc.Encode(f); err != nil {
				return nil, err
			}
		}
		// []byte, not string: Vault base64-decodes a string raw body when it can.
		return &logical.Response{Data: map[string]any{
			logical.HTTPContentType: string(promFormat), logical.HTTPStatusCode: http.StatusOK, logical.HTTPRawBody: buf.Bytes()}}, nil
	}
	return &logical.Response{Data: map[string]any{"series": seriesJSON(families)}}, nil
}

// seriesJSON flattens the gathered families into the JSON form's series list, in the
// registry's order (by name, then labels).
func seriesJSON(families []*dto.MetricFamily) []any {
	var out []any
	for _, f := range families {
		typ := strings.ToLower(f.GetType().String())
		for _, m := range f.GetMetric() {
			labels := map[string]any{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := m.GetGauge().GetValue()
			if f.GetType() == dto.MetricType_COUNTER {
				v = m.GetCounter().GetValue()
			}
			out = append(out, map[string]any{"name": f.GetName(), "type": typ, "labels": labels, "value": v})
		}
	}
	return out
}
