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
	"net/url"
	"strconv"
	"strings"
	"sync"
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
	secrets  []string // configured values scrubbed from anything upstream says back
	tokens   tokenMemory
	observe  func(op, outcome string) // Deps.Observe: the mount counts, since a client lives only until the next config write
}

// tokenMemory holds the last two token values the client obtained or was told about, so that
// an upstream echoing one (opaque tokens are not JWT-shaped) cannot put it into an error.
type tokenMemory struct {
	mu   sync.Mutex
	last [2]string // newest first
}

func (m *tokenMemory) remember(v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v != "" && v != m.last[0] {
		m.last[1], m.last[0] = m.last[0], v
	}
}

func (m *tokenMemory) values() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []string{m.last[0], m.last[1]}
}

// RememberToken adds a token the client did not obtain itself (a session loaded from storage
// after a restart or failover) to the values scrubbed from upstream text. The client remembers
// the last two tokens: the one it serves and the one before.
func (c *Client) RememberToken(value string) { c.tokens.remember(value) }

// secretSet is every value scrubbed from upstream text in one call: the configured secrets,
// the remembered tokens and the extra values (what the call sends: its token, Authorization
// value, MFA challenge and TOTP code).
func (c *Client) secretSet(extra ...string) []string {
	out := make([]string, 0, len(c.secrets)+2+len(extra))
	out = append(out, c.secrets...)
	out = append(out, c.tokens.values()...)
	return append(out, extra...)
}

// Scrub makes text that may hold upstream words safe to log or show: invisible characters
// dropped, every configured secret and remembered token replaced (raw, URL-encoded, base64,
// JSON- and HTML-escaped), JWT-shaped strings replaced, and cut to 200 bytes on a character
// boundary.
func (c *Client) Scrub(text string) string { return scrub(text, c.secretSet()) }

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
	tr.DialContext = guardedDialer().DialContext
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
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
		http: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		limiter: deps.Limiters.Host(HostKey(base)),
		secrets: []string{cfg.Password, cfg.APIKey, cfg.TOTPSecret},
		observe: deps.Observe,
	}
	for k, v := range cfg.Headers {
		if !httpguts.ValidHeaderFieldValue(v) { // never echoed: it is a secret
			return nil, fmt.Errorf("headers: the value of %s contains a control character; remove it", k)
		}
		c.secrets = append(c.secrets, v)
	}
	if deps.Secrets != nil {
		c.secrets = deps.Secrets
	}
	return c, nil
}

// Conn is c: every provider embeds its *Client, and so satisfies Provider.Conn.
func (c *Client) Conn() *Client { return c }

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
	token            string         // the token the call sends, scrubbed from its errors
	sends            []string       // other values the call sends that its errors must not show: the MFA challenge and TOTP code
}

// scrubbed is every value scrubbed from r's errors.
func (c *Client) scrubbed(r request) []string {
	return c.secretSet(append([]string{r.token, r.authz}, r.sends...)...)
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
	status, header, body, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	secrets := c.scrubbed(r)
	switch {
	case status == http.StatusTooManyRequests:
		retryAt := c.clock.Now().Add(retryAfter(header.Get("Retry-After"), c.clock.Now()))
		c.limiter.Block(retryAt)
		return c.fail(r.op, KindRateLimited, status, "upstream refused with HTTP 429 Too Many Requests"+upstreamSays(body, secrets), "", retryAt)
	case status >= 300 && status < 400:
		return c.fail(r.op, KindBadResponse, status, fmt.Sprintf("upstream answered with a redirect (HTTP %d), which is not followed with credentials", status),
			"set url to the address that serves the API itself", time.Time{})
	case r.rejected[status] != "":
		return c.fail(r.op, KindRejected, status, fmt.Sprintf("upstream refused it (HTTP %d%s)", status, upstreamSays(body, secrets)), r.rejected[status], time.Time{})
	case status >= 500:
		return c.fail(r.op, KindUnavailable, status, fmt.Sprintf("upstream error HTTP %d%s", status, upstreamSays(body, secrets)), "", time.Time{})
	case status >= 400:
		return c.fail(r.op, KindBadResponse, status, fmt.Sprintf("upstream answered HTTP %d%s", status, upstreamSays(body, secrets)), "", time.Time{})
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			what := "a body that is not JSON"
			if ct := header.Get("Content-Type"); ct != "" {
				what += " (" + scrub(ct, secrets) + ")"
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
	secrets := c.scrubbed(r)
	req, err := http.NewRequestWithContext(ctx, r.method, c.base.String()+r.path, payload)
	if err != nil {
		return 0, nil, nil, c.fail(r.op, KindBadResponse, 0, "cannot build the request: "+scrub(err.Error(), secrets), "", time.Time{})
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
		inner := err
		if u := errors.Unwrap(err); u != nil {
			inner = u // drop the "Post URL:" prefix
		}
		msg := "cannot reach upstream: " + scrub(inner.Error(), secrets)
		if ctx.Err() == context.DeadlineExceeded {
			msg = fmt.Sprintf("no answer within request_timeout (%s)", c.timeout)
		}
		return 0, nil, nil, c.fail(r.op, KindUnavailable, 0, msg, "", time.Time{})
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return 0, nil, nil, c.fail(r.op, KindUnavailable, resp.StatusCode, "the answer was cut off: "+scrub(err.Error(), secrets), "", time.Time{})
	}
	if len(body) > maxBody {
		return 0, nil, nil, c.fail(r.op, KindBadResponse, resp.StatusCode, fmt.Sprintf("upstream answer is larger than %d KiB and was not read", maxBody>>10), "", time.Time{})
	}
	return resp.StatusCode, resp.Header, body, nil
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
func (c *Client) newToken(op, value string, expiry any, extras map[string]any) (*Token, error) {
	t := &Token{Value: value, ObtainedBy: op, Extras: extras}
	if err := CheckToken(t); err != nil {
		return nil, c.fail(op, KindBadResponse, 200, "upstream's answer cannot be kept: "+err.Error(), "", time.Time{})
	}
	issued, exp, err := TokenTimes(value, expiry, c.clock.Now())
	if err != nil {
		return nil, c.fail(op, KindBadResponse, 200, err.Error(), "", time.Time{})
	}
	c.tokens.remember(value)
	t.IssuedAt, t.ExpiresAt = issued, exp
	return t, nil
}

func (c *Client) fail(op string, k Kind, status int, msg, hint string, retryAt time.Time) *Error {
	return &Error{Provider: c.provider, Host: c.base.Host, Op: op, Kind: k, Status: status, Msg: msg, Hint: hint, RetryAt: retryAt}
}

// upstreamSays quotes the message or error field of a JSON error body, scrubbed.
func upstreamSays(body []byte, secrets []string) string {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	for _, k := range []string{"message", "error", "detail"} {
		if s, ok := m[k].(string); ok && s != "" {
			return ": " + scrub(s, secrets)
		}
	}
	return ""
}

// retryAfter reads a Retry-After header (seconds or HTTP date), defaulting to one minute.
func retryAfter(h string, now time.Time) time.Duration {
	d := defaultBackoff429
	if secs, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && secs >= 0 {
		d = time.Duration(secs) * time.Second
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
