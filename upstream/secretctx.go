package upstream

import "context"

type secretsKey struct{}

// WithSecretValues returns a context under which Dial treats values as secrets:
// they are replaced by [REDACTED] in every error and log message of that
// connection. Callers that put values into a config before Dial (per-owner values
// substituted into a url, say) use it so a value never leaks through a message.
func WithSecretValues(ctx context.Context, values ...string) context.Context {
	prev, _ := ctx.Value(secretsKey{}).([]string)
	return context.WithValue(ctx, secretsKey{}, append(append([]string(nil), prev...), values...))
}

func secretValues(ctx context.Context) []string {
	v, _ := ctx.Value(secretsKey{}).([]string)
	return v
}
