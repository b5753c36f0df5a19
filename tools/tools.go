//go:build tools

// Package tools pins the versions of the tools `make test` builds (staticcheck).
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
