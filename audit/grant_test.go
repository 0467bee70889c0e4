package audit

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// A log written before grant facts had their own stream holds them on the
// connection stream; the grant state reads both, in log order.
func TestGrantAt_ReadsTheGrantStreamAndTheOlderConnectionStream(t *testing.T) {
	ctx := context.Background()
	st := memory.New()
	defer st.Close()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	put := func(fact any, subject string) {
		t.Helper()
		env, err := events.New(fact, events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://test", Time: t0, Actor: "system"})
		if err != nil {
			t.Fatal(err)
		}
		if subject != "" {
			env.Subject = subject
		}
		if _, err := st.Append(ctx, env.Subject, store.AnyVersion, env); err != nil {
			t.Fatal(err)
		}
	}
	// given a grant completed on the connection stream (an older log), then refreshed
	// and revoked on the grant stream
	put(domain.OAuthCompleted{Owner: "alice", Server: "gh", GrantID: "g1", Issuer: "https://as", ExpiresAt: t0.Add(time.Hour)},
		domain.ConnStream("alice", "gh"))
	put(domain.TokenRefreshed{Owner: "alice", Server: "gh", GrantID: "g1", Generation: 1, ExpiresAt: t0.Add(2 * time.Hour)}, "")
	put(domain.TokenRevoked{Owner: "alice", Server: "gh", GrantID: "g1", Reason: "owner"}, "")
	if got := domain.GrantStream("alice", "gh"); got != "owner/alice/grant/gh" {
		t.Fatalf("grant stream %s", got)
	}

	for _, c := range []struct {
		pos     uint64
		held    bool
		expires time.Time
	}{{1, true, t0.Add(time.Hour)}, {2, true, t0.Add(2 * time.Hour)}, {3, false, time.Time{}}} {
		// when the state is asked at each position, then each fact counts from its own
		g, err := grantAt(ctx, st, "alice", "gh", c.pos, t0)
		if err != nil {
			t.Fatal(err)
		}
		if g.Held != c.held || !g.Expires.Equal(c.expires) {
			t.Fatalf("at %d: %+v, want held %v expiring %v", c.pos, g, c.held, c.expires)
		}
	}
}
