package sim

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// issue signs a token for provider and subject. PlexTrac and Resolver tokens are HS256,
// Plaspy's are HS512 as its docs say. A fault may make the token opaque, expired or exp-less.
func (s *Server) issue(provider, subject string, claims jwt.MapClaims, tokenFault string) (string, time.Time) {
	s.mu.Lock()
	key, life := s.key, s.opts.TokenLifetime
	s.mu.Unlock()
	now := s.now()
	exp := now.Add(life)
	if tokenFault == "notjwt" {
		return "opaque-" + randomID(), exp
	}
	c := jwt.MapClaims{
		"prv": provider,
		"sub": subject,
		"iat": now.Unix(),
		"exp": exp.Unix(),
		"jti": randomID(),
	}
	for k, v := range claims {
		c[k] = v
	}
	switch tokenFault {
	case "expired":
		exp = now.Add(-time.Minute)
		c["exp"] = exp.Unix()
	case "noexp":
		delete(c, "exp")
	}
	method := jwt.SigningMethodHS256
	if provider == Plaspy {
		method = jwt.SigningMethodHS512
	}
	signed, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		panic(err)
	}
	return signed, exp
}

// check validates a token for provider: signature with the current key, provider claim, and
// expiry by the simulator's clock. It returns the subject.
func (s *Server) check(provider, token string) (string, error) {
	s.mu.Lock()
	key := s.key
	s.mu.Unlock()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{"HS256", "HS512"}), jwt.WithTimeFunc(s.now), jwt.WithIssuedAt())
	if err != nil {
		return "", err
	}
	if claims["prv"] != provider {
		return "", errors.New("token was issued by another API")
	}
	sub, _ := claims["sub"].(string)
	return sub, nil
}

// CheckToken reports whether token is currently accepted by provider's protected endpoint.
func (s *Server) CheckToken(provider, token string) bool {
	_, err := s.check(provider, token)
	return err == nil
}
