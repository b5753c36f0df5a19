package sim

// Demo accounts, used by `make dev`, the integration suite and the benchmarks.
const (
	DemoPlexTracUser      = "svc-ci@acme.com" // MFA on
	DemoPlexTracPassword  = "plextrac-demo-pass"
	DemoPlexTracTOTP      = "JBSWY3DPEHPK3PXP"
	DemoPlexTracNoMFAUser = "svc-nomfa@acme.com" // a PlexTrac "Service Account": no MFA
	DemoPlexTracTenant    = 7
	DemoPlaspyUser        = "svc-plaspy"
	DemoPlaspyKey         = "plaspy-demo-key-0123456789"
	DemoResolverEmail     = "svc@acme.com"
	DemoResolverPassword  = "resolver-demo-pass"
	DemoResolverOrg       = 42
	DemoResolverNoOrg     = "nobody@acme.com" // a user in no org: login answers 404
)

// AddDemoUsers creates the demo accounts.
func (s *Server) AddDemoUsers() {
	s.AddPlexTracUser(DemoPlexTracUser, PlexTracUser{
		Password:   DemoPlexTracPassword,
		TOTPSecret: DemoPlexTracTOTP,
		TenantID:   DemoPlexTracTenant,
	})
	s.AddPlexTracUser(DemoPlexTracNoMFAUser, PlexTracUser{
		Password: DemoPlexTracPassword,
		TenantID: DemoPlexTracTenant,
	})
	s.AddPlaspyUser(DemoPlaspyUser, PlaspyUser{APIKey: DemoPlaspyKey})
	s.AddResolverUser(DemoResolverEmail, ResolverUser{
		Password: DemoResolverPassword,
		Orgs:     []int{DemoResolverOrg},
	})
	s.AddResolverUser(DemoResolverNoOrg, ResolverUser{Password: DemoResolverPassword})
}
