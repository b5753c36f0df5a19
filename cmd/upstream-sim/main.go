// Command upstream-sim serves simulated PlexTrac, Plaspy and Resolver Core login APIs on one
// address, for `make dev`, the integration suite and the benchmarks. See package sim.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8200", "address to listen on (port 0 picks a free one)")
	addrFile := flag.String("addr-file", "", "write the URL it serves on to this file once listening")
	lifetime := flag.Duration("token-lifetime", 15*time.Minute, "life of issued tokens")
	plextracLimit := flag.Int("plextrac-auth-limit", 10, "PlexTrac auth calls allowed per minute (0 = unlimited)")
	plaspyLimit := flag.Int("plaspy-auth-limit", 0, "Plaspy auth calls allowed per minute (0 = unlimited)")
	resolverLimit := flag.Int("resolver-auth-limit", 0, "Resolver auth calls allowed per minute (0 = unlimited)")
	certFile := flag.String("tls-cert", "", "serve TLS with this certificate (PEM)")
	keyFile := flag.String("tls-key", "", "private key for -tls-cert (PEM)")
	flag.Parse()

	s := sim.New(sim.Options{TokenLifetime: *lifetime, AuthLimitPerMinute: map[string]int{
		sim.PlexTrac: *plextracLimit, sim.Plaspy: *plaspyLimit, sim.Resolver: *resolverLimit}})
	s.AddDemoUsers()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("upstream-sim: %v", err)
	}
	scheme := "http"
	if *certFile != "" {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s", scheme, ln.Addr())
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(url+"\n"), 0o644); err != nil {
			log.Fatalf("upstream-sim: %v", err)
		}
	}
	fmt.Printf("upstream-sim serving PlexTrac, Plaspy and Resolver APIs on %s (tokens live %s)\n", url, *lifetime)
	fmt.Printf("demo users: %v; admin API under %s/_sim/\n", s.Users(), url)

	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if *certFile != "" {
		err = srv.ServeTLS(ln, *certFile, *keyFile)
	} else {
		err = srv.Serve(ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("upstream-sim: %v", err)
	}
}
