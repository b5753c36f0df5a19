package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// GenericConfig describes any JSON login API, so a new upstream needs configuration, not code.
type GenericConfig struct {
	LoginMethod   string `json:"login_method,omitempty"`   // default POST
	LoginPath     string `json:"login_path,omitempty"`     // required, e.g. /api/login
	LoginBody     string `json:"login_body,omitempty"`     // Go template rendering JSON; default DefaultLoginBody
	TokenField    string `json:"token_field,omitempty"`    // dotted path in the answer; default "token"
	ExpiryField   string `json:"expiry_field,omitempty"`   // dotted path; optional
	RefreshMethod string `json:"refresh_method,omitempty"` // default POST when refresh_path is set
	RefreshPath   string `json:"refresh_path,omitempty"`   // optional: no refresh when empty
	LogoutMethod  string `json:"logout_method,omitempty"`  // default POST when logout_path is set
	LogoutPath    string `json:"logout_path,omitempty"`    // optional
	AuthScheme    string `json:"auth_scheme,omitempty"`    // Authorization prefix: default "Bearer"; "none" sends the bare token
}

// DefaultLoginBody is the generic login body when login_body is not set.
const DefaultLoginBody = `{"username": {{json .username}}, "password": {{json .password}}}`

var genericMethods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true}

type generic struct {
	*Client
	g    GenericConfig
	body *template.Template
	vars map[string]any
}

func newGeneric(c *Client, cfg Config) (*generic, error) {
	g := cfg.Generic.withDefaults()
	tmpl, err := parseLoginBody(g.LoginBody)
	if err != nil {
		return nil, err
	}
	return &generic{Client: c, g: g, body: tmpl, vars: map[string]any{
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
	g = g.withDefaults()
	for field, path := range map[string]string{"login_path": g.LoginPath, "refresh_path": g.RefreshPath, "logout_path": g.LogoutPath} {
		if path != "" && !strings.HasPrefix(path, "/") {
			return fmt.Errorf("%s: %q must start with /", field, path)
		}
	}
	if g.LoginPath == "" {
		return fmt.Errorf("login_path: required for provider generic (the path that takes the login POST, e.g. /api/login)")
	}
	for field, m := range map[string]string{"login_method": g.LoginMethod, "refresh_method": g.RefreshMethod, "logout_method": g.LogoutMethod} {
		if m != "" && !genericMethods[strings.ToUpper(m)] {
			return fmt.Errorf("%s: %q is not one of GET, POST, PUT, PATCH, DELETE", field, m)
		}
	}
	tmpl, err := parseLoginBody(g.LoginBody)
	if err != nil {
		return err
	}
	// Values as long as real credentials often are, so that a body that only fits the cap
	// with one-letter samples is refused here rather than at the first login.
	sample := strings.Repeat("x", 64)
	out, err := renderLoginBody(tmpl, map[string]any{"username": sample, "password": sample, "api_key": sample})
	if err != nil {
		return err
	}
	if !json.Valid(out) {
		return fmt.Errorf("login_body: the template does not render JSON (write values as {{json .password}})")
	}
	return nil
}

// The login body template is written by a config writer and rendered in the plugin process
// that serves every mount, so it must not be able to exhaust it:
//
//   - Size: the body is rendered into a writer that fails past maxLoginBody; text/template
//     stops at the first failed write, so a template that writes too much stops there.
//   - Time: text/template has no step limit, and a loop that writes nothing ({{range 1000000000}}
//     {{end}}) or recursion through {{define}}/{{template}}/{{block}} would run unbounded with
//     nothing for the size cap to see; a timeout would only abandon a goroutine that keeps
//     burning CPU. So the template language is cut down to what a JSON body needs and cannot
//     loop: text, actions, {{if}}, {{with}}, variables, and the functions in loginBodyFuncs.
//     printf is left out too: its width and precision ({{printf "%0999999999d" 0}}) allocate
//     the whole string before anything is written. Without loops each action runs once, and
//     none makes more than a few times its arguments (html and js escapes), so the work is
//     bounded by the template's size, capped at maxLoginBody as well, times the values' size.
const maxLoginBody = 64 << 10

// loginBodyFuncs are the functions a login body may call: none loops, none can build a string
// much larger than its arguments.
var loginBodyFuncs = map[string]bool{
	"json": true, "print": true, "html": true, "js": true, "urlquery": true, "len": true, "index": true, "slice": true,
	"and": true, "or": true, "not": true, "eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true,
}

var errLoginBodyTooLarge = fmt.Errorf("login_body: the rendered body is larger than %d KiB", maxLoginBody>>10)

// cappedBuffer is a bytes.Buffer that refuses to grow past max.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errLoginBodyTooLarge
	}
	return b.Buffer.Write(p)
}

// renderLoginBody executes the login body template into at most maxLoginBody bytes.
func renderLoginBody(t *template.Template, vars map[string]any) ([]byte, error) {
	out := &cappedBuffer{max: maxLoginBody}
	if err := t.Execute(out, vars); err != nil {
		if errors.Is(err, errLoginBodyTooLarge) {
			return nil, errLoginBodyTooLarge
		}
		return nil, fmt.Errorf("login_body: %v", err)
	}
	return out.Bytes(), nil
}

func parseLoginBody(src string) (*template.Template, error) {
	if len(src) > maxLoginBody {
		return nil, fmt.Errorf("login_body: the template is longer than %d KiB", maxLoginBody>>10)
	}
	t, err := template.New("login_body").Option("missingkey=error").Funcs(template.FuncMap{
		"json": func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
	}).Parse(src)
	if err != nil {
		return nil, fmt.Errorf("login_body: %v", err)
	}
	if len(t.Templates()) > 1 {
		return nil, errors.New("login_body: {{define}} and {{block}} are not allowed (one template, no loops)")
	}
	if t.Tree != nil {
		if err := checkLoginBodyNode(t.Tree.Root); err != nil {
			return nil, fmt.Errorf("login_body: %v", err)
		}
	}
	return t, nil
}

// checkLoginBodyNode refuses everything but the loop-free subset described at maxLoginBody.
func checkLoginBodyNode(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkLoginBodyNode(c); err != nil {
				return err
			}
		}
		return nil
	case *parse.TextNode, *parse.CommentNode:
		return nil
	case *parse.ActionNode:
		return checkLoginBodyPipe(n.Pipe)
	case *parse.IfNode:
		return checkLoginBodyBranch(&n.BranchNode)
	case *parse.WithNode:
		return checkLoginBodyBranch(&n.BranchNode)
	case *parse.RangeNode:
		return errors.New("{{range}} is not allowed (no loops: the body is one JSON object)")
	case *parse.TemplateNode:
		return errors.New("{{template}} and {{block}} are not allowed (one template, no loops)")
	}
	return fmt.Errorf("%q is not allowed", n)
}

func checkLoginBodyBranch(b *parse.BranchNode) error {
	if err := checkLoginBodyPipe(b.Pipe); err != nil {
		return err
	}
	if err := checkLoginBodyNode(b.List); err != nil {
		return err
	}
	if b.ElseList != nil {
		return checkLoginBodyNode(b.ElseList)
	}
	return nil
}

func checkLoginBodyPipe(p *parse.PipeNode) error {
	if p == nil {
		return nil
	}
	for _, c := range p.Cmds {
		for _, a := range c.Args {
			if err := checkLoginBodyArg(a); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkLoginBodyArg(a parse.Node) error {
	switch a := a.(type) {
	case *parse.IdentifierNode:
		if !loginBodyFuncs[a.Ident] {
			return fmt.Errorf("the function %q is not allowed (allowed: json, print, html, js, urlquery, len, index, slice, and, or, not, eq, ne, lt, le, gt, ge)", a.Ident)
		}
		return nil
	case *parse.PipeNode:
		return checkLoginBodyPipe(a)
	case *parse.ChainNode:
		return checkLoginBodyArg(a.Node)
	case *parse.FieldNode, *parse.VariableNode, *parse.DotNode, *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
		return nil
	}
	return fmt.Errorf("%q is not allowed", a)
}

func (p *generic) Login(ctx context.Context) (*Token, error) {
	body, err := renderLoginBody(p.body, p.vars)
	if err != nil {
		return nil, p.fail(OpLogin, KindBadResponse, 0, "the login body does not render: "+scrub(err.Error(), p.secretSet()), "fix login_body", time.Time{})
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
	hint := "check the credentials in config"
	if op == OpRefresh {
		hint = "the session is no longer valid: log in again"
	}
	err := p.call(ctx, request{op: op, method: strings.ToUpper(method), path: path, body: body, authz: authz, token: cur,
		rejected: map[int]string{401: hint, 403: hint}}, &r, func() error {
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
	return p.newToken(op, tok, expiry, nil)
}

// Logout calls the configured logout; an upstream that no longer knows the token (401, 403,
// 404) has nothing left to end, so that is success.
func (p *generic) Logout(ctx context.Context, token string) error {
	if p.g.LogoutPath == "" {
		return nil
	}
	err := p.call(ctx, request{op: OpLogout, method: strings.ToUpper(p.g.LogoutMethod), path: p.g.LogoutPath,
		authz: p.Authorization(token), token: token, noLimit: true}, nil, nil)
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
