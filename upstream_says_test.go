package sessiontoken

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// What an upstream writes back is shown only when it is one of the messages the plugin knows.
// These echo the password in the percent-encodings of other encoders than Go's (JavaScript's
// encodeURIComponent keeps !'()*, browser forms write a space as +, Python's quote keeps /):
// the config write's error, the token read's error, status and the log show none of them.
func TestEchoesInOtherPercentEncodingsAreWithheld(t *testing.T) {
	for _, tc := range []struct{ password, echo string }{
		{"P@ssw0rd!2024", "invalid credentials: username=svc&password=P%40ssw0rd!2024"},
		{"pa ss~word", "invalid credentials: username=svc&password=pa+ss%7Eword"},
		{"s3cret/key value", "invalid credentials: username=svc&password=s3cret/key%20value"},
	} {
		f := &fakeLogin{}
		e := newEnvWrapped(t, f.wrap)
		f.login.Store(answer(401, map[string]any{"message": tc.echo}))
		cfg := with(genericFake(e), "password", tc.password)
		msg := expectRejected(t, e, cfg, "login")
		e.write("config", with(cfg, "verify", false))
		_, readMsg := e.readFailure("token")
		status, _ := json.Marshal(e.read("status", nil).Data)
		echoed := tc.echo[strings.Index(tc.echo, "password=")+len("password="):]
		for what, text := range map[string]string{"config write": msg, "token read": readMsg, "status": string(status), "log": e.logs.String()} {
			if strings.Contains(text, echoed) || strings.Contains(text, tc.password) {
				t.Errorf("%s shows the echoed password %q: %s", what, echoed, text)
			}
		}
		if !strings.Contains(readMsg, "upstream refused it (HTTP 401); its message is withheld; it mentions: password or credentials") {
			t.Errorf("the token read does not say what it withheld: %s", readMsg)
		}
	}
}

// A malformed answer header is quoted by Go's HTTP client (malformed MIME header line: "...");
// the plugin shows its own words for it, in the token read's error, status and the log.
func TestMalformedAnswerHeaderIsNotQuoted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil { // the answer as written, not as net/http would
			_, _ = conn.Write([]byte("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate Basic realm=api, you sent svc:Hunter2\r\nContent-Length: 0\r\n\r\n"))
			conn.Close()
		}
	}))
	defer srv.Close()
	host := srv.Listener.Addr().String()
	e := newEnv(t)
	e.write("config", with(genericFake(e), "url", "http://"+host, "verify", false))
	code, msg := e.readFailure("token")
	status, _ := json.Marshal(e.read("status", nil).Data)
	for what, text := range map[string]string{"token read": msg, "status": string(status), "log": e.logs.String()} {
		if strings.Contains(text, "Hunter2") || strings.Contains(text, "MIME") {
			t.Errorf("%s quotes the malformed header: %s", what, text)
		}
	}
	if code != 502 || !strings.Contains(msg, "generic ("+host+") login failed: the answer is not valid HTTP") {
		t.Errorf("%d %s; want 502 and the plugin's words naming the host", code, msg)
	}
}

// A token is sent in a header by whoever reads it: a token with a byte outside 0x21-0x7E is a
// bad response, and neither stored nor served.
func TestTokenThatIsNotHeaderSafeIsABadResponse(t *testing.T) {
	f := &fakeLogin{}
	e := newEnvWrapped(t, f.wrap)
	f.login.Store(answer(200, map[string]any{"token": "abc\nX-Injected: 1", "expires": e.clock.Now().Add(time.Hour).Unix()}))
	e.write("config", with(genericFake(e), "verify", false))
	for _, path := range []string{"token", "static-token"} {
		code, msg := e.readFailure(path)
		if code != 502 || !strings.Contains(msg, "generic (") || !strings.Contains(msg, "outside 0x21-0x7E") {
			t.Errorf("%s: %d %q; want 502 naming the upstream and the rule", path, code, msg)
		}
	}
	if entry, _ := e.s.Get(context.Background(), sessionKey); entry != nil {
		t.Errorf("the token was stored: %s", entry.Value)
	}
}

// A stored session whose token or extras would not fit in a header (stored by an earlier
// version, or written to storage by hand) is dropped on load: the next read logs in again.
func TestStoredSessionThatIsNotHeaderSafeIsDropped(t *testing.T) {
	for name, spoil := range map[string]func(*sessionRecord){
		"token with a line break": func(r *sessionRecord) { r.Value += "\r\nX-Injected: 1" },
		"token with a space":      func(r *sessionRecord) { r.Value = "abc def" },
		"extra with a line break": func(r *sessionRecord) { r.Extras = map[string]any{"tenant_id": "7\nX-Injected: 1"} },
	} {
		e := newEnv(t)
		e.write("config", e.plextracConfig(false))
		first := e.read("token", nil).Data["token"].(string)
		r := e.rewriteStoredSession(spoil)
		data := e.read("token", nil).Data
		if tok := data["token"].(string); tok == first || tok == r.Value || strings.ContainsAny(data["authorization"].(string), "\r\n ") {
			t.Errorf("%s: served the stored session: %q, %q", name, tok, data["authorization"])
		}
		if !strings.Contains(e.logs.String(), "not plausible") {
			t.Errorf("%s: the log does not say why the stored session was not used", name)
		}
	}
}

// rewriteStoredSession changes the mount's stored session with edit, and makes the mount load
// it again, as after a restart. It returns what it stored.
func (e *env) rewriteStoredSession(edit func(*sessionRecord)) sessionRecord {
	entry, _ := e.s.Get(context.Background(), sessionKey)
	var r sessionRecord
	_ = entry.DecodeJSON(&r)
	edit(&r)
	entry, _ = logical.StorageEntryJSON(sessionKey, r)
	_ = e.s.Put(context.Background(), entry)
	e.b.slot.Reset()
	return r
}

// A hold reason stored by an earlier version may quote the upstream: loaded, it is replaced by
// the plugin's words in the held error and status.
func TestHoldReasonStoredByAnEarlierVersionIsNotShown(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	old := `{"version":1,"refused":3,"held":true,"since":"2026-01-01T00:00:00Z","at":"2026-01-01T00:00:00Z",` +
		`"reason":"plextrac (h) login failed: upstream refused it (HTTP 401: account locked; you sent Hunter2-old)"}`
	if err := e.s.Put(context.Background(), &logical.StorageEntry{Key: holdKey, Value: []byte(old)}); err != nil {
		t.Fatal(err)
	}
	restarted, _, _ := e.newMount(e.s, nil)
	e.b = restarted
	e.clock.Advance(15 * time.Minute)
	code, msg := e.readFailure("token")
	status, _ := json.Marshal(e.read("status", nil).Data)
	for what, text := range map[string]string{"held error": msg, "status": string(status)} {
		if strings.Contains(text, "Hunter2-old") || strings.Contains(text, "you sent") {
			t.Errorf("%s shows the stored reason: %s", what, text)
		}
	}
	if code != 503 || !strings.Contains(msg, "an earlier version stored the reason; it is withheld") {
		t.Errorf("%d %q; want 503 and the plugin's words for the old reason", code, msg)
	}
}
