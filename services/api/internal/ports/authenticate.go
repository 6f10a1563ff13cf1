package ports

import (
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/assent-dev/assent/services/api/internal/auth"
)

const principalKey = "assent.principal"

// authenticate requires a known bearer token (RFC 6750) on every /v1 route.
func (s *server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		if h == "" {
			return unauthenticated("the Authorization header carries no bearer token", "")
		}
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return unauthenticated("the Authorization header must be \"Bearer <token>\"", "invalid_request")
		}
		p, ok := s.cfg.Tokens.Authenticate(strings.TrimSpace(token))
		if !ok {
			return unauthenticated("the bearer token is not known", "invalid_token")
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

func principal(c echo.Context) auth.Principal {
	p, _ := c.Get(principalKey).(auth.Principal)
	return p
}
