package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

// A TOTP seed configured as authenticator apps show it (lower case, in groups) and echoed by
// upstream in its canonical form is not shown, nor are the MFA challenge and the TOTP code the
// call sent.
func TestTOTPSeedEchoedInItsCanonicalFormIsWithheld(t *testing.T) {
	rec := newRecorder(t, map[string]answer{
		"POST /api/v1/authenticate":     {200, `{"mfa_enabled":true,"code":"chal-7Qz91x"}`},
		"POST /api/v1/authenticate/mfa": {401, `{"message":"code 081804 for chal-7Qz91x does not match seed JBSWY3DPEHPK3PXP"}`},
	})
	p := providerAt(t, Config{Provider: PlexTrac, URL: rec.URL, Username: "svc", Password: "pw-secret", TOTPSecret: "jbsw y3dp ehpk 3pxp"},
		testclock.At(time.Unix(1111111109, 0)))
	knownAccount(p)
	_, err := p.Login(context.Background())
	wantErr(t, err, KindRejected, "mfa failed: upstream refused it (HTTP 401); its message is withheld; it mentions: MFA or code", "check totp_secret")
	for _, v := range []string{"JBSWY3DPEHPK3PXP", "CHAL-7QZ91X", rec.sent()[1].body["token"].(string)} {
		if strings.Contains(strings.ToUpper(err.Error()), v) {
			t.Errorf("%s is shown: %v", v, err)
		}
	}
}

// rawServer answers every request on a loopback port with the bytes given, as they are, and
// closes the connection. It returns host:port.
func rawServer(t *testing.T, reply string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_, _ = conn.Write([]byte(reply))
			conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// expiredCA is a TLS server whose certificate (its own CA, valid for 127.0.0.1) expired
// yesterday, and that certificate in PEM.
func expiredCA(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "expired"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := quietTLSServer(t, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	return srv, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// quietTLSServer is a TLS test server (with cfg, or httptest's certificate) that does not log
// the handshakes the client refuses.
func quietTLSServer(t *testing.T, cfg *tls.Config) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS, srv.Config.ErrorLog = cfg, log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// Transport and body-read failures are told in the plugin's words with the configured host,
// classified by their Go error types; Go's text, which quotes what the upstream sent
// (headers, certificate names, a proxy's status), is never shown.
func TestTransportFailuresAreToldInThePluginsWords(t *testing.T) {
	tlsSrv := quietTLSServer(t, nil)
	tlsCA := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}))
	expired, expiredPEM := expiredCA(t)
	closed := rawServer(t, "")
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	for _, tc := range []struct {
		name, url, ca, want, proxy string
	}{
		{"malformed header", "http://" + rawServer(t, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate Basic, you sent svc:Hunter2\r\n\r\n"), "",
			"the answer is not valid HTTP", ""},
		{"malformed status line", "http://" + rawServer(t, "HTTP/1.1 4O1 you sent svc:Hunter2\r\n\r\n"), "", "the answer is not valid HTTP", ""},
		{"body cut off", "http://" + rawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"token\": \"Hunter2"), "",
			"the answer was cut off", ""},
		{"closed without an answer", "http://" + closed, "", "the connection closed before an answer", ""},
		{"connection refused", "http://127.0.0.1:1", "", "cannot reach upstream: the connection was refused", ""},
		{"unknown authority", tlsSrv.URL, "", "its TLS certificate is not signed by a CA the plugin trusts", ""},
		{"wrong name", strings.Replace(tlsSrv.URL, "127.0.0.1", "localhost", 1), tlsCA, "its TLS certificate is not valid for that host name", ""},
		{"expired", expired.URL, expiredPEM, "its TLS certificate has expired or is not yet valid", ""},
		{"not TLS", strings.Replace(plain.URL, "http:", "https:", 1), "", "it does not answer TLS", ""},
		{"proxy refused", "https://127.0.0.1:1", "", "the proxy set in the environment (HTTPS_PROXY) refused to connect to it (HTTP 403)",
			rawServer(t, "HTTP/1.1 403 you sent svc:Hunter2\r\n\r\n")},
		{"proxy unreachable", "https://127.0.0.1:1", "", "the proxy set in the environment (HTTPS_PROXY) cannot be reached", "127.0.0.1:1"},
		{"proxy answers no HTTP", "https://127.0.0.1:1", "", "cannot reach upstream: the exchange failed; Go's reason is not shown",
			rawServer(t, "HTTP/1.1 4O3 you sent svc:Hunter2\r\n\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := providerAt(t, Config{Provider: Generic, URL: tc.url, CACert: tc.ca, Username: "svc", Password: "Hunter2",
				Generic: GenericConfig{LoginPath: "/login"}}, RealClock{})
			defer p.Close()
			if tc.proxy != "" { // the environment's proxy skips loopback hosts: set it here
				clientOf(p).http.Transport.(*http.Transport).Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: tc.proxy})
			}
			_, err := p.Login(context.Background())
			host := tc.url[strings.Index(tc.url, "//")+2:]
			e, ok := AsError(err)
			if !ok || !strings.HasPrefix(err.Error(), "generic ("+host+") login failed: ") || !strings.Contains(e.Msg, tc.want) {
				t.Fatalf("got %v; want the plugin's words %q naming %s", err, tc.want, host)
			}
			for _, goText := range []string{"Hunter2", "MIME", "x509", "tls:", "dial", "EOF", "malformed", "127.0.0.1:1:"} {
				if strings.Contains(e.Msg, goText) {
					t.Errorf("the message shows Go's text (%q): %v", goText, err)
				}
			}
		})
	}
}

// The failures no loopback server can cause are named too, from their Go types: the dial
// guard's refusal of the address a name resolved to, DNS, a cancelled call, a dial timeout.
func TestFailuresWithoutAServerAreNamed(t *testing.T) {
	guard := refuseNeverUpstream("tcp", "169.254.169.254:443", nil)
	dial := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://svc:Hunter2@x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{dial(guard), "cannot reach upstream: the host resolves to an address that is never an upstream API"},
		{dial(&net.DNSError{Err: "no such host Hunter2", Name: "x", IsNotFound: true}), "cannot reach upstream: the host name does not resolve"},
		{dial(&net.DNSError{Err: "server misbehaving Hunter2", Name: "x"}), "cannot reach upstream: the DNS lookup of the host name failed"},
		{dial(&net.DNSError{Err: "i/o timeout Hunter2", Name: "x", IsTimeout: true}), "no answer within request_timeout (3s)"},
		{dial(context.Canceled), "the call was cancelled before an answer"},
	} {
		if got := Shown(failure{err: tc.err, timeout: 3 * time.Second}); !strings.HasPrefix(got, tc.want) || strings.Contains(got, "Hunter2") {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
}

// A token is put in a header by whoever reads it: every byte in 0x21-0x7E. The extras served
// with it (tenant_id) stay within 0x20-0x7E.
func TestTokensAndExtrasAreHeaderSafe(t *testing.T) {
	for _, tc := range []struct {
		tok    Token
		wantOK bool
	}{
		{Token{Value: "eyJ.abc-_~!#$%&'*+.^`|"}, true},
		{Token{Value: "abc\nX-Injected: 1"}, false},
		{Token{Value: "abc def"}, false},
		{Token{Value: "abc\tdef"}, false},
		{Token{Value: "abc\x7f"}, false},
		{Token{Value: "abcé"}, false},
		{Token{Value: "abc", Extras: map[string]any{"tenant_id": "acme corp (EU)"}}, true},
		{Token{Value: "abc", Extras: map[string]any{"tenant_id": "7\r\nX-Injected: 1"}}, false},
		{Token{Value: "abc", Extras: map[string]any{"tenant_id": "Zürich"}}, false},
		// at the first byte too
		{Token{Value: " abc"}, false},
		{Token{Value: "\nabc"}, false},
		{Token{Value: "abc", Extras: map[string]any{"tenant_id": "\r\nX-Injected: 1"}}, false},
	} {
		err := CheckToken(&tc.tok)
		if (err == nil) != tc.wantOK {
			t.Errorf("%q %v: %v, want ok=%v", tc.tok.Value, tc.tok.Extras, err, tc.wantOK)
		}
		if err != nil && (strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), "Injected")) {
			t.Errorf("the error quotes the value: %v", err)
		}
	}
}

// authorization, as every provider builds it, is a scheme (one HTTP token), one space and the
// token, or the bare token where the upstream takes it so: nothing a consumer's header could
// read as a second header or parameter.
func TestAuthorizationIsASchemeOneSpaceAndTheToken(t *testing.T) {
	shape := regexp.MustCompile("^([!#$%&'*+.^_`|~0-9A-Za-z-]+ )?[\\x21-\\x7e]+$")
	const tok = "eyJ.abc-_~!"
	for _, cfg := range []Config{
		{Provider: PlexTrac, Username: "u", Password: "p"},
		{Provider: Plaspy, Username: "u", APIKey: "k"},
		{Provider: Resolver, Email: "u", Password: "p", OrgID: 1},
		{Provider: Generic, Username: "u", Password: "p", Generic: GenericConfig{LoginPath: "/l"}},
		{Provider: Generic, Username: "u", Password: "p", Generic: GenericConfig{LoginPath: "/l", AuthScheme: "Token"}},
		{Provider: Generic, Username: "u", Password: "p", Generic: GenericConfig{LoginPath: "/l", AuthScheme: "none"}},
	} {
		cfg.URL = "https://127.0.0.1:1"
		p := providerAt(t, cfg, RealClock{})
		if got := p.Authorization(tok); !shape.MatchString(got) || !strings.HasSuffix(got, tok) {
			t.Errorf("%s %q: authorization %q", cfg.Provider, cfg.Generic.AuthScheme, got)
		}
	}
}
