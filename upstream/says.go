package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// What the plugin shows of what an upstream says back: its own words, chosen from closed
// lists. An upstream's text is shown only when it is, exactly, one of the messages below (the
// documented refusals of the named upstreams, the OAuth error codes) or one of the media types
// below; anything else is replaced as a whole by the plugin's words plus which of a fixed list
// of keywords it mentions. Go's error text for a transport or body-read failure is never
// shown: it quotes what the upstream sent (a malformed header line, certificate names, a
// proxy's status text), so the error is classified by its type into the plugin's words.
//
// This is an allowlist on purpose. A scrubber that hides the secrets it knows in the
// encodings someone listed fails open: the first encoding nobody listed (another encoder's
// percent-encoding, a normalized TOTP seed) is shown in full. Here a case nobody listed is
// withheld. Shown is the one place that decides; nothing else shows upstream text.

// knownMessages are the upstream messages shown verbatim: the refusals the named upstreams
// document or are seen to send (docs/operations.md lists what each looks like), the error
// codes of RFC 6749 (section 5.2 and 4.1.2.1) and RFC 6750 (section 3.1).
var knownMessages = []string{
	// PlexTrac
	"Invalid username or password", "Invalid MFA code", "MFA code already used", "Unknown or expired MFA challenge",
	"Token is invalid or expired", "invalid JSON body", "Unauthorized", "Too Many Requests",
	// Plaspy
	"Invalid API key or username.", "Invalid request body.", "Content-Type must be application/json.",
	// Resolver Core
	"Invalid email or password", "User is not an active member of any organization",
	// OAuth 2.0
	"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
	"invalid_scope", "access_denied", "unsupported_response_type", "server_error", "temporarily_unavailable",
	"invalid_token", "insufficient_scope",
}

// knownMediaTypes are the Content-Types named when an answer is not JSON (parameters dropped).
var knownMediaTypes = []string{"application/json", "application/problem+json", "text/html", "text/plain",
	"application/xml", "text/xml", "application/octet-stream", "application/x-www-form-urlencoded"}

// keywords are what the plugin says a withheld message mentions: each label, when a word of
// the message starts with one of its stems (ASCII letters and digits, case ignored).
var keywords = []struct {
	label string
	stems []string
}{
	{"expired", []string{"expir"}},
	{"locked", []string{"lock"}},
	{"disabled", []string{"disabl", "deactivat", "inactive", "suspend"}},
	{"password or credentials", []string{"password", "passwd", "credential", "api key", "apikey"}},
	{"MFA or code", []string{"mfa", "2fa", "otp", "totp", "code", "authenticator"}},
	{"token", []string{"token"}},
	{"rate limit", []string{"rate", "throttl", "too many"}},
	{"organization or member", []string{"org", "member", "tenant"}},
}

// maxKeywordScan bounds the part of a withheld message that is read for keywords.
const maxKeywordScan = 4 << 10

// Heard is something the plugin got from an upstream, or from trying to reach it, on its
// way to an error, status or the log. Shown says what of it is shown.
type Heard interface{ heard() }

type (
	// message is the message, error code or detail of an answer's JSON body.
	message string
	// mediaType is an answer's Content-Type.
	mediaType string
	// failure is a call that got no usable answer: err is a transport or body-read error, or
	// a login body that does not render. answered: the upstream's answer had begun.
	failure struct {
		err      error
		answered bool
		timeout  time.Duration // request_timeout
	}
	// StoredReason is a credentials-hold reason as an earlier version stored it: an error's
	// text, which may quote the upstream.
	StoredReason string
)

func (message) heard()      {}
func (mediaType) heard()    {}
func (failure) heard()      {}
func (StoredReason) heard() {}

// Shown is what the plugin shows of h, in its own words; see the top of this file.
func Shown(h Heard) string {
	switch h := h.(type) {
	case message:
		switch {
		case h == "":
			return ""
		case slices.Contains(knownMessages, string(h)):
			return fmt.Sprintf("upstream says %q", string(h))
		}
		return "its message is withheld" + mentions(string(h))
	case mediaType:
		if mt, _, err := mime.ParseMediaType(string(h)); err == nil && slices.Contains(knownMediaTypes, mt) {
			return mt
		}
		return "a Content-Type the plugin does not name"
	case failure:
		return failureWords(h)
	case StoredReason:
		if h == "" {
			return ""
		}
		return "an earlier version stored the reason; it is withheld"
	}
	return "withheld"
}

// mentions lists the keyword labels whose stems start a word of s.
func mentions(s string) string {
	var words strings.Builder
	words.WriteByte(' ')
	for _, c := range []byte(s[:min(len(s), maxKeywordScan)]) {
		switch {
		case 'A' <= c && c <= 'Z':
			words.WriteByte(c + 'a' - 'A')
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			words.WriteByte(c)
		default:
			words.WriteByte(' ')
		}
	}
	var found []string
	for _, k := range keywords {
		for _, stem := range k.stems {
			if strings.Contains(words.String(), " "+stem) {
				found = append(found, k.label)
				break
			}
		}
	}
	if len(found) == 0 {
		return ""
	}
	return "; it mentions: " + strings.Join(found, ", ")
}

// proxyRefused is a proxy's answer to CONNECT other than 200: its status code.
type proxyRefused int

func (p proxyRefused) Error() string { return fmt.Sprintf("the proxy refused with HTTP %d", int(p)) }

// failureWords classifies f.err by its Go types into the plugin's words.
func failureWords(f failure) string {
	var (
		dns      *net.DNSError
		op       *net.OpError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		netErr   net.Error
		proxy    proxyRefused
	)
	const unreachable = "cannot reach upstream: "
	switch err := f.err; {
	case errors.Is(err, errLoginValueTooLong), errors.Is(err, errLoginBodyTooLarge):
		return err.Error() // renderLoginBody's own words: a login value's name and limit
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("no answer within request_timeout (%s)", f.timeout)
	case errors.Is(err, context.Canceled):
		return "the call was cancelled before an answer"
	case f.answered && errors.Is(err, io.ErrUnexpectedEOF):
		return "the answer was cut off: the connection closed before its end"
	case f.answered:
		return "the answer is not valid HTTP; the plugin does not show it"
	case errors.Is(err, errNeverUpstream):
		return unreachable + "the host resolves to an address that is never an upstream API (link-local, metadata service or unspecified)"
	case errors.As(err, &op) && op.Op == "proxyconnect":
		return unreachable + "the proxy set in the environment (HTTPS_PROXY) cannot be reached"
	case errors.As(err, &proxy):
		return unreachable + fmt.Sprintf("the proxy set in the environment (HTTPS_PROXY) refused to connect to it (HTTP %d)", int(proxy))
	case errors.As(err, &dns) && dns.IsNotFound:
		return unreachable + "the host name does not resolve (DNS: no such host)"
	case errors.As(err, &dns):
		return unreachable + "the DNS lookup of the host name failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return unreachable + "the connection was refused"
	case errors.As(err, &unknown):
		return unreachable + "its TLS certificate is not signed by a CA the plugin trusts (set ca_cert to the CA that signed it)"
	case errors.As(err, &hostname):
		return unreachable + "its TLS certificate is not valid for that host name"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return unreachable + "its TLS certificate has expired or is not yet valid"
	case errors.As(err, &invalid):
		return unreachable + "its TLS certificate is not valid for a server"
	case errors.Is(err, http.ErrSchemeMismatch), errors.As(err, &record):
		return unreachable + "it does not answer TLS (does the url need http://?)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return unreachable + "the connection closed before an answer"
	}
	return unreachable + "the exchange failed; Go's reason is not shown, as it can quote what the upstream or a proxy sent"
}
