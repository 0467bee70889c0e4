package registry

import (
	"github.com/mcpes/mcpes/domain"
)

// owners is implemented by projections that can list the owners with private
// servers (*projections.Servers does).
type owners interface{ Owners() []string }

// checkToolPrefix refuses a new server whose /mcp tool prefix (domain.ToolPrefix)
// equals that of another server some owner would see beside it: for an app server,
// the app servers and every owner's private ones; for a private server, the app
// servers and the owner's own. Returns a *domain.ValidationError naming both.
func (s *Service) checkToolPrefix(scope domain.Scope, name string) error {
	if !domain.MayCollide(name) {
		return nil // no other name can map to a plain name's prefix: skip listing every owner's servers
	}
	var others []string
	add := func(owner string) {
		for _, e := range s.proj.List(owner) {
			if e.Name != name {
				others = append(others, e.Name)
			}
		}
	}
	add(scope.Owner())
	if scope.IsApp() {
		if o, ok := s.proj.(owners); ok {
			for _, owner := range o.Owners() {
				add(owner)
			}
		}
	}
	if err := domain.CheckToolPrefix(name, others); err != nil {
		return &domain.ValidationError{Problems: []domain.Problem{{Server: name, Field: "name", Reason: err.Error()}}}
	}
	return nil
}
