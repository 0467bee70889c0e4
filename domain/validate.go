package domain

// ValidateConfig checks one server config for scope and returns a *ValidationError
// listing every problem (server, field, reason), or nil. Unknown fields are not
// errors; see ConfigWarnings.
//
// TODO(helper): full rules; this placeholder checks only the name.
func ValidateConfig(scope Scope, name string, cfg ServerConfig) error {
	if err := ValidateServerName(name); err != nil {
		return &ValidationError{Problems: []Problem{{Server: name, Field: "name", Reason: err.Error()}}}
	}
	return nil
}
