package sessiontoken

import (
	"fmt"
	"net/url"
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
