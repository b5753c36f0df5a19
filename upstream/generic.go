package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// GenericConfig describes any JSON login API, so a new upstream needs configuration, not code.
type GenericConfig struct {
	LoginMethod   string // default POST
	LoginPath     string // required, e.g. /api/login
	LoginBody     string // JSON text with {{json .password}}-style values (loginbody.go); default DefaultLoginBody
	TokenField    string // dotted path in the answer; default "token"
	ExpiryField   string // dotted path; optional
	RefreshMethod string // default POST when refresh_path is set
	RefreshPath   string // optional: no refresh when empty
	LogoutMethod  string // default POST when logout_path is set
	LogoutPath    string // optional
	AuthScheme    string // Authorization prefix: default "Bearer"; "none" sends the bare token
}

// DefaultLoginBody is the generic login body when login_body is not set.
const DefaultLoginBody = `{"username": {{json .username}}, "password": {{json .password}}}`

var genericMethods = map[string]bool{
	"GET":    true,
	"POST":   true,
	"PUT":    true,
	"PATCH":  true,
	"DELETE": true,
}

// Generic is the provider name of the generic JSON login.
const Generic = "generic"

func init() {
	Register(Spec{
		Name: Generic,
		Rank: 4,
		Takes: []string{"username", "password", "api_key", "login_method", "login_path", "login_body", "token_field",
			"expiry_field", "refresh_method", "refresh_path", "logout_method", "logout_path", "auth_scheme"},
		Requires:       []string{"login_path"},
		AccountSecrets: genericAccountSecrets,
		Validate:       func(cfg Config) error { return cfg.Generic.Validate() },
		// Any 4xx but 408 (a timeout) and 429 (the rate limit) refuses the login: a generic
		// upstream has no refusal signal of its own.
		RefusedStatus: func(status int) bool { return status >= 400 && status < 500 && status != 408 && status != 429 },
		Authorization: `auth_scheme and the token (default "Bearer <token>"; "none": the bare token)`,
		New: func(c *Client, cfg Config, _ Deps) (Provider, error) {
			return newGeneric(c, cfg)
		},
	})
}

// genericAccountSecrets: a generic login whose body does not send .username (or whose
// username is empty) is named by every secret it sends: each of api_key and password the
// body references (a password may be a personal access token), api_key first, and every
// header value.
func genericAccountSecrets(cfg Config) []string {
	sent := LoginBodyFields(cfg.Generic.LoginBody)
	if cfg.Username != "" && slices.Contains(sent, "username") {
		return nil
	}
	var names []string
	for _, name := range []string{"api_key", "password"} {
		if slices.Contains(sent, name) {
			names = append(names, name)
		}
	}
	return append(names, "headers")
}

type generic struct {
	*Client
	g    GenericConfig
	body *loginBody
	vars map[string]string
}

// newGeneric applies the same rules as Validate: a config stored by an older version that no
// longer fits them is refused when it is loaded, with the same error naming the field.
func newGeneric(c *Client, cfg Config) (*generic, error) {
	g := cfg.Generic.withDefaults()
	body, err := g.check()
	if err != nil {
		return nil, err
	}
	return &generic{Client: c, g: g, body: body, vars: map[string]string{
		"username": cfg.Username, "password": cfg.Password, "api_key": cfg.APIKey}}, nil
}

func (g GenericConfig) withDefaults() GenericConfig {
	if g.LoginMethod == "" {
		g.LoginMethod = http.MethodPost
	}
	if g.LoginBody == "" {
		g.LoginBody = DefaultLoginBody
	}
	if g.TokenField == "" {
		g.TokenField = "token"
	}
	if g.RefreshPath != "" && g.RefreshMethod == "" {
		g.RefreshMethod = http.MethodPost
	}
	if g.LogoutPath != "" && g.LogoutMethod == "" {
		g.LogoutMethod = http.MethodPost
	}
	if g.AuthScheme == "" {
		g.AuthScheme = "Bearer"
	}
	return g
}

// Validate checks the generic settings and names the field to fix.
func (g GenericConfig) Validate() error {
	_, err := g.withDefaults().check()
	return err
}

type setting struct{ name, value string }

// check validates g, defaults applied, and returns its parsed login body. The lengths come
// first, so that no other error quotes an unbounded value.
func (g GenericConfig) check() (*loginBody, error) {
	for _, s := range []setting{{"login_method", g.LoginMethod}, {"login_path", g.LoginPath}, {"token_field", g.TokenField},
		{"expiry_field", g.ExpiryField}, {"refresh_method", g.RefreshMethod}, {"refresh_path", g.RefreshPath},
		{"logout_method", g.LogoutMethod}, {"logout_path", g.LogoutPath}, {"auth_scheme", g.AuthScheme}} {
		if len(s.value) > MaxSettingLen {
			return nil, fmt.Errorf("%s: %d bytes, longer than %d; shorten it", s.name, len(s.value), MaxSettingLen)
		}
	}
	for _, s := range []setting{{"login_path", g.LoginPath}, {"refresh_path", g.RefreshPath}, {"logout_path", g.LogoutPath}} {
		if s.value != "" && !strings.HasPrefix(s.value, "/") {
			return nil, fmt.Errorf("%s: %q must start with /", s.name, s.value)
		}
	}
	if g.LoginPath == "" {
		return nil, fmt.Errorf("login_path: required for provider generic (the path that takes the login POST, e.g. /api/login)")
	}
	// The allowed methods are HTTP tokens, so a method can never carry a line break or a space
	// into the request line.
	for _, s := range []setting{{"login_method", g.LoginMethod}, {"refresh_method", g.RefreshMethod}, {"logout_method", g.LogoutMethod}} {
		if s.value != "" && !genericMethods[strings.ToUpper(s.value)] {
			return nil, fmt.Errorf("%s: %q is not one of GET, POST, PUT, PATCH, DELETE", s.name, s.value)
		}
	}
	// auth_scheme goes in front of the token in every reader's Authorization header: one
	// token (RFC 7230 tchar, the same characters as a header name), nothing that could end
	// the header or add a parameter. The value is not quoted back: it may hold a line break.
	if !strings.EqualFold(g.AuthScheme, "none") && !httpguts.ValidHeaderFieldName(g.AuthScheme) {
		return nil, errors.New("auth_scheme: must be one HTTP token such as Bearer or Token (letters, digits and !#$%&'*+-.^_`|~; no spaces or line breaks), or none for the bare token")
	}
	body, err := parseLoginBody(g.LoginBody)
	if err != nil {
		return nil, err
	}
	// The body has no conditions, so its shape is the same for every value: one render with
	// sample values shows whether it is JSON.
	sample := strings.Repeat("x", 64)
	out, err := renderLoginBody(body, map[string]string{
		"username": sample,
		"password": sample,
		"api_key":  sample,
	})
	if err != nil {
		return nil, err
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("login_body: the template does not render JSON (write values as {{json .password}})")
	}
	return body, nil
}

func (p *generic) Login(ctx context.Context) (*Token, error) {
	body, err := renderLoginBody(p.body, p.vars)
	if err != nil {
		hint := "fix login_body"
		if errors.Is(err, errLoginValueTooLong) {
			hint = "shorten the credential in config"
		}
		return nil, p.fail(OpLogin, KindBadResponse, 0, "the login body does not render: "+Shown(failure{err: err}), hint, time.Time{})
	}
	return p.exchange(ctx, OpLogin, p.g.LoginMethod, p.g.LoginPath, json.RawMessage(body), "")
}

func (p *generic) Refresh(ctx context.Context, cur *Token) (*Token, error) {
	if p.g.RefreshPath == "" {
		return nil, ErrNoRefresh
	}
	return p.exchange(ctx, OpRefresh, p.g.RefreshMethod, p.g.RefreshPath, nil, cur.Value)
}

// exchange sends a login (body) or a refresh (cur, the current token) and reads the token.
func (p *generic) exchange(ctx context.Context, op, method, path string, body any, cur string) (*Token, error) {
	authz := ""
	if cur != "" {
		authz = p.Authorization(cur)
	}
	var r map[string]any
	var tok string
	var sent time.Time
	hint := "check the credentials in config"
	if op == OpRefresh {
		hint = "the session is no longer valid: log in again"
	}
	err := p.call(ctx, request{
		op:       op,
		method:   strings.ToUpper(method),
		path:     path,
		body:     body,
		authz:    authz,
		sent:     &sent,
		rejected: map[int]string{401: hint, 403: hint},
	}, &r, func() error {
		tok, _ = lookup(r, p.g.TokenField).(string)
		if tok == "" {
			return p.fail(op, KindBadResponse, 200, fmt.Sprintf("the answer has no string at token_field %q", p.g.TokenField), "check token_field", time.Time{})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var expiry any
	if p.g.ExpiryField != "" {
		expiry = lookup(r, p.g.ExpiryField)
	}
	return p.newToken(op, tok, Expiry{Field: p.g.ExpiryField, Value: expiry}, sent, nil)
}

// Logout calls the configured logout; an upstream that no longer knows the token (401, 403,
// 404) has nothing left to end, so that is success.
func (p *generic) Logout(ctx context.Context, token string) error {
	if p.g.LogoutPath == "" {
		return ErrNoLogout
	}
	err := p.call(ctx, request{
		op:      OpLogout,
		method:  strings.ToUpper(p.g.LogoutMethod),
		path:    p.g.LogoutPath,
		authz:   p.Authorization(token),
		noLimit: true,
	}, nil, nil)
	if e, ok := AsError(err); ok && (e.Status == 401 || e.Status == 403 || e.Status == 404) {
		return nil
	}
	return err
}

func (p *generic) Authorization(token string) string {
	if strings.EqualFold(p.g.AuthScheme, "none") {
		return token
	}
	return p.g.AuthScheme + " " + token
}

// lookup follows a dotted path (data.session.token) through decoded JSON objects.
func lookup(m map[string]any, path string) any {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[part]
	}
	return cur
}
