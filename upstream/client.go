package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"golang.org/x/net/http/httpguts"
)

// Ops name the upstream calls in errors and in what Deps.Observe is told.
const (
	OpLogin   = "login"
	OpMFA     = "mfa"
	OpRefresh = "refresh"
	OpLogout  = "logout"
)

const (
	maxBody           = 1 << 20          // larger upstream answers are refused, not read
	defaultBackoff429 = time.Minute      // a 429 without Retry-After: the limits are per minute
	maxBackoff429     = 10 * time.Minute // a Retry-After longer than this is not believed
)

// Client is the HTTP side every provider shares: one per account.
type Client struct {
	provider string
	base     *url.URL
	hostKey  string // HostKey(base): the limiter's and TOTP record's key
	http     *http.Client
	headers  map[string]string
	timeout  time.Duration
	limiter  *HostLimiter
	clock    Clock
	observe  func(op, outcome string) // Deps.Observe: the mount counts, since a client lives only until the next config write
	authSent func(context.Context)    // Deps.AuthSent
	caCert   bool                     // ca_cert is set: it is the only trust, so a TLS authority failure says so
}

func newClient(cfg Config, deps Deps) (*Client, error) {
	// The scheme rule (https unless allowed) is the config's to apply: tests and the simulator
	// use http. Every other rule is the same as at config write.
	if err := CheckURL(cfg.URL, true); err != nil {
		return nil, err
	}
	if cfg.CACert != "" {
		if err := CheckCACert(cfg.CACert); err != nil {
			return nil, err
		}
	}
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || base.Host == "" {
		return nil, errors.New("url: not an absolute URL") // never echoed: it may hold userinfo
	}
	tr := cleanhttp.DefaultPooledTransport()
	tr.DialContext = guardedDialer(deps.DialCheck).DialContext
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.OnProxyConnectResponse = func(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return proxyRefused(resp.StatusCode) // Go's own error would be the proxy's status text
		}
		return nil
	}
	if cfg.CACert != "" {
		// ca_cert replaces the system roots, as Vault's own clients do (go-rootcerts, the LDAP
		// and database helpers): added to them, any public CA could vouch for a mount whose
		// operator named a private one.
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cfg.CACert)) {
			return nil, errors.New("ca_cert: no PEM certificate found")
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	timeout := cfg.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	c := &Client{
		provider: cfg.Provider, base: base, hostKey: HostKey(base), headers: cfg.Headers, timeout: timeout, clock: deps.Clock,
		// Redirects are never followed: a login must not carry credentials to another host.
		http: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		limiter:  deps.Limiters.Host(HostKey(base)),
		observe:  deps.Observe,
		authSent: deps.AuthSent,
		caCert:   cfg.CACert != "",
	}
	for k, v := range cfg.Headers {
		if !httpguts.ValidHeaderFieldValue(v) { // never echoed: it is a secret
			return nil, fmt.Errorf("headers: the value of %s contains a control character; remove it", k)
		}
	}
	return c, nil
}

// TOTP is nil: a provider that sends TOTP codes has its own.
func (c *Client) TOTP() TOTPStepper { return nil }

// Host is the upstream's HostKey, the key of its limiter.
func (c *Client) Host() string { return c.hostKey }

// Limiter is the host's shared auth limiter.
func (c *Client) Limiter() *HostLimiter { return c.limiter }

// Close drops idle connections when the account is replaced.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// request is one upstream call.
type request struct {
	op, method, path string
	body             any            // sent as JSON when not nil
	authz            string         // Authorization header value, if any
	rejected         map[int]string // statuses that mean "refused", with the hint to show
	noLimit          bool           // not taken from the host's budget: logout (not an auth call), or an MFA login's calls, which Login takes together
	sent             *time.Time     // if not nil, set to when the request left (after the limiter)

	// refused is the provider's own refusal signal: whether an answer of status with this body
	// says the login (or code, or session) was refused, in the plugin's words. It decides for
	// the statuses refusalStatus names, after the 429 and redirect rules and before the shared
	// status mapping, since a provider's body outranks its status (Plaspy's success:false
	// under HTTP 400, PlexTrac's statusCode 401 under HTTP 200).
	refused     func(status int, body []byte) (msg string, ok bool)
	refusedHint string
}

// call sends r through the limiter, decodes a 2xx JSON answer into out and runs check on it.
// Every failure becomes an *Error; the outcome goes to Deps.Observe.
func (c *Client) call(ctx context.Context, r request, out any, check func() error) (err error) {
	defer func() { c.observe(r.op, Outcome(err)) }()
	if !r.noLimit {
		if _, err := c.takeSlots(ctx, r.op, 1, c.timeout); err != nil {
			return err
		}
	}
	if r.sent != nil {
		*r.sent = c.clock.Now()
	}
	if r.op != OpLogout { // every other call is an auth call, counted by the upstream's limit
		c.authSent(ctx)
	}
	status, header, body, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusTooManyRequests:
		retryAt := c.clock.Now().Add(retryAfter(header.Get("Retry-After"), c.clock.Now()))
		c.limiter.Block(retryAt)
		return c.fail(r.op, KindRateLimited, status, "upstream refused with HTTP 429 Too Many Requests"+upstreamSays(body), "", retryAt)
	case status >= 300 && status < 400:
		return c.fail(r.op, KindBadResponse, status, fmt.Sprintf("upstream answered with a redirect (HTTP %d), which is not followed with credentials", status),
			"set url to the address that serves the API itself", time.Time{})
	}
	if r.refused != nil && refusalStatus(status) {
		if msg, ok := r.refused(status, body); ok {
			return c.fail(r.op, KindRejected, status, msg, r.refusedHint, time.Time{})
		}
	}
	switch {
	case r.rejected[status] != "":
		return c.fail(r.op, KindRejected, status, fmt.Sprintf("upstream refused it (HTTP %d)%s", status, upstreamSays(body)), r.rejected[status], time.Time{})
	case status >= 500:
		return c.fail(r.op, KindUnavailable, status, fmt.Sprintf("upstream error HTTP %d%s", status, upstreamSays(body)), "", time.Time{})
	case status >= 400:
		return c.fail(r.op, KindBadResponse, status, fmt.Sprintf("upstream answered HTTP %d%s", status, upstreamSays(body)), "", time.Time{})
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			what := "a body that is not JSON"
			if ct := header.Get("Content-Type"); ct != "" {
				what += " (" + Shown(mediaType(ct)) + ")"
			}
			return c.fail(r.op, KindBadResponse, status, fmt.Sprintf("upstream answered HTTP %d with %s", status, what),
				"check url points at the API, not a web page or proxy", time.Time{})
		}
	}
	if check != nil {
		return check()
	}
	return nil
}

func (c *Client) send(ctx context.Context, r request) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var payload io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return 0, nil, nil, c.fail(r.op, KindBadResponse, 0, "cannot encode the request", "", time.Time{})
		}
		payload = bytes.NewReader(b)
	}
	// Whether the answer began tells a malformed answer from no answer, without reading Go's
	// error text (which quotes the answer).
	var answered atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotFirstResponseByte: func() { answered.Store(true) }})
	req, err := http.NewRequestWithContext(ctx, r.method, c.base.String()+r.path, payload)
	if err != nil {
		return 0, nil, nil, c.fail(r.op, KindBadResponse, 0, "cannot build the request", "", time.Time{})
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.authz != "" {
		req.Header.Set("Authorization", r.authz)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		kind := KindUnavailable
		if answered.Load() && ctx.Err() == nil {
			kind = KindBadResponse // an answer came, and it is not HTTP
		}
		return 0, nil, nil, c.fail(r.op, kind, 0, Shown(failure{err, answered.Load(), c.timeout}), c.trustHint(err), time.Time{})
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return 0, nil, nil, c.fail(r.op, KindUnavailable, resp.StatusCode, Shown(failure{err, true, c.timeout}), "", time.Time{})
	}
	if len(body) > maxBody {
		return 0, nil, nil, c.fail(r.op, KindBadResponse, resp.StatusCode, fmt.Sprintf("upstream answer is larger than %d KiB and was not read", maxBody>>10), "", time.Time{})
	}
	return resp.StatusCode, resp.Header, body, nil
}

// trustHint is the hint for a certificate no trusted CA signed when ca_cert is set: ca_cert
// is the only trust (up to v0.2.0 it was added to the system roots), and a mount that worked
// through the system roots (a TLS-inspecting proxy, an upstream moved to a public CA) fails
// this way.
func (c *Client) trustHint(err error) string {
	var unknown x509.UnknownAuthorityError
	if !c.caCert || !errors.As(err, &unknown) {
		return ""
	}
	return "ca_cert replaces the system roots: only the CAs in it are trusted, so a TLS-inspecting proxy's CA or a public CA the upstream moved to must be in ca_cert"
}

// requireToken is a call check: the answer must carry a token.
func (c *Client) requireToken(op string, tok *string) func() error {
	return func() error {
		if *tok == "" {
			return c.fail(op, KindBadResponse, 200, "the answer has no token", "", time.Time{})
		}
		return nil
	}
}

// newToken builds the Token an answer carries, with its times (see TokenTimes).
func (c *Client) newToken(op, value string, expiry Expiry, sent time.Time, extras map[string]any) (*Token, error) {
	t := &Token{Value: value, ObtainedBy: op, Extras: extras}
	if err := CheckToken(t); err != nil {
		return nil, c.fail(op, KindBadResponse, 200, "upstream's answer cannot be kept: "+err.Error(), "", time.Time{})
	}
	issued, exp, err := TokenTimes(value, expiry, sent, c.clock.Now())
	if err != nil {
		return nil, c.fail(op, KindBadResponse, 200, err.Error(), "", time.Time{})
	}
	t.IssuedAt, t.ExpiresAt = issued, exp
	return t, nil
}

func (c *Client) fail(op string, k Kind, status int, msg, hint string, retryAt time.Time) *Error {
	return &Error{
		Provider: c.provider,
		Host:     c.base.Host,
		Op:       op,
		Kind:     k,
		Status:   status,
		Msg:      msg,
		Hint:     hint,
		RetryAt:  retryAt,
	}
}

// refusalStatus says whether a provider's refusal signal decides an answer of this status: a
// 2xx, 400, 401, 403 or 422. A 5xx is the upstream failing, whatever its body says.
func refusalStatus(status int) bool {
	switch status {
	case 400, 401, 403, 422:
		return true
	}
	return status >= 200 && status < 300
}

// upstreamSays is what is shown of the first of the message, error and detail fields of a JSON
// error body (see Shown), after "; ", or nothing.
func upstreamSays(body []byte) string {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	for _, k := range []string{"message", "error", "detail"} {
		if s, ok := m[k].(string); ok && s != "" {
			return "; " + Shown(message(s))
		}
	}
	return ""
}

// retryAfter reads a Retry-After header (seconds or HTTP date), defaulting to one minute. A
// number is clamped to the cap before it becomes a Duration (a huge one would wrap negative),
// and one too long to parse is the cap: it says "a long time", not "nothing".
func retryAfter(h string, now time.Time) time.Duration {
	d := defaultBackoff429
	if secs, err := strconv.ParseUint(strings.TrimSpace(h), 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		d = maxBackoff429
		if err == nil && secs < uint64(maxBackoff429/time.Second) {
			d = time.Duration(secs) * time.Second
		}
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, time.Second), maxBackoff429)
}

// Outcome names how a call ended, for counting: ok, an error Kind, or "error" for an error
// that is not an upstream Error.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := AsError(err); ok {
		return string(e.Kind)
	}
	return "error"
}
