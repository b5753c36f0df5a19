package upstream

// Where and how credentials are sent: the rules for the upstream's URL and its CA, defined once
// here and used by the backend's config validation and by newClient.

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
)

// CheckURL checks where credentials will be sent: an absolute http(s) URL without
// credentials, query or fragment, https unless allowed, never an address NeverUpstream refuses.
func CheckURL(raw string, allowHTTP bool) error {
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
	// The same rules as the dial guard (see NeverUpstream): zones, link-local, the
	// unspecified address, known metadata services, and IPv4 carried inside IPv6.
	if err := NeverUpstreamHost(strings.TrimSuffix(u.Hostname(), ".")); err != nil {
		return fmt.Errorf("url: %v", err)
	}
	return nil
}

// CheckCACert accepts PEM CERTIFICATE blocks, and refuses a private key pasted with them:
// the text is stored and read back as written, so a key in it would be shown on every read.
func CheckCACert(pemText string) error {
	rest, found := []byte(pemText), false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return fmt.Errorf("ca_cert: holds a %s block; remove it and store only the CA's CERTIFICATE blocks (config reads show ca_cert)", block.Type)
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("ca_cert: a CERTIFICATE block does not parse: %v", err)
		}
		found = true
	}
	if !found {
		return fmt.Errorf("ca_cert: no PEM CERTIFICATE block found")
	}
	return nil
}
