package sessiontoken

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// validateURL checks where credentials will be sent: an absolute http(s) URL without
// credentials, query or fragment, https unless allowed, never an address upstream.NeverUpstream refuses.
func validateURL(raw string, allowHTTP bool) error {
	if raw == "" {
		return fmt.Errorf("url: required (the upstream's base URL, e.g. https://acme.plextrac.com)")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		if strings.Contains(raw, "@") { // it may hold a password: never echoed
			return fmt.Errorf("url: not an absolute http(s) URL, and it must not contain credentials")
		}
		return fmt.Errorf("url: %q is not an absolute http(s) URL", raw)
	case u.User != nil:
		return fmt.Errorf("url: must not contain credentials; set them in their own fields, which are stored write-only")
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("url: scheme %q is not supported; use https://", u.Scheme)
	case u.Scheme == "http" && !allowHTTP:
		return fmt.Errorf("url: http:// would send credentials in clear text; use https://, or set allow_insecure_http=true for a local simulator")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("url: must not have a query or fragment")
	}
	// The same rules as the dial guard (see upstream.NeverUpstream): zones, link-local, the
	// unspecified address, known metadata services, and IPv4 carried inside IPv6.
	if err := upstream.NeverUpstreamHost(strings.TrimSuffix(u.Hostname(), ".")); err != nil {
		return fmt.Errorf("url: %v", err)
	}
	return nil
}

// accountID fingerprints the upstream account a config logs in to: provider, normalized host
// and base path, user identity, and for generic where and how it logs in. A stored session and
// every lease carry it, so that neither is served or renewed under another account.
func (c *config) accountID() string {
	host, path := c.URL, ""
	if u, err := url.Parse(c.URL); err == nil {
		host, path = upstream.HostKey(u), strings.TrimRight(u.Path, "/")
	}
	parts := []string{c.Provider, host, path, strings.ToLower(c.Username), strings.ToLower(c.Email), strconv.Itoa(c.OrgID)}
	if c.Provider == upstream.Generic {
		g := c.Generic
		parts = append(parts, strings.ToUpper(g.LoginMethod), g.LoginPath, g.LoginBody, g.TokenField)
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:16])
}

// destination lists the settings that decide where, and in what form, stored credentials are
// sent (and what of the answer is served). A write that changes one must supply the
// credentials again: otherwise writing url=<another host> alone would send the stored
// password there on the next login.
func (c *config) destination() map[string]string {
	g := c.Generic
	return map[string]string{"url": c.URL, "ca_cert": c.CACert, "allow_insecure_http": strconv.FormatBool(c.AllowInsecureHTTP),
		"login_method": g.LoginMethod, "login_path": g.LoginPath, "login_body": g.LoginBody, "token_field": g.TokenField}
}

// checkNewDestination refuses a write that changes the destination of stored secrets
// without supplying each of them again (or clearing it) in the same write.
func checkNewDestination(prev, next *config, given map[string]any) error {
	if prev == nil || prev.Provider != next.Provider { // a new provider starts over: nothing stored is kept
		return nil
	}
	was, now := prev.destination(), next.destination()
	var changed []string
	for k := range now {
		if was[k] != now[k] {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	var missing []string
	for k, set := range map[string]bool{"password": next.Password != "", "api_key": next.APIKey != "",
		"totp_secret": next.TOTPSecret != "", "headers": len(next.Headers) > 0} {
		if _, ok := given[k]; set && !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(changed)
	sort.Strings(missing)
	return fmt.Errorf("%s: changing it changes where the stored credentials are sent; supply %s again in the same write (or clear them)",
		strings.Join(changed, ", "), strings.Join(missing, ", "))
}
