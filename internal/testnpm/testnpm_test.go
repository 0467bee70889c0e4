package testnpm

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestInCI(t *testing.T) {
	cases := map[string]bool{"true": true, "1": true, "yes": true, "false": false, "0": false, "": false}
	for v, want := range cases {
		t.Setenv("CI", v)
		if got := InCI(); got != want {
			t.Errorf("CI=%q: InCI() = %v, want %v", v, got, want)
		}
	}
	os.Unsetenv("CI")
	if InCI() {
		t.Error("CI unset: InCI() = true")
	}
}

// TestRequire_MissingNode runs TestHelperRequire in a child test binary with an empty
// PATH: without CI it must skip, with CI=true it must fail.
func TestRequire_MissingNode(t *testing.T) {
	if os.Getenv("TESTNPM_HELPER") != "" {
		t.Skip("inside helper")
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		wantText string
	}{
		{"", false, "--- SKIP: TestHelperRequire"},
		{"true", true, "--- FAIL: TestHelperRequire"},
	} {
		// given a child with no node in PATH
		cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperRequire$", "-test.v")
		cmd.Env = []string{"TESTNPM_HELPER=1", "PATH=/nonexistent"}
		if tc.ci != "" {
			cmd.Env = append(cmd.Env, "CI="+tc.ci)
		}
		// when it runs Require
		out, err := cmd.CombinedOutput()
		// then it skips without CI and fails with CI
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.wantText) {
			t.Errorf("CI=%q: err=%v, output:\n%s", tc.ci, err, out)
		}
		if !strings.Contains(string(out), "node not found") {
			t.Errorf("CI=%q: message does not say node is missing:\n%s", tc.ci, out)
		}
	}
}

func TestHelperRequire(t *testing.T) {
	if os.Getenv("TESTNPM_HELPER") == "" {
		t.Skip("only run as a child of TestRequire_MissingNode")
	}
	Require(t)
	t.Log("Require returned")
}

func TestStartHTTP_ServerEverything(t *testing.T) {
	// given the installed npm peers
	env := Require(t)
	// when server-everything starts in streamable HTTP mode
	p := env.StartHTTP(t, "mcp-server-everything", nil, "streamableHttp")
	// then it listens on the chosen port, and Kill reaps it
	if p.Port == 0 {
		t.Fatal("no port")
	}
	p.Kill()
	select {
	case <-p.Done():
	default:
		t.Fatal("process not reaped after Kill")
	}
}
