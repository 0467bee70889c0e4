package oauth

import "errors"

// Errors of the OAuth client. Each names the step that failed; wrapped errors keep
// the cause.
var (
	// ErrDiscovery: no usable protected-resource or authorization-server metadata.
	ErrDiscovery = errors.New("oauth discovery failed")
	// ErrResourceMismatch: the protected-resource metadata names a resource that the
	// server URL is not part of; following it could hand a token to another resource.
	ErrResourceMismatch = errors.New("protected resource metadata does not match the server URL")
	// ErrIssuerMismatch: authorization-server metadata whose issuer is not the
	// authorization server it was fetched for.
	ErrIssuerMismatch = errors.New("authorization server metadata issuer mismatch")
	// ErrNoPKCE: the authorization server does not advertise PKCE with S256.
	ErrNoPKCE = errors.New("authorization server does not support PKCE S256")
	// ErrNoRegistration: no pre-registered client, no usable client ID metadata
	// document and no dynamic registration endpoint.
	ErrNoRegistration = errors.New("no way to register a client with the authorization server")
	// ErrState: a callback whose state is unknown, expired, already used or for
	// another owner.
	ErrState = errors.New("authorization callback state is not valid")
	// ErrIssuer: a callback whose iss parameter is missing or is not the issuer.
	ErrIssuer = errors.New("authorization response issuer is not valid")
	// ErrDenied: the authorization server answered the callback with an error.
	ErrDenied = errors.New("authorization was not granted")
	// ErrInvalidGrant: the refresh token (or code) was refused; the owner must
	// authorize again.
	ErrInvalidGrant = errors.New("grant is no longer valid")
	// ErrTransient: the token endpoint could not be reached or failed; try later.
	ErrTransient = errors.New("token endpoint unavailable")
	// ErrNoGrant: the owner holds no grant for the server.
	ErrNoGrant = errors.New("owner has not authorized this server")
	// ErrTooManyAttempts: the step-up limit was reached for one request.
	ErrTooManyAttempts = errors.New("authorization attempts exhausted")
)
