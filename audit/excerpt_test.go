package audit_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/domain"
)

// ownersLog is a log with alice's and bob's own servers and connections, checkpointed.
func ownersLog(t *testing.T, k audit.SigningKey) (*world, audit.Checkpoint) {
	t.Helper()
	w := newWorld(t)
	url := clockURL(t)
	for _, owner := range []string{"alice", "bob"} {
		w.register("owner:"+owner, domain.UserScope(owner), "notes", url)
		mustGet(t, w, owner, "notes")
	}
	w.register("admin", domain.AppScope, "clock", url)
	mustGet(t, w, "alice", "clock")
	cp, _, err := audit.NewCheckpointer(w.st, k.Signer, audit.CheckpointerOptions{}).Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	registerServers(w, 2, "later") // events after the checkpoint
	return w, cp
}

func TestExportProofs_OwnerExcerptVerifiesWithOnlyThePublicKey(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	w, cp := ownersLog(t, k)

	// given alice's excerpt with proofs against the checkpoint
	var out bytes.Buffer
	n, err := audit.ExportProofs(context.Background(), w.st, audit.Filter{Owner: "alice"}, cp, &out, nil)
	if err != nil || n < 3 {
		t.Fatalf("export: %d events, %v", n, err)
	}
	if strings.Contains(out.String(), "bob") {
		t.Fatalf("alice's excerpt shows bob's events:\n%s", out.String())
	}

	// when a third party checks it with the checkpoint note and the public key only
	opened, err := audit.OpenCheckpoint([]byte(cp.Note), v)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyExcerpt(bytes.NewReader(out.Bytes()), opened)

	// then every event is proven, with its original sequence and hash
	if err != nil || !rep.OK || rep.Events != n || rep.Proven != n {
		t.Fatalf("report %+v, %v (exported %d)", rep, err, n)
	}
	first := strings.SplitN(out.String(), "\n", 2)[0]
	evs := readAll(t, w.st)
	found := false
	for _, e := range evs {
		found = found || strings.Contains(first, `"hash":"`+e.Hash+`"`) && strings.Contains(first, e.ID)
	}
	if !found {
		t.Fatalf("the first excerpt line is not a log event as stored: %s", first)
	}
}

func TestVerifyExcerpt_FindsEveryChange(t *testing.T) {
	k, v := newKey(t, "mcpes.test/log")
	w, cp := ownersLog(t, k)
	var out bytes.Buffer
	if _, err := audit.ExportProofs(context.Background(), w.st, audit.Filter{Owner: "alice"}, cp, &out, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	older, err := audit.SignCheckpoint(k.Signer, cp.Size-1, cp.Root, cp.Time)
	if err != nil {
		t.Fatal(err)
	}
	otherRoot, err := audit.SignCheckpoint(k.Signer, cp.Size, [32]byte{7}, cp.Time)
	if err != nil {
		t.Fatal(err)
	}
	// a proof line with its first hash's first base64 character changed
	i := strings.Index(lines[1], `"hashes":["`) + len(`"hashes":["`)
	c := "A"
	if lines[1][i] == 'A' {
		c = "B"
	}
	badProof := lines[1][:i] + c + lines[1][i+1:]
	swapped := append([]string{lines[0], lines[3], lines[2], lines[1]}, lines[4:]...)
	cases := map[string]struct {
		text string
		cp   audit.Checkpoint
	}{
		"an event changed":     {strings.Replace(out.String(), `"owner":"alice"`, `"owner":"alicf"`, 1), cp},
		"a proof hash changed": {strings.Join(append([]string{lines[0], badProof}, lines[2:]...), "\n"), cp},
		"proofs swapped":       {strings.Join(swapped, "\n"), cp},
		"another root":         {out.String(), otherRoot},
		"a proof left out":     {strings.Join(append([]string{lines[0]}, lines[2:]...), "\n"), cp},
		"another checkpoint":   {out.String(), older},
		"an event moved":       {strings.Replace(out.String(), `"sequence":"0000`, `"sequence":"1000`, 1), cp},
		"a line that is noise": {out.String() + "garbage\n", cp},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// given an excerpt changed after export, or checked against another checkpoint
			// when it is verified
			rep, err := audit.VerifyExcerpt(strings.NewReader(tc.text), tc.cp)
			// then it fails, naming a line
			if err != nil || rep.OK || len(rep.Problems) == 0 || !strings.HasPrefix(rep.Problems[0], "line ") {
				t.Fatalf("report %+v, %v", rep, err)
			}
			t.Log(rep.Problems[0])
		})
	}
	_ = v
}
