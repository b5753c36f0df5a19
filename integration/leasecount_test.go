//go:build integration

package integration

import (
	"strings"
	"testing"
)

// countLeases counts the leases Vault holds under prefix (e.g. "mount/" or "mount/token/"),
// through sys/leases/lookup, walking at most a few levels of folders. No lease is an empty
// list (Vault answers 404), which counts 0.
func countLeases(t *testing.T, prefix string) int {
	t.Helper()
	c := apiClient(t, 1)
	var walk func(p string, depth int) int
	walk = func(p string, depth int) int {
		s, err := c.Logical().List("sys/leases/lookup/" + p)
		if err != nil {
			t.Fatalf("list sys/leases/lookup/%s: %v", p, err)
		}
		if s == nil || s.Data == nil {
			return 0
		}
		keys, _ := s.Data["keys"].([]any)
		n := 0
		for _, k := range keys {
			k, _ := k.(string)
			if !strings.HasSuffix(k, "/") {
				n++
			} else if depth < 4 {
				n += walk(p+k, depth+1)
			}
		}
		return n
	}
	return walk(strings.TrimSuffix(prefix, "/")+"/", 0)
}
